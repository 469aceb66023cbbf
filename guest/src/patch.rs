//! JSON-patch building for `PATCH /v2/images/{id}`: only the operations needed to move the
//! image as Glance holds it now to the desired spec.

use serde_json::{Value, json};

use crate::glance_fields::{self, FIELDS, Field, is_read_only};
use crate::types::ImageSpec;

/// Media type Glance requires for image PATCH requests.
pub const CONTENT_TYPE: &str = "application/openstack-images-v2.1-json-patch";

/// Escapes a key for use as one JSON Pointer segment (RFC 6901).
pub fn pointer(key: &str) -> String {
    format!("/{}", key.replace('~', "~0").replace('/', "~1"))
}

/// The operations that turn `current` (Glance's image JSON) into `desired`.
/// `previously_managed` lists the property keys the prior spec managed: those missing from
/// `desired` are removed.
pub fn build(current: &Value, desired: &ImageSpec, previously_managed: &[String]) -> Vec<Value> {
    let mut ops = Vec::new();
    let mut set = |key: &str, value: Value| match current.get(key) {
        Some(existing) if *existing == value => {}
        Some(_) => ops.push(json!({"op": "replace", "path": pointer(key), "value": value})),
        None => ops.push(json!({"op": "add", "path": pointer(key), "value": value})),
    };

    let (protect, fields): (Vec<&Field>, Vec<&Field>) = FIELDS
        .iter()
        .filter(|f| f.patchable)
        .partition(|f| f.glance == "protected");
    for field in fields {
        // Tags (a set) are replaced as a whole, so removing every tag works too.
        if let Some(value) = (field.desired)(desired)
            && !glance_fields::same(field, current.get(field.glance), &value)
        {
            set(field.glance, value);
        }
    }
    for (key, value) in &desired.properties {
        if !is_read_only(key) {
            set(key, json!(value));
        }
    }
    // Protection last, once everything else is as desired.
    for field in protect {
        if let Some(value) = (field.desired)(desired) {
            set(field.glance, value);
        }
    }
    for key in previously_managed {
        let still_managed = desired.properties.iter().any(|(k, _)| k == key);
        if !still_managed && current.get(key).is_some() && !is_read_only(key) {
            ops.push(json!({"op": "remove", "path": pointer(key)}));
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{check, tests::spec};

    fn current() -> Value {
        json!({
            "id": "i", "status": "active", "name": "cirros", "visibility": "private",
            "protected": false, "os_hidden": false, "min_disk": 0, "min_ram": 0,
            "tags": ["b", "a"], "os_distro": "cirros", "a/b~c": "1", "stores": "file",
            "os_hash_value": "x"
        })
    }

    fn desired() -> ImageSpec {
        let mut s = spec();
        s.tags = vec!["a".into(), "b".into()];
        s.properties = vec![
            ("os_distro".into(), "cirros".into()),
            ("a/b~c".into(), "1".into()),
        ];
        check(s).unwrap()
    }

    #[test]
    fn nothing_to_do_gives_no_ops() {
        let ops = build(&current(), &desired(), &["os_distro".into(), "a/b~c".into()]);
        assert!(ops.is_empty(), "{ops:?}");
    }

    #[test]
    fn escapes_pointer_segments() {
        assert_eq!(pointer("a/b~c"), "/a~1b~0c");
        let mut d = desired();
        d.properties = vec![
            ("os_distro".into(), "cirros".into()),
            ("a/b~c".into(), "2".into()),
        ];
        let ops = build(&current(), &d, &[]);
        assert_eq!(
            ops,
            vec![json!({"op": "replace", "path": "/a~1b~0c", "value": "2"})]
        );
    }

    #[test]
    fn removes_unmanaged_keys_only_when_managed_before() {
        let mut d = desired();
        d.properties = vec![("new".into(), "v".into())];
        let ops = build(&current(), &d, &["os_distro".into()]);
        assert_eq!(
            ops,
            vec![
                json!({"op": "add", "path": "/new", "value": "v"}),
                json!({"op": "remove", "path": "/os_distro"}),
            ]
        );
    }

    #[test]
    fn replaces_tags_as_a_whole_and_can_clear_them() {
        let mut d = desired();
        d.tags.clear();
        let ops = build(&current(), &d, &["os_distro".into(), "a/b~c".into()]);
        assert_eq!(ops, vec![json!({"op": "replace", "path": "/tags", "value": []})]);
    }

    #[test]
    fn never_touches_read_only_keys() {
        let ops = build(&current(), &desired(), &["stores".into(), "os_hash_value".into()]);
        assert!(ops.is_empty(), "{ops:?}");
    }

    #[test]
    fn maps_spec_fields_to_glance_names() {
        let mut d = desired();
        d.hidden = Some(true);
        d.min_ram_mb = Some(256);
        d.protected = Some(true);
        let ops = build(&current(), &d, &["os_distro".into(), "a/b~c".into()]);
        assert_eq!(
            ops,
            vec![
                json!({"op": "replace", "path": "/os_hidden", "value": true}),
                json!({"op": "replace", "path": "/min_ram", "value": 256}),
                json!({"op": "replace", "path": "/protected", "value": true}),
            ]
        );
    }
}
