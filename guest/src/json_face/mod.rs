//! The engine-neutral face (`interface resource` in the WIT): the same lifecycle with JSON
//! documents in and out, for engines that work with property bags and for
//! `wasmtime run --invoke`. Every function maps its documents onto the typed records and calls
//! the same [`Provider`] method the typed face calls; nothing here decides anything itself.

use std::collections::BTreeMap;

use openstack_image_documents::cloud::{
    CLOUD_VARIABLE, CloudDoc, CloudProblem, CloudSettings, Layer, Origin,
};
use openstack_image_documents::clouds_yaml;
use openstack_image_documents::resolution::{Sources, resolve_sources};
use openstack_image_documents::state::{FlatStateError, unknown_field};
use openstack_image_documents::{ImageDoc, QueryDoc, SessionRecord, SpecDoc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::http::Transport;
use crate::lifecycle::{Provider, describe};
use crate::types::{Action, Cloud, Error, FieldError, ImageSpec, ImageState, Plan};

/// `check-json`: `{"spec": SPEC}` -> `{"spec": SPEC}` with defaults filled in.
pub fn check<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let spec = doc.spec()?;
        let checked = provider.check(spec).map_err(Failure::Typed)?;
        Ok(json!({ "spec": SpecDoc::from(checked) }))
    })
}

/// `check-with-cloud-json`: `{"cloud": CLOUD, "spec": SPEC}` -> `{"checked": true}` when the
/// cloud's own definitions admit the spec's properties.
pub fn check_with_cloud<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let spec = doc.spec()?;
        provider.check_with_cloud(&cloud, &spec).map_err(Failure::Typed)?;
        Ok(json!({ "checked": true }))
    })
}

/// `diff-json`: `{"spec": SPEC, "state": STATE}` -> the plan.
pub fn diff<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let spec = doc.spec()?;
        let state = doc.state()?;
        let delete_before_replace = spec.image_id.is_some();
        let plan = provider.diff(spec, &state).map_err(Failure::Typed)?;
        Ok(plan_doc(&plan, delete_before_replace))
    })
}

/// The `diff-json` answer for a plan.
fn plan_doc(plan: &Plan, delete_before_replace: bool) -> Value {
    let mut replaces: Vec<String> = Vec::new();
    let changes: Vec<Value> = plan
        .changes
        .iter()
        .map(|change| {
            let top = change.field.split('.').next().unwrap_or_default().to_string();
            if change.forces_replacement && !replaces.contains(&top) {
                replaces.push(top);
            }
            json!({
                "field": change.field,
                "old": json_value(change.old.as_deref()),
                "new": json_value(change.new.as_deref()),
                "forces_replacement": change.forces_replacement,
            })
        })
        .collect();
    let action = match plan.action {
        Action::NoOp => "no-op",
        Action::Update => "update",
        Action::Replace => "replace",
    };
    json!({
        "action": action,
        "changes": changes,
        "replaces": replaces,
        "delete_before_replace": delete_before_replace,
    })
}

/// `resolve-cloud-json`: the environment, explicit settings and clouds.yaml's text -> the
/// cloud document (or the files to read first), by the rule every runtime shares.
pub fn resolve_cloud(request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let environment: BTreeMap<String, String> = doc.field("environment")?.unwrap_or_default();
        let settings: Option<CloudDoc> = doc.field("settings")?;
        let cloud: Option<String> = doc.field("cloud")?;
        let files: Option<BTreeMap<String, Option<String>>> = doc.field("files")?;
        let var = |name: &str| environment.get(name).cloned();
        let named = cloud.is_some() || var(CLOUD_VARIABLE).is_some_and(|c| !c.is_empty());
        let files = match (named, files) {
            (true, None) => return Ok(json!({ "read": clouds_yaml::candidate_files(&var) })),
            (_, files) => files.unwrap_or_default(),
        };
        let read = |path: &str| files.get(path).cloned().flatten().map(Ok);
        let explicit = settings
            .map(|doc| Layer {
                origin: Origin::Explicit("the settings".into()),
                doc,
            })
            .into_iter()
            .collect();
        let sources = Sources {
            explicit,
            cloud,
            var: &var,
            read: &read,
        };
        resolve_sources(&sources)
            .map(|resolved| resolved.to_json())
            .map_err(Failure::Request)
    })
}

/// `authenticate-json`: `{"cloud": CLOUD}` -> SESSION, for the `session` of later CLOUDs.
pub fn authenticate<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let session = provider.authenticate(&cloud).map_err(Failure::Typed)?;
        Ok(serde_json::to_value(SessionRecord::from(session)).expect("a session serializes"))
    })
}

/// `create-json`: `{"cloud": CLOUD, "spec": SPEC}` -> STATE.
pub fn create<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let spec = doc.spec()?;
        let state = provider.create(&cloud, spec).map_err(Failure::Typed)?;
        Ok(state_doc(state))
    })
}

