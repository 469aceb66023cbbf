//! The lifecycle operations: Keystone sessions, Glance calls, waiting and verification.
//! Decisions come from the pure modules; this module holds the resource's entry points
//! and sequences the calls, one concern per submodule:
//! [`session`] (Keystone tokens and each operation's endpoint and time budget),
//! [`create`] (opening the data, uploading, verifying), [`import`] (Glance's import
//! methods), [`sharing`] (members, deactivation, the cloud's property definitions),
//! [`membership`] (the membership resource) and [`wait`] (status polls).

mod create;
mod import;
mod membership;
mod session;
mod sharing;
mod stores;
mod wait;

#[cfg(test)]
mod tests;

use create::{inspect_file, mtime_ns, probe_file, short, verify};
use session::{Op, transport_error};
use wait::PollDelay;

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use openstack_image_documents::spec::{FALLBACK_UPLOAD, ImportMethod, UrlData, fallback_image_id};
use openstack_image_documents::state_file::store_list;

use crate::http::{Request, Response, Transport, TransportError, status_error};
use crate::retry::{self, DEFAULT_RETRIES, Retrying};
use crate::source::{self, Digests, ExpectedDigest, UrlSource};
use crate::types::{
    Action, ChecksumMismatch, Cloud, Error, FieldChange, FieldError, ImageSpec, ImageState, ImportResult,
    Plan, Session, SourceFingerprint, TimeoutInfo,
};
use crate::upload::DigestingReader;
use crate::{diff, glance, inspect, patch, placement, progress, validate};

/// Default time limits, in seconds.
const DEFAULT_CREATE_TIMEOUT: u64 = 30 * 60;
const DEFAULT_UPDATE_TIMEOUT: u64 = 10 * 60;
const DEFAULT_DELETE_TIMEOUT: u64 = 10 * 60;
/// How long an import may show no progress before it counts as stalled.
const DEFAULT_IMPORT_STALL: u64 = 10 * 60;
pub(crate) const READ_TIMEOUT: u64 = 5 * 60;

/// The image resource over a transport; caches one Keystone token per cloud.
pub struct Provider<T> {
    transport: Retrying<T>,
    sessions: HashMap<String, openstack_image_documents::SessionRecord>,
    /// The cloud's metadata definitions for image properties, per Glance endpoint.
    metadefs: HashMap<String, crate::metadefs::Definitions>,
}

impl<T: Transport> Provider<T> {
    /// A provider with no cached sessions.
    pub fn new(transport: T) -> Self {
        Provider {
            transport: Retrying::new(transport),
            sessions: HashMap::new(),
            metadefs: HashMap::new(),
        }
    }

    /// Validates a spec (including that its local file is readable) and fills defaults.
    pub fn check(&mut self, spec: ImageSpec) -> Result<ImageSpec, Error> {
        let spec = validate::check(spec).map_err(Error::InvalidSpec)?;
        if let Some(path) = &spec.local_file_path {
            probe_file(path).map_err(|message| invalid("local_file_path", message))?;
            // The bytes against the declared format, at plan time: nothing is created.
            inspect_file(&spec, "local_file_path", std::path::Path::new(path))?;
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
        if prior.spec.image_source_url.as_deref() != Some(url) || placement::method(desired).glance_fetches()
        {
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
        if let Some(prior) = prior {
            state.source_fingerprint = prior.source_fingerprint.clone();
            state.import_result = prior.import_result.clone();
            import::keep_requested_format(&mut state, &prior.spec.disk_format);
        }
        // Members are managed when the spec manages them, and adopted with the image.
        let manage = prior.is_none_or(|p| p.spec.members.is_some());
        self.with_members(&mut op, state, manage).map(Some)
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
        let mut current = response.json().map_err(Error::Transport)?;
        op.last_status = current.get("status").and_then(Value::as_str).unwrap_or("").into();
        // Reactivated first: copying to stores needs an active image.
        let deactivated = op.last_status == "deactivated";
        if deactivated && desired.deactivated == Some(false) {
            self.set_deactivated(&mut op, &prior.id, false)?;
            current["status"] = json!("active");
        }
        // Stores first (copy, then delete), so a failure leaves the other fields untouched.
        let mut copy = None;
        if let Some((moved, copied)) = self.change_stores(&mut op, &desired, &prior.id, &current)? {
            (current, copy) = (moved, copied);
        }
        let managed: Vec<String> = prior.spec.properties.iter().map(|(k, _)| k.clone()).collect();
        let ops = patch::build(&current, &desired, &managed);
        let mut image = if ops.is_empty() {
            current
        } else {
            self.patch(&mut op, &prior.id, ops)?
        };
        // Members once the visibility allows them; deactivated last.
        if let Some(members) = &desired.members {
            let shared = image.get("visibility").and_then(Value::as_str) == Some("shared");
            let current = if shared {
                self.members(&mut op, &prior.id)?
            } else {
                Vec::new()
            };
            self.set_members(&mut op, &prior.id, &current, members)?;
        }
        if !deactivated && desired.deactivated == Some(true) {
            self.set_deactivated(&mut op, &prior.id, true)?;
            image["status"] = json!("deactivated");
        }
        let mut state = glance::state_from_image(&image, Some(&desired)).map_err(Error::Transport)?;
        // The data was not touched: what it was uploaded from stays as recorded, so a later
        // change of the source is still noticed. A copy to new stores is the latest import,
        // but a conversion Glance made when the image was created still holds.
        state.source_fingerprint = prior.source_fingerprint.clone();
        let converted_to = prior.import_result.as_ref().and_then(|r| r.converted_to.clone());
        state.import_result = match copy {
            Some(copy) => Some(ImportResult { converted_to, ..copy }),
            None => prior.import_result.clone(),
        };
        import::keep_requested_format(&mut state, &prior.spec.disk_format);
        let manage = desired.members.is_some();
        self.with_members(&mut op, state, manage)
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
}

pub(super) fn expect(response: &Response, method: &str, url: &str, statuses: &[u16]) -> Result<(), Error> {
    if statuses.contains(&response.status) {
        Ok(())
    } else {
        Err(status_error(method, url, response))
    }
}

pub(super) fn invalid(field: &str, message: String) -> Error {
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
        Error::Unauthorized(u) => u.message.clone(),
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
