//! Glance's import methods: starting an import (glance-direct, web-download, glance-download,
//! copy-image) and following it to its end, failing as soon as Glance reports a failure
//! (its task, a failed store, the image going back to `queued`) instead of at the timeout.

use super::*;

/// One import request and what it is for.
pub(super) struct Import {
    /// Glance's name of the method.
    pub(super) method: &'static str,
    /// The `method` object of the request body (name and the method's own fields).
    pub(super) request: Value,
    /// Stores to write (empty: the cloud's default store).
    pub(super) stores: Vec<String>,
    pub(super) all_stores_must_succeed: bool,
    /// What is imported, for messages ("https://…", "image X of RegionOne").
    pub(super) what: String,
    /// How long the import may show no progress before it counts as stalled.
    pub(super) stall: Duration,
}

impl Import {
    pub(super) fn new(
        spec: &ImageSpec,
        method: &'static str,
        request: Value,
        stores: Vec<String>,
        what: String,
    ) -> Import {
        Import {
            method,
            request,
            stores,
            all_stores_must_succeed: spec.all_stores_must_succeed != Some(false),
            what,
            stall: Duration::from_secs(spec.timeouts.import_stall.unwrap_or(DEFAULT_IMPORT_STALL)),
        }
    }

    fn body(&self) -> Value {
        let mut body = json!({ "method": self.request });
        // Only with stores: a single-store Glance refuses all_stores_must_succeed=false.
        if !self.stores.is_empty() {
            body["stores"] = json!(self.stores);
            body["all_stores_must_succeed"] = json!(self.all_stores_must_succeed);
        }
        body
    }
}

