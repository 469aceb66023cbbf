//! The engine-neutral face (`interface resource` in the WIT): the same lifecycle with JSON
//! documents in and out, for engines that work with property bags and for
//! `wasmtime run --invoke`. Every function maps its documents onto the typed records and calls
//! the same [`Provider`] method the typed face calls; nothing here decides anything itself.

use openstack_image_documents::cloud::{CloudDoc, CloudProblem, CloudSettings, Layer, Origin};
use openstack_image_documents::state::{FlatStateError, unknown_field};
use openstack_image_documents::{ImageDoc, QueryDoc, SpecDoc};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::http::Transport;
use crate::lifecycle::{Provider, describe};
use crate::types::{Action, Cloud, Error, FieldError, ImageSpec, ImageState};

/// `check-json`: `{"spec": SPEC}` -> `{"spec": SPEC}` with defaults filled in.
pub fn check<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let spec = doc.spec()?;
        let checked = provider.check(spec).map_err(Failure::Typed)?;
        Ok(json!({ "spec": SpecDoc::from(checked) }))
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
        Ok(json!({
            "action": action,
            "changes": changes,
            "replaces": replaces,
            "delete_before_replace": delete_before_replace,
        }))
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
    json!({ "kind": kind, "message": describe(err), "fields": fields })
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

