//! The JSON Schema (draft 2020-12) of the spec, state and cloud documents, generated from the
//! document types: each property's type from its Rust type, its `description` from its doc
//! comment, and its `default` and `x-…` extensions from the `#[schemars(extend(...))]` beside
//! the field (so a new extension is one attribute). Every spec and state property says
//! `x-force-new`, `x-computed` and `x-secret` (false unless an attribute says otherwise; the
//! state's own fields are all computed), and allows `null`. `$defs.query` describes `find`'s
//! query. The membership resource has the same pair (`membership_spec`, `membership_state`)
//! and two views of its spec, one per side (`membership_offer`, `membership_answer`).

use std::sync::OnceLock;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::cloud::CloudDoc;
use crate::records::{ImageDoc, MembershipDoc, MembershipSpecDoc, QueryDoc, SpecDoc};

/// The extensions every spec and state property carries.
const EXTENSIONS: &[&str] = &["x-force-new", "x-computed", "x-secret"];

/// `schema()`: the JSON Schema of the spec, state and cloud documents.
pub fn schema() -> Value {
    let (spec, spec_props, state_props) = resource::<SpecDoc, ImageDoc>();
    let image = generate::<ImageDoc>();
    let (membership_spec, membership_props, membership_state_props) =
        resource::<MembershipSpecDoc, MembershipDoc>();
    let query = generate::<QueryDoc>();
    let query_props: Map<String, Value> = properties(&query)
        .into_iter()
        .map(|(name, prop)| (name, nullable(prop)))
        .collect();
    let mut cloud = generate::<CloudDoc>();
    cloud.insert("additionalProperties".into(), false.into());
    if let Some(Value::Object(auth)) = cloud.get_mut("properties").and_then(|p| p.get_mut("auth")) {
        auth.insert("additionalProperties".into(), false.into());
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:openstack:image:resource:0.1.0",
        "title": "OpenStack Glance image",
        "description": "Documents of the openstack:image/resource@0.1.0 interface: `spec` (inputs), `state` (inputs as applied plus computed outputs), `query` (what `find` looks for), `cloud` (a clouds.yaml cloud entry); the membership resource's `membership_spec` and `membership_state`, and its two sides' views `membership_offer` (the owner's) and `membership_answer` (the member's).",
        "$defs": {
            "spec": {
                "type": "object",
                "additionalProperties": false,
                "required": spec.get("required").cloned().unwrap_or_else(|| json!([])),
                "properties": spec_props,
            },
            "state": {
                "type": "object",
                "required": required_except(&image, "spec"),
                "properties": state_props,
            },
            "query": {
                "type": "object",
                "additionalProperties": false,
                "properties": query_props,
            },
            "cloud": cloud,
            "membership_spec": {
                "type": "object",
                "additionalProperties": false,
                "required": membership_spec.get("required").cloned().unwrap_or_else(|| json!([])),
                "properties": membership_props,
            },
            "membership_state": {
                "type": "object",
                "required": ["id"],
                "properties": membership_state_props,
            },
            "membership_offer": membership_view(
                &membership_props,
                "owner",
                &["image_id", "member_id"],
                "The image's owner offers it to the member project; deleting withdraws the offer. Setting status takes an admin: the member answers with membership_answer.",
            ),
            "membership_answer": membership_view(
                &membership_props,
                "member",
                &["image_id", "status"],
                "The member project answers the owner's offer; deleting rejects it.",
            ),
        },
    })
}

/// A resource's input properties (annotated) and its state's (the inputs that are not
/// secret, then the state record's own fields, computed), with the input's plain schema.
fn resource<Spec: JsonSchema, State: JsonSchema>()
-> (Map<String, Value>, Map<String, Value>, Map<String, Value>) {
    let spec = generate::<Spec>();
    let spec_props: Map<String, Value> = properties(&spec)
        .into_iter()
        .map(|(name, prop)| (name, annotate(prop, false)))
        .collect();
    let mut state_props: Map<String, Value> = spec_props
        .iter()
        .filter(|(_, prop)| prop["x-secret"] != true)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    state_props.extend(
        properties(&generate::<State>())
            .into_iter()
            .filter(|(name, _)| name != "spec")
            .map(|(name, prop)| (name, annotate(prop, true))),
    );
    (spec, spec_props, state_props)
}

/// The membership spec as one side writes it (an engine resource of its own, like
/// Terraform's `openstack_images_image_access_v2` and `_accept_v2`): `x-fixed` names the
/// inputs the view sets itself (its side), which it does not offer; `required` lists what it
/// needs. Its state is `membership_state` without the fixed inputs.
fn membership_view(props: &Map<String, Value>, side: &str, required: &[&str], description: &str) -> Value {
    let mut props = props.clone();
    props.remove("side");
    json!({
        "type": "object",
        "description": description,
        "additionalProperties": false,
        "required": required,
        "x-fixed": { "side": side },
        "x-state": "membership_state",
        "properties": props,
    })
}

/// The state document's computed keys (every `ImageDoc` field but `spec`).
pub(crate) fn computed_keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        properties(&generate::<ImageDoc>())
            .keys()
            .filter(|k| *k != "spec")
            .cloned()
            .collect()
    })
}

/// The membership state document's computed keys (every `MembershipDoc` field but `spec`).
pub(crate) fn membership_computed_keys() -> &'static [String] {
    static KEYS: OnceLock<Vec<String>> = OnceLock::new();
    KEYS.get_or_init(|| {
        properties(&generate::<MembershipDoc>())
            .keys()
            .filter(|k| *k != "spec")
            .cloned()
            .collect()
    })
}

