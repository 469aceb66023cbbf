//! What Glance's image fields are: core attributes, and the one list of keys a client must
//! never send back. (The allowed formats and visibilities are the spec document's:
//! `openstack_image_documents::spec`.)

/// Image attributes that have their own spec field (or are computed): they are never
/// free-form properties.
const CORE_ATTRIBUTES: &[&str] = &[
    "id",
    "name",
    "status",
    "visibility",
    "protected",
    "os_hidden",
    "checksum",
    "os_hash_algo",
    "os_hash_value",
    "owner",
    "size",
    "virtual_size",
    "min_disk",
    "min_ram",
    "container_format",
    "disk_format",
    "created_at",
    "updated_at",
    "tags",
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
    CORE_ATTRIBUTES.contains(&key) || key.starts_with("os_glance")
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
