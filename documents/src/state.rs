//! The flat state document (the JSON face's STATE, `show`'s images and memberships): an
//! [`ImageDoc`] (or [`MembershipDoc`]) with its spec's fields beside the computed ones, secrets
//! left out.

use serde_json::{Map, Value};

use crate::records::{ImageDoc, MembershipDoc};
use crate::schema;

/// Why a flat state document could not be read.
#[derive(Debug, Clone, PartialEq)]
pub enum FlatStateError {
    /// The document is not a JSON object.
    NotAnObject,
    /// A field is wrong: its name (`colour`, `timeouts.create`) and what is wrong with it.
    Field { field: String, message: String },
}

impl ImageDoc {
    /// The flat state document: the spec's fields (secrets left out) and the computed ones.
    pub fn to_flat(&self) -> Value {
        to_flat(self)
    }

    /// Reads a flat state document. Keys starting with `__` (engine bookkeeping such as
    /// Pulumi's `__provider`) are ignored; any other unknown key is an error naming it.
    pub fn from_flat(value: Value) -> Result<ImageDoc, FlatStateError> {
        from_flat(value, schema::computed_keys())
    }
}

impl MembershipDoc {
    /// The flat state document of a membership, as [`ImageDoc::to_flat`].
    pub fn to_flat(&self) -> Value {
        to_flat(self)
    }

    /// Reads a membership's flat state document, as [`ImageDoc::from_flat`].
    pub fn from_flat(value: Value) -> Result<MembershipDoc, FlatStateError> {
        from_flat(value, schema::membership_computed_keys())
    }
}

fn to_flat(doc: &impl serde::Serialize) -> Value {
    let mut doc = object(doc);
    if let Some(Value::Object(spec)) = doc.remove("spec") {
        doc.extend(spec);
    }
    Value::Object(doc)
}

fn from_flat<T: serde::de::DeserializeOwned>(value: Value, computed: &[String]) -> Result<T, FlatStateError> {
    let Value::Object(map) = value else {
        return Err(FlatStateError::NotAnObject);
    };
    let (mut doc, spec): (Map<String, Value>, Map<String, Value>) = map
        .into_iter()
        .filter(|(key, _)| !key.starts_with("__"))
        .partition(|(key, _)| computed.iter().any(|c| c == key));
    doc.insert("spec".into(), Value::Object(spec));
    serde_path_to_error::deserialize(Value::Object(doc)).map_err(|e| {
        let message = e.inner().to_string();
        let path = e.path().to_string();
        let field = match path.strip_prefix("spec.") {
            Some(field) => field.to_string(),
            // serde names an unknown field only in its message.
            None if path == "spec" || path == "." => unknown_field(&message).unwrap_or_default(),
            None => path,
        };
        FlatStateError::Field { field, message }
    })
}

/// The field an "unknown field `x`" message names.
pub fn unknown_field(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    Some(rest.split('`').next()?.to_string())
}

fn object(value: &impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => unreachable!("documents serialise to objects"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{FingerprintDoc, SpecDoc};
    use serde_json::json;

    pub(crate) fn image() -> ImageDoc {
        ImageDoc {
            id: "6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69".into(),
            spec: SpecDoc {
                name: Some("cirros".into()),
                container_format: Some("bare".into()),
                disk_format: Some("qcow2".into()),
                image_source_password: Some("hunter2".into()),
                properties: [("os_distro".to_string(), "cirros".to_string())].into(),
                ..SpecDoc::default()
            },
            status: "active".into(),
            metadata: [("os_distro".to_string(), "cirros".to_string())].into(),
            source_fingerprint: Some(FingerprintDoc {
                size: 3,
                sha512: "s".into(),
                mtime_ns: Some(1_764_259_200_123_456_789),
                etag: Some("\"e\"".into()),
                last_modified: None,
            }),
            ..ImageDoc::default()
        }
    }

    #[test]
    fn flat_documents_round_trip_without_secrets() {
        let doc = image().to_flat();
        assert!(!doc.to_string().contains("hunter2"), "{doc}");
        assert_eq!(doc["properties"]["os_distro"], "cirros");
        assert_eq!(doc["source_fingerprint"]["mtime_ns"], "1764259200123456789");
        let mut with_bookkeeping = doc.clone();
        with_bookkeeping["__provider"] = json!("engine data");
        let mut expected = image();
        expected.spec.image_source_password = None;
        assert_eq!(ImageDoc::from_flat(with_bookkeeping), Ok(expected));
    }

    #[test]
    fn bad_flat_documents_name_the_field() {
        let field = |edit: fn(&mut Value)| {
            let mut doc = image().to_flat();
            edit(&mut doc);
            match ImageDoc::from_flat(doc) {
                Err(FlatStateError::Field { field, .. }) => field,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(field(|d| d["colour"] = json!("blue")), "colour");
        assert_eq!(field(|d| d["size_bytes"] = json!("big")), "size_bytes");
        assert_eq!(
            field(|d| d["timeouts"] = json!({ "create": "soon" })),
            "timeouts.create"
        );
        assert_eq!(ImageDoc::from_flat(json!([])), Err(FlatStateError::NotAnObject));
    }
}
