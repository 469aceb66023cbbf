//! Creating an image: opening its data (file, download, cache), uploading it and
//! verifying what Glance stored against what was sent.

use super::*;
use crate::types::UnauthorizedInfo;

/// Image data ready to upload.
struct Data {
    reader: Box<dyn Read>,
    /// Bytes to upload, when known in advance (sent as the size to Glance).
    length: Option<u64>,
    /// Where the data comes from, for messages.
    label: String,
    /// `source_checksum`, still to be checked while uploading.
    expected: Option<ExpectedDigest>,
    /// Digests the bytes must have (a verified cache file).
    cached: Option<Digests>,
    /// What identifies the source's version: mtime or the server's validators.
    mtime_ns: Option<u64>,
    etag: Option<String>,
    last_modified: Option<String>,
}

/// An image record that exists in Glance but has no verified data yet.
struct Pending {
    id: String,
    data: Data,
}

impl<T: Transport> Provider<T> {
    /// Creates an image and uploads its data; deletes it again if anything fails after the
    /// image record exists.
    pub fn create(&mut self, cloud: &Cloud, spec: ImageSpec) -> Result<ImageState, Error> {
        let spec = self.check(spec)?;
        let timeout = spec.timeouts.create.unwrap_or(DEFAULT_CREATE_TIMEOUT);
        let mut op = self.begin(cloud, spec.region.as_deref(), "create", timeout)?;
        let method = placement::method(&spec);
        // What the cloud offers is checked, and the data opened (downloaded, when cached),
        // before the image record exists, so a bad spec or source never leaves an image behind.
        let copies: Vec<String> = match method {
            ImportMethod::Direct => spec.stores.iter().skip(1).cloned().collect(),
            _ => Vec::new(),
        };
        self.discover(&mut op, &spec, &copies)?;
        let source = match method {
            ImportMethod::GlanceDownload => Some(self.source_image(cloud, &spec, &op)?),
            _ => None,
        };
        let data = if method.glance_fetches() {
            None
        } else {
            Some(self.open_data(&spec, &op)?)
        };

        let id = spec
            .image_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let url = op.url("/images");
        let response = self.call(&mut op, "POST", &url, Some(glance::create_body(&spec, &id)))?;
        // A retried POST answered 409 usually means the first attempt created the image and
        // only its answer was lost: the id is ours, so carry on with that image.
        let lost_answer = response.status == 409
            && self.transport.retried()
            && self
                .status_of(&mut op, &id)
                .is_ok_and(|status| status == "queued");
        if response.status == 409 && !lost_answer {
            return Err(Error::Conflict(format!(
                "an image with id {id} already exists (Glance never reuses the id of a deleted image); \
                 choose another image_id or leave it out"
            )));
        }
        if !lost_answer {
            expect(&response, "POST", &url, &[201])?;
        }
        op.last_status = "queued".into();

        // The image this create made: the import's, or the upload fallback's in its place.
        let mut made = id.clone();
        let finished = match (data, &source) {
            (Some(data), _) => {
                progress::info(format!("created image record {id}; uploading {}", data.label));
                self.upload_and_activate(&mut op, &spec, Pending { id: id.clone(), data }, method)
            }
            (None, Some(source)) => {
                progress::info(format!(
                    "created image record {id}; Glance copies it from another region"
                ));
                self.glance_download(&mut op, &spec, &id, source)
            }
            (None, None) => {
                progress::info(format!(
                    "created image record {id}; Glance imports it from its URL"
                ));
                match self.web_download(&mut op, &spec, &id) {
                    Err(Error::ImportFailed(reason))
                        if spec.import_fallback.as_deref() == Some(FALLBACK_UPLOAD) =>
                    {
                        self.discard(cloud, &spec, &id);
                        made = fallback_image_id(&id);
                        self.upload_instead(&mut op, &spec, &made, reason)
                    }
                    imported => imported,
                }
            }
        };
        let id = made;
        let manage_members = spec.members.is_some();
        let finished = finished.and_then(|state| self.with_members(&mut op, state, manage_members));
        match finished {
            Ok(state) => Ok(state),
            // The session was refused: deleting needs a token too, so the runtime, which can
            // log in again, deletes the half-made image.
            Err(Error::Unauthorized(info)) => Err(Error::Unauthorized(UnauthorizedInfo {
                image_id: Some(id),
                ..info
            })),
            Err(err) => {
                self.discard(cloud, &spec, &id);
                Err(err)
            }
        }
    }

