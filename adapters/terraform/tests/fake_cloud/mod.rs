//! A TEST DOUBLE of the component and its cloud, for driving the provider through the real
//! Terraform without a Glance: images live in a JSON file (the provider process restarts for
//! every Terraform command, and the test edits the file to fake drift and deletions). It follows
//! the JSON face's contract (wit/image.wit, `interface resource`) closely enough for the
//! protocol tests and is not shipped: the real backend runs the real component.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;

use serde_json::{Map, Value as Json, json};
use terraform_provider_openstackimage::{Backend, CloudConfig, ComponentError, FieldError, Function};

/// The environment variable naming the store file; its presence makes the test binary serve.
pub const STORE_ENV: &str = "OPENSTACK_IMAGE_FAKE_CLOUD";

/// The component schema the double answers with: the fixture the unit tests use.
pub const SCHEMA: &str = include_str!("../fixtures/component-schema.json");

/// Properties Glance sets itself, which a spec may not manage.
const READ_ONLY_PROPERTIES: &[&str] = &["os_hash_algo", "os_hash_value", "checksum", "size"];

/// What the real component compares in `diff` (the rest is recorded input).
const COMPARED: &[&str] = &[
    "name",
    "container_format",
    "disk_format",
    "region",
    "local_file_path",
    "image_source_url",
    "visibility",
    "protected",
    "hidden",
    "min_disk_gb",
    "min_ram_mb",
    "tags",
    "properties",
];

/// Inputs only the spec knows: a read without a prior state (an import) cannot tell them.
const RECORDED_INPUTS: &[&str] = &[
    "local_file_path",
    "image_source_url",
    "image_source_username",
    "image_cache_path",
    "source_checksum",
    "verify_checksum",
    "decompress",
    "web_download",
    "import_method",
    "source_region",
    "source_image_id",
    "all_stores_must_succeed",
    "timeouts",
];

/// True when Terraform started this test binary as the provider.
pub fn serving() -> bool {
    std::env::var_os(STORE_ENV).is_some() && std::env::var_os("TF_PLUGIN_MAGIC_COOKIE").is_some()
}

/// Serves the provider over the double.
pub fn serve() -> ExitCode {
    let store = PathBuf::from(std::env::var_os(STORE_ENV).expect("store path"));
    terraform_provider_openstackimage::run(FakeCloud::new(store))
}

/// The double.
pub struct FakeCloud {
    store: Store,
    schema: Json,
}

impl FakeCloud {
    pub fn new(path: PathBuf) -> FakeCloud {
        FakeCloud {
            store: Store {
                path,
                lock: Mutex::new(()),
            },
            schema: serde_json::from_str(SCHEMA).expect("fixture"),
        }
    }

    fn spec_props(&self) -> &Map<String, Json> {
        self.schema["$defs"]["spec"]["properties"]
            .as_object()
            .expect("spec properties")
    }

    fn check(&self, spec: &Json) -> Result<Json, ComponentError> {
        let mut spec = spec.as_object().cloned().unwrap_or_default();
        let mut fields = Vec::new();
        let mut field = |field: &str, message: String| {
            fields.push(FieldError {
                field: field.into(),
                message,
            })
        };
        for name in self.schema["$defs"]["spec"]["required"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap_or_default();
            if spec.get(name).is_none_or(Json::is_null) {
                field(name, "is required".into());
            }
        }
        for (name, value) in &spec {
            let Some(prop) = self.spec_props().get(name) else {
                field(name, format!("unknown field `{name}`"));
                continue;
            };
            if let Some(allowed) = prop["anyOf"][0]["enum"].as_array()
                && !allowed.contains(value)
            {
                field(name, format!("{value} is not allowed"));
            }
        }
        if spec.get("local_file_path").is_none() && spec.get("image_source_url").is_none() {
            field(
                "local_file_path",
                "an image needs data: set local_file_path or image_source_url".into(),
            );
        }
        for key in spec
            .get("properties")
            .and_then(Json::as_object)
            .into_iter()
            .flat_map(|p| p.keys())
        {
            if READ_ONLY_PROPERTIES.contains(&key.as_str()) {
                field(
                    &format!("properties.{key}"),
                    "is set by Glance and cannot be managed".into(),
                );
            }
        }
        if !fields.is_empty() {
            return Err(ComponentError {
                kind: "invalid-spec".into(),
                message: format!("{} problem(s) in the spec", fields.len()),
                fields,
            });
        }
        for (name, prop) in self.spec_props() {
            if let Some(default) = prop.get("default") {
                spec.entry(name.clone()).or_insert(default.clone());
            }
        }
        if let Some(Json::Array(tags)) = spec.get_mut("tags") {
            tags.sort_by_key(|t| t.to_string());
        }
        Ok(Json::Object(spec))
    }

