//! Glance's import methods: checking what the cloud offers, starting an import and
//! following it to `active` or to the failure Glance reports.

use super::*;

impl<T: Transport> Provider<T> {
    /// Fails unless the cloud offers the web-download import method.
    pub(super) fn check_import_support(&mut self, op: &mut Op) -> Result<(), Error> {
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
    pub(super) fn import_and_activate(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        id: &str,
    ) -> Result<ImageState, Error> {
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
}