    /// Deletes the half-made image `id`, with a budget of its own (a create that timed out
    /// must still clean up); a failure is a warning, the create's own error is what counts.
    fn discard(&mut self, cloud: &Cloud, spec: &ImageSpec, id: &str) {
        let cleanup = self
            .begin(cloud, spec.region.as_deref(), "delete", DEFAULT_DELETE_TIMEOUT)
            .and_then(|mut cleanup| self.delete_image(&mut cleanup, id));
        if let Err(cleanup) = cleanup {
            progress::warn(format!(
                "could not delete the half-made image {id}: {}",
                describe(&cleanup)
            ));
        }
    }

    /// `import_fallback: upload`: Glance's web-download failed or stalled (`reason`) and its
    /// image is gone; the data is fetched here (through the cache, verified, inspected) and
    /// uploaded into the same stores as the image `id`. The state keeps the spec as written and
    /// records the failed import with `fallback: upload`.
    fn upload_instead(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        id: &str,
        reason: String,
    ) -> Result<ImageState, Error> {
        let url = spec.image_source_url.as_deref().unwrap_or_default();
        progress::warn(format!(
            "{reason}; import_fallback is {FALLBACK_UPLOAD}: downloading {url} here and uploading it as image {id}"
        ));
        let direct = ImageSpec {
            import_method: Some(ImportMethod::Direct.name().into()),
            web_download: None,
            ..spec.clone()
        };
        let stores = direct.stores.iter().skip(1).cloned().collect::<Vec<_>>();
        self.discover(op, &direct, &stores)?;
        let data = self.open_data(&direct, op)?;
        let images = op.url("/images");
        let response = self.call(op, "POST", &images, Some(glance::create_body(&direct, id)))?;
        expect(&response, "POST", &images, &[201])?;
        op.last_status = "queued".into();
        progress::info(format!("created image record {id}; uploading {}", data.label));
        let pending = Pending {
            id: id.to_string(),
            data,
        };
        let mut state = self.upload_and_activate(op, &direct, pending, ImportMethod::Direct)?;
        state.spec.import_method = spec.import_method.clone();
        state.spec.web_download = spec.web_download;
        state.import_result = Some(ImportResult {
            method: ImportMethod::WebDownload.name().into(),
            task_id: None,
            status: "failure".into(),
            message: reason,
            stores: spec.stores.clone(),
            failed_stores: Vec::new(),
            converted_to: None,
            fallback: Some(FALLBACK_UPLOAD.into()),
        });
        Ok(state)
    }

    /// Opens the spec's image data: the local file, the verified cache file of the URL, or
    /// the URL's response itself when the cache is off.
    fn open_data(&mut self, spec: &ImageSpec, op: &Op) -> Result<Data, Error> {
        let expected = spec
            .source_checksum
            .as_deref()
            .map(source::parse_checksum)
            .transpose()
            .map_err(|e| invalid("source_checksum", e))?;
        if let Some(path) = &spec.local_file_path {
            let file = File::open(path)
                .map_err(|e| invalid("local_file_path", format!("cannot open '{path}': {e}")))?;
            let size = file
                .metadata()
                .map_err(|e| invalid("local_file_path", format!("cannot read '{path}': {e}")))?
                .len();
            let mtime_ns = file.metadata().ok().and_then(|m| mtime_ns(&m));
            return Ok(Data {
                reader: Box::new(file),
                length: Some(size),
                label: format!("{size} bytes from {path}"),
                expected,
                cached: None,
                mtime_ns,
                etag: None,
                last_modified: None,
            });
        }
        let url = spec.image_source_url.as_deref().expect("check requires a source");
        let source = UrlSource {
            url,
            username: spec.image_source_username.as_deref(),
            password: spec.image_source_password.as_deref(),
            decompress: spec.decompress == Some(true),
            timeout: op.remaining()?,
        };
        // Called only for data the component fetches itself (not web-download).
        match UrlData::of(Some(url), false, spec.image_cache_path.as_deref()) {
            UrlData::NotFetched => unreachable!("a URL is fetched unless Glance downloads it"),
            UrlData::Streamed(_) => {
                let mut opened = source.stream(&mut self.transport)?;
                // The first bytes are read ahead and inspected before the image record exists.
                let mut head = Vec::with_capacity(inspect::HEAD_BYTES);
                (&mut opened.reader)
                    .take(inspect::HEAD_BYTES as u64)
                    .read_to_end(&mut head)
                    .map_err(|e| Error::Transport(format!("cannot read {url}: {e}")))?;
                inspect_data(spec, "image_source_url", &head, None)?;
                Ok(Data {
                    reader: Box::new(std::io::Cursor::new(head).chain(opened.reader)),
                    length: opened.length,
                    label: format!("{url} as it downloads"),
                    expected,
                    cached: None,
                    mtime_ns: None,
                    etag: opened.etag,
                    last_modified: opened.last_modified,
                })
            }
            UrlData::Cached(_, dir) => {
                let dir = dir.ok_or_else(|| {
                    invalid(
                        "image_cache_path",
                        "is not set; the runtime must give a cache directory or `none`".into(),
                    )
                })?;
                let (path, sidecar) = source.cached(&mut self.transport, std::path::Path::new(dir))?;
                if let Some(expected) = &expected {
                    match sidecar.digests.get(expected.algorithm) {
                        Some(_) => sidecar.digests.check(expected)?,
                        // Downloaded for an image that did not ask for this digest.
                        None => source::digest_file(&path, Some(expected))
                            .map_err(|e| Error::Transport(format!("cannot read {}: {e}", path.display())))?
                            .check(expected)?,
                    }
                }
                inspect_file(spec, "image_source_url", &path)?;
                let file = File::open(&path)
                    .map_err(|e| Error::Transport(format!("cannot open {}: {e}", path.display())))?;
                Ok(Data {
                    reader: Box::new(file),
                    length: Some(sidecar.digests.size),
                    label: format!("{} bytes of {url} from {}", sidecar.digests.size, path.display()),
                    expected: None,
                    cached: Some(sidecar.digests),
                    mtime_ns: None,
                    etag: sidecar.etag,
                    last_modified: sidecar.last_modified,
                })
            }
        }
    }