/// `read-json`: `{"cloud": CLOUD, "id": ID, "state": STATE?}` -> STATE or `null`.
pub fn read<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let id = doc.id()?;
        let prior = doc.optional_state()?;
        let state = provider
            .read(&cloud, &id, prior.as_ref())
            .map_err(Failure::Typed)?;
        Ok(state.map(state_doc).unwrap_or(Value::Null))
    })
}

/// `update-json`: `{"cloud": CLOUD, "state": STATE, "spec": SPEC}` -> STATE.
pub fn update<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let prior = doc.state()?;
        let spec = doc.spec()?;
        let state = provider.update(&cloud, &prior, spec).map_err(Failure::Typed)?;
        Ok(state_doc(state))
    })
}

/// `delete-json`: `{"cloud": CLOUD, "id": ID, "region": REGION?, "timeout_seconds": N?}`.
pub fn delete<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let id = doc.id()?;
        let region: Option<String> = doc.field("region")?;
        let timeout: Option<u64> = doc.field("timeout_seconds")?;
        provider
            .delete(&cloud, &id, region.as_deref(), timeout)
            .map_err(Failure::Typed)?;
        Ok(json!({ "id": id, "deleted": true }))
    })
}

/// `find-json`: `{"cloud": CLOUD, "query": QUERY}` -> STATE of the one image found.
pub fn find<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let value = doc.take("query").unwrap_or_else(|| json!({}));
        let query: QueryDoc = fields_of("query", value, "")?;
        let state = provider.find(&cloud, query.into()).map_err(Failure::Typed)?;
        Ok(state_doc(state))
    })
}

/// Why a JSON call failed: the typed error, or a document that could not be read.
enum Failure {
    Typed(Error),
    Request(String),
}

fn run(call: impl FnOnce() -> Result<Value, Failure>) -> Result<String, String> {
    match call() {
        Ok(value) => Ok(value.to_string()),
        Err(Failure::Typed(err)) => Err(error_doc(&err).to_string()),
        Err(Failure::Request(message)) => Err(json!({
            "kind": "invalid-request",
            "message": message,
            "fields": [],
        })
        .to_string()),
    }
}

/// The `err` document for a typed error.
pub fn error_doc(err: &Error) -> Value {
    let kind = match err {
        Error::InvalidSpec(_) => "invalid-spec",
        Error::AuthFailed(_) => "auth-failed",
        Error::Unauthorized(_) => "unauthorized",
        Error::NotFound(_) => "not-found",
        Error::Forbidden(_) => "forbidden",
        Error::Conflict(_) => "conflict",
        Error::Quota(_) => "quota",
        Error::ChecksumMismatch(_) => "checksum-mismatch",
        Error::Timeout(_) => "timeout",
        Error::ImportFailed(_) => "import-failed",
        Error::Transport(_) => "transport",
        Error::DeniedByHost(_) => "denied-by-host",
        Error::Api(_) => "api",
    };
    let fields: Vec<Value> = match err {
        Error::InvalidSpec(fields) => fields
            .iter()
            .map(|f| json!({ "field": f.field, "message": f.message }))
            .collect(),
        _ => Vec::new(),
    };
    let mut doc = json!({ "kind": kind, "message": describe(err), "fields": fields });
    if let Error::Unauthorized(info) = err {
        doc["image_id"] = json!(info.image_id);
    }
    doc
}

/// A field-change value: a JSON text, `none` for unset.
fn json_value(text: Option<&str>) -> Value {
    match text {
        None => Value::Null,
        Some(text) => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.into())),
    }
}

/// One request document, taken apart field by field.
struct Request(Map<String, Value>);

