//! The Terraform schema, derived from the component's JSON Schema (`schema()`): this provider
//! holds no list of image fields. The rules, applied to `$defs.spec` + `$defs.state` for the
//! resource and `$defs.query` + `$defs.state` for the data source:
//!
//! - an input property is Optional, Required when the input's `required` lists it, and
//!   Optional+Computed when it has a JSON Schema `default` (the component fills it in),
//!   `x-keep-when-unset` (leaving it out keeps what the image has) or `x-runtime-default` (the
//!   runtime fills it in, e.g. a download cache directory);
//! - a property only in the state is Computed;
//! - `x-secret` makes it Sensitive; `x-force-new` and `x-stable` steer planning (`plan`);
//! - a resource spec's string secret that is also `writeOnly` (the component never stores it,
//!   e.g. `image_source_password`) gets two Terraform-side companions that are not in the
//!   component's schema: `NAME_wo`, a write-only (protocol 6.8, Terraform >= 1.11) sensitive
//!   string sent to the component as `NAME` and never planned or stored, and
//!   `NAME_wo_version`, a number kept in the state whose change is how the configuration says
//!   the write-only value is new (see [`Attribute::write_only_of`]);
//! - `anyOf [T, null]` is T; arrays with `uniqueItems` are sets, other arrays lists; objects
//!   with `additionalProperties` are maps (of string when values may be several scalar types);
//!   objects with fixed `properties` are nested blocks (nesting single) when they are inputs and
//!   object-typed attributes when computed; an integer with `"x-unit": "seconds"` is a Go
//!   duration string.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json};

use crate::proto::tfplugin6 as tf;
use crate::value::{Type, Value};

/// How Terraform treats an attribute in configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Required,
    Optional,
    /// The configuration may set it; when it does not, the provider decides the value.
    OptionalComputed,
    /// Only the provider sets it.
    Computed,
}

/// One top-level attribute (or nested block) and what the component's schema says about it.
#[derive(Clone, Debug)]
pub struct Attribute {
    pub name: String,
    pub ty: Type,
    pub mode: Mode,
    /// Written as a nested block (nesting single) instead of an attribute.
    pub block: bool,
    pub sensitive: bool,
    /// Changing it replaces the image (`x-force-new`).
    pub force_new: bool,
    /// A computed output that an in-place update never changes (`x-stable`).
    pub stable: bool,
    /// Left out, the cloud decides it when the resource is made (`x-cloud-default`), so it is
    /// unknown until then.
    pub cloud_default: bool,
    /// Part of the input document (spec or query).
    pub input: bool,
    /// Part of the state document the component returns.
    pub output: bool,
    /// A write-only attribute (protocol 6.8): Terraform sends its value in the configuration
    /// only and the provider answers it as null everywhere (plan, apply, read, import,
    /// upgrade).
    pub write_only: bool,
    /// For a write-only attribute: the spec input its value is sent as.
    pub write_only_of: Option<String>,
    pub description: String,
}

/// The suffix of a write-only companion attribute (`image_source_password_wo`).
pub const WRITE_ONLY_SUFFIX: &str = "_wo";
/// The suffix of its version attribute (`image_source_password_wo_version`).
pub const WRITE_ONLY_VERSION_SUFFIX: &str = "_wo_version";

/// A resource's or data source's attributes.
#[derive(Clone, Debug)]
pub struct Schema {
    pub description: String,
    pub attributes: Vec<Attribute>,
}

/// A component schema this provider cannot turn into a Terraform schema.
#[derive(Debug, PartialEq)]
pub struct SchemaError(pub String);

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the component's schema cannot be used: {}", self.0)
    }
}

impl Schema {
    /// The managed resource: the spec's inputs and the state's outputs.
    pub fn resource(component: &Json) -> Result<Schema, SchemaError> {
        Schema::derive(component, "spec")
    }

    /// The data source: the query's inputs and the state's outputs.
    pub fn data_source(component: &Json) -> Result<Schema, SchemaError> {
        Schema::derive(component, "query")
    }

    /// A resource of one of the component's other input documents (`membership_offer`): its
    /// state is the one its `x-state` names, and the inputs its `x-fixed` sets are neither
    /// inputs nor outputs (the provider sends them itself, see [`Schema::fixed`]).
    pub fn view(component: &Json, input_def: &str) -> Result<Schema, SchemaError> {
        Schema::derive(component, input_def)
    }