    /// Uploads the data (direct: `PUT …/file`, to the first of the spec's stores; glance-direct:
    /// `PUT …/stage`), restarting a broken upload while Glance allows it, then activates the
    /// image (glance-direct: Glance's import; direct with several stores: copies to the rest)
    /// and verifies what Glance stored.
    fn upload_and_activate(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        pending: Pending,
        method: ImportMethod,
    ) -> Result<ImageState, Error> {
        let stage = method == ImportMethod::GlanceDirect;
        let id = pending.id.clone();
        let (mtime_ns, etag, last_modified) = (
            pending.data.mtime_ns,
            pending.data.etag.clone(),
            pending.data.last_modified.clone(),
        );
        let mut pending = pending;
        let mut restarts = 0;
        let digests = loop {
            let err = match self.upload(op, pending, stage, spec.stores.first().filter(|_| !stage)) {
                Ok(digests) => break digests,
                Err(err) => err,
            };
            // An upload that broke off may start again from the first byte, but only once
            // Glance has put the image back to `queued` (it holds no data). A server's own
            // answer (a 4xx, or a 500) would only come again: that is the error. A restart
            // refused with 409 met the broken upload still being read at Glance's side (it
            // reached a busy worker late): once that one is over, the image is `queued` again.
            let worth_again = match &err {
                Error::Transport(_) | Error::AuthFailed(_) => true,
                Error::Conflict(_) => restarts > 0,
                Error::Api(api) => retry::transient_status(api.status),
                _ => false,
            };
            if !worth_again
                || restarts >= self.transport.retries
                || !self
                    .status_after_upload(op, &id)
                    .is_ok_and(|status| status == "queued")
            {
                return Err(err);
            }
            if matches!(err, Error::AuthFailed(_)) {
                // The token expired mid-run: authenticate again before the next attempt.
                self.sessions.remove(&op.session_key);
            }
            let wait = retry::delay(restarts, None, fastrand::f64());
            std::thread::sleep(wait.min(op.remaining()?));
            restarts += 1;
            progress::warn(format!(
                "the upload of image {id} broke off ({}); Glance put it back to 'queued', so it \
                 starts again (restart {restarts} of {})",
                describe(&err),
                self.transport.retries
            ));
            pending = Pending {
                id: id.clone(),
                data: self.open_data(spec, op)?,
            };
        };
        let (image, import) = if stage {
            self.check_staged(op, &id, &digests)?;
            let (image, import) = self.import_staged(op, spec, &id, &digests)?;
            (image, Some(import))
        } else {
            let image = self.wait_active(op, &id)?;
            if spec.verify_checksum != Some(false) {
                verify(&image, &digests)?;
            }
            match spec.stores.get(1..).filter(|rest| !rest.is_empty()) {
                Some(rest) => {
                    let (image, copy) = self.copy_to_stores(op, spec, &id, rest, &image)?;
                    (image, Some(copy))
                }
                None => (image, None),
            }
        };
        let mut state = match import {
            Some(import) => self.finish_import(op, spec, &id, image, import)?,
            None => {
                let image = self.protect_if_asked(op, spec, &id, image)?;
                glance::state_from_image(&image, Some(spec)).map_err(Error::Transport)?
            }
        };
        state.source_fingerprint = Some(SourceFingerprint {
            size: digests.size,
            sha512: digests.sha512,
            mtime_ns,
            etag,
            last_modified,
        });
        Ok(state)
    }