impl<T: Transport> Provider<T> {
    /// Starts `import` on image `id` and waits until Glance is done with it. Returns the image
    /// as it is then and what the import did (with `all_stores_must_succeed: false`, stores
    /// that failed are listed there, not an error).
    pub(super) fn run_import(
        &mut self,
        op: &mut Op,
        id: &str,
        import: &Import,
    ) -> Result<(Value, ImportResult), Error> {
        let tasks_url = op.url(&format!("/images/{id}/tasks"));
        let known = self.task_ids(op, &tasks_url)?;
        let url = op.url(&format!("/images/{id}/import"));
        let mut delay = PollDelay::new();
        loop {
            let response = self.call(op, "POST", &url, Some(import.body()))?;
            // An import that just ended may still hold the image's lock for a moment.
            if response.status == 409 && response.message().contains("active task") {
                delay.sleep(op)?;
                continue;
            }
            // Glance's other 409s during an import are about the image's status: one already
            // `importing` took a request whose answer was lost (the retry hears 409), and one
            // still settling from its upload (`uploading`, `saving`) takes it in a moment.
            if response.status == 409 {
                match self.status_of(op, id)?.as_str() {
                    "importing" => break,
                    "uploading" | "saving" => {
                        delay.sleep(op)?;
                        continue;
                    }
                    _ => {}
                }
            }
            expect(&response, "POST", &url, &[202])?;
            break;
        }

        let image_url = op.url(&format!("/images/{id}"));
        let mut delay = PollDelay::new();
        let mut importing = false;
        // What shows the import moving, and since when it has not moved.
        let mut marks = String::new();
        let mut moved_at = Instant::now();
        loop {
            let (image, status) = self.poll(op, id, &image_url)?;
            importing |= status == "importing";
            let failed = store_list(
                image
                    .get("os_glance_failed_import")
                    .and_then(Value::as_str)
                    .unwrap_or(""),
            );
            let task = match &known {
                Some(known) => self.new_task(op, &tasks_url, known)?,
                None => None,
            };
            let task_status = task
                .as_ref()
                .and_then(|t| t.get("status"))
                .and_then(Value::as_str);
            let result = |status: &str| ImportResult {
                method: import.method.into(),
                task_id: task
                    .as_ref()
                    .and_then(|t| t.get("id"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                status: status.into(),
                message: task
                    .as_ref()
                    .and_then(|t| t.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim()
                    .to_string(),
                stores: if import.stores.is_empty() {
                    glance::stores_of(&image)
                } else {
                    import.stores.clone()
                },
                failed_stores: failed.clone(),
                converted_to: None,
                fallback: None,
            };
            let went_back = (importing && status == "queued") || status == "killed";
            let failed_now = match task_status {
                Some("failure") => true,
                Some(_) => went_back,
                // No tasks API: a failed store or the image going back is all there is.
                None => {
                    went_back || (!failed.is_empty() && import.all_stores_must_succeed && known.is_none())
                }
            };
            if failed_now {
                let result = result("failure");
                return Err(Error::ImportFailed(format!(
                    "Glance could not import {} ({} import of image {id}): {}{}{}",
                    import.what,
                    import.method,
                    if result.message.is_empty() {
                        "the import task failed"
                    } else {
                        &result.message
                    },
                    if failed.is_empty() {
                        String::new()
                    } else {
                        format!(" (failed stores: {})", failed.join(", "))
                    },
                    if went_back {
                        format!("; the image went back to '{status}'")
                    } else {
                        String::new()
                    }
                )));
            }
            let done = match task_status {
                Some("success") => status == "active",
                Some(_) => false,
                None => {
                    known.is_none()
                        && status == "active"
                        && image
                            .get("os_glance_importing_to_stores")
                            .and_then(Value::as_str)
                            .unwrap_or("")
                            .is_empty()
                }
            };
            if done {
                let result = result("success");
                if !result.failed_stores.is_empty() {
                    progress::warn(format!(
                        "Glance's {} import into image {id} could not write to {} (all_stores_must_succeed is false, so the image keeps the other stores)",
                        import.method,
                        result.failed_stores.join(", ")
                    ));
                }
                return Ok((image, result));
            }
            let now = progress_marks(&image, task.as_ref());
            if now != marks {
                marks = now;
                moved_at = Instant::now();
            } else if moved_at.elapsed() >= import.stall {
                return Err(Error::ImportFailed(stalled(
                    import,
                    id,
                    &image,
                    task.as_ref(),
                    moved_at.elapsed(),
                )));
            }
            delay.sleep(op)?;
        }
    }

    /// The ids of the image's tasks; `None` when the cloud has no tasks API.
    fn task_ids(&mut self, op: &mut Op, tasks_url: &str) -> Result<Option<Vec<String>>, Error> {
        Ok(self.tasks(op, tasks_url)?.map(|tasks| {
            tasks
                .iter()
                .filter_map(|t| t.get("id").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        }))
    }

    /// The newest task of the image that is not in `known`.
    fn new_task(&mut self, op: &mut Op, tasks_url: &str, known: &[String]) -> Result<Option<Value>, Error> {
        Ok(self.tasks(op, tasks_url)?.into_iter().flatten().find(|t| {
            t.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| !known.iter().any(|k| k == id))
        }))
    }

    /// The image's tasks, newest first; `None` when the cloud has no tasks API.
    fn tasks(&mut self, op: &mut Op, tasks_url: &str) -> Result<Option<Vec<Value>>, Error> {
        let response = self.call(op, "GET", tasks_url, None)?;
        if response.status != 200 {
            return Ok(None);
        }
        let mut tasks = response.json().map_err(Error::Transport)?;
        Ok(Some(match tasks.get_mut("tasks").map(Value::take) {
            Some(Value::Array(tasks)) => tasks,
            _ => Vec::new(),
        }))
    }

    /// Asks Glance to download the image from its URL itself (web-download).
    pub(super) fn web_download(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        id: &str,
    ) -> Result<ImageState, Error> {
        let uri = spec
            .image_source_url
            .as_deref()
            .expect("check requires a URL with web_download");
        let import = Import::new(
            spec,
            "web-download",
            json!({"name": "web-download", "uri": uri}),
            spec.stores.clone(),
            uri.to_string(),
        );
        let (image, result) = self.run_import(op, id, &import)?;
        check_source_checksum(spec, &image)?;
        self.finish_import(op, spec, id, image, result)
    }

    /// Asks Glance to copy `source` (checked by [`Provider::source_image`]) from another
    /// region's Glance (glance-download); nothing passes through the component.
    pub(super) fn glance_download(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        id: &str,
        source: &Value,
    ) -> Result<ImageState, Error> {
        let (region, source_id) = placement::download_source(spec);
        let interface = op.cloud.interface.as_deref().unwrap_or("public");
        let import = Import::new(
            spec,
            "glance-download",
            json!({"name": "glance-download", "glance_image_id": source_id, "glance_region": region,
                   "glance_service_interface": interface}),
            spec.stores.clone(),
            format!("image {source_id} of region {region}"),
        );
        let (image, result) = self.run_import(op, id, &import)?;
        check_source_checksum(spec, &image)?;
        // A copy has the source's digests unless an import plugin converted it.
        let converted = image.get("disk_format") != source.get("disk_format");
        if spec.verify_checksum != Some(false) && !converted {
            for field in ["os_hash_value", "checksum"] {
                let (expected, actual) = (source.get(field), image.get(field));
                if let (Some(Value::String(expected)), Some(Value::String(actual))) = (expected, actual)
                    && expected != actual
                {
                    return Err(Error::ChecksumMismatch(ChecksumMismatch {
                        algorithm: format!("{field} of the source image {source_id}"),
                        expected: expected.clone(),
                        actual: actual.clone(),
                    }));
                }
            }
        }
        self.finish_import(op, spec, id, image, result)
    }

    /// Imports staged data (glance-direct) and checks what Glance made of it: the same bytes
    /// (its digests equal `sent`'s), or, when an import plugin converted the data, what it
    /// converted it to (the staged size was checked against `sent` before).
    pub(super) fn import_staged(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        id: &str,
        sent: &Digests,
    ) -> Result<(Value, ImportResult), Error> {
        let import = Import::new(
            spec,
            "glance-direct",
            json!({"name": "glance-direct"}),
            spec.stores.clone(),
            format!("the {} staged bytes", sent.size),
        );
        let (image, result) = self.run_import(op, id, &import)?;
        let converted = image.get("disk_format").and_then(Value::as_str) != Some(spec.disk_format.as_str());
        if spec.verify_checksum != Some(false) && !converted {
            verify(&image, sent)?;
        }
        Ok((image, result))
    }

    /// Glance's size of the staged data against the bytes sent (Glance computes no digests of
    /// staged data, and an import plugin may convert it).
    pub(super) fn check_staged(&mut self, op: &mut Op, id: &str, sent: &Digests) -> Result<(), Error> {
        let (image, _) = self.poll(op, id, &op.url(&format!("/images/{id}")))?;
        match image.get("size").and_then(Value::as_u64) {
            Some(size) if size != sent.size => Err(Error::ChecksumMismatch(ChecksumMismatch {
                algorithm: "size of the staged data".into(),
                expected: sent.size.to_string(),
                actual: size.to_string(),
            })),
            _ => Ok(()),
        }
    }

    /// Protects the image if asked and maps it to state, recording the import and any
    /// conversion an import plugin made.
    pub(super) fn finish_import(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        id: &str,
        image: Value,
        mut result: ImportResult,
    ) -> Result<ImageState, Error> {
        let stored_format = image.get("disk_format").and_then(Value::as_str).unwrap_or("");
        if !stored_format.is_empty() && stored_format != spec.disk_format {
            progress::info(format!(
                "Glance's import plugins converted image {id} from {} to {stored_format}",
                spec.disk_format
            ));
            result.converted_to = Some(stored_format.to_string());
        }
        let image = self.protect_if_asked(op, spec, id, image)?;
        let mut state = glance::state_from_image(&image, Some(spec)).map_err(Error::Transport)?;
        state.import_result = Some(result);
        keep_requested_format(&mut state, &spec.disk_format);
        Ok(state)
    }

    /// Publishes the new image (members, deactivation: `publish`), then protects it if asked.
    pub(super) fn protect_if_asked(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        id: &str,
        image: Value,
    ) -> Result<Value, Error> {
        let image = self.publish(op, spec, id, image)?;
        if spec.protected == Some(true) {
            let ops = vec![json!({"op": "replace", "path": "/protected", "value": true})];
            self.patch(op, id, ops)
        } else {
            Ok(image)
        }
    }
}

/// Everything of the image and its import task that changes while an import moves: its
/// status, size and update time, the stores being written and failed, and the task's status,
/// message (Glance's "Copied N MiB" heartbeat) and update time.
fn progress_marks(image: &Value, task: Option<&Value>) -> String {
    let field =
        |value: Option<&Value>, key: &str| value.and_then(|v| v.get(key)).cloned().unwrap_or(Value::Null);
    json!([
        field(Some(image), "status"),
        field(Some(image), "size"),
        field(Some(image), "updated_at"),
        field(Some(image), "os_glance_importing_to_stores"),
        field(Some(image), "os_glance_failed_import"),
        field(task, "status"),
        field(task, "message"),
        field(task, "updated_at"),
    ])
    .to_string()
}

/// Why an import that stopped moving ends the wait: which import, for how long, what it was
/// doing and the setting that decides.
fn stalled(import: &Import, id: &str, image: &Value, task: Option<&Value>, quiet: Duration) -> String {
    let text = |key: &str| image.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    let importing_to = store_list(&text("os_glance_importing_to_stores"));
    let mut doing = format!("status '{}'", text("status"));
    if !importing_to.is_empty() {
        doing += &format!(", still importing to {}", importing_to.join(", "));
    }
    if let Some(message) = task
        .and_then(|t| t.get("message"))
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        doing += &format!(", task: {message}");
    }
    format!(
        "Glance's {} import of {} into image {id} stalled: no progress for {} s ({doing}); \
         timeouts.import_stall is {} s (raise it for imports that are slow but moving)",
        import.method,
        import.what,
        quiet.as_secs(),
        import.stall.as_secs()
    )
}

/// A converted image keeps, in state, the disk format its spec asked for while Glance holds
/// the one recorded in its import result, so it does not plan as a change forever.
pub(super) fn keep_requested_format(state: &mut ImageState, requested: &str) {
    let converted_to = state
        .import_result
        .as_ref()
        .and_then(|r| r.converted_to.as_deref());
    if converted_to.is_some_and(|to| to == state.spec.disk_format) {
        state.spec.disk_format = requested.to_string();
    }
}

/// `source_checksum` against the digests Glance computed (md5 or sha512).
fn check_source_checksum(spec: &ImageSpec, image: &Value) -> Result<(), Error> {
    let Some(expected) = spec
        .source_checksum
        .as_deref()
        .and_then(|c| source::parse_checksum(c).ok())
    else {
        return Ok(());
    };
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
    Ok(())
}
