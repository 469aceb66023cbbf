//! The lifecycle operations: Keystone sessions, Glance calls, waiting and verification.
//! Decisions come from the pure modules; this module sequences the calls.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use openstack_image_documents::spec::UrlData;

use crate::http::{Request, Response, Transport, TransportError, status_error};
use crate::retry::{self, DEFAULT_RETRIES, Retrying};
use crate::source::{self, Digests, ExpectedDigest, UrlSource};
use crate::types::{
    Action, ChecksumMismatch, Cloud, Error, FieldChange, FieldError, ImageSpec, ImageState, Plan,
    SourceFingerprint, TimeoutInfo,
};
use crate::upload::DigestingReader;
use crate::{diff, glance, keystone, patch, progress, validate};

/// Default time limits, in seconds.
const DEFAULT_CREATE_TIMEOUT: u64 = 30 * 60;
const DEFAULT_UPDATE_TIMEOUT: u64 = 10 * 60;
const DEFAULT_DELETE_TIMEOUT: u64 = 10 * 60;
pub(crate) const READ_TIMEOUT: u64 = 5 * 60;
/// Waiting for `active` polls with this backoff.
const FIRST_POLL: Duration = Duration::from_millis(200);
const MAX_POLL: Duration = Duration::from_secs(5);

/// The pause between two status polls: [`FIRST_POLL`], doubling up to [`MAX_POLL`], never
/// past the operation's time.
struct PollDelay(Duration);

impl PollDelay {
    fn new() -> PollDelay {
        PollDelay(FIRST_POLL)
    }

    fn sleep(&mut self, op: &Op) -> Result<(), Error> {
        std::thread::sleep(self.0.min(op.remaining()?));
        self.0 = (self.0 * 2).min(MAX_POLL);
        Ok(())
    }
}

/// A Keystone token and the token response that carries its catalog.
struct Session {
    token: String,
    token_body: Value,
}

/// One operation in progress: the cloud, the Glance endpoint it talks to, and its time
/// budget. Every request it sends may take at most the time left.
pub(crate) struct Op<'a> {
    cloud: &'a Cloud,
    session_key: String,
    endpoint: String,
    operation: &'static str,
    started: Instant,
    limit: Duration,
    last_status: String,
}

impl Op<'_> {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    /// Time left, or the timeout error naming the operation and the last status seen.
    fn remaining(&self) -> Result<Duration, Error> {
        self.limit
            .checked_sub(self.started.elapsed())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| self.timed_out())
    }

    fn timed_out(&self) -> Error {
        Error::Timeout(TimeoutInfo {
            operation: self.operation.into(),
            last_status: if self.last_status.is_empty() {
                "unknown".into()
            } else {
                self.last_status.clone()
            },
            elapsed_seconds: self.started.elapsed().as_secs(),
        })
    }
}

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

/// The image resource over a transport; caches one Keystone token per cloud.
pub struct Provider<T> {
    transport: Retrying<T>,
    sessions: HashMap<String, Session>,
}

impl<T: Transport> Provider<T> {
    /// A provider with no cached sessions.
    pub fn new(transport: T) -> Self {
        Provider {
            transport: Retrying::new(transport),
            sessions: HashMap::new(),
        }
    }

    /// Validates a spec (including that its local file is readable) and fills defaults.
    pub fn check(&mut self, spec: ImageSpec) -> Result<ImageSpec, Error> {
        let spec = validate::check(spec).map_err(Error::InvalidSpec)?;
        if let Some(path) = &spec.local_file_path
            && let Err(message) = probe_file(path)
        {
            return Err(invalid("local_file_path", message));
        }
        Ok(spec)
    }

    /// Validates `desired` and compares it with `prior`, including whether the source data
    /// changed since it was uploaded.
    pub fn diff(&mut self, desired: ImageSpec, prior: &ImageState) -> Result<Plan, Error> {
        let desired = self.check(desired)?;
        let mut plan = diff::diff(&desired, prior);
        if let Some(change) = self.source_change(&desired, prior) {
            plan.changes.push(change);
            plan.action = Action::Replace;
        }
        Ok(plan)
    }