    /// Sends the data to `…/file` (into `store`, or the default store) or to `…/stage`.
    fn upload(
        &mut self,
        op: &mut Op,
        pending: Pending,
        stage: bool,
        store: Option<&String>,
    ) -> Result<Digests, Error> {
        let Pending { id, data } = pending;
        let url = op.url(&format!("/images/{id}/{}", if stage { "stage" } else { "file" }));
        let token = self.token(op)?;
        let expected = data.expected.clone();
        let mut reader = DigestingReader::new(data.reader, &id, data.length, data.expected);
        let mut request = Request::new("PUT", &url).header("x-auth-token", token);
        if let Some(store) = store {
            request = request.header("x-image-meta-store", store.clone());
        }
        if let Some(size) = data.length {
            request = request.header("x-openstack-image-size", size.to_string());
        }
        let request = request.timeout(op.remaining()?).stream(&mut reader, data.length);
        let sent = self.transport.send(request);
        if let (Some(actual), Some(expected)) = (reader.mismatch(), &expected) {
            return Err(Error::ChecksumMismatch(ChecksumMismatch {
                algorithm: format!("source_checksum {}", expected.algorithm.name()),
                expected: expected.hex.clone(),
                actual: actual.to_string(),
            }));
        }
        let response = sent.map_err(|e| transport_error(op, e))?;
        let digests = reader.finish();
        if response.status == 401
            && let Some(refused) = super::session::refused_session(op.cloud, "PUT", &url, &response)
        {
            return Err(refused);
        }
        if response.status != 204 {
            return Err(upload_refused(&response, &url));
        }
        if let Some(size) = data.length
            && digests.size != size
        {
            return Err(Error::Transport(format!(
                "the data changed while it was uploaded: read {} bytes, expected {size}",
                digests.size
            )));
        }
        if let Some(cached) = data.cached
            && !cached.same_bytes(&digests)
        {
            return Err(Error::Transport(
                "the cached download changed while it was uploaded; apply again".into(),
            ));
        }
        Ok(digests)
    }
}

/// A file's modification time in nanoseconds since the Unix epoch.
pub(super) fn mtime_ns(meta: &std::fs::Metadata) -> Option<u64> {
    let since = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_nanos()).ok()
}

/// The first 16 hex digits of a digest, for plans.
pub(super) fn short(digest: &str) -> String {
    format!("{}…", &digest[..digest.len().min(16)])
}

/// Refuses data whose first bytes (`head`) and, when known, last ones (`tail`) contradict the
/// spec's `disk_format`, or make an image unsafe to store (then naming `source_field`). Only
/// `bare` containers are looked into: the others wrap the disk in a format of their own.
pub(super) fn inspect_data(
    spec: &ImageSpec,
    source_field: &str,
    head: &[u8],
    tail: Option<&[u8]>,
) -> Result<(), Error> {
    if spec.container_format != "bare" {
        return Ok(());
    }
    let found = inspect::inspect(head, tail);
    inspect::matches(&spec.disk_format, &found, tail.is_some()).map_err(|message| {
        let field = match found {
            inspect::Found::Unsafe(..) => source_field,
            inspect::Found::Format(_) => "disk_format",
        };
        invalid(field, message)
    })
}

