//! The engine-neutral face (`interface resource` in the WIT): the same lifecycle with JSON
//! documents in and out, for engines that work with property bags and for
//! `wasmtime run --invoke`. Every function maps its documents onto the typed records and calls
//! the same [`Provider`] method the typed face calls; nothing here decides anything itself.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::http::Transport;
use crate::lifecycle::{Provider, describe};
use crate::types::{
    Action, ApplicationCredentialAuth, Cloud, Credentials, Error, FieldError, ImageQuery, ImageSpec,
    ImageState, PasswordAuth, ProjectScope, Session, SourceFingerprint, Timeouts,
};

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
        let doc: CloudDoc = serde_json::from_value(value)
            .map_err(|e| Failure::Request(format!("request field `cloud`: {e}")))?;
        doc.into_cloud().map_err(Failure::Request)
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

fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

/// The spec document: the spec file's fields.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecDoc {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    container_format: Option<String>,
    #[serde(default)]
    disk_format: Option<String>,
    #[serde(default)]
    local_file_path: Option<String>,
    #[serde(default)]
    image_source_url: Option<String>,
    #[serde(default)]
    image_source_username: Option<String>,
    #[serde(default, skip_serializing)]
    image_source_password: Option<String>,
    #[serde(default)]
    image_cache_path: Option<String>,
    #[serde(default)]
    source_checksum: Option<String>,
    #[serde(default)]
    decompress: Option<bool>,
    #[serde(default)]
    web_download: Option<bool>,
    #[serde(default)]
    image_id: Option<String>,
    #[serde(default)]
    min_disk_gb: Option<u64>,
    #[serde(default)]
    min_ram_mb: Option<u64>,
    #[serde(default, deserialize_with = "scalar_map")]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    protected: Option<bool>,
    #[serde(default)]
    hidden: Option<bool>,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    verify_checksum: Option<bool>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    timeouts: TimeoutsDoc,
}

/// A `find` query: the `image-query` record in snake_case, `properties` as an object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryDoc {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    name_regex: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    /// One tag (Terraform's data source has both `tag` and `tags`).
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default, deserialize_with = "scalar_map")]
    properties: BTreeMap<String, String>,
    #[serde(default)]
    size_min: Option<u64>,
    #[serde(default)]
    size_max: Option<u64>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    most_recent: Option<bool>,
    #[serde(default)]
    member_status: Option<String>,
    #[serde(default)]
    hidden: Option<bool>,
    #[serde(default)]
    container_format: Option<String>,
    #[serde(default)]
    disk_format: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

