//! Terraform values to the component's documents and back. Documents leave out what is not
//! set; values read back keep Terraform's own spelling (the configuration's set order, its
//! "30m" rather than 1800, null rather than `[]`) wherever the document means the same, so
//! that plans stay clean.

use serde_json::{Map, Value as Json};

use crate::diagnostics::{Path, Step};
use crate::duration;
use crate::schema::{Attribute, Schema};
use crate::value::{DecodeError, Type, Value, equivalent, is_empty};

/// A configuration value the component cannot take.
#[derive(Debug, PartialEq)]
pub struct Problem {
    pub path: Path,
    pub message: String,
}

/// The input document (spec or query): the inputs the configuration sets, durations as seconds.
/// The configuration must be wholly known.
pub fn input(schema: &Schema, config: &Value) -> Result<Json, Vec<Problem>> {
    let mut doc = Map::new();
    let mut problems = Vec::new();
    for attr in schema.attributes.iter().filter(|a| a.input) {
        match to_json(
            config.get(&attr.name),
            &attr.ty,
            &mut vec![Step::Attribute(attr.name.clone())],
        ) {
            Ok(Some(json)) => {
                doc.insert(attr.name.clone(), json);
            }
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
    }
    // A write-only value goes to the component as the input it stands for (the configuration
    // setting both is refused before this).
    for attr in &schema.attributes {
        let Some(target) = &attr.write_only_of else {
            continue;
        };
        match to_json(
            config.get(&attr.name),
            &attr.ty,
            &mut vec![Step::Attribute(attr.name.clone())],
        ) {
            Ok(Some(json)) => {
                doc.entry(target.clone()).or_insert(json);
            }
            Ok(None) => {}
            Err(problem) => problems.push(problem),
        }
    }
    if problems.is_empty() {
        Ok(Json::Object(doc))
    } else {
        Err(problems)
    }
}

/// The state document of a Terraform state: the outputs it holds.
pub fn state(schema: &Schema, state: &Value) -> Json {
    let doc: Map<String, Json> = schema
        .attributes
        .iter()
        .filter(|a| a.output)
        .filter_map(|a| {
            // A state value was valid when it was written; one that is not is left out.
            let json = to_json(state.get(&a.name), &a.ty, &mut Vec::new()).ok()??;
            Some((a.name.clone(), json))
        })
        .collect();
    Json::Object(doc)
}

/// Problems with the durations a configuration sets (the only check that needs no component).
pub fn duration_problems(schema: &Schema, config: &Value) -> Vec<Problem> {
    schema
        .attributes
        .iter()
        .filter_map(|a| {
            let value = config.get(&a.name);
            if !value.is_known() {
                return None;
            }
            to_json(value, &a.ty, &mut vec![Step::Attribute(a.name.clone())]).err()
        })
        .collect()
}

/// True when a state holds nothing but its `id`: what `ImportResourceState` returns.
pub fn only_id(schema: &Schema, state: &Value) -> bool {
    schema
        .attributes
        .iter()
        .all(|a| a.name == "id" || state.get(&a.name).is_null())
}

/// A whole value from a state document. Attributes the document does not hold (secrets) and
/// those `keep` picks come from `reference`; the others from the document, in the reference's
/// spelling where they mean the same.
pub fn from_state(
    schema: &Schema,
    doc: &Json,
    reference: &Value,
    keep: impl Fn(&Attribute) -> bool,
) -> Result<Value, DecodeError> {
    let mut map = std::collections::BTreeMap::new();
    for attr in &schema.attributes {
        let old = reference.get(&attr.name);
        let value = if !attr.output || keep(attr) {
            old.clone()
        } else if !attr.input {
            // Computed only: no configuration spells it, so the document's value as it is
            // (an import's `{}` and a create's `{}` alike, never null for one of them).
            Value::from_json(doc.get(&attr.name).unwrap_or(&Json::Null), &attr.ty)
                .map_err(|e| DecodeError(format!("the component's state field `{}`: {e}", attr.name)))?
        } else {
            from_document(doc.get(&attr.name), &attr.ty, old)
                .map_err(|e| DecodeError(format!("the component's state field `{}`: {e}", attr.name)))?
        };
        map.insert(attr.name.clone(), value);
    }
    Ok(Value::Map(map))
}

/// One value from a document, written as `reference` where it means the same.
pub fn from_document(doc: Option<&Json>, ty: &Type, reference: &Value) -> Result<Value, DecodeError> {
    let value = match doc {
        Some(json) => Value::from_json(json, ty)?,
        None => Value::Null,
    };
    Ok(spelled_like(value, ty, reference))
}

fn spelled_like(value: Value, ty: &Type, reference: &Value) -> Value {
    if (is_empty(ty, &value) && is_empty(ty, reference)) || equivalent(ty, &value, reference) {
        return reference.clone();
    }
    match (value, ty) {
        (Value::Map(map), Type::Object(fields)) => Value::Map(
            map.into_iter()
                .map(|(name, v)| {
                    let spelled = match fields.get(&name) {
                        Some(field_ty) => spelled_like(v, field_ty, reference.get(&name)),
                        None => v,
                    };
                    (name, spelled)
                })
                .collect(),
        ),
        (value, _) => value,
    }
}

/// JSON for a document: `None` for null, objects without their null members.
fn to_json(value: &Value, ty: &Type, path: &mut Vec<Step>) -> Result<Option<Json>, Problem> {
    let problem = |path: &Vec<Step>, message: String| Problem {
        path: Path(path.clone()),
        message,
    };
    Ok(Some(match (value, ty) {
        (Value::Null, _) => return Ok(None),
        (Value::Unknown, _) => {
            return Err(problem(path, "is not known yet".into()));
        }
        (Value::String(text), Type::Duration) => {
            Json::from(duration::seconds(text).map_err(|message| problem(path, message))?)
        }
        (Value::Bool(b), _) => Json::Bool(*b),
        (Value::Number(n), _) => Json::Number(n.clone()),
        (Value::String(s), _) => Json::String(s.clone()),
        (Value::List(items), Type::List(item) | Type::Set(item)) => {
            let mut out = Vec::new();
            for (i, v) in items.iter().enumerate() {
                path.push(Step::Index(i as i64));
                let json = to_json(v, item, path)?;
                path.pop();
                out.push(json.unwrap_or(Json::Null));
            }
            Json::Array(out)
        }
        (Value::Map(map), Type::Map(item)) => {
            let mut out = Map::new();
            for (k, v) in map {
                path.push(Step::Key(k.clone()));
                let json = to_json(v, item, path)?;
                path.pop();
                out.insert(k.clone(), json.unwrap_or(Json::Null));
            }
            Json::Object(out)
        }
        (Value::Map(map), Type::Object(fields)) => {
            let mut out = Map::new();
            for (name, field_ty) in fields {
                path.push(Step::Attribute(name.clone()));
                let json = to_json(map.get(name).unwrap_or(&Value::Null), field_ty, path)?;
                path.pop();
                if let Some(json) = json {
                    out.insert(name.clone(), json);
                }
            }
            Json::Object(out)
        }
        _ => return Err(problem(path, "does not match its type".into())),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::tests::resource;
    use serde_json::json;

    fn config(json: Json) -> Value {
        Value::from_json(&json, &resource().object_type()).unwrap()
    }

    #[test]
    fn input_documents_leave_out_nulls_and_take_seconds() {
        let schema = resource();
        let cfg = config(json!({
            "name": "cirros", "container_format": "bare", "disk_format": "qcow2",
            "image_source_password": "hunter2", "tags": ["a"],
            "timeouts": { "create": "30m", "update": null },
        }));
        let doc = input(&schema, &cfg).unwrap();
        assert_eq!(
            doc,
            json!({
                "name": "cirros", "container_format": "bare", "disk_format": "qcow2",
                "image_source_password": "hunter2", "tags": ["a"], "timeouts": { "create": 1800 },
            })
        );
    }

    #[test]
    fn bad_durations_name_their_attribute() {
        let schema = resource();
        let cfg = config(json!({ "timeouts": { "delete": "soon" } }));
        let problems = input(&schema, &cfg).unwrap_err();
        assert_eq!(
            problems[0].path,
            Path(vec![
                Step::Attribute("timeouts".into()),
                Step::Attribute("delete".into())
            ])
        );
        assert!(problems[0].message.contains("'soon'"));
        assert_eq!(duration_problems(&schema, &cfg).len(), 1);
    }

    #[test]
    fn state_documents_hold_outputs_only() {
        let schema = resource();
        let st = config(json!({
            "id": "6b0f", "disk_format": "raw", "image_source_password": "hunter2",
            "timeouts": { "create": "1h" }, "status": "active",
        }));
        let doc = state(&schema, &st);
        assert_eq!(
            doc,
            json!({ "id": "6b0f", "disk_format": "raw", "timeouts": { "create": 3600 }, "status": "active" })
        );
    }

    #[test]
    fn read_back_keeps_terraform_spelling() {
        let schema = resource();
        let prior = config(json!({
            "id": "6b0f", "tags": ["b", "a"], "timeouts": { "create": "30m" },
            "image_source_password": "hunter2", "name": "old",
        }));
        let doc = json!({
            "id": "6b0f", "tags": ["a", "b"], "properties": {}, "name": "new",
            "timeouts": { "create": 1800, "update": null, "delete": null },
            "metadata": { "os_distro": "cirros" },
        });
        let value = from_state(&schema, &doc, &prior, |_| false).unwrap();
        assert_eq!(value.get("tags"), prior.get("tags"), "same set, prior order");
        assert_eq!(
            value.get("timeouts"),
            prior.get("timeouts"),
            "same seconds, prior text"
        );
        assert_eq!(
            value.get("properties"),
            &Value::Null,
            "{{}} where the prior had nothing"
        );
        assert_eq!(
            value.get("image_source_password"),
            &Value::String("hunter2".into()),
            "secrets stay"
        );
        assert_eq!(value.get("name"), &Value::String("new".into()), "drift shows");
    }

    #[test]
    fn durations_without_a_reference_are_written_as_go_does() {
        let schema = resource();
        let doc = json!({ "id": "6b0f", "timeouts": { "create": 5400 } });
        let value = from_state(&schema, &doc, &Value::Null, |_| false).unwrap();
        assert_eq!(
            value.get("timeouts").get("create"),
            &Value::String("1h30m0s".into())
        );
        assert_eq!(value.get("timeouts").get("update"), &Value::Null);
    }

    #[test]
    fn kept_attributes_come_from_the_reference() {
        let schema = resource();
        let planned = config(json!({ "name": "x", "id": "6b0f" }));
        let doc = json!({ "id": "6b0f", "name": "y" });
        let value = from_state(&schema, &doc, &planned, |a| a.name == "name").unwrap();
        assert_eq!(value.get("name"), &Value::String("x".into()));
    }

    #[test]
    fn import_state_holds_only_the_id() {
        let schema = resource();
        assert!(only_id(&schema, &config(json!({ "id": "6b0f" }))));
        assert!(!only_id(
            &schema,
            &config(json!({ "id": "6b0f", "disk_format": "raw" }))
        ));
    }
}
