//! Glance image JSON: the create body we send and the `image-state` we read back.

use openstack_image_documents::SpecDoc;
use openstack_image_documents::spec::defaults;
use openstack_image_documents::state_file::store_list;
use serde_json::{Map, Value, json};

use crate::glance_fields::{FIELDS, is_core_attribute, is_server_set_property};
use crate::types::{ImageSpec, ImageState};

/// The body of `POST /v2/images`. The image is always created unprotected: protection is
/// applied only after the data is verified, so a failed create can always be cleaned up.
pub fn create_body(spec: &ImageSpec, id: &str) -> Value {
    let mut body = Map::new();
    body.insert("id".into(), json!(id));
    for field in FIELDS {
        if let Some(value) = (field.desired)(spec) {
            body.insert(field.glance.into(), value);
        }
    }
    body.insert("protected".into(), json!(false));
    for (key, value) in &spec.properties {
        body.insert(key.clone(), json!(value));
    }
    Value::Object(body)
}

/// The free-form properties of an image (every top-level key that is not a core
/// attribute), as strings.
pub fn properties(image: &Value) -> Vec<(String, String)> {
    let Some(object) = image.as_object() else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = object
        .iter()
        .filter(|(key, _)| !is_core_attribute(key))
        .map(|(key, value)| (key.clone(), text(value)))
        .collect();
    out.sort();
    out
}

/// Maps a Glance image to `image-state`. `prior` is the spec the image was applied with:
/// its property keys are the managed ones, and it supplies the fields Glance does not hold.
/// Without a prior (an adopted image) every property that is not server-set is managed.
pub fn state_from_image(image: &Value, prior: Option<&ImageSpec>) -> Result<ImageState, String> {
    let str_field = |key: &str| image.get(key).and_then(Value::as_str).map(str::to_string);
    let u64_field = |key: &str| image.get(key).and_then(Value::as_u64);
    let id = str_field("id").ok_or("the image has no id")?;
    let status = str_field("status").ok_or_else(|| format!("image {id} has no status"))?;

    let all_properties = properties(image);
    let managed: Vec<(String, String)> = match prior {
        Some(prior) => all_properties
            .iter()
            .filter(|(key, _)| prior.properties.iter().any(|(k, _)| k == key))
            .cloned()
            .collect(),
        None => all_properties
            .iter()
            .filter(|(key, _)| !is_server_set_property(key))
            .cloned()
            .collect(),
    };
    // What Glance holds comes from Glance; everything else (sources, cache, checksum
    // settings, region, timeouts) is kept from the prior spec. Secrets are never kept in state.
    let mut spec = match prior {
        Some(prior) => ImageSpec {
            image_source_password: None,
            ..prior.clone()
        },
        None => ImageSpec::from(SpecDoc::default()),
    };
    for field in FIELDS {
        (field.read)(&mut spec, image.get(field.glance));
    }
    spec.properties = managed;
    spec.stores = stores_of(image);
    spec.deactivated = Some(status == "deactivated");
    // Images applied before the field existed were imported as its default says.
    spec.all_stores_must_succeed = spec
        .all_stores_must_succeed
        .or(Some(defaults::ALL_STORES_MUST_SUCCEED));
    let updated_at = str_field("updated_at").unwrap_or_default();
    Ok(ImageState {
        file: str_field("file").unwrap_or_else(|| format!("/v2/images/{id}/file")),
        schema: str_field("schema").unwrap_or_else(|| "/v2/schemas/image".to_string()),
        id,
        spec,
        status,
        checksum: str_field("checksum"),
        os_hash_algo: str_field("os_hash_algo"),
        os_hash_value: str_field("os_hash_value"),
        size_bytes: u64_field("size"),
        virtual_size: u64_field("virtual_size"),
        owner: str_field("owner"),
        created_at: str_field("created_at").unwrap_or_default(),
        update_at: updated_at.clone(),
        updated_at,
        metadata: all_properties,
        import_result: None,
        direct_url: str_field("direct_url"),
        source_fingerprint: None,
        // Members are read separately (`GET /v2/images/{id}/members`).
        member_statuses: Vec::new(),
    })
}

/// The stores holding an image's data (Glance's comma-separated `stores`), sorted.
pub fn stores_of(image: &Value) -> Vec<String> {
    store_list(image.get("stores").and_then(Value::as_str).unwrap_or(""))
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{check, tests::spec};

    fn image() -> Value {
        json!({
            "id": "6f1e0c2e-0000-4000-8000-000000000001",
            "name": "cirros",
            "status": "active",
            "container_format": "bare",
            "disk_format": "qcow2",
            "visibility": "private",
            "protected": false,
            "os_hidden": false,
            "min_disk": 1,
            "min_ram": 64,
            "size": 1024,
            "virtual_size": 4096,
            "checksum": "abc",
            "os_hash_algo": "sha512",
            "os_hash_value": "def",
            "owner": "p1",
            "tags": ["b", "a"],
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-02T00:00:00Z",
            "self": "/v2/images/6f1e0c2e-0000-4000-8000-000000000001",
            "file": "/v2/images/6f1e0c2e-0000-4000-8000-000000000001/file",
            "schema": "/v2/schemas/image",
            "stores": "file",
            "os_distro": "cirros",
            "owner_specified.openstack.md5": "x",
            "os_glance_importing_to_stores": "",
            "unmanaged": "y"
        })
    }

    #[test]
    fn maps_every_output() {
        let mut prior = check(spec()).unwrap();
        prior.properties = vec![("os_distro".into(), "cirros".into()), ("gone".into(), "1".into())];
        prior.image_source_password = Some("secret".into());
        let state = state_from_image(&image(), Some(&prior)).unwrap();
        assert_eq!(state.status, "active");
        assert_eq!(state.size_bytes, Some(1024));
        assert_eq!(state.virtual_size, Some(4096));
        assert_eq!(state.os_hash_value.as_deref(), Some("def"));
        assert_eq!(state.updated_at, state.update_at);
        assert_eq!(state.spec.stores, ["file"]);
        assert_eq!(state.spec.tags, vec!["a", "b"]);
        assert_eq!(state.spec.min_ram_mb, Some(64));
        assert_eq!(state.spec.local_file_path, prior.local_file_path);
        assert_eq!(state.spec.image_source_password, None);
        // Managed keys only: the removed-out-of-band key is absent, unmanaged ones ignored.
        assert_eq!(
            state.spec.properties,
            vec![("os_distro".to_string(), "cirros".to_string())]
        );
        assert!(state.metadata.iter().any(|(k, _)| k == "unmanaged"));
        assert!(!state.metadata.iter().any(|(k, _)| k == "stores"));
    }

    #[test]
    fn adopted_image_manages_user_properties_only() {
        let state = state_from_image(&image(), None).unwrap();
        let keys: Vec<&str> = state.spec.properties.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, vec!["os_distro", "unmanaged"]);
    }

    #[test]
    fn create_body_flattens_properties_and_starts_unprotected() {
        let mut s = spec();
        s.protected = Some(true);
        s.properties = vec![("os_distro".into(), "cirros".into())];
        let s = check(s).unwrap();
        let body = create_body(&s, "id-1");
        assert_eq!(body["id"], "id-1");
        assert_eq!(body["protected"], false);
        assert_eq!(body["os_distro"], "cirros");
        assert_eq!(body["visibility"], "private");
        assert_eq!(body["tags"], json!([]));
    }
}