impl From<QueryDoc> for ImageQuery {
    fn from(d: QueryDoc) -> ImageQuery {
        ImageQuery {
            name: d.name,
            name_regex: d.name_regex,
            visibility: d.visibility,
            owner: d.owner,
            tags: d.tags.into_iter().chain(d.tag).collect(),
            properties: d.properties.into_iter().collect(),
            size_min: d.size_min,
            size_max: d.size_max,
            sort: d.sort,
            most_recent: d.most_recent.unwrap_or(false),
            member_status: d.member_status,
            hidden: d.hidden,
            container_format: d.container_format,
            disk_format: d.disk_format,
            region: d.region,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TimeoutsDoc {
    #[serde(default)]
    create: Option<u64>,
    #[serde(default)]
    update: Option<u64>,
    #[serde(default)]
    delete: Option<u64>,
}

/// Property values as the spec file takes them: strings, numbers or booleans, kept as text.
fn scalar_map<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = Option::<BTreeMap<String, Value>>::deserialize(d)?.unwrap_or_default();
    raw.into_iter()
        .map(|(key, value)| match value {
            Value::String(s) => Ok((key, s)),
            Value::Number(n) => Ok((key, n.to_string())),
            Value::Bool(b) => Ok((key, b.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "property '{key}' must be a string, number or boolean, not {other}"
            ))),
        })
        .collect()
}

impl From<SpecDoc> for ImageSpec {
    fn from(d: SpecDoc) -> ImageSpec {
        ImageSpec {
            name: d.name,
            container_format: d.container_format.unwrap_or_default(),
            disk_format: d.disk_format.unwrap_or_default(),
            local_file_path: d.local_file_path,
            image_source_url: d.image_source_url,
            image_source_username: d.image_source_username,
            image_source_password: d.image_source_password,
            image_cache_path: d.image_cache_path,
            source_checksum: d.source_checksum,
            decompress: d.decompress,
            web_download: d.web_download,
            image_id: d.image_id,
            min_disk_gb: d.min_disk_gb,
            min_ram_mb: d.min_ram_mb,
            properties: d.properties.into_iter().collect(),
            protected: d.protected,
            hidden: d.hidden,
            region: d.region,
            tags: d.tags,
            verify_checksum: d.verify_checksum,
            visibility: d.visibility,
            timeouts: Timeouts {
                create: d.timeouts.create,
                update: d.timeouts.update,
                delete: d.timeouts.delete,
            },
        }
    }
}

impl From<ImageSpec> for SpecDoc {
    fn from(s: ImageSpec) -> SpecDoc {
        SpecDoc {
            name: s.name,
            container_format: Some(s.container_format).filter(|f| !f.is_empty()),
            disk_format: Some(s.disk_format).filter(|f| !f.is_empty()),
            local_file_path: s.local_file_path,
            image_source_url: s.image_source_url,
            image_source_username: s.image_source_username,
            // Secret: never returned.
            image_source_password: None,
            image_cache_path: s.image_cache_path,
            source_checksum: s.source_checksum,
            decompress: s.decompress,
            web_download: s.web_download,
            image_id: s.image_id,
            min_disk_gb: s.min_disk_gb,
            min_ram_mb: s.min_ram_mb,
            properties: s.properties.into_iter().collect(),
            protected: s.protected,
            hidden: s.hidden,
            region: s.region,
            tags: s.tags,
            verify_checksum: s.verify_checksum,
            visibility: s.visibility,
            timeouts: TimeoutsDoc {
                create: s.timeouts.create,
                update: s.timeouts.update,
                delete: s.timeouts.delete,
            },
        }
    }
}

/// What Glance computed: the state document's fields beside the spec's.
#[derive(Debug, Default, Serialize, Deserialize)]
struct ComputedDoc {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    checksum: Option<String>,
    #[serde(default)]
    os_hash_algo: Option<String>,
    #[serde(default)]
    os_hash_value: Option<String>,
    #[serde(default)]
    size_bytes: Option<u64>,
    #[serde(default)]
    virtual_size: Option<u64>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    updated_at: String,
    #[serde(default)]
    update_at: String,
    #[serde(default)]
    file: String,
    #[serde(default)]
    schema: String,
    #[serde(default, deserialize_with = "scalar_map")]
    metadata: BTreeMap<String, String>,
    #[serde(default)]
    stores: Option<String>,
    #[serde(default)]
    direct_url: Option<String>,
    #[serde(default)]
    source_fingerprint: Option<FingerprintDoc>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FingerprintDoc {
    size: u64,
    sha512: String,
    /// A decimal string: nanoseconds since 1970 exceed what a JSON number holds exactly in
    /// JavaScript and in engines that keep numbers as doubles (2^53). Numbers are accepted too.
    #[serde(default, with = "decimal")]
    mtime_ns: Option<u64>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
}

/// An optional u64 written as a decimal string, read from a string or a number.
mod decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(&v.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            Number(u64),
            Text(String),
        }
        match Option::<Either>::deserialize(d)? {
            None => Ok(None),
            Some(Either::Number(n)) => Ok(Some(n)),
            Some(Either::Text(t)) => t
                .parse()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("'{t}' is not a whole number of nanoseconds"))),
        }
    }
}

/// The flat state document of an image.
fn state_doc(state: ImageState) -> Value {
    let computed = ComputedDoc {
        id: state.id,
        status: state.status,
        checksum: state.checksum,
        os_hash_algo: state.os_hash_algo,
        os_hash_value: state.os_hash_value,
        size_bytes: state.size_bytes,
        virtual_size: state.virtual_size,
        owner: state.owner,
        created_at: state.created_at,
        updated_at: state.updated_at,
        update_at: state.update_at,
        file: state.file,
        schema: state.schema,
        metadata: state.metadata.into_iter().collect(),
        stores: state.stores,
        direct_url: state.direct_url,
        source_fingerprint: state.source_fingerprint.map(|f| FingerprintDoc {
            size: f.size,
            sha512: f.sha512,
            mtime_ns: f.mtime_ns,
            etag: f.etag,
            last_modified: f.last_modified,
        }),
    };
    let mut doc = object(&SpecDoc::from(state.spec));
    doc.extend(object(&computed));
    Value::Object(doc)
}

