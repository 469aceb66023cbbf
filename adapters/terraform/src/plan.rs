//! The planned state Terraform shows, from what the component decided. The component decides
//! (check, diff); this module only writes the decision in Terraform's terms, following the
//! protocol's rules: configured values are planned as configured, Optional+Computed values the
//! configuration leaves out come from the checked spec (or stay as they are), and computed
//! outputs are unknown wherever the change may alter them.

use serde_json::Value as Json;

use crate::document::from_document;
use crate::schema::{Mode, Schema};
use crate::value::{DecodeError, Value, equivalent};

/// What the component decided about a configuration.
#[derive(Clone, Copy, Debug)]
pub enum Decision<'a> {
    /// A new image; `checked` is `check`'s spec, `None` while the configuration is not wholly
    /// known (then the component has not seen it yet).
    Create { checked: Option<&'a Json> },
    /// `diff` found nothing to change.
    NoOp,
    /// `diff` will update the image in place.
    Update { checked: &'a Json },
    /// `diff` will replace the image because of the fields in `replaces`.
    Replace {
        checked: &'a Json,
        replaces: &'a [String],
    },
    /// An existing image whose configuration is not wholly known yet: the component cannot
    /// diff it, so any `x-force-new` attribute that may change forces a replacement.
    Undecided,
}

/// A planned state and the attributes that force its replacement.
#[derive(Debug, PartialEq)]
pub struct Plan {
    pub planned: Value,
    pub requires_replace: Vec<String>,
}

/// The planned state for `config` over `prior` (null for a new image).
pub fn plan(schema: &Schema, prior: &Value, config: &Value, decision: Decision) -> Result<Plan, DecodeError> {
    // A no-op whose configuration still differs from the state (a recorded input such as a
    // timeout or the source of an adopted image): Terraform applies it as an update, and the
    // component's update may refresh outputs, so only stable outputs are promised.
    // Write-only values are never planned, so they are no record either.
    let records = matches!(decision, Decision::NoOp)
        && schema.attributes.iter().filter(|a| !a.write_only).any(|a| {
            let configured = config.get(&a.name);
            match a.mode {
                Mode::Required | Mode::Optional => !equivalent(&a.ty, configured, prior.get(&a.name)),
                Mode::OptionalComputed => {
                    !configured.is_null() && !equivalent(&a.ty, configured, prior.get(&a.name))
                }
                Mode::Computed => false,
            }
        });
    let mut planned = std::collections::BTreeMap::new();
    for attr in &schema.attributes {
        let configured = config.get(&attr.name);
        let previous = prior.get(&attr.name);
        let checked =
            |checked: &Json, reference: &Value| from_document(checked.get(&attr.name), &attr.ty, reference);
        let value = match (attr.mode, decision) {
            // Never in a plan: Terraform >= 1.11 refuses a non-null write-only value.
            _ if attr.write_only => Value::Null,
            (Mode::Required | Mode::Optional, _) => configured.clone(),
            (Mode::OptionalComputed, _) if !configured.is_null() => configured.clone(),
            (
                Mode::OptionalComputed,
                Decision::Create { checked: Some(spec) } | Decision::Replace { checked: spec, .. },
            ) => match checked(spec, &Value::Null)? {
                // The cloud decides it as the resource is made.
                Value::Null if attr.cloud_default => Value::Unknown,
                value => value,
            },
            (Mode::OptionalComputed, Decision::Create { checked: None } | Decision::Undecided) => {
                Value::Unknown
            }
            // Left out: what check fills in, or (when it fills in nothing) what the image has.
            (Mode::OptionalComputed, Decision::Update { checked: spec }) => match checked(spec, previous)? {
                Value::Null => previous.clone(),
                value => value,
            },
            (Mode::OptionalComputed, Decision::NoOp) => previous.clone(),
            (Mode::Computed, Decision::NoOp) if !records || attr.stable => previous.clone(),
            (Mode::Computed, Decision::NoOp) => Value::Unknown,
            (Mode::Computed, Decision::Create { .. } | Decision::Replace { .. }) => Value::Unknown,
            (Mode::Computed, Decision::Update { .. } | Decision::Undecided) => {
                if attr.stable {
                    previous.clone()
                } else {
                    Value::Unknown
                }
            }
        };
        planned.insert(attr.name.clone(), value);
    }
    let planned = Value::Map(planned);
    let changed = |name: &str| {
        schema
            .attribute(name)
            .is_some_and(|a| !equivalent(&a.ty, planned.get(name), prior.get(name)))
    };
    let requires_replace = match decision {
        Decision::Replace { replaces, .. } => {
            let mut names: Vec<String> = replaces
                .iter()
                .filter(|name| schema.attribute(name).is_some())
                .cloned()
                .collect();
            // Terraform replaces only when a named attribute changes value. A replacement for
            // a reason no attribute shows (the source file's content changed under the same
            // path) is carried by `id`, unknown in this plan.
            if !names.iter().any(|name| changed(name)) {
                names.push("id".to_string());
            }
            names
        }
        // Left-out defaults are unknown in this plan but are no reason to replace.
        Decision::Undecided => schema
            .attributes
            .iter()
            .filter(|a| a.force_new && changed(&a.name))
            .filter(|a| a.mode != Mode::OptionalComputed || !config.get(&a.name).is_null())
            .map(|a| a.name.clone())
            .collect(),
        _ => Vec::new(),
    };
    Ok(Plan {
        planned,
        requires_replace,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::resource;
    use serde_json::json;

    fn value(json: Json) -> Value {
        Value::from_json(&json, &resource().object_type()).unwrap()
    }

    fn config() -> Value {
        value(json!({
            "name": "cirros", "container_format": "bare", "disk_format": "qcow2",
            "local_file_path": "/images/cirros.qcow2", "image_source_password": "hunter2",
            "tags": ["b", "a"], "timeouts": { "create": "30m" },
        }))
    }

    fn checked() -> Json {
        json!({ "spec": {
            "name": "cirros", "container_format": "bare", "disk_format": "qcow2",
            "local_file_path": "/images/cirros.qcow2", "tags": ["a", "b"], "properties": {},
            "visibility": "private", "min_disk_gb": 0, "min_ram_mb": 0, "protected": false,
            "hidden": false, "verify_checksum": true, "decompress": false, "web_download": false,
            "timeouts": { "create": 1800 },
        }})["spec"]
            .clone()
    }

    fn prior() -> Value {
        value(json!({
            "id": "6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69", "name": "cirros",
            "container_format": "bare", "disk_format": "qcow2", "local_file_path": "/images/cirros.qcow2",
            "image_source_password": "hunter2", "tags": ["b", "a"], "timeouts": { "create": "30m" },
            "visibility": "private", "min_disk_gb": 0, "min_ram_mb": 0, "protected": false, "hidden": false,
            "verify_checksum": true, "decompress": false, "web_download": false,
            "status": "active", "checksum": "abc", "size_bytes": 3, "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z", "update_at": "2026-01-01T00:00:00Z",
            "metadata": { "os_distro": "cirros" },
        }))
    }

    #[test]
    fn create_fills_defaults_and_leaves_outputs_unknown() {
        let spec = checked();
        let plan = plan(
            &resource(),
            &Value::Null,
            &config(),
            Decision::Create { checked: Some(&spec) },
        )
        .unwrap();
        let p = &plan.planned;
        assert_eq!(p.get("visibility"), &Value::String("private".into()));
        assert_eq!(p.get("min_disk_gb"), &Value::Number(0.into()));
        assert_eq!(p.get("verify_checksum"), &Value::Bool(true));
        assert_eq!(
            p.get("tags"),
            config().get("tags"),
            "configured values as configured"
        );
        assert_eq!(p.get("image_source_password"), &Value::String("hunter2".into()));
        assert_eq!(p.get("timeouts"), config().get("timeouts"));
        assert_eq!(p.get("properties"), &Value::Null, "not configured, not computed");
        for name in ["id", "status", "checksum", "metadata", "created_at"] {
            assert_eq!(p.get(name), &Value::Unknown, "{name}");
        }
        assert!(plan.requires_replace.is_empty());
    }

    fn with(mut value: Value, entries: &[(&str, Value)]) -> Value {
        let Value::Map(map) = &mut value else { panic!() };
        for (name, v) in entries {
            map.insert(name.to_string(), v.clone());
        }
        value
    }

    #[test]
    fn write_only_values_are_never_planned() {
        let cfg = with(
            config(),
            &[
                ("image_source_password", Value::Null),
                ("image_source_password_wo", Value::String("hunter22".into())),
                ("image_source_password_wo_version", Value::Number(1.into())),
            ],
        );
        let spec = checked();
        for decision in [
            Decision::Create { checked: Some(&spec) },
            Decision::Create { checked: None },
        ] {
            let plan = plan(&resource(), &Value::Null, &cfg, decision).unwrap();
            assert_eq!(plan.planned.get("image_source_password_wo"), &Value::Null);
            assert_eq!(
                plan.planned.get("image_source_password_wo_version"),
                &Value::Number(1.into())
            );
        }
        let prior = with(
            prior(),
            &[
                ("image_source_password", Value::Null),
                ("image_source_password_wo_version", Value::Number(1.into())),
            ],
        );
        // The same version: nothing to do although the configuration holds a value the state
        // does not.
        let same = plan(&resource(), &prior, &cfg, Decision::NoOp).unwrap();
        assert_eq!(same.planned, prior);
        for decision in [
            Decision::Update { checked: &spec },
            Decision::Undecided,
            Decision::Replace {
                checked: &spec,
                replaces: &["disk_format".to_string()],
            },
        ] {
            let p = plan(&resource(), &prior, &cfg, decision).unwrap();
            assert_eq!(p.planned.get("image_source_password_wo"), &Value::Null);
        }
    }

    #[test]
    fn a_new_write_only_version_is_an_update_in_place() {
        let prior = with(
            prior(),
            &[
                ("image_source_password", Value::Null),
                ("image_source_password_wo_version", Value::Number(1.into())),
            ],
        );
        let cfg = with(
            config(),
            &[
                ("image_source_password", Value::Null),
                ("image_source_password_wo", Value::String("hunter23".into())),
                ("image_source_password_wo_version", Value::Number(2.into())),
            ],
        );
        let plan = plan(&resource(), &prior, &cfg, Decision::NoOp).unwrap();
        assert_eq!(
            plan.planned.get("image_source_password_wo_version"),
            &Value::Number(2.into())
        );
        assert_eq!(plan.planned.get("image_source_password_wo"), &Value::Null);
        assert_eq!(plan.planned.get("id"), prior.get("id"), "the same image");
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn unknown_configuration_plans_unknown_defaults() {
        let plan = plan(
            &resource(),
            &Value::Null,
            &config(),
            Decision::Create { checked: None },
        )
        .unwrap();
        assert_eq!(plan.planned.get("visibility"), &Value::Unknown);
        assert_eq!(plan.planned.get("name"), &Value::String("cirros".into()));
    }

    #[test]
    fn no_op_keeps_the_prior_state() {
        let plan = plan(&resource(), &prior(), &config(), Decision::NoOp).unwrap();
        assert_eq!(plan.planned, prior());
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn no_op_with_a_name_left_out_keeps_the_image_name() {
        let mut cfg = config();
        let Value::Map(map) = &mut cfg else { panic!() };
        map.insert("name".into(), Value::Null);
        let plan = plan(&resource(), &prior(), &cfg, Decision::NoOp).unwrap();
        assert_eq!(plan.planned.get("name"), &Value::String("cirros".into()));
    }

    #[test]
    fn no_op_that_records_an_input_promises_only_stable_outputs() {
        let mut cfg = config();
        let Value::Map(map) = &mut cfg else { panic!() };
        map.insert(
            "image_cache_path".into(),
            Value::String("/var/cache/images".into()),
        );
        let plan = plan(&resource(), &prior(), &cfg, Decision::NoOp).unwrap();
        assert_eq!(
            plan.planned.get("image_cache_path"),
            &Value::String("/var/cache/images".into())
        );
        assert_eq!(plan.planned.get("checksum"), prior().get("checksum"));
        assert_eq!(plan.planned.get("updated_at"), &Value::Unknown);
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn update_keeps_stable_outputs_and_unknowns_the_rest() {
        let mut cfg = config();
        let Value::Map(map) = &mut cfg else { panic!() };
        map.insert("name".into(), Value::String("cirros-2".into()));
        let mut spec = checked();
        spec["name"] = json!("cirros-2");
        let plan = plan(&resource(), &prior(), &cfg, Decision::Update { checked: &spec }).unwrap();
        let p = &plan.planned;
        assert_eq!(p.get("name"), &Value::String("cirros-2".into()));
        for name in ["id", "checksum", "size_bytes", "created_at"] {
            assert_eq!(p.get(name), prior().get(name), "{name} is stable");
        }
        for name in ["updated_at", "update_at", "metadata", "status"] {
            assert_eq!(p.get(name), &Value::Unknown, "{name} may change");
        }
        assert_eq!(p.get("visibility"), prior().get("visibility"));
        assert_eq!(
            p.get("image_source_password"),
            &Value::String("hunter2".into()),
            "secret kept"
        );
        assert!(plan.requires_replace.is_empty());
    }

    #[test]
    fn replace_names_the_attributes_that_force_it() {
        let mut cfg = config();
        let Value::Map(map) = &mut cfg else { panic!() };
        map.insert("disk_format".into(), Value::String("raw".into()));
        let spec = checked();
        let replaces = vec!["disk_format".to_string()];
        let plan = plan(
            &resource(),
            &prior(),
            &cfg,
            Decision::Replace {
                checked: &spec,
                replaces: &replaces,
            },
        )
        .unwrap();
        assert_eq!(plan.requires_replace, ["disk_format"]);
        assert_eq!(plan.planned.get("id"), &Value::Unknown);
        assert_eq!(plan.planned.get("checksum"), &Value::Unknown);
        assert_eq!(
            plan.planned.get("image_source_password"),
            &Value::String("hunter2".into())
        );
    }

    #[test]
    fn replace_for_a_reason_no_attribute_shows_goes_through_id() {
        let spec = checked();
        let replaces = vec![
            "source content (sha512)".to_string(),
            "local_file_path".to_string(),
        ];
        let plan = plan(
            &resource(),
            &prior(),
            &config(),
            Decision::Replace {
                checked: &spec,
                replaces: &replaces,
            },
        )
        .unwrap();
        assert_eq!(plan.requires_replace, ["local_file_path", "id"]);
    }

    #[test]
    fn undecided_replaces_when_a_force_new_attribute_is_unknown() {
        let mut cfg = config();
        let Value::Map(map) = &mut cfg else { panic!() };
        map.insert("disk_format".into(), Value::Unknown);
        map.insert("name".into(), Value::Unknown);
        let plan = plan(&resource(), &prior(), &cfg, Decision::Undecided).unwrap();
        assert_eq!(plan.requires_replace, ["disk_format"]);
        assert_eq!(plan.planned.get("id"), prior().get("id"));
        assert_eq!(
            plan.planned.get("visibility"),
            &Value::Unknown,
            "left out: decided at apply"
        );
    }
}