    /// The inputs `input_def`'s `x-fixed` sets (an object; empty when it sets none).
    pub fn fixed(component: &Json, input_def: &str) -> Result<serde_json::Map<String, Json>, SchemaError> {
        Ok(definition(component, input_def)?
            .get("x-fixed")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default())
    }

    fn derive(component: &Json, input_def: &str) -> Result<Schema, SchemaError> {
        let input = definition(component, input_def)?;
        let state_def = input.get("x-state").and_then(Json::as_str).unwrap_or("state");
        let state = definition(component, state_def)?;
        let fixed = Schema::fixed(component, input_def)?;
        let required: Vec<&str> = input
            .get("required")
            .and_then(Json::as_array)
            .map(|names| names.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let input_props = properties(input, input_def)?;
        let state_props = properties(state, "state")?;

        let mut attributes = Vec::new();
        for (name, prop) in input_props.iter().filter(|(name, _)| !fixed.contains_key(*name)) {
            let ty = type_of(prop, &format!("{input_def}.{name}"))?;
            let in_state = state_props.contains_key(name);
            let defaulted = prop.get("default").is_some()
                || flag(prop, "x-keep-when-unset")
                || flag(prop, "x-runtime-default")
                || flag(prop, "x-cloud-default");
            let mode = if required.contains(&name.as_str()) {
                Mode::Required
            } else if defaulted || (in_state && input_def == "query") {
                // A query filter that the found image also reports: Terraform shows the
                // image's value.
                Mode::OptionalComputed
            } else {
                Mode::Optional
            };
            attributes.push(Attribute {
                name: name.clone(),
                block: matches!(ty, Type::Object(_)),
                ty,
                mode,
                sensitive: flag(prop, "x-secret"),
                force_new: flag(prop, "x-force-new"),
                stable: false,
                cloud_default: flag(prop, "x-cloud-default"),
                input: true,
                output: in_state,
                write_only: false,
                write_only_of: None,
                description: description(prop),
            });
        }
        if input_def == "spec" {
            for (name, prop) in input_props.iter().filter(|(name, _)| !fixed.contains_key(*name)) {
                let secret = flag(prop, "x-secret") && flag(prop, "writeOnly");
                if secret && type_of(prop, name)? == Type::String && !state_props.contains_key(name) {
                    attributes.extend(write_only_companions(name));
                }
            }
        }
        for (name, prop) in state_props {
            if input_props.contains_key(name) || fixed.contains_key(name) {
                continue;
            }
            attributes.push(Attribute {
                name: name.clone(),
                ty: type_of(prop, &format!("state.{name}"))?,
                mode: Mode::Computed,
                block: false,
                sensitive: flag(prop, "x-secret"),
                force_new: false,
                stable: flag(prop, "x-stable"),
                cloud_default: false,
                input: false,
                output: true,
                write_only: false,
                write_only_of: None,
                description: description(prop),
            });
        }
        let schema = Schema {
            description: input
                .get("description")
                .or_else(|| component.get("title"))
                .and_then(Json::as_str)
                .unwrap_or_default()
                .to_string(),
            attributes,
        };
        match schema.attribute("id") {
            Some(id) if id.ty == Type::String && id.output => Ok(schema),
            _ => Err(SchemaError(
                "`$defs.state` has no string property `id`; Terraform needs it to import and track images"
                    .into(),
            )),
        }
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes.iter().find(|a| a.name == name)
    }

    /// The write-only attributes that are set (non-null, known or not) in `config`.
    pub fn write_only_set<'a>(&'a self, config: &'a Value) -> impl Iterator<Item = &'a Attribute> + 'a {
        self.attributes
            .iter()
            .filter(move |a| a.write_only && !config.get(&a.name).is_null())
    }

    /// `value` (a whole resource value) with every write-only attribute null: what every
    /// answer to Terraform carries (Terraform >= 1.11 refuses anything else).
    pub fn without_write_only(&self, value: Value) -> Value {
        match value {
            Value::Map(mut map) => {
                for attr in self.attributes.iter().filter(|a| a.write_only) {
                    if let Some(v) = map.get_mut(&attr.name) {
                        *v = Value::Null;
                    }
                }
                Value::Map(map)
            }
            other => other,
        }
    }