fn object(value: &impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("documents serialise to objects"),
    }
}

/// Reads a flat state document. Keys starting with `__` (engine bookkeeping such as Pulumi's
/// `__provider`) are ignored; any other unknown key is an error.
fn parse_state(value: Value) -> Result<ImageState, Failure> {
    let Value::Object(map) = value else {
        return Err(Failure::Request(
            "request field `state` must be an object (the state create/read/update returned)".into(),
        ));
    };
    let (computed, spec): (Map<String, Value>, Map<String, Value>) = map
        .into_iter()
        .filter(|(key, _)| !key.starts_with("__"))
        .partition(|(key, _)| COMPUTED_FIELDS.iter().any(|(name, ..)| name == key));
    let computed: ComputedDoc = fields_of("state", Value::Object(computed), "state.")?;
    if uuid::Uuid::try_parse(&computed.id).is_err() {
        return Err(Failure::Request(format!(
            "request field `state.id`: '{}' is not a Glance image id (a UUID)",
            computed.id
        )));
    }
    let spec: SpecDoc = fields_of("state", Value::Object(spec), "state.")?;
    Ok(ImageState {
        id: computed.id,
        spec: spec.into(),
        status: computed.status,
        checksum: computed.checksum,
        os_hash_algo: computed.os_hash_algo,
        os_hash_value: computed.os_hash_value,
        size_bytes: computed.size_bytes,
        virtual_size: computed.virtual_size,
        owner: computed.owner,
        created_at: computed.created_at,
        updated_at: computed.updated_at,
        update_at: computed.update_at,
        file: computed.file,
        schema: computed.schema,
        metadata: computed.metadata.into_iter().collect(),
        stores: computed.stores,
        direct_url: computed.direct_url,
        source_fingerprint: computed.source_fingerprint.map(|f| SourceFingerprint {
            size: f.size,
            sha512: f.sha512,
            mtime_ns: f.mtime_ns,
            etag: f.etag,
            last_modified: f.last_modified,
        }),
    })
}

/// A clouds.yaml cloud entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CloudDoc {
    auth: AuthDoc,
    #[serde(default)]
    auth_type: Option<String>,
    #[serde(default)]
    region_name: Option<String>,
    #[serde(default)]
    interface: Option<String>,
    #[serde(default)]
    retries: Option<u32>,
    /// A token issued earlier for these credentials (a runtime sharing one per run).
    #[serde(default)]
    session: Option<SessionDoc>,
    /// Accepted for clouds.yaml compatibility; only Keystone v3 and Glance v2 are spoken.
    #[serde(default)]
    #[allow(dead_code)]
    identity_api_version: Option<Value>,
    #[serde(default)]
    #[allow(dead_code)]
    image_api_version: Option<Value>,
}

/// The `session` record: the token and the token response carrying its catalog.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionDoc {
    token: String,
    token_body: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthDoc {
    auth_url: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    user_id: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    user_domain_name: Option<String>,
    #[serde(default)]
    user_domain_id: Option<String>,
    #[serde(default)]
    project_name: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    project_domain_name: Option<String>,
    #[serde(default)]
    project_domain_id: Option<String>,
    #[serde(default)]
    application_credential_id: Option<String>,
    #[serde(default)]
    application_credential_name: Option<String>,
    #[serde(default)]
    application_credential_secret: Option<String>,
    #[serde(default)]
    token: Option<String>,
}