    /// The change of the source data behind an unchanged source setting, if any.
    fn source_change(&mut self, desired: &ImageSpec, prior: &ImageState) -> Option<FieldChange> {
        let recorded = prior.source_fingerprint.as_ref()?;
        let change = |field: &str, old: String, new: String| FieldChange {
            field: field.into(),
            old: Some(serde_json::to_string(&old).expect("strings serialise")),
            new: Some(serde_json::to_string(&new).expect("strings serialise")),
            forces_replacement: true,
        };
        if let Some(path) = &desired.local_file_path
            && prior.spec.local_file_path.as_ref() == Some(path)
        {
            let meta = std::fs::metadata(path).ok()?;
            if meta.len() == recorded.size && mtime_ns(&meta) == recorded.mtime_ns {
                return None;
            }
            // Size or mtime moved: only a different digest means different content.
            let now = source::digest_file(std::path::Path::new(path), None).ok()?;
            return (now.sha512 != recorded.sha512).then(|| {
                change(
                    "source content (sha512)",
                    short(&recorded.sha512),
                    short(&now.sha512),
                )
            });
        }
        let url = desired.image_source_url.as_deref()?;
        if prior.spec.image_source_url.as_deref() != Some(url) || desired.web_download == Some(true) {
            return None;
        }
        let source = UrlSource {
            url,
            username: desired.image_source_username.as_deref(),
            password: desired.image_source_password.as_deref(),
            decompress: desired.decompress == Some(true),
            timeout: Duration::from_secs(READ_TIMEOUT),
        };
        let head = match source.open(&mut self.transport, "HEAD") {
            Ok(head) => head,
            Err(err) => {
                progress::warn(format!(
                    "could not ask {url} whether it changed: {}",
                    describe(&err)
                ));
                return None;
            }
        };
        let validator = |name: &str| head.header(name).map(str::to_string);
        match (
            &recorded.etag,
            validator("etag"),
            &recorded.last_modified,
            validator("last-modified"),
        ) {
            (Some(old), Some(new), _, _) if *old != new => {
                Some(change("source content (etag)", old.clone(), new))
            }
            (None, _, Some(old), Some(new)) if *old != new => {
                Some(change("source content (last-modified)", old.clone(), new))
            }
            _ => None,
        }
    }