    /// The type of a whole resource or data source value.
    pub fn object_type(&self) -> Type {
        Type::Object(
            self.attributes
                .iter()
                .map(|a| (a.name.clone(), a.ty.clone()))
                .collect(),
        )
    }

    /// The schema as `GetProviderSchema` returns it.
    pub fn to_proto(&self) -> tf::Schema {
        let attributes = self
            .attributes
            .iter()
            .filter(|a| !a.block)
            .map(|a| tf::schema::Attribute {
                write_only: a.write_only,
                ..proto_attribute(&a.name, &a.ty, a.mode, a.sensitive, &a.description)
            })
            .collect();
        let block_types = self
            .attributes
            .iter()
            .filter(|a| a.block)
            .map(|a| {
                let Type::Object(fields) = &a.ty else {
                    unreachable!("blocks are objects")
                };
                tf::schema::NestedBlock {
                    type_name: a.name.clone(),
                    block: Some(tf::schema::Block {
                        attributes: fields
                            .iter()
                            .map(|(name, ty)| proto_attribute(name, ty, Mode::Optional, a.sensitive, ""))
                            .collect(),
                        description: a.description.clone(),
                        ..Default::default()
                    }),
                    nesting: tf::schema::nested_block::NestingMode::Single as i32,
                    ..Default::default()
                }
            })
            .collect();
        tf::Schema {
            version: 0,
            block: Some(tf::schema::Block {
                version: 0,
                attributes,
                block_types,
                description: self.description.clone(),
                ..Default::default()
            }),
        }
    }
}

/// One protocol attribute.
pub fn proto_attribute(
    name: &str,
    ty: &Type,
    mode: Mode,
    sensitive: bool,
    description: &str,
) -> tf::schema::Attribute {
    tf::schema::Attribute {
        name: name.to_string(),
        r#type: ty.constraint().to_string().into_bytes(),
        description: description.to_string(),
        required: mode == Mode::Required,
        optional: matches!(mode, Mode::Optional | Mode::OptionalComputed),
        computed: matches!(mode, Mode::OptionalComputed | Mode::Computed),
        sensitive,
        ..Default::default()
    }
}

/// The Terraform-side companions of the write-only secret input `name`.
fn write_only_companions(name: &str) -> [Attribute; 2] {
    let wo = format!("{name}{WRITE_ONLY_SUFFIX}");
    let version = format!("{name}{WRITE_ONLY_VERSION_SUFFIX}");
    [
        Attribute {
            name: wo.clone(),
            ty: Type::String,
            mode: Mode::Optional,
            block: false,
            sensitive: true,
            force_new: false,
            stable: false,
            cloud_default: false,
            input: false,
            output: false,
            write_only: true,
            write_only_of: Some(name.to_string()),
            description: format!(
                "Write-only (Terraform >= 1.11): `{name}` without it ever being in the plan or \
                 the state. It conflicts with `{name}`. Terraform does not know when a \
                 write-only value changes: change `{version}` to have a new value recorded. \
                 The component uses it when it makes the image (create or replace)."
            ),
        },
        Attribute {
            name: version,
            ty: Type::Number,
            mode: Mode::Optional,
            block: false,
            sensitive: false,
            force_new: false,
            stable: false,
            cloud_default: false,
            input: false,
            output: false,
            write_only: false,
            write_only_of: None,
            description: format!(
                "A number to change whenever `{wo}` changes. Changing it alone updates the \
                 state in place (no replacement): the new value takes effect the next time \
                 the image is made."
            ),
        },
    ]
}

fn definition<'a>(component: &'a Json, name: &str) -> Result<&'a Json, SchemaError> {
    component
        .get("$defs")
        .and_then(|defs| defs.get(name))
        .ok_or_else(|| SchemaError(format!("it has no `$defs.{name}`")))
}

fn properties<'a>(definition: &'a Json, name: &str) -> Result<&'a Map<String, Json>, SchemaError> {
    definition
        .get("properties")
        .and_then(Json::as_object)
        .ok_or_else(|| SchemaError(format!("`$defs.{name}` has no `properties`")))
}

fn flag(prop: &Json, key: &str) -> bool {
    prop.get(key).and_then(Json::as_bool).unwrap_or(false)
}