/// Reads a flat state document; a bad field is an `invalid-spec` error naming `state.FIELD`.
fn parse_state(value: Value) -> Result<ImageState, Failure> {
    let doc = ImageDoc::from_flat(value).map_err(|e| match e {
        FlatStateError::NotAnObject => Failure::Request(
            "request field `state` must be an object (the state create/read/update returned)".into(),
        ),
        FlatStateError::Field { field, message } => Failure::Typed(Error::InvalidSpec(vec![FieldError {
            field: format!("state.{field}"),
            message,
        }])),
    })?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff;
    use crate::types::{Credentials, SourceFingerprint};

    fn spec_json() -> Value {
        json!({
            "name": "cirros",
            "container_format": "bare",
            "disk_format": "qcow2",
            "image_source_url": "https://example.org/cirros.img",
            "image_source_password": "hunter2",
            "properties": { "os_distro": "cirros", "hw_cpu_cores": 2, "secure": true },
            "tags": ["b", "a"],
            "timeouts": { "create": 600 },
        })
    }

    fn state_of(spec: ImageSpec) -> ImageState {
        ImageState {
            id: "6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69".into(),
            spec,
            status: "active".into(),
            checksum: Some("m".into()),
            os_hash_algo: Some("sha512".into()),
            os_hash_value: Some("s".into()),
            size_bytes: Some(3),
            virtual_size: None,
            owner: Some("p".into()),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:01Z".into(),
            update_at: "2026-01-01T00:00:01Z".into(),
            file: "/v2/images/x/file".into(),
            schema: "/v2/schemas/image".into(),
            metadata: vec![("os_distro".into(), "cirros".into())],
            import_result: None,
            direct_url: None,
            source_fingerprint: Some(SourceFingerprint {
                size: 3,
                sha512: "s".into(),
                mtime_ns: Some(1_764_259_200_123_456_789),
                etag: Some("\"e\"".into()),
                last_modified: None,
            }),
        }
    }

    fn spec_of(value: Value) -> ImageSpec {
        let mut request = Request::parse(&json!({ "spec": value }).to_string())
            .ok()
            .unwrap();
        request.spec().ok().unwrap()
    }

    fn field_error(result: Result<ImageSpec, Failure>) -> (String, String) {
        match result {
            Err(Failure::Typed(Error::InvalidSpec(f))) => (f[0].field.clone(), f[0].message.clone()),
            Err(Failure::Typed(e)) => panic!("unexpected error {e:?}"),
            Err(Failure::Request(m)) => panic!("unexpected request error {m}"),
            Ok(s) => panic!("accepted {s:?}"),
        }
    }

    #[test]
    fn spec_documents_map_to_the_typed_spec() {
        let spec = spec_of(spec_json());
        assert_eq!(spec.disk_format, "qcow2");
        assert_eq!(spec.image_source_password.as_deref(), Some("hunter2"));
        assert_eq!(spec.timeouts.create, Some(600));
        assert!(spec.properties.contains(&("hw_cpu_cores".into(), "2".into())));
        assert!(spec.properties.contains(&("secure".into(), "true".into())));
        assert_eq!(spec.tags, vec!["b", "a"]);
    }

    #[test]
    fn bad_spec_documents_name_the_field() {
        let parse = |value: Value| {
            let mut request = Request::parse(&json!({ "spec": value }).to_string())
                .ok()
                .unwrap();
            field_error(request.spec())
        };
        let (field, message) = parse(json!({ "disk_formt": "raw" }));
        assert_eq!(field, "disk_formt");
        assert!(message.contains("unknown field"), "{message}");
        let (field, _) = parse(json!({ "min_ram_mb": "lots" }));
        assert_eq!(field, "min_ram_mb");
        let (field, message) = parse(json!({ "properties": { "k": [1] } }));
        assert_eq!(field, "properties.k");
        assert!(message.contains("text, a number or true/false"), "{message}");
        let (field, _) = parse(json!({ "timeouts": { "create": "soon" } }));
        assert_eq!(field, "timeouts.create");
    }

    #[test]
    fn requests_without_their_documents_say_what_to_send() {
        for text in ["[]", "nope", "{}"] {
            let mut request = match Request::parse(text) {
                Ok(r) => r,
                Err(Failure::Request(m)) => {
                    assert!(m.contains("JSON"), "{m}");
                    continue;
                }
                Err(_) => panic!(),
            };
            assert!(matches!(request.spec(), Err(Failure::Request(m)) if m.contains("`spec`")));
            assert!(matches!(request.cloud(), Err(Failure::Request(m)) if m.contains("`cloud`")));
        }
        let mut request = Request::parse(r#"{"id": "../../etc"}"#).ok().unwrap();
        assert!(matches!(request.id(), Err(Failure::Request(m)) if m.contains("not a Glance image id")));
    }

    #[test]
    fn state_documents_round_trip_without_secrets() {
        let state = state_of(spec_of(spec_json()));
        let doc = state_doc(state_of(spec_of(spec_json())));
        let text = doc.to_string();
        assert!(!text.contains("hunter2"), "{text}");
        assert_eq!(doc["id"], state.id);
        assert_eq!(doc["properties"]["os_distro"], "cirros");
        assert_eq!(doc["metadata"]["os_distro"], "cirros");
        assert_eq!(doc["source_fingerprint"]["etag"], "\"e\"");
        assert_eq!(doc["source_fingerprint"]["mtime_ns"], "1764259200123456789");
        let mut with_bookkeeping = doc.clone();
        with_bookkeeping["__provider"] = json!("serialised engine data");
        let back = parse_state(with_bookkeeping).ok().unwrap();
        let mut expected = state;
        expected.spec.image_source_password = None;
        expected.spec.properties.sort();
        assert_eq!(back, expected);
        // Every key the document has is described by the schema, and the other way round.
        let schema: Value = serde_json::from_str(&schema()).unwrap();
        let described: Vec<&String> = schema["$defs"]["state"]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let mut keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
        keys.sort();
        let mut described_sorted = described.clone();
        described_sorted.sort();
        assert_eq!(keys, described_sorted);
    }

    #[test]
    fn unknown_state_keys_are_named() {
        let mut doc = state_doc(state_of(spec_of(spec_json())));
        doc["colour"] = json!("blue");
        match parse_state(doc) {
            Err(Failure::Typed(Error::InvalidSpec(f))) => assert_eq!(f[0].field, "state.colour"),
            _ => panic!("accepted an unknown key"),
        }
    }

    #[test]
    fn schema_force_new_agrees_with_diff() {
        let base = validate_spec(json!({
            "container_format": "bare",
            "disk_format": "qcow2",
            "image_source_url": "https://example.org/a.img",
            "image_cache_path": "none",
        }));
        let prior = state_of(base.clone());
        let changed: &[(&str, Value)] = &[
            ("name", json!("other")),
            ("container_format", json!("ovf")),
            ("disk_format", json!("raw")),
            ("image_source_url", json!("https://example.org/b.img")),
            ("image_source_username", json!("u")),
            ("image_cache_path", json!("/cache")),
            ("source_checksum", json!("md5:00112233445566778899aabbccddeeff")),
            ("decompress", json!(true)),
            ("web_download", json!(true)),
            ("image_id", json!("0c7a3f5e-1b2d-4c3e-8f9a-0b1c2d3e4f5a")),
            ("min_disk_gb", json!(3)),
            ("min_ram_mb", json!(512)),
            ("properties", json!({ "k": "v" })),
            ("protected", json!(true)),
            ("hidden", json!(true)),
            ("region", json!("RegionTwo")),
            ("tags", json!(["t"])),
            ("verify_checksum", json!(false)),
            ("visibility", json!("public")),
            ("timeouts", json!({ "update": 60 })),
            ("import_method", json!("glance-direct")),
            ("source_region", json!("RegionThree")),
            ("source_image_id", json!("0c7a3f5e-1b2d-4c3e-8f9a-0b1c2d3e4f5b")),
            ("stores", json!(["fast"])),
            ("all_stores_must_succeed", json!(false)),
        ];
        let glance_download = json!({
            "container_format": "bare",
            "disk_format": "qcow2",
            "import_method": "glance-download",
            "source_region": "RegionOne",
            "source_image_id": "0c7a3f5e-1b2d-4c3e-8f9a-0b1c2d3e4f5a",
        });
        let copied = state_of(validate_spec(glance_download.clone()));
        let schema: Value = serde_json::from_str(&schema()).unwrap();
        let fields = schema["$defs"]["spec"]["properties"].as_object().unwrap();
        for (name, field) in fields
            .iter()
            .filter(|(name, f)| f["x-secret"] != true && *name != "local_file_path")
        {
            let name = name.as_str();
            let force_new = field["x-force-new"] == true;
            let (_, value) = changed
                .iter()
                .find(|(changed, _)| *changed == name)
                .unwrap_or_else(|| panic!("no test value for {name}"));
            let mut desired = json!({
                "container_format": "bare",
                "disk_format": "qcow2",
                "image_source_url": "https://example.org/a.img",
                "image_cache_path": "none",
            });
            desired[name] = value.clone();
            if name == "web_download" {
                desired["image_cache_path"] = Value::Null;
            }
            if name == "image_source_username" {
                desired["image_source_password"] = json!("p");
            }
            let mut prior = &prior;
            if name.starts_with("source_") && name != "source_checksum" {
                desired = glance_download.clone();
                desired[name] = value.clone();
                prior = &copied;
            }
            let plan = diff::diff(&validate_spec(desired), prior);
            let replaced = plan.action == Action::Replace;
            assert_eq!(replaced, force_new, "{name}: {plan:?}");
        }
    }

    fn validate_spec(value: Value) -> ImageSpec {
        crate::validate::check(spec_of(value)).expect("valid")
    }

    #[test]
    fn errors_become_documents() {
        let doc = error_doc(&Error::InvalidSpec(vec![FieldError {
            field: "disk_format".into(),
            message: "must be one of ...".into(),
        }]));
        assert_eq!(doc["kind"], "invalid-spec");
        assert_eq!(doc["fields"][0]["field"], "disk_format");
        assert_eq!(error_doc(&Error::NotFound("gone".into()))["message"], "gone");
    }

    #[test]
    fn clouds_yaml_entries_become_clouds() {
        let cloud = |value: Value| -> Result<Cloud, String> {
            let mut request = Request::parse(&json!({ "cloud": value }).to_string())
                .ok()
                .unwrap();
            request.cloud().map_err(|e| match e {
                Failure::Request(m) => m,
                Failure::Typed(e) => panic!("{e:?}"),
            })
        };
        let c = cloud(json!({
            "auth": { "auth_url": "http://k/v3", "username": "u", "password": "p", "project_name": "demo", "user_domain_name": "Default" },
            "region_name": "RegionOne", "interface": "public", "identity_api_version": 3,
        }))
        .unwrap();
        assert!(matches!(&c.credentials, Credentials::Password(p) if p.password == "p"));
        assert_eq!(c.scope.project_name.as_deref(), Some("demo"));
        assert_eq!(c.region.as_deref(), Some("RegionOne"));
        let c = cloud(json!({ "auth": { "auth_url": "u", "application_credential_id": "i", "application_credential_secret": "s" } })).unwrap();
        assert!(matches!(c.credentials, Credentials::ApplicationCredential(_)));
        let c = cloud(json!({ "auth": { "auth_url": "u", "token": "t" } })).unwrap();
        assert!(matches!(c.credentials, Credentials::Token(_)));
        let err = cloud(json!({ "auth": { "auth_url": "u", "username": "x" } })).unwrap_err();
        assert!(err.contains("cloud.auth.password"), "{err}");
        let err = cloud(json!({ "auth": { "auth_url": "u" }, "auth_type": "saml" })).unwrap_err();
        assert!(err.contains("not supported"), "{err}");
        let err = cloud(json!({ "auth": { "auth_url": "u" }, "cacert": "/x" })).unwrap_err();
        assert!(err.contains("TLS trust is the runtime's"), "{err}");
        let err = cloud(json!({ "auth": { "auth_url": "u" }, "colour": "blue" })).unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }
}