    fn diff(&self, spec: &Json, state: &Json) -> Result<Json, ComponentError> {
        let desired = self.check(spec)?;
        let adopted = state.get("local_file_path").is_none() && state.get("image_source_url").is_none();
        let mut changes = Vec::new();
        let mut replaces = Vec::new();
        for name in COMPARED {
            let skip = (*name == "name" && desired.get("name").is_none())
                || (adopted && matches!(*name, "local_file_path" | "image_source_url"));
            let (new, old) = (comparable(desired.get(*name)), comparable(state.get(*name)));
            if skip || new == old {
                continue;
            }
            let forces = self.spec_props()[*name]["x-force-new"] == json!(true);
            if forces {
                replaces.push(name.to_string());
            }
            changes.push(json!({ "field": name, "old": old, "new": new, "forces_replacement": forces }));
        }
        let action = if !replaces.is_empty() {
            "replace"
        } else if !changes.is_empty() {
            "update"
        } else {
            "no-op"
        };
        Ok(
            json!({ "action": action, "changes": changes, "replaces": replaces, "delete_before_replace": false }),
        )
    }

    fn create(&self, spec: &Json) -> Result<Json, ComponentError> {
        let checked = self.check(spec)?;
        self.store.change(|data| {
            data.next += 1;
            let id = format!("6f1e0c2e-0000-4000-8000-{:012}", data.next);
            let mut image = self.recorded(&checked);
            let size = image
                .get("local_file_path")
                .and_then(Json::as_str)
                .and_then(|p| std::fs::metadata(p).ok())
                .map_or(0, |m| m.len());
            let now = timestamp(data.next);
            for (key, value) in [
                ("id", json!(id)),
                ("status", json!("active")),
                ("checksum", json!("d41d8cd98f00b204e9800998ecf8427e")),
                ("os_hash_algo", json!("sha512")),
                ("os_hash_value", json!("cf83e1357eefb8bdf1542850d66d8007")),
                ("size_bytes", json!(size)),
                ("owner", json!("demo-project")),
                ("created_at", json!(now)),
                ("updated_at", json!(now)),
                ("update_at", json!(now)),
                ("file", json!(format!("/v2/images/{id}/file"))),
                ("schema", json!("/v2/schemas/image")),
                (
                    "stores",
                    match image.get("stores") {
                        Some(Json::Array(stores)) if !stores.is_empty() => json!(stores),
                        _ => json!(["file"]),
                    },
                ),
            ] {
                image.insert(key.into(), value);
            }
            set_metadata(&mut image);
            data.images.insert(id, Json::Object(image.clone()));
            Ok(Json::Object(image))
        })
    }

    fn read(&self, id: &str, prior: Option<&Json>) -> Result<Json, ComponentError> {
        self.store.change(|data| {
            let Some(Json::Object(image)) = data.images.get(id) else {
                return Ok(Json::Null);
            };
            let mut image = image.clone();
            if prior.is_none() {
                for name in RECORDED_INPUTS {
                    image.remove(*name);
                }
            }
            Ok(Json::Object(image))
        })
    }

    fn update(&self, state: &Json, spec: &Json) -> Result<Json, ComponentError> {
        let checked = self.check(spec)?;
        let id = state["id"].as_str().unwrap_or_default().to_string();
        self.store.change(|data| {
            data.next += 1;
            let now = timestamp(data.next);
            let Some(Json::Object(image)) = data.images.get_mut(&id) else {
                return Err(ComponentError::new("not-found", format!("image {id} is gone")));
            };
            let name = image.get("name").cloned();
            for (key, value) in self.recorded(&checked) {
                image.insert(key, value);
            }
            if checked.get("name").is_none()
                && let Some(name) = name
            {
                image.insert("name".into(), name);
            }
            image.insert("updated_at".into(), json!(now));
            image.insert("update_at".into(), json!(now));
            set_metadata(image);
            Ok(Json::Object(image.clone()))
        })
    }

    fn delete(&self, id: &str) -> Result<Json, ComponentError> {
        self.store.change(|data| {
            if data
                .images
                .get(id)
                .is_some_and(|image| image["protected"] == json!(true))
            {
                return Err(ComponentError::new(
                    "conflict",
                    format!("image {id} is protected"),
                ));
            }
            data.images.remove(id);
            Ok(json!({ "id": id, "deleted": true }))
        })
    }