impl CloudDoc {
    fn into_cloud(self) -> Result<Cloud, String> {
        let a = self.auth;
        let auth_type = match self.auth_type.as_deref() {
            Some(t) => t.to_string(),
            None if a.application_credential_secret.is_some() => "v3applicationcredential".into(),
            None if a.token.is_some() && a.password.is_none() => "v3token".into(),
            None => "password".into(),
        };
        let missing = |key: &str, what: &str| format!("request field `cloud.auth.{key}` is missing; {what}");
        let credentials = match auth_type.as_str() {
            "password" | "v3password" => {
                if a.username.is_none() && a.user_id.is_none() {
                    return Err(missing(
                        "username",
                        "give `username` (or `user_id`) and `password`",
                    ));
                }
                Credentials::Password(PasswordAuth {
                    user_id: a.user_id,
                    username: a.username,
                    password: a
                        .password
                        .ok_or_else(|| missing("password", "give the user's password"))?,
                    user_domain_id: a.user_domain_id,
                    user_domain_name: a.user_domain_name,
                })
            }
            "v3applicationcredential" | "applicationcredential" | "application_credential" => {
                if a.application_credential_id.is_none() && a.application_credential_name.is_none() {
                    return Err(missing(
                        "application_credential_id",
                        "give `application_credential_id` (or `application_credential_name` with the user)",
                    ));
                }
                Credentials::ApplicationCredential(ApplicationCredentialAuth {
                    id: a.application_credential_id,
                    name: a.application_credential_name,
                    secret: a.application_credential_secret.ok_or_else(|| {
                        missing("application_credential_secret", "give the credential's secret")
                    })?,
                    user_id: a.user_id,
                    username: a.username,
                    user_domain_id: a.user_domain_id,
                    user_domain_name: a.user_domain_name,
                })
            }
            "token" | "v3token" => Credentials::Token(
                a.token
                    .ok_or_else(|| missing("token", "give an existing Keystone token"))?,
            ),
            other => {
                return Err(format!(
                    "request field `cloud.auth_type`: '{other}' is not supported; use password, v3applicationcredential or v3token"
                ));
            }
        };
        Ok(Cloud {
            auth_url: a.auth_url,
            credentials,
            scope: ProjectScope {
                project_id: a.project_id,
                project_name: a.project_name,
                project_domain_id: a.project_domain_id,
                project_domain_name: a.project_domain_name,
            },
            region: self.region_name,
            interface: self.interface,
            retries: self.retries,
            session: self.session.map(|s| Session {
                token: s.token,
                token_body: s.token_body,
            }),
        })
    }
}

/// How a spec field behaves: replaced when it changes, kept only in state, secret.
struct FieldInfo {
    name: &'static str,
    schema: fn() -> Value,
    description: &'static str,
    force_new: bool,
    secret: bool,
}

fn string() -> Value {
    json!({ "type": "string" })
}
fn boolean() -> Value {
    json!({ "type": "boolean" })
}
fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}
fn seconds() -> Value {
    json!({ "type": "integer", "minimum": 0, "x-unit": "seconds" })
}