/// [`inspect_data`] for a file: its first [`inspect::HEAD_BYTES`] and last
/// [`inspect::TAIL_BYTES`].
pub(super) fn inspect_file(
    spec: &ImageSpec,
    source_field: &str,
    path: &std::path::Path,
) -> Result<(), Error> {
    use std::io::{Seek, SeekFrom};
    if spec.container_format != "bare" {
        return Ok(());
    }
    let unreadable =
        |e: std::io::Error| invalid(source_field, format!("cannot read '{}': {e}", path.display()));
    let mut file = File::open(path).map_err(unreadable)?;
    let mut head = Vec::with_capacity(inspect::HEAD_BYTES);
    (&mut file)
        .take(inspect::HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    let mut tail = Vec::with_capacity(inspect::TAIL_BYTES);
    if size >= inspect::TAIL_BYTES as u64 {
        file.seek(SeekFrom::Start(size - inspect::TAIL_BYTES as u64))
            .map_err(unreadable)?;
        file.read_to_end(&mut tail).map_err(unreadable)?;
    }
    inspect_data(spec, source_field, &head, Some(&tail))
}

pub(super) fn probe_file(path: &str) -> Result<(), String> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(format!(
            "'{path}' is not a regular file; point it at the image file"
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "file '{path}' does not exist; fix the path (relative paths are resolved against \
             the spec file's directory)"
        )),
        // A directory the component cannot see: the bundled host shares every directory that
        // exists, so there it is missing; other runtimes may simply not have shared it.
        Err(_)
            if std::path::Path::new(path)
                .parent()
                .is_some_and(|dir| std::fs::metadata(dir).is_err()) =>
        {
            Err(format!(
                "file '{path}' does not exist: its directory is not there (or this runtime did \
                 not give the component access to it); fix the path"
            ))
        }
        Err(e) => Err(format!(
            "cannot read '{path}': {e}; point local_file_path at a readable image file"
        )),
    }
}

pub(super) fn verify(image: &Value, sent: &Digests) -> Result<(), Error> {
    let mismatch = |algorithm: &str, expected: &str, actual: &str| {
        Error::ChecksumMismatch(ChecksumMismatch {
            algorithm: algorithm.into(),
            expected: expected.into(),
            actual: actual.into(),
        })
    };
    if let Some(checksum) = image.get("checksum").and_then(Value::as_str)
        && checksum != sent.md5
    {
        return Err(mismatch("md5", &sent.md5, checksum));
    }
    let algo = image.get("os_hash_algo").and_then(Value::as_str);
    let value = image.get("os_hash_value").and_then(Value::as_str);
    match (algo, value) {
        (Some("sha512"), Some(value)) if value != sent.sha512 => Err(mismatch("sha512", &sent.sha512, value)),
        (Some(other), Some(_)) if other != "sha512" => {
            progress::warn(format!(
                "Glance hashes with {other}; only its MD5 checksum was verified"
            ));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Glance's refusal of image data, with its cause and what to do about it: the size cap, the
/// storage quota and a full store (413), or a policy forbidding direct uploads (403).
fn upload_refused(response: &Response, url: &str) -> Error {
    let said = response.message();
    let answered = |status: u16| format!("Glance answered HTTP {status} to PUT {url}: {said}");
    match response.status {
        413 => {
            let (cause, fix) = if said.contains("storage quota") {
                (
                    "the project's image storage quota is used up",
                    "delete images the project no longer needs, or ask the cloud's operator for a larger quota (Glance's user_storage_quota, or Keystone's image_size_total limit)",
                )
            } else if said.contains("storage media is full") {
                (
                    "the cloud's image store is full",
                    "ask the cloud's operator to free or add space in the store",
                )
            } else {
                (
                    "the image is larger than the cloud allows for one image (image_size_cap)",
                    "upload a smaller image (e.g. qcow2 instead of raw), or ask the cloud's operator to raise image_size_cap",
                )
            };
            Error::Quota(format!("{cause}: {}; {fix}", answered(413)))
        }
        403 => Error::Forbidden(format!(
            "the cloud's policy does not let this user upload image data directly (upload_image): {}; set `web_download: true` with an `image_source_url` so that Glance fetches the data itself, or ask the cloud's operator for the right to upload",
            answered(403)
        )),
        _ => status_error("PUT", url, response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn verify_compares_both_digests() {
        let sent = Digests {
            size: 3,
            md5: "m".into(),
            sha256: None,
            sha512: "s".into(),
        };
        assert!(
            verify(
                &json!({"checksum": "m", "os_hash_algo": "sha512", "os_hash_value": "s"}),
                &sent
            )
            .is_ok()
        );
        assert!(
            verify(
                &json!({"checksum": null, "os_hash_algo": "sha512", "os_hash_value": "s"}),
                &sent
            )
            .is_ok()
        );
        let err = verify(
            &json!({"checksum": "m", "os_hash_algo": "sha512", "os_hash_value": "x"}),
            &sent,
        );
        assert!(matches!(err, Err(Error::ChecksumMismatch(m)) if m.algorithm == "sha512"));
        let err = verify(&json!({"checksum": "x"}), &sent);
        assert!(matches!(err, Err(Error::ChecksumMismatch(m)) if m.algorithm == "md5"));
    }

    #[test]
    pub(super) fn probe_reports_missing_files_with_the_fix() {
        let err = probe_file("/definitely/not/here.qcow2").unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }
}