fn description(prop: &Json) -> String {
    prop.get("description")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The Terraform type of one JSON Schema.
fn type_of(schema: &Json, path: &str) -> Result<Type, SchemaError> {
    let unsupported = |what: &str| SchemaError(format!("`{path}`: {what}"));
    let ty = if let Some(choices) = schema.get("anyOf").and_then(Json::as_array) {
        let non_null: Vec<&Json> = choices.iter().filter(|c| !is_null_type(c)).collect();
        match non_null.as_slice() {
            [one] => type_of(one, path)?,
            _ => return Err(unsupported("`anyOf` other than [T, null] has no Terraform type")),
        }
    } else if let Some(values) = schema.get("enum").and_then(Json::as_array) {
        if values.iter().all(Json::is_number) {
            Type::Number
        } else if values.iter().all(Json::is_boolean) {
            Type::Bool
        } else {
            Type::String
        }
    } else {
        let names: Vec<&str> = match schema.get("type") {
            Some(Json::String(name)) => vec![name.as_str()],
            Some(Json::Array(names)) => names
                .iter()
                .filter_map(Json::as_str)
                .filter(|n| *n != "null")
                .collect(),
            _ => return Err(unsupported("no `type`")),
        };
        match names.as_slice() {
            ["string"] => Type::String,
            ["integer"] | ["number"] => Type::Number,
            ["boolean"] => Type::Bool,
            ["array"] => {
                let items = schema
                    .get("items")
                    .ok_or_else(|| unsupported("an array without `items`"))?;
                let item = Box::new(type_of(items, &format!("{path}[]"))?);
                if flag(schema, "uniqueItems") {
                    Type::Set(item)
                } else {
                    Type::List(item)
                }
            }
            ["object"] => object_type(schema, path)?,
            several
                if several
                    .iter()
                    .all(|n| matches!(*n, "string" | "integer" | "number" | "boolean")) =>
            {
                // Values that may be text, numbers or booleans travel as their text.
                Type::String
            }
            _ => return Err(unsupported("a type Terraform cannot hold")),
        }
    };
    let seconds = schema.get("x-unit").and_then(Json::as_str) == Some("seconds");
    Ok(if seconds && ty == Type::Number {
        Type::Duration
    } else {
        ty
    })
}

fn object_type(schema: &Json, path: &str) -> Result<Type, SchemaError> {
    if let Some(props) = schema.get("properties").and_then(Json::as_object) {
        let fields: BTreeMap<String, Type> = props
            .iter()
            .map(|(name, prop)| Ok((name.clone(), type_of(prop, &format!("{path}.{name}"))?)))
            .collect::<Result<_, SchemaError>>()?;
        return Ok(Type::Object(fields));
    }
    match schema.get("additionalProperties") {
        Some(values) if values.is_object() => Ok(Type::Map(Box::new(type_of(values, &format!("{path}.*"))?))),
        _ => Err(SchemaError(format!(
            "`{path}`: an object needs `properties` or an `additionalProperties` schema"
        ))),
    }
}

fn is_null_type(schema: &Json) -> bool {
    schema.get("type").and_then(Json::as_str) == Some("null")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The component's schema with the annotations this provider relies on.
    pub(crate) fn fixture() -> Json {
        serde_json::from_str(include_str!("../tests/fixtures/component-schema.json")).unwrap()
    }

    #[test]
    fn the_fixture_is_the_component_schema() {
        // The test double serves the fixture: it must be what the component says today
        // (`UPDATE_FIXTURES=1 cargo test -p terraform-provider-openstackimage --lib
        // the_fixture_is` writes it anew from `openstack_image_documents::schema::schema()`).
        let schema = openstack_image_documents::schema::schema();
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/component-schema.json"
            );
            let text = serde_json::to_string_pretty(&schema).unwrap() + "\n";
            std::fs::write(path, text).unwrap();
        }
        assert_eq!(fixture(), schema);
    }

    pub(crate) fn resource() -> Schema {
        Schema::resource(&fixture()).unwrap()
    }

    fn mode_of(schema: &Schema, name: &str) -> Mode {
        schema.attribute(name).unwrap_or_else(|| panic!("no {name}")).mode
    }

    #[test]
    fn spec_properties_become_inputs() {
        let schema = resource();
        assert_eq!(mode_of(&schema, "container_format"), Mode::Required);
        assert_eq!(mode_of(&schema, "disk_format"), Mode::Required);
        assert_eq!(mode_of(&schema, "local_file_path"), Mode::Optional);
        assert_eq!(mode_of(&schema, "tags"), Mode::Optional);
        // `default`: the component fills them in.
        for name in [
            "visibility",
            "min_disk_gb",
            "min_ram_mb",
            "protected",
            "hidden",
            "verify_checksum",
        ] {
            assert_eq!(mode_of(&schema, name), Mode::OptionalComputed, "{name}");
        }
        assert_eq!(
            mode_of(&schema, "name"),
            Mode::OptionalComputed,
            "x-keep-when-unset"
        );
        let disk = schema.attribute("disk_format").unwrap();
        assert!(disk.force_new && disk.input && disk.output);
    }

    #[test]
    fn state_only_properties_are_computed() {
        let schema = resource();
        for name in [
            "id",
            "status",
            "checksum",
            "size_bytes",
            "metadata",
            "source_fingerprint",
            "updated_at",
        ] {
            assert_eq!(mode_of(&schema, name), Mode::Computed, "{name}");
        }
        assert!(schema.attribute("created_at").unwrap().stable);
        assert!(!schema.attribute("updated_at").unwrap().stable);
        assert_eq!(schema.attribute("id").unwrap().ty, Type::String);
    }

    #[test]
    fn types_follow_the_json_schema() {
        let schema = resource();
        let ty = |name: &str| schema.attribute(name).unwrap().ty.clone();
        assert_eq!(ty("tags"), Type::Set(Box::new(Type::String)));
        assert_eq!(ty("properties"), Type::Map(Box::new(Type::String)));
        assert_eq!(ty("metadata"), Type::Map(Box::new(Type::String)));
        assert_eq!(ty("min_ram_mb"), Type::Number);
        assert_eq!(ty("protected"), Type::Bool);
        assert_eq!(ty("visibility"), Type::String);
        let Type::Object(fingerprint) = ty("source_fingerprint") else {
            panic!()
        };
        assert_eq!(fingerprint["mtime_ns"], Type::String);
        assert!(
            !schema.attribute("source_fingerprint").unwrap().block,
            "computed objects are attributes"
        );
    }

    #[test]
    fn timeouts_are_a_block_of_durations() {
        let schema = resource();
        let timeouts = schema.attribute("timeouts").unwrap();
        assert!(timeouts.block);
        let Type::Object(fields) = &timeouts.ty else {
            panic!()
        };
        assert_eq!(
            fields.keys().collect::<Vec<_>>(),
            ["create", "delete", "import_stall", "update"]
        );
        assert!(fields.values().all(|t| *t == Type::Duration));
        let proto = schema.to_proto();
        let block = proto.block.unwrap();
        let nested = block
            .block_types
            .iter()
            .find(|b| b.type_name == "timeouts")
            .unwrap();
        assert_eq!(
            nested.nesting,
            tf::schema::nested_block::NestingMode::Single as i32
        );
        let create = &nested.block.as_ref().unwrap().attributes[0];
        assert_eq!(create.r#type, b"\"string\"");
        assert!(create.optional);
        assert!(!block.attributes.iter().any(|a| a.name == "timeouts"));
    }

    #[test]
    fn secrets_are_sensitive_inputs_kept_out_of_state() {
        let schema = resource();
        let password = schema.attribute("image_source_password").unwrap();
        assert!(password.sensitive && password.input && !password.output);
        assert_eq!(password.mode, Mode::Optional);
        let proto = schema.to_proto().block.unwrap();
        let attr = proto
            .attributes
            .iter()
            .find(|a| a.name == "image_source_password")
            .unwrap();
        assert!(attr.sensitive && attr.optional && !attr.computed);
    }

    #[test]
    fn a_write_only_secret_gets_a_write_only_companion_and_its_version() {
        let schema = resource();
        let wo = schema.attribute("image_source_password_wo").unwrap();
        assert!(wo.write_only && wo.sensitive && !wo.input && !wo.output);
        assert_eq!(wo.mode, Mode::Optional);
        assert_eq!(wo.ty, Type::String);
        assert_eq!(wo.write_only_of.as_deref(), Some("image_source_password"));
        let version = schema.attribute("image_source_password_wo_version").unwrap();
        assert!(!version.write_only && !version.sensitive && !version.input && !version.output);
        assert_eq!((version.mode, &version.ty), (Mode::Optional, &Type::Number));
        assert!(!version.force_new, "a new version alone replaces nothing");
        let block = schema.to_proto().block.unwrap();
        let attr = |name: &str| block.attributes.iter().find(|a| a.name == name).unwrap().clone();
        let wo = attr("image_source_password_wo");
        assert!(wo.write_only && wo.sensitive && wo.optional && !wo.computed && !wo.required);
        assert_eq!(wo.r#type, b"\"string\"");
        let version = attr("image_source_password_wo_version");
        assert!(!version.write_only && version.optional && !version.computed);
        assert_eq!(version.r#type, b"\"number\"");
        assert!(!attr("image_source_password").write_only);
        assert_eq!(
            block.attributes.iter().filter(|a| a.write_only).count(),
            1,
            "only the companion"
        );
        // Only the image resource: the data source and the membership resources have none.
        let data = Schema::data_source(&fixture()).unwrap();
        assert!(data.attributes.iter().all(|a| !a.write_only));
        assert!(data.attribute("image_source_password_wo_version").is_none());
    }

    #[test]
    fn write_only_values_are_nulled() {
        let schema = resource();
        let value = Value::from_json(
            &serde_json::json!({ "id": "6b0f", "image_source_password_wo": "hunter22",
                "image_source_password_wo_version": 2 }),
            &schema.object_type(),
        )
        .unwrap();
        let config = value.clone();
        assert_eq!(
            schema
                .write_only_set(&config)
                .map(|a| a.name.as_str())
                .collect::<Vec<_>>(),
            ["image_source_password_wo"]
        );
        let nulled = schema.without_write_only(value);
        assert_eq!(nulled.get("image_source_password_wo"), &Value::Null);
        assert_eq!(
            nulled.get("image_source_password_wo_version"),
            &Value::Number(2.into())
        );
        assert_eq!(nulled.get("id"), &Value::String("6b0f".into()));
    }

    #[test]
    fn protocol_flags() {
        let block = resource().to_proto().block.unwrap();
        let attr = |name: &str| block.attributes.iter().find(|a| a.name == name).unwrap().clone();
        let id = attr("id");
        assert!(id.computed && !id.optional && !id.required);
        let visibility = attr("visibility");
        assert!(visibility.optional && visibility.computed);
        let disk = attr("disk_format");
        assert!(disk.required && !disk.computed);
        assert_eq!(attr("tags").r#type, br#"["set","string"]"#);
    }

    #[test]
    fn data_source_has_query_inputs_and_state_outputs() {
        let schema = Schema::data_source(&fixture()).unwrap();
        assert_eq!(mode_of(&schema, "name_regex"), Mode::Optional);
        assert_eq!(mode_of(&schema, "most_recent"), Mode::Optional);
        assert_eq!(mode_of(&schema, "name"), Mode::OptionalComputed);
        assert_eq!(mode_of(&schema, "tags"), Mode::OptionalComputed);
        assert_eq!(mode_of(&schema, "checksum"), Mode::Computed);
        assert_eq!(mode_of(&schema, "id"), Mode::Computed);
        let timeouts = schema.attribute("timeouts").unwrap();
        assert!(!timeouts.block, "an output object is an attribute");
        assert_eq!(timeouts.mode, Mode::Computed);
    }

    #[test]
    fn unusable_schemas_say_why() {
        let err = Schema::resource(&serde_json::json!({ "$defs": {} })).unwrap_err();
        assert!(err.to_string().contains("$defs.spec"), "{err}");
        let mut no_id = fixture();
        no_id["$defs"]["state"]["properties"]
            .as_object_mut()
            .unwrap()
            .remove("id");
        assert!(Schema::resource(&no_id).unwrap_err().0.contains("`id`"));
        let mut odd = fixture();
        odd["$defs"]["spec"]["properties"]["name"] =
            serde_json::json!({ "anyOf": [{ "type": "string" }, { "type": "integer" }] });
        assert!(Schema::resource(&odd).unwrap_err().0.contains("spec.name"));
    }
}