/// Every spec field, in the spec file's order. `x-force-new` agrees with `diff` (tested).
#[rustfmt::skip]
const SPEC_FIELDS: &[FieldInfo] = &[
    FieldInfo { name: "name", schema: string, description: "Image name in Glance.", force_new: false, secret: false },
    FieldInfo { name: "container_format", schema: || json!({ "enum": ["bare", "ovf", "aki", "ari", "ami", "ova", "docker", "compressed"] }), description: "Container format.", force_new: true, secret: false },
    FieldInfo { name: "disk_format", schema: || json!({ "enum": ["raw", "vhd", "vhdx", "vmdk", "vdi", "iso", "ploop", "qcow2", "aki", "ari", "ami"] }), description: "Disk format.", force_new: true, secret: false },
    FieldInfo { name: "local_file_path", schema: string, description: "Absolute path of the image file to upload (the runtime must grant its directory). Conflicts with image_source_url.", force_new: true, secret: false },
    FieldInfo { name: "image_source_url", schema: string, description: "URL to download the image data from. Conflicts with local_file_path.", force_new: true, secret: false },
    FieldInfo { name: "image_source_username", schema: string, description: "Basic-auth user for image_source_url.", force_new: false, secret: false },
    FieldInfo { name: "image_source_password", schema: string, description: "Basic-auth password for image_source_url; never returned or stored.", force_new: false, secret: true },
    FieldInfo { name: "image_cache_path", schema: string, description: "Directory where downloads are cached, or \"none\" to stream the download into Glance.", force_new: false, secret: false },
    FieldInfo { name: "source_checksum", schema: || json!({ "type": "string", "pattern": "^(sha256|sha512|md5):[0-9a-fA-F]+$" }), description: "Expected digest of the image data: sha256:<hex>, sha512:<hex> or md5:<hex>.", force_new: false, secret: false },
    FieldInfo { name: "decompress", schema: boolean, description: "Decompress the downloaded data (gzip, bzip2, xz, zstd) before upload.", force_new: true, secret: false },
    FieldInfo { name: "web_download", schema: boolean, description: "Let Glance download image_source_url itself (web-download import).", force_new: true, secret: false },
    FieldInfo { name: "image_id", schema: || json!({ "type": "string", "format": "uuid" }), description: "Create the image with this UUID.", force_new: true, secret: false },
    FieldInfo { name: "min_disk_gb", schema: count, description: "Minimum disk size in GB needed to boot the image. Default 0.", force_new: false, secret: false },
    FieldInfo { name: "min_ram_mb", schema: count, description: "Minimum RAM in MB needed to boot the image. Default 0.", force_new: false, secret: false },
    FieldInfo { name: "properties", schema: || json!({ "type": "object", "additionalProperties": { "type": ["string", "number", "boolean"] } }), description: "Free-form key/value properties managed by this resource.", force_new: false, secret: false },
    FieldInfo { name: "protected", schema: boolean, description: "When true the image cannot be deleted. Default false.", force_new: false, secret: false },
    FieldInfo { name: "hidden", schema: boolean, description: "Hide the image from the default image list. Default false.", force_new: false, secret: false },
    FieldInfo { name: "region", schema: string, description: "Region whose image endpoint hosts the image.", force_new: true, secret: false },
    FieldInfo { name: "tags", schema: || json!({ "type": "array", "items": { "type": "string" }, "uniqueItems": true }), description: "Tags, as a set.", force_new: false, secret: false },
    FieldInfo { name: "verify_checksum", schema: boolean, description: "Verify Glance's checksums against the uploaded bytes. Default true.", force_new: false, secret: false },
    FieldInfo { name: "visibility", schema: || json!({ "enum": ["public", "private", "shared", "community"] }), description: "Who can see the image. Default private.", force_new: false, secret: false },
    FieldInfo { name: "timeouts", schema: || json!({ "type": "object", "additionalProperties": false, "properties": { "create": seconds(), "update": seconds(), "delete": seconds() } }), description: "Per-operation time limits in seconds (create 1800, update 600, delete 600).", force_new: false, secret: false },
];

/// Builds one JSON value (a schema fragment or a default).
type Schema = fn() -> Value;

/// A computed state field (or a query field): name, JSON Schema, description.
type Computed = (&'static str, Schema, &'static str);

/// Every computed state field.
#[rustfmt::skip]
const COMPUTED_FIELDS: &[Computed] = &[
    ("id", || json!({ "type": "string", "format": "uuid" }), "Glance image id."),
    ("status", string, "Image status (active once created)."),
    ("checksum", string, "MD5 of the data, as Glance computed it."),
    ("os_hash_algo", string, "Algorithm of os_hash_value (usually sha512)."),
    ("os_hash_value", string, "Multihash of the data."),
    ("size_bytes", count, "Size in bytes of the data."),
    ("virtual_size", count, "Virtual disk size in bytes, when Glance knows it."),
    ("owner", string, "Project that owns the image."),
    ("created_at", string, "Creation time (ISO 8601)."),
    ("updated_at", string, "Last update time (ISO 8601)."),
    ("update_at", string, "Deprecated alias of updated_at."),
    ("file", string, "Path of the image data below the image endpoint."),
    ("schema", string, "Path of Glance's JSON schema of the image."),
    ("metadata", || json!({ "type": "object", "additionalProperties": { "type": "string" } }), "Every property Glance reports, server-set ones included."),
    ("stores", string, "Stores holding the data."),
    ("direct_url", string, "Direct URL of the data, when exposed."),
    ("source_fingerprint", || json!({ "type": "object", "properties": { "size": count(), "sha512": string(), "mtime_ns": { "type": "string", "pattern": "^[0-9]+$", "description": "Nanoseconds since 1970, as a decimal string (exact beyond 2^53)." }, "etag": string(), "last_modified": string() } }), "The source data as uploaded, to notice when it changes."),
];

