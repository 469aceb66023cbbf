//! What Glance's image fields are: the one table of the spec fields Glance holds (how each is
//! sent at create, read back, and patched), the computed attributes, and the one list of keys
//! a client must never send back. (The allowed formats and visibilities are the spec
//! document's: `openstack_image_documents::spec`.)

use serde_json::{Value, json};

use crate::types::ImageSpec;

/// One spec field that Glance holds as an image attribute.
pub struct Field {
    /// Glance's key.
    pub glance: &'static str,
    /// The value the spec asks for; `None`: the field is not managed (nothing is sent).
    pub desired: fn(&ImageSpec) -> Option<Value>,
    /// Sets the spec field from Glance's value (`None` when the image has no such key).
    pub read: fn(&mut ImageSpec, Option<&Value>),
    /// A set: compared without regard to order (tags).
    pub set: bool,
    /// Whether a PATCH may change it on an existing image (formats cannot change).
    pub patchable: bool,
}

fn text(value: Option<&Value>) -> Option<String> {
    value.and_then(Value::as_str).map(str::to_string)
}

fn sorted_texts(value: Option<&Value>) -> Vec<String> {
    let mut texts: Vec<String> = value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    texts.sort();
    texts
}

/// The spec fields Glance holds, in the order a PATCH sends them. A new first-class image
/// attribute is one entry here (besides the WIT record and the spec document); free-form
/// `properties` and the data's `stores` have their own rules (`glance`, `lifecycle`).
pub const FIELDS: &[Field] = &[
    Field {
        glance: "name",
        desired: |s| s.name.as_ref().map(|v| json!(v)),
        read: |s, v| s.name = text(v),
        set: false,
        patchable: true,
    },
    Field {
        glance: "container_format",
        desired: |s| Some(json!(s.container_format)),
        read: |s, v| s.container_format = text(v).unwrap_or_default(),
        set: false,
        patchable: false,
    },
    Field {
        glance: "disk_format",
        desired: |s| Some(json!(s.disk_format)),
        read: |s, v| s.disk_format = text(v).unwrap_or_default(),
        set: false,
        patchable: false,
    },
    Field {
        glance: "visibility",
        desired: |s| s.visibility.as_ref().map(|v| json!(v)),
        read: |s, v| s.visibility = text(v),
        set: false,
        patchable: true,
    },
    Field {
        glance: "os_hidden",
        desired: |s| s.hidden.map(|v| json!(v)),
        read: |s, v| s.hidden = Some(v.and_then(Value::as_bool).unwrap_or(false)),
        set: false,
        patchable: true,
    },
    Field {
        glance: "min_disk",
        desired: |s| s.min_disk_gb.map(|v| json!(v)),
        read: |s, v| s.min_disk_gb = Some(v.and_then(Value::as_u64).unwrap_or(0)),
        set: false,
        patchable: true,
    },
    Field {
        glance: "min_ram",
        desired: |s| s.min_ram_mb.map(|v| json!(v)),
        read: |s, v| s.min_ram_mb = Some(v.and_then(Value::as_u64).unwrap_or(0)),
        set: false,
        patchable: true,
    },
    Field {
        glance: "tags",
        desired: |s| {
            let mut tags = s.tags.clone();
            tags.sort();
            Some(json!(tags))
        },
        read: |s, v| s.tags = sorted_texts(v),
        set: true,
        patchable: true,
    },
    // Last: a patch protects the image only after everything else changed. At create the
    // image is always unprotected until its data is verified (`glance::create_body`).
    Field {
        glance: "protected",
        desired: |s| s.protected.map(|v| json!(v)),
        read: |s, v| s.protected = Some(v.and_then(Value::as_bool).unwrap_or(false)),
        set: false,
        patchable: true,
    },
];

/// Whether two values of `field` are the same (a set's order does not matter).
pub fn same(field: &Field, current: Option<&Value>, desired: &Value) -> bool {
    if field.set {
        sorted_texts(current) == sorted_texts(Some(desired))
    } else {
        current == Some(desired)
    }
}

/// Computed image attributes (and Glance's bookkeeping keys): never free-form properties.
const COMPUTED_ATTRIBUTES: &[&str] = &[
    "id",
    "status",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "created_at",
    "updated_at",
    "self",
    "file",
    "schema",
    "locations",
    "location",
    "direct_url",
    "stores",
    "deleted",
    "deleted_at",
];

/// Keys that Glance owns: sending them in a create body or a patch gets a 403.
pub fn is_read_only(key: &str) -> bool {
    matches!(
        key,
        "direct_url"
            | "self"
            | "file"
            | "schema"
            | "stores"
            | "created_at"
            | "updated_at"
            | "status"
            | "checksum"
            | "size"
            | "virtual_size"
            | "id"
            | "os_hash_algo"
            | "os_hash_value"
            | "location"
            | "locations"
            | "deleted"
            | "deleted_at"
            | "owner"
    ) || key.starts_with("os_glance")
}

/// True for a top-level image key that is a core attribute rather than a free-form property.
pub fn is_core_attribute(key: &str) -> bool {
    FIELDS.iter().any(|f| f.glance == key)
        || COMPUTED_ATTRIBUTES.contains(&key)
        || key.starts_with("os_glance")
}

/// Properties that servers and other tools set on their own; they are never reported as
/// drift and are not adopted as managed when an image is imported.
pub fn is_server_set_property(key: &str) -> bool {
    is_read_only(key) || key.starts_with("os_hash_") || key.starts_with("owner_specified.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glance_owned_keys_are_read_only() {
        for key in [
            "os_glance_failed_import",
            "os_hash_value",
            "stores",
            "checksum",
            "owner",
        ] {
            assert!(is_read_only(key), "{key}");
        }
        for key in [
            "os_distro",
            "os_type",
            "hw_disk_bus",
            "owner_specified.openstack.md5",
        ] {
            assert!(!is_read_only(key), "{key}");
        }
    }

    #[test]
    fn server_set_properties_include_other_tools_keys() {
        assert!(is_server_set_property("owner_specified.openstack.sha256"));
        assert!(is_server_set_property("os_glance_importing_to_stores"));
        assert!(!is_server_set_property("os_distro"));
    }
}