impl Request {
    fn parse(text: &str) -> Result<Request, Failure> {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => Ok(Request(map)),
            Ok(_) => Err(Failure::Request(
                "the request must be a JSON object, e.g. {\"spec\": {...}}".into(),
            )),
            Err(e) => Err(Failure::Request(format!("the request is not valid JSON: {e}"))),
        }
    }

    fn take(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key).filter(|v| !v.is_null())
    }

    /// An optional scalar field of the request itself.
    fn field<V: DeserializeOwned>(&mut self, key: &str) -> Result<Option<V>, Failure> {
        self.take(key)
            .map(|v| {
                serde_json::from_value(v).map_err(|e| Failure::Request(format!("request field `{key}`: {e}")))
            })
            .transpose()
    }

    fn id(&mut self) -> Result<String, Failure> {
        let id: String = self.field("id")?.ok_or_else(|| {
            Failure::Request("the request has no `id`; give the Glance image id (a UUID)".into())
        })?;
        if uuid::Uuid::try_parse(&id).is_err() {
            return Err(Failure::Request(format!(
                "request field `id`: '{id}' is not a Glance image id (a UUID)"
            )));
        }
        Ok(id)
    }

    fn spec(&mut self) -> Result<ImageSpec, Failure> {
        let value = self.take("spec").ok_or_else(|| {
            Failure::Request(
                "the request has no `spec`; give the image's inputs, e.g. {\"spec\": {\"container_format\": \"bare\", \"disk_format\": \"qcow2\", ...}}"
                    .into(),
            )
        })?;
        let doc: SpecDoc = fields_of("spec", value, "")?;
        Ok(doc.into())
    }

    fn state(&mut self) -> Result<ImageState, Failure> {
        self.optional_state()?.ok_or_else(|| {
            Failure::Request(
                "the request has no `state`; give the image's state as create/read/update returned it".into(),
            )
        })
    }

    fn optional_state(&mut self) -> Result<Option<ImageState>, Failure> {
        self.take("state").map(parse_state).transpose()
    }

    fn cloud(&mut self) -> Result<Cloud, Failure> {
        let value = self.take("cloud").ok_or_else(|| {
            Failure::Request(
                "the request has no `cloud`; give a clouds.yaml cloud entry, e.g. {\"cloud\": {\"auth\": {\"auth_url\": \"https://keystone.example.org:5000/v3\", ...}}}"
                    .into(),
            )
        })?;
        if let Some(key) = ["cacert", "verify", "cert", "key"]
            .into_iter()
            .find(|k| value.get(k).is_some())
        {
            return Err(Failure::Request(format!(
                "request field `cloud.{key}`: TLS trust is the runtime's to grant, not the component's; configure it in the host that runs this component (the bundled host reads `cacert`/`verify` from clouds.yaml)"
            )));
        }
        let doc = CloudDoc::from_request(value)
            .map_err(|e| Failure::Request(format!("request field `cloud`: {e}")))?;
        let settings = CloudSettings::new(vec![Layer {
            origin: Origin::Request,
            doc,
        }]);
        // Engines keep no session: each instance authenticates once.
        Ok(settings
            .resolve()
            .map_err(|p| Failure::Request(cloud_problem(&p)))?
            .into())
    }
}

/// A cloud document's problem, naming the request field to fix.
fn cloud_problem(problem: &CloudProblem) -> String {
    let missing = |key: &str, what: &str| format!("request field `cloud.auth.{key}` is missing; {what}");
    match problem {
        CloudProblem::NoAuthUrl => missing("auth_url", "give the Keystone v3 URL"),
        CloudProblem::NoCredentials => missing("username", "give `username` (or `user_id`) and `password`"),
        CloudProblem::NoPassword => missing("password", "give the user's password"),
        CloudProblem::NoApplicationCredentialId => missing(
            "application_credential_id",
            "give `application_credential_id` (or `application_credential_name` with the user)",
        ),
        CloudProblem::NoApplicationCredentialSecret => {
            missing("application_credential_secret", "give the credential's secret")
        }
        CloudProblem::NoToken => missing("token", "give an existing Keystone token"),
        CloudProblem::UnsupportedAuthType { value, .. } => format!(
            "request field `cloud.auth_type`: '{value}' is not supported; use password, v3applicationcredential or v3token"
        ),
        CloudProblem::BadInterface { value, .. } => {
            format!("request field `cloud.interface`: '{value}' is not one of public, internal or admin")
        }
    }
}

/// Reads one document; a problem becomes an `invalid-spec` error naming the field
/// (`prefix` + the field name), so engines can show it beside the input.
fn fields_of<V: DeserializeOwned>(what: &str, value: Value, prefix: &str) -> Result<V, Failure> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            // serde names an unknown field only in its message.
            unknown_field(&e.inner().to_string()).unwrap_or_else(|| what.to_string())
        } else {
            path
        };
        Failure::Typed(Error::InvalidSpec(vec![FieldError {
            field: format!("{prefix}{field}"),
            message: e.inner().to_string(),
        }]))
    })
}

/// The flat state document of an image.
fn state_doc(state: ImageState) -> Value {
    ImageDoc::from(state).to_flat()
}

/// A flat state document that does not read: a request error, or `invalid-spec` naming
/// `state.FIELD`.
fn state_failure(e: FlatStateError) -> Failure {
    match e {
        FlatStateError::NotAnObject => Failure::Request(
            "request field `state` must be an object (the state create/read/update returned)".into(),
        ),
        FlatStateError::Field { field, message } => Failure::Typed(Error::InvalidSpec(vec![FieldError {
            field: format!("state.{field}"),
            message,
        }])),
    }
}

/// Reads a flat state document; a bad field is an `invalid-spec` error naming `state.FIELD`.
fn parse_state(value: Value) -> Result<ImageState, Failure> {
    let doc = ImageDoc::from_flat(value).map_err(state_failure)?;
    if uuid::Uuid::try_parse(&doc.id).is_err() {
        return Err(Failure::Request(format!(
            "request field `state.id`: '{}' is not a Glance image id (a UUID)",
            doc.id
        )));
    }
    Ok(doc.into())
}

/// `schema`: JSON Schema of the spec, state and cloud documents.
pub fn schema() -> String {
    openstack_image_documents::schema::schema().to_string()
}

mod membership;
pub use membership::{
    check_membership, create_membership, delete_membership, diff_membership, read_membership,
    update_membership,
};

#[cfg(test)]
mod tests;