/// What `check` fills in when a spec leaves a field out (validate.rs), as JSON Schema `default`s.
#[rustfmt::skip]
const DEFAULTS: &[(&str, Schema)] = &[
    ("decompress", || json!(false)),
    ("web_download", || json!(false)),
    ("min_disk_gb", || json!(0)),
    ("min_ram_mb", || json!(0)),
    ("protected", || json!(false)),
    ("hidden", || json!(false)),
    ("verify_checksum", || json!(true)),
    ("visibility", || json!("private")),
];

/// Computed outputs an in-place update never changes (`x-stable`): an engine can promise them
/// in an update's plan.
const STABLE_OUTPUTS: &[&str] = &[
    "id",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "size_bytes",
    "virtual_size",
    "owner",
    "created_at",
    "file",
    "schema",
    "stores",
    "direct_url",
    "source_fingerprint",
];

/// Every field of a `find` query.
#[rustfmt::skip]
const QUERY_FIELDS: &[Computed] = &[
    ("name", string, "Exact image name."),
    ("name_regex", string, "Regular expression the image name must match."),
    ("visibility", || json!({ "enum": ["public", "private", "shared", "community", "all"] }), "Visibility of the image."),
    ("member_status", || json!({ "enum": ["accepted", "pending", "rejected", "all"] }), "Status of the image's membership for the project."),
    ("owner", string, "Project that owns the image."),
    ("tag", string, "A tag the image carries."),
    ("tags", || json!({ "type": "array", "items": { "type": "string" }, "uniqueItems": true }), "Tags the image carries, all of them."),
    ("properties", || json!({ "type": "object", "additionalProperties": { "type": ["string", "number", "boolean"] } }), "Properties the image carries, with these values."),
    ("size_min", count, "Smallest size in bytes."),
    ("size_max", count, "Largest size in bytes."),
    ("sort", string, "Sort order, e.g. name:asc,created_at:desc."),
    ("most_recent", boolean, "Pick the most recently created image when several match."),
    ("hidden", boolean, "Look among hidden images."),
    ("container_format", || json!({ "enum": ["bare", "ovf", "aki", "ari", "ami", "ova", "docker", "compressed"] }), "Container format."),
    ("disk_format", || json!({ "enum": ["raw", "vhd", "vhdx", "vmdk", "vdi", "iso", "ploop", "qcow2", "aki", "ari", "ami"] }), "Disk format."),
    ("region", string, "Region whose image endpoint to search."),
];