    fn find(&self, query: &Json) -> Result<Json, ComponentError> {
        let data = self.store.load();
        let mut found: Vec<&Json> = data
            .images
            .values()
            .filter(|image| {
                ["name", "visibility", "disk_format"].iter().all(|key| {
                    query
                        .get(*key)
                        .is_none_or(|wanted| image.get(*key) == Some(wanted))
                })
            })
            .filter(|image| {
                query["tags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|tag| image["tags"].as_array().is_some_and(|tags| tags.contains(tag)))
            })
            .collect();
        found.sort_by_key(|image| image["created_at"].as_str().unwrap_or_default().to_string());
        match found.as_slice() {
            [] => Err(ComponentError::new("not-found", "no image matches the query")),
            [one] => Ok((*one).clone()),
            [.., last] if query["most_recent"] == json!(true) => Ok((*last).clone()),
            several => Err(ComponentError::new(
                "conflict",
                format!(
                    "{} images match the query; narrow it or set most_recent",
                    several.len()
                ),
            )),
        }
    }

    /// A checked spec as the state records it: without secrets.
    fn recorded(&self, checked: &Json) -> Map<String, Json> {
        let mut recorded = checked.as_object().cloned().unwrap_or_default();
        recorded.retain(|name, _| self.spec_props()[name]["x-secret"] != json!(true));
        recorded
    }
}

fn set_metadata(image: &mut Map<String, Json>) {
    let mut metadata = image
        .get("properties")
        .and_then(Json::as_object)
        .cloned()
        .unwrap_or_default();
    metadata.insert("os_hash_algo".into(), json!("sha512"));
    image.insert("metadata".into(), Json::Object(metadata));
}

/// A value as diff compares it: empty collections as null, tags sorted.
fn comparable(value: Option<&Json>) -> Json {
    match value {
        None | Some(Json::Null) => Json::Null,
        Some(Json::Array(items)) if items.is_empty() => Json::Null,
        Some(Json::Object(map)) if map.is_empty() => Json::Null,
        Some(Json::Array(items)) => {
            let mut items = items.clone();
            items.sort_by_key(|t| t.to_string());
            Json::Array(items)
        }
        Some(v) => v.clone(),
    }
}

fn timestamp(n: u64) -> String {
    format!("2026-01-01T00:{:02}:{:02}Z", n / 60 % 60, n % 60)
}

impl Backend for FakeCloud {
    async fn schema(&self) -> Result<Json, ComponentError> {
        Ok(self.schema.clone())
    }

    async fn configure(&self, config: CloudConfig) -> Result<(), ComponentError> {
        self.store.change(|data| {
            data.configured = json!({
                "entry": config.entry,
                "cloud": config.cloud,
                "allow_hosts": config.allow_hosts,
                "memory_limit_mib": config.memory_limit_mib,
            });
            Ok(())
        })
    }

    async fn call(&self, function: Function, request: Json) -> Result<Json, ComponentError> {
        if request.get("cloud").is_some() {
            return Err(ComponentError::new(
                "invalid-request",
                "the provider must not send `cloud`",
            ));
        }
        self.store.change(|data| {
            data.calls
                .push(json!({ "function": function.name(), "with_state": request.get("state").is_some() }));
            Ok(())
        })?;
        match function {
            Function::Check => Ok(json!({ "spec": self.check(&request["spec"])? })),
            // The double's cloud defines no image properties.
            Function::CheckWithCloud => Ok(json!({ "checked": true })),
            Function::Diff => self.diff(&request["spec"], &request["state"]),
            Function::Create => self.create(&request["spec"]),
            Function::Read => self.read(request["id"].as_str().unwrap_or_default(), request.get("state")),
            Function::Update => self.update(&request["state"], &request["spec"]),
            Function::Delete => self.delete(request["id"].as_str().unwrap_or_default()),
            Function::Find => self.find(&request["query"]),
            // The double keeps images only; memberships are driven against the dev cloud.
            Function::CheckMembership
            | Function::DiffMembership
            | Function::CreateMembership
            | Function::ReadMembership
            | Function::UpdateMembership
            | Function::DeleteMembership => Err(ComponentError::new(
                "unsupported",
                format!("the fake cloud has no memberships ({})", function.name()),
            )),
        }
    }
}

/// The fake cloud's contents.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct CloudData {
    pub images: Map<String, Json>,
    #[serde(default)]
    pub configured: Json,
    #[serde(default)]
    pub calls: Vec<Json>,
    #[serde(default)]
    pub next: u64,
}

/// The JSON file behind the double.
struct Store {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Store {
    fn load(&self) -> CloudData {
        load(&self.path)
    }

    fn change<T>(
        &self,
        f: impl FnOnce(&mut CloudData) -> Result<T, ComponentError>,
    ) -> Result<T, ComponentError> {
        let _guard = self.lock.lock().expect("store lock");
        let mut data = load(&self.path);
        let result = f(&mut data)?;
        save(&self.path, &data);
        Ok(result)
    }
}

/// Reads a store file (empty when it does not exist yet).
pub fn load(path: &Path) -> CloudData {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).expect("store file"),
        Err(_) => CloudData::default(),
    }
}

/// Writes a store file atomically.
pub fn save(path: &Path, data: &CloudData) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(data).expect("store json")).expect("write store");
    std::fs::rename(&tmp, path).expect("replace store");
}