    /// Creates an image and uploads its data; deletes it again if anything fails after the
    /// image record exists.
    pub fn create(&mut self, cloud: &Cloud, spec: ImageSpec) -> Result<ImageState, Error> {
        let spec = self.check(spec)?;
        let timeout = spec.timeouts.create.unwrap_or(DEFAULT_CREATE_TIMEOUT);
        let mut op = self.begin(cloud, spec.region.as_deref(), "create", timeout)?;
        // The data is opened (downloaded, when cached) before the image record exists, so a
        // bad source never leaves an image behind; likewise Glance's import support.
        let data = if spec.web_download == Some(true) {
            self.check_import_support(&mut op)?;
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

        let finished = match data {
            Some(data) => {
                progress::info(format!("created image record {id}; uploading {}", data.label));
                self.upload_and_activate(&mut op, &spec, Pending { id: id.clone(), data })
            }
            None => {
                progress::info(format!(
                    "created image record {id}; Glance imports it from its URL"
                ));
                self.import_and_activate(&mut op, &spec, &id)
            }
        };
        match finished {
            Ok(state) => Ok(state),
            Err(err) => {
                // Cleaning up gets its own budget: a create that timed out must still clean up.
                let cleanup = self
                    .begin(cloud, spec.region.as_deref(), "delete", DEFAULT_DELETE_TIMEOUT)
                    .and_then(|mut cleanup| self.delete_image(&mut cleanup, &id));
                if let Err(cleanup) = cleanup {
                    progress::warn(format!(
                        "could not delete the half-made image {id}: {}",
                        describe(&cleanup)
                    ));
                }
                Err(err)
            }
        }
    }

    /// Fails unless the cloud offers the web-download import method.
    fn check_import_support(&mut self, op: &mut Op) -> Result<(), Error> {
        let url = op.url("/info/import");
        let response = self.call(op, "GET", &url, None)?;
        let offered: Vec<String> = if response.status == 200 {
            let info = response.json().map_err(Error::Transport)?;
            info.pointer("/import-methods/value")
                .and_then(Value::as_array)
                .map(|methods| {
                    methods
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        if offered.iter().any(|m| m == "web-download") {
            return Ok(());
        }
        Err(Error::ImportFailed(format!(
            "this cloud does not offer Glance's web-download import (it offers: {}); remove \
             web_download to have openstack-image download and upload the data itself",
            if offered.is_empty() {
                "none".to_string()
            } else {
                offered.join(", ")
            }
        )))
    }

    /// Asks Glance to download the image itself and waits for it, failing as soon as Glance
    /// reports the import failed (instead of waiting for the timeout).
    fn import_and_activate(&mut self, op: &mut Op, spec: &ImageSpec, id: &str) -> Result<ImageState, Error> {
        let uri = spec
            .image_source_url
            .as_deref()
            .expect("check requires a URL with web_download");
        let url = op.url(&format!("/images/{id}/import"));
        let body = json!({"method": {"name": "web-download", "uri": uri}});
        let response = self.call(op, "POST", &url, Some(body))?;
        expect(&response, "POST", &url, &[202])?;

        let image_url = op.url(&format!("/images/{id}"));
        let tasks_url = op.url(&format!("/images/{id}/tasks"));
        let mut delay = PollDelay::new();
        let mut importing = false;
        let image = loop {
            let (image, status) = self.poll(op, id, &image_url)?;
            importing |= status == "importing";
            if status == "active" {
                break image;
            }
            let failed_stores = image
                .get("os_glance_failed_import")
                .and_then(Value::as_str)
                .unwrap_or("");
            let task_failure = self.failed_task(op, &tasks_url)?;
            if let Some(reason) = task_failure {
                return Err(Error::ImportFailed(format!(
                    "Glance could not import {uri}: {reason}"
                )));
            }
            if !failed_stores.is_empty() || (importing && status == "queued") || status == "killed" {
                return Err(Error::ImportFailed(format!(
                    "Glance could not import {uri}: the image went back to '{status}'{}",
                    if failed_stores.is_empty() {
                        String::new()
                    } else {
                        format!(" (failed stores: {failed_stores})")
                    }
                )));
            }
            delay.sleep(op)?;
        };
        if let Some(expected) = spec
            .source_checksum
            .as_deref()
            .and_then(|c| source::parse_checksum(c).ok())
        {
            let field = match expected.algorithm {
                source::DigestAlgorithm::Md5 => "checksum",
                _ => "os_hash_value",
            };
            let actual = image.get(field).and_then(Value::as_str).unwrap_or("");
            if actual != expected.hex {
                return Err(Error::ChecksumMismatch(ChecksumMismatch {
                    algorithm: format!("source_checksum {}", expected.algorithm.name()),
                    expected: expected.hex,
                    actual: actual.to_string(),
                }));
            }
        }
        let image = if spec.protected == Some(true) {
            let ops = vec![json!({"op": "replace", "path": "/protected", "value": true})];
            self.patch(op, id, ops)?
        } else {
            image
        };
        glance::state_from_image(&image, Some(spec)).map_err(Error::Transport)
    }

    /// The message of a failed import task of the image, if any (older clouds have no tasks
    /// API: then there is nothing to learn here).
    fn failed_task(&mut self, op: &mut Op, tasks_url: &str) -> Result<Option<String>, Error> {
        let response = self.call(op, "GET", tasks_url, None)?;
        if response.status != 200 {
            return Ok(None);
        }
        let tasks = response.json().map_err(Error::Transport)?;
        Ok(tasks
            .get("tasks")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|t| t.get("status").and_then(Value::as_str) == Some("failure"))
            .map(|t| {
                t.get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the import task failed")
                    .trim()
                    .to_string()
            }))
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
        match UrlData::of(Some(url), None, spec.image_cache_path.as_deref()) {
            UrlData::NotFetched => unreachable!("a URL is fetched unless Glance downloads it"),
            UrlData::Streamed(_) => {
                let opened = source.stream(&mut self.transport)?;
                Ok(Data {
                    reader: opened.reader,
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

    fn upload_and_activate(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        pending: Pending,
    ) -> Result<ImageState, Error> {
        let id = pending.id.clone();
        let (mtime_ns, etag, last_modified) = (
            pending.data.mtime_ns,
            pending.data.etag.clone(),
            pending.data.last_modified.clone(),
        );
        let mut pending = pending;
        let mut restarts = 0;
        let digests = loop {
            let err = match self.upload(op, pending) {
                Ok(digests) => break digests,
                Err(err) => err,
            };
            // An upload that broke off may start again from the first byte, but only while
            // Glance has put the image back to `queued` (it holds no data). A server's own
            // answer (a 4xx, or a 500) would only come again: that is the error.
            let worth_again = match &err {
                Error::Transport(_) | Error::AuthFailed(_) => true,
                Error::Api(api) => retry::transient_status(api.status),
                _ => false,
            };
            if !worth_again
                || restarts >= self.transport.retries
                || !self.status_of(op, &id).is_ok_and(|status| status == "queued")
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
        let image = self.wait_active(op, &id)?;
        if spec.verify_checksum != Some(false) {
            verify(&image, &digests)?;
        }
        let image = if spec.protected == Some(true) {
            let ops = vec![json!({"op": "replace", "path": "/protected", "value": true})];
            self.patch(op, &id, ops)?
        } else {
            image
        };
        let mut state = glance::state_from_image(&image, Some(spec)).map_err(Error::Transport)?;
        state.source_fingerprint = Some(SourceFingerprint {
            size: digests.size,
            sha512: digests.sha512,
            mtime_ns,
            etag,
            last_modified,
        });
        Ok(state)
    }

    fn upload(&mut self, op: &mut Op, pending: Pending) -> Result<Digests, Error> {
        let Pending { id, data } = pending;
        let url = op.url(&format!("/images/{id}/file"));
        let token = self.token(op)?;
        let expected = data.expected.clone();
        let mut reader = DigestingReader::new(data.reader, &id, data.length, data.expected);
        let mut request = Request::new("PUT", &url).header("x-auth-token", token);
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

    /// The image's status now.
    fn status_of(&mut self, op: &mut Op, id: &str) -> Result<String, Error> {
        let url = op.url(&format!("/images/{id}"));
        Ok(self.poll(op, id, &url)?.1)
    }

    /// Reads the image once while waiting on it; reports status changes.
    fn poll(&mut self, op: &mut Op, id: &str, url: &str) -> Result<(Value, String), Error> {
        let response = self.call(op, "GET", url, None)?;
        expect(&response, "GET", url, &[200])?;
        let image = response.json().map_err(Error::Transport)?;
        let status = image
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if status != op.last_status {
            progress::status(id, &status);
            op.last_status = status.clone();
        }
        Ok((image, status))
    }

    fn wait_active(&mut self, op: &mut Op, id: &str) -> Result<Value, Error> {
        let url = op.url(&format!("/images/{id}"));
        let mut delay = PollDelay::new();
        loop {
            let (image, status) = self.poll(op, id, &url)?;
            match status.as_str() {
                "active" => return Ok(image),
                "saving" | "importing" | "uploading" => {}
                other => {
                    return Err(Error::ImportFailed(format!(
                        "image {id} went to status '{other}' instead of 'active' after its data was sent"
                    )));
                }
            }
            delay.sleep(op)?;
        }
    }

    /// Reads an image; `None` when Glance no longer has it.
    pub fn read(
        &mut self,
        cloud: &Cloud,
        id: &str,
        prior: Option<&ImageState>,
    ) -> Result<Option<ImageState>, Error> {
        let region = prior.and_then(|p| p.spec.region.as_deref());
        let mut op = self.begin(cloud, region, "read", READ_TIMEOUT)?;
        let url = op.url(&format!("/images/{id}"));
        let response = self.call(&mut op, "GET", &url, None)?;
        if response.status == 404 {
            return Ok(None);
        }
        expect(&response, "GET", &url, &[200])?;
        let image = response.json().map_err(Error::Transport)?;
        let mut state = glance::state_from_image(&image, prior.map(|p| &p.spec)).map_err(Error::Transport)?;
        // Glance does not know where the data came from: that stays as recorded.
        state.source_fingerprint = prior.and_then(|p| p.source_fingerprint.clone());
        Ok(Some(state))
    }

    /// Patches an image to match `desired`, sending only the operations still needed.
    pub fn update(
        &mut self,
        cloud: &Cloud,
        prior: &ImageState,
        desired: ImageSpec,
    ) -> Result<ImageState, Error> {
        // The data is not read again, so its file need not exist any more.
        let desired = validate::check(desired).map_err(Error::InvalidSpec)?;
        let timeout = desired.timeouts.update.unwrap_or(DEFAULT_UPDATE_TIMEOUT);
        let mut op = self.begin(cloud, desired.region.as_deref(), "update", timeout)?;
        let url = op.url(&format!("/images/{}", prior.id));
        let response = self.call(&mut op, "GET", &url, None)?;
        expect(&response, "GET", &url, &[200])?;
        let current = response.json().map_err(Error::Transport)?;
        op.last_status = current.get("status").and_then(Value::as_str).unwrap_or("").into();
        let managed: Vec<String> = prior.spec.properties.iter().map(|(k, _)| k.clone()).collect();
        let ops = patch::build(&current, &desired, &managed);
        let image = if ops.is_empty() {
            current
        } else {
            self.patch(&mut op, &prior.id, ops)?
        };
        let mut state = glance::state_from_image(&image, Some(&desired)).map_err(Error::Transport)?;
        // The data was not touched: what it was uploaded from stays as recorded, so a later
        // change of the source is still noticed.
        state.source_fingerprint = prior.source_fingerprint.clone();
        Ok(state)
    }

    /// Deletes an image; one that is already gone counts as deleted.
    pub fn delete(
        &mut self,
        cloud: &Cloud,
        id: &str,
        region: Option<&str>,
        timeout_seconds: Option<u64>,
    ) -> Result<(), Error> {
        let timeout = timeout_seconds.unwrap_or(DEFAULT_DELETE_TIMEOUT);
        let mut op = self.begin(cloud, region, "delete", timeout)?;
        self.delete_image(&mut op, id)
    }

    fn delete_image(&mut self, op: &mut Op, id: &str) -> Result<(), Error> {
        let url = op.url(&format!("/images/{id}"));
        let response = self.call(op, "DELETE", &url, None)?;
        match response.status {
            204 | 404 => Ok(()),
            403 if self.is_protected(op, &url) => Err(Error::Forbidden(format!(
                "image {id} is protected, so Glance refuses to delete it; set `protected: false` \
                 in the spec and apply first"
            ))),
            _ => Err(status_error("DELETE", &url, &response)),
        }
    }

    fn is_protected(&mut self, op: &mut Op, url: &str) -> bool {
        self.call(op, "GET", url, None)
            .ok()
            .and_then(|r| r.json().ok())
            .and_then(|image| image.get("protected").and_then(Value::as_bool))
            .unwrap_or(false)
    }

    fn patch(&mut self, op: &mut Op, id: &str, ops: Vec<Value>) -> Result<Value, Error> {
        let url = op.url(&format!("/images/{id}"));
        let response = self.call(op, "PATCH", &url, Some(Value::Array(ops)))?;
        expect(&response, "PATCH", &url, &[200])?;
        response.json().map_err(Error::Transport)
    }

    /// Sends a JSON request with the cloud's token within the operation's time; on 401
    /// authenticates again once.
    pub(crate) fn call(
        &mut self,
        op: &mut Op,
        method: &'static str,
        url: &str,
        body: Option<Value>,
    ) -> Result<Response, Error> {
        for attempt in 0..2 {
            let token = self.token(op)?;
            let mut request = Request::new(method, url)
                .header("x-auth-token", token)
                .timeout(op.remaining()?);
            if let Some(body) = &body {
                if method == "PATCH" {
                    request = request.header("content-type", patch::CONTENT_TYPE);
                }
                request = request.json(body.clone());
            }
            let response = self.transport.send(request).map_err(|e| transport_error(op, e))?;
            if response.status == 401 && attempt == 0 {
                self.sessions.remove(&op.session_key);
                continue;
            }
            return Ok(response);
        }
        unreachable!("the loop returns on its second attempt")
    }

    fn token(&mut self, op: &Op) -> Result<String, Error> {
        if !self.sessions.contains_key(&op.session_key) {
            self.authenticate(op.cloud, &op.session_key, op.remaining()?)?;
        }
        Ok(self.sessions[&op.session_key].token.clone())
    }

    /// Starts an operation against the Glance endpoint for `region` (or the cloud's),
    /// authenticating if needed.
    pub(crate) fn begin<'a>(
        &mut self,
        cloud: &'a Cloud,
        region: Option<&str>,
        operation: &'static str,
        timeout_seconds: u64,
    ) -> Result<Op<'a>, Error> {
        let started = Instant::now();
        let limit = Duration::from_secs(timeout_seconds);
        self.transport.retries = cloud.retries.unwrap_or(DEFAULT_RETRIES);
        let session_key = session_key(cloud);
        if !self.sessions.contains_key(&session_key) {
            // A token the runtime kept from another instance saves a Keystone round trip
            // (and its password hashing); a 401 later falls back to the credentials.
            match cloud.session.as_ref().and_then(|s| {
                let token_body = serde_json::from_str(&s.token_body).ok()?;
                Some(Session {
                    token: s.token.clone(),
                    token_body,
                })
            }) {
                Some(session) => {
                    self.sessions.insert(session_key.clone(), session);
                }
                None => self.authenticate(cloud, &session_key, limit)?,
            }
        }
        let session = &self.sessions[&session_key];
        let region = region.or(cloud.region.as_deref());
        let interface = cloud.interface.as_deref().unwrap_or("public");
        let endpoint = keystone::image_endpoint(&session.token_body, region, interface)
            .map_err(|e| Error::NotFound(format!("Keystone at {}: {e}", cloud.auth_url)))?;
        Ok(Op {
            cloud,
            session_key,
            endpoint,
            operation,
            started,
            limit,
            last_status: String::new(),
        })
    }

    fn authenticate(&mut self, cloud: &Cloud, session_key: &str, timeout: Duration) -> Result<(), Error> {
        let url = keystone::tokens_url(&cloud.auth_url);
        let request = Request::new("POST", &url)
            .timeout(timeout)
            .json(keystone::token_request(cloud));
        let response = self.transport.send(request)?;
        if response.status == 401 {
            return Err(Error::AuthFailed(format!(
                "Keystone at {} rejected the credentials: {} (check OS_USERNAME/OS_PASSWORD, the \
                 user and project domains, or the application credential)",
                cloud.auth_url,
                response.message()
            )));
        }
        expect(&response, "POST", &url, &[201])?;
        let token = response
            .header("x-subject-token")
            .ok_or_else(|| Error::AuthFailed(format!("Keystone at {} returned no token", cloud.auth_url)))?
            .to_string();
        let token_body = response.json().map_err(Error::Transport)?;
        self.sessions
            .insert(session_key.to_string(), Session { token, token_body });
        Ok(())
    }
}

/// A transport failure; a request cut short by the operation's deadline is its timeout.
fn transport_error(op: &Op, err: TransportError) -> Error {
    match err {
        TransportError::TimedOut { .. } if op.remaining().is_err() => op.timed_out(),
        other => other.into(),
    }
}

/// Identifies a cloud's credentials and scope without keeping secrets in the key.
fn session_key(cloud: &Cloud) -> String {
    let identity = json!([
        keystone::tokens_url(&cloud.auth_url),
        keystone::token_request(cloud)
    ]);
    hex::encode(Sha256::digest(identity.to_string().as_bytes()))
}

/// A file's modification time in nanoseconds since the Unix epoch.
fn mtime_ns(meta: &std::fs::Metadata) -> Option<u64> {
    let since = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?;
    u64::try_from(since.as_nanos()).ok()
}

/// The first 16 hex digits of a digest, for plans.
fn short(digest: &str) -> String {
    format!("{}…", &digest[..digest.len().min(16)])
}

fn probe_file(path: &str) -> Result<(), String> {
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

fn verify(image: &Value, sent: &Digests) -> Result<(), Error> {
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
                    "delete images the project no longer needs, or ask the cloud's operator for                      a larger quota (Glance's user_storage_quota, or Keystone's image_size_total limit)",
                )
            } else if said.contains("storage media is full") {
                (
                    "the cloud's image store is full",
                    "ask the cloud's operator to free or add space in the store",
                )
            } else {
                (
                    "the image is larger than the cloud allows for one image (image_size_cap)",
                    "upload a smaller image (e.g. qcow2 instead of raw), or ask the cloud's operator                      to raise image_size_cap",
                )
            };
            Error::Quota(format!("{cause}: {}; {fix}", answered(413)))
        }
        403 => Error::Forbidden(format!(
            "the cloud's policy does not let this user upload image data directly (upload_image):              {}; set `web_download: true` with an `image_source_url` so that Glance fetches the              data itself, or ask the cloud's operator for the right to upload",
            answered(403)
        )),
        _ => status_error("PUT", url, response),
    }
}

fn expect(response: &Response, method: &str, url: &str, statuses: &[u16]) -> Result<(), Error> {
    if statuses.contains(&response.status) {
        Ok(())
    } else {
        Err(status_error(method, url, response))
    }
}

fn invalid(field: &str, message: String) -> Error {
    Error::InvalidSpec(vec![FieldError {
        field: field.into(),
        message,
    }])
}

/// A one-line description of an error, for logs.
pub fn describe(err: &Error) -> String {
    match err {
        Error::InvalidSpec(fields) => fields
            .iter()
            .map(|f| format!("{}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("; "),
        Error::ChecksumMismatch(m) => format!(
            "{} mismatch: sent {}, Glance has {}",
            m.algorithm, m.expected, m.actual
        ),
        Error::Timeout(t) => format!(
            "{} timed out after {}s (last status {})",
            t.operation, t.elapsed_seconds, t.last_status
        ),
        Error::Api(a) => format!("{} {} answered {}: {}", a.method, a.url, a.status, a.message),
        Error::AuthFailed(m)
        | Error::NotFound(m)
        | Error::Forbidden(m)
        | Error::Conflict(m)
        | Error::Quota(m)
        | Error::ImportFailed(m)
        | Error::Transport(m)
        | Error::DeniedByHost(m) => m.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_compares_both_digests() {
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
    fn probe_reports_missing_files_with_the_fix() {
        let err = probe_file("/definitely/not/here.qcow2").unwrap_err();
        assert!(err.contains("does not exist"), "{err}");
    }
}