/// The keys a JSON-face cloud document may have: its own and its `auth`'s.
pub(crate) fn cloud_keys() -> (&'static [String], &'static [String]) {
    static KEYS: OnceLock<(Vec<String>, Vec<String>)> = OnceLock::new();
    let (top, auth) = KEYS.get_or_init(|| {
        let cloud = generate::<CloudDoc>();
        let auth = properties(&cloud).get("auth").cloned().unwrap_or_default();
        let auth = auth.as_object().cloned().unwrap_or_default();
        (
            properties(&cloud).keys().cloned().collect(),
            properties(&auth).keys().cloned().collect(),
        )
    });
    (top, auth)
}

/// `T`'s schema, subschemas inlined, in the plain form the documents use.
fn generate<T: JsonSchema>() -> Map<String, Value> {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    plain(&mut value);
    match value {
        Value::Object(map) => map,
        _ => unreachable!("a struct's schema is an object"),
    }
}

/// Drops what the documents do not say: `null` among types (nullability is said once, at the
/// top), integer widths, titles, serde's defaults, and the type beside an `enum`.
fn plain(value: &mut Value) {
    let Value::Object(map) = value else { return };
    if let Some(Value::Array(types)) = map.get_mut("type") {
        types.retain(|t| t != "null");
        if let [single] = types.as_slice() {
            let single = single.clone();
            map.insert("type".into(), single);
        }
    }
    if map
        .get("format")
        .and_then(Value::as_str)
        .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"))
    {
        map.remove("format");
    }
    // A default the documents state is a value `check` fills in (a scalar, from an attribute);
    // serde's defaults for absent fields (empty lists, maps, `null`) are not.
    if map
        .get("default")
        .is_some_and(|d| d.is_null() || d.is_array() || d.is_object())
    {
        map.remove("default");
    }
    if map.contains_key("enum") {
        map.remove("type");
    }
    map.remove("title");
    for child in map.values_mut() {
        match child {
            Value::Array(items) => items.iter_mut().for_each(plain),
            child => plain(child),
        }
    }
}

fn properties(schema: &Map<String, Value>) -> Map<String, Value> {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn required_except(schema: &Map<String, Value>, except: &str) -> Value {
    let names = schema
        .get("required")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    Value::Array(names.into_iter().filter(|n| n != except).collect())
}

/// A query property: `anyOf [its type, null]`, its description beside.
fn nullable(prop: Value) -> Value {
    let Value::Object(mut prop) = prop else {
        return prop;
    };
    let mut out = Map::new();
    if let Some(description) = prop.remove("description") {
        out.insert("description".into(), description);
    }
    out.insert("anyOf".into(), json!([prop, { "type": "null" }]));
    Value::Object(out)
}

/// A top-level property as the documents describe it: `anyOf [its type, null]`, with its
/// description, default and extensions beside.
fn annotate(prop: Value, computed: bool) -> Value {
    let Value::Object(prop) = prop else { return prop };
    let (mut annotations, inner): (Map<String, Value>, Map<String, Value>) =
        prop.into_iter().partition(|(key, _)| {
            ["description", "default", "readOnly", "writeOnly"].contains(&key.as_str())
                || key.starts_with("x-")
        });
    for extension in EXTENSIONS {
        annotations.entry(*extension).or_insert(false.into());
    }
    if computed {
        // Glance fills these in, not `check`.
        annotations.remove("default");
        annotations.insert("x-computed".into(), true.into());
        annotations.insert("readOnly".into(), true.into());
    }
    annotations.insert("anyOf".into(), json!([inner, { "type": "null" }]));
    Value::Object(annotations)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_is_annotated() {
        let schema = schema();
        for def in ["spec", "state"] {
            for (name, prop) in schema["$defs"][def]["properties"].as_object().unwrap() {
                for extension in EXTENSIONS {
                    assert!(
                        prop[extension].is_boolean(),
                        "{def}.{name} lacks {extension}: {prop}"
                    );
                }
                assert!(prop["description"].is_string(), "{def}.{name} has no description");
                assert_eq!(prop["anyOf"][1], json!({ "type": "null" }), "{def}.{name}");
            }
        }
        let spec = &schema["$defs"]["spec"];
        assert_eq!(spec["required"], json!(["container_format", "disk_format"]));
        assert_eq!(spec["properties"]["disk_format"]["x-force-new"], true);
        assert_eq!(spec["properties"]["visibility"]["default"], "private");
        assert_eq!(spec["properties"]["min_disk_gb"]["default"], 0);
        assert_eq!(spec["properties"]["image_source_password"]["x-secret"], true);
        assert_eq!(
            spec["properties"]["timeouts"]["anyOf"][0]["properties"]["create"],
            json!({
                "type": "integer", "minimum": 0, "x-unit": "seconds",
                "description": "The whole create: upload or import, waiting for active, verifying. Default 1800 (30m)."
            })
        );
        let state = &schema["$defs"]["state"];
        assert_eq!(state["required"], json!(["id"]));
        assert!(state["properties"].get("image_source_password").is_none());
        assert_eq!(state["properties"]["checksum"]["x-computed"], true);
        assert_eq!(state["properties"]["name"]["x-computed"], false);
        let cloud = &schema["$defs"]["cloud"];
        assert_eq!(cloud["required"], json!(["auth"]));
        assert_eq!(
            cloud["properties"]["auth"]["properties"]["password"]["x-secret"],
            true
        );
        assert!(cloud["properties"].get("cacert").is_none());
    }
}