/// `schema`: JSON Schema of the spec, state and cloud documents.
pub fn schema() -> String {
    let nullable = |schema: Value| -> Value { json!({ "anyOf": [schema, { "type": "null" }] }) };
    let spec_props: Map<String, Value> = SPEC_FIELDS
        .iter()
        .map(|f| {
            let mut s = nullable((f.schema)());
            let o = s.as_object_mut().expect("object");
            o.insert("description".into(), f.description.into());
            o.insert("x-force-new".into(), f.force_new.into());
            o.insert("x-computed".into(), false.into());
            o.insert("x-secret".into(), f.secret.into());
            if f.secret {
                o.insert("writeOnly".into(), true.into());
            }
            if let Some((_, default)) = DEFAULTS.iter().find(|(name, _)| *name == f.name) {
                o.insert("default".into(), default());
            }
            match f.name {
                // Diff leaves an unset name alone: the image keeps the one it has.
                "name" => {
                    o.insert("x-keep-when-unset".into(), true.into());
                }
                // Runtimes give downloads a cache directory of their own when none is set.
                "image_cache_path" => {
                    o.insert("x-runtime-default".into(), true.into());
                }
                _ => {}
            }
            (f.name.to_string(), s)
        })
        .collect();
    let mut state_props: Map<String, Value> = spec_props
        .iter()
        .filter(|(name, _)| !SPEC_FIELDS.iter().any(|f| f.secret && f.name == name.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (name, schema, description) in COMPUTED_FIELDS {
        let mut s = nullable(schema());
        let o = s.as_object_mut().expect("object");
        o.insert("description".into(), (*description).into());
        o.insert("readOnly".into(), true.into());
        o.insert("x-force-new".into(), false.into());
        o.insert("x-computed".into(), true.into());
        o.insert("x-secret".into(), false.into());
        if STABLE_OUTPUTS.contains(name) {
            o.insert("x-stable".into(), true.into());
        }
        state_props.insert((*name).into(), s);
    }
    let query_props: Map<String, Value> = QUERY_FIELDS
        .iter()
        .map(|(name, schema, description)| {
            let mut s = nullable(schema());
            s["description"] = (*description).into();
            ((*name).to_string(), s)
        })
        .collect();
    let secret = |description: &str| json!({ "type": "string", "description": description, "x-secret": true, "writeOnly": true });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:openstack:image:resource:0.1.0",
        "title": "OpenStack Glance image",
        "description": "Documents of the openstack:image/resource@0.1.0 interface: `spec` (inputs), `state` (inputs as applied plus computed outputs), `cloud` (a clouds.yaml cloud entry).",
        "$defs": {
            "spec": {
                "type": "object",
                "additionalProperties": false,
                "required": ["container_format", "disk_format"],
                "properties": spec_props,
            },
            "state": {
                "type": "object",
                "required": ["id"],
                "properties": state_props,
            },
            "query": {
                "type": "object",
                "additionalProperties": false,
                "properties": query_props,
            },
            "cloud": {
                "type": "object",
                "additionalProperties": false,
                "required": ["auth"],
                "properties": {
                    "auth": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["auth_url"],
                        "properties": {
                            "auth_url": { "type": "string", "description": "Keystone v3 URL." },
                            "username": string(), "user_id": string(),
                            "password": secret("The user's password."),
                            "user_domain_name": string(), "user_domain_id": string(),
                            "project_name": string(), "project_id": string(),
                            "project_domain_name": string(), "project_domain_id": string(),
                            "application_credential_id": string(), "application_credential_name": string(),
                            "application_credential_secret": secret("The application credential's secret."),
                            "token": secret("An existing Keystone token."),
                        },
                    },
                    "auth_type": { "enum": ["password", "v3password", "v3applicationcredential", "applicationcredential", "token", "v3token"] },
                    "region_name": string(),
                    "interface": { "enum": ["public", "internal", "admin"] },
                    "retries": { "type": "integer", "minimum": 0, "description": "Retries of requests that are safe to repeat. Default 4." },
                    "session": {
                        "type": "object",
                        "additionalProperties": false,
                        "required": ["token", "token_body"],
                        "description": "A Keystone token issued earlier for the same credentials (a runtime shares one per run); used until Keystone answers 401.",
                        "x-secret": true,
                        "writeOnly": true,
                        "properties": { "token": string(), "token_body": string() },
                    },
                    "identity_api_version": { "description": "Accepted and ignored (Keystone v3 only)." },
                    "image_api_version": { "description": "Accepted and ignored (Glance v2 only)." },
                },
            },
        },
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff;

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
            stores: None,
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
        assert_eq!(field, "properties");
        assert!(message.contains("property 'k'"), "{message}");
        let (field, _) = parse(json!({ "timeouts": { "create": "10m" } }));
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
        ];
        for field in SPEC_FIELDS
            .iter()
            .filter(|f| !f.secret && f.name != "local_file_path")
        {
            let (_, value) = changed
                .iter()
                .find(|(name, _)| *name == field.name)
                .unwrap_or_else(|| panic!("no test value for {}", field.name));
            let mut desired = json!({
                "container_format": "bare",
                "disk_format": "qcow2",
                "image_source_url": "https://example.org/a.img",
                "image_cache_path": "none",
            });
            desired[field.name] = value.clone();
            if field.name == "web_download" {
                desired["image_cache_path"] = Value::Null;
            }
            if field.name == "image_source_username" {
                desired["image_source_password"] = json!("p");
            }
            let plan = diff::diff(&validate_spec(desired), &prior);
            let replaced = plan.action == Action::Replace;
            assert_eq!(replaced, field.force_new, "{}: {:?}", field.name, plan);
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
            serde_json::from_value::<CloudDoc>(value)
                .map_err(|e| e.to_string())?
                .into_cloud()
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
        assert!(err.contains("unknown field `cacert`"), "{err}");
    }
}
