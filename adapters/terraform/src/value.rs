//! Terraform values and types: the `DynamicValue` wire forms (MessagePack, with unknown values
//! as extension type 0; JSON for stored state) and JSON documents, always read through the
//! schema's type because neither form says which collections are sets or objects.

use std::collections::BTreeMap;

use serde_json::{Number, Value as Json};

use crate::duration;

/// A Terraform value as the provider handles it: possibly unknown (only during planning),
/// possibly null.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// Not known until apply.
    Unknown,
    Null,
    Bool(bool),
    Number(Number),
    String(String),
    /// A list or a set, as the type says.
    List(Vec<Value>),
    /// A map or an object, as the type says.
    Map(BTreeMap<String, Value>),
}

/// The type of a value, as the schema declares it.
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    String,
    Number,
    Bool,
    /// A Terraform string holding a Go duration ("30m", "1h30m"); the component's documents
    /// hold the same time as whole seconds.
    Duration,
    List(Box<Type>),
    Set(Box<Type>),
    Map(Box<Type>),
    Object(BTreeMap<String, Type>),
}

impl Type {
    /// The type as Terraform's JSON type constraint (`"string"`, `["set","string"]`, ...), the
    /// form `Schema.Attribute.type` carries.
    pub fn constraint(&self) -> Json {
        match self {
            Type::String | Type::Duration => Json::from("string"),
            Type::Number => Json::from("number"),
            Type::Bool => Json::from("bool"),
            Type::List(item) => serde_json::json!(["list", item.constraint()]),
            Type::Set(item) => serde_json::json!(["set", item.constraint()]),
            Type::Map(item) => serde_json::json!(["map", item.constraint()]),
            Type::Object(attributes) => {
                let attributes: serde_json::Map<String, Json> = attributes
                    .iter()
                    .map(|(name, ty)| (name.clone(), ty.constraint()))
                    .collect();
                serde_json::json!(["object", attributes])
            }
        }
    }
}

/// Why bytes or a document could not be read as a value of the expected type.
#[derive(Debug, PartialEq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// cty writes an unknown value as this MessagePack extension type (with one zero byte).
const UNKNOWN_EXTENSION: i8 = 0;

impl Value {
    /// The attribute `name` of an object value; null when the object is null or lacks it.
    pub fn get(&self, name: &str) -> &Value {
        match self {
            Value::Map(map) => map.get(name).unwrap_or(&Value::Null),
            _ => &Value::Null,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// True when no part of the value is unknown.
    pub fn is_known(&self) -> bool {
        match self {
            Value::Unknown => false,
            Value::List(items) => items.iter().all(Value::is_known),
            Value::Map(map) => map.values().all(Value::is_known),
            _ => true,
        }
    }

    /// Reads a MessagePack `DynamicValue` of type `ty`.
    pub fn from_msgpack(bytes: &[u8], ty: &Type) -> Result<Value, DecodeError> {
        let raw = rmpv::decode::read_value(&mut &bytes[..])
            .map_err(|e| DecodeError(format!("the value is not valid MessagePack: {e}")))?;
        from_msgpack_value(raw, ty, "")
    }

    /// Writes the value as MessagePack, every object attribute present (null when absent), as
    /// Terraform expects.
    pub fn to_msgpack(&self, ty: &Type) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &to_msgpack_value(self, ty))
            .expect("writing MessagePack to memory cannot fail");
        out
    }

    /// Reads a JSON value of type `ty` (stored state, component documents). Numbers and
    /// booleans are taken as their text where a string is expected (property values); object
    /// keys the type does not know are left out.
    pub fn from_json(json: &Json, ty: &Type) -> Result<Value, DecodeError> {
        from_json_at(json, ty, "")
    }
}

fn from_msgpack_value(raw: rmpv::Value, ty: &Type, path: &str) -> Result<Value, DecodeError> {
    use rmpv::Value as M;
    let mismatch = |what: &str| DecodeError(format!("{}: expected {what}", at(path)));
    Ok(match (raw, ty) {
        (M::Nil, _) => Value::Null,
        // Newer Terraform versions add refinements to unknown values in another extension
        // type; any extension means "unknown" here.
        (M::Ext(_, _), _) => Value::Unknown,
        (M::Boolean(b), Type::Bool) => Value::Bool(b),
        (M::String(s), Type::String | Type::Duration) => {
            Value::String(s.into_str().ok_or_else(|| mismatch("a UTF-8 string"))?)
        }
        (M::Integer(i), Type::Number) => Value::Number(match i.as_i64() {
            Some(v) => Number::from(v),
            None => Number::from(i.as_u64().ok_or_else(|| mismatch("a number"))?),
        }),
        (M::F32(f), Type::Number) => {
            Value::Number(float(f64::from(f)).ok_or_else(|| mismatch("a finite number"))?)
        }
        (M::F64(f), Type::Number) => Value::Number(float(f).ok_or_else(|| mismatch("a finite number"))?),
        // cty writes numbers that fit neither integer nor float exactly as their text.
        (M::String(s), Type::Number) => Value::Number(
            s.as_str()
                .and_then(|t| serde_json::from_str::<Number>(t).ok())
                .ok_or_else(|| mismatch("a number"))?,
        ),
        (M::Array(items), Type::List(item) | Type::Set(item)) => Value::List(
            items
                .into_iter()
                .enumerate()
                .map(|(i, v)| from_msgpack_value(v, item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        (M::Map(entries), Type::Map(item)) => {
            let mut map = BTreeMap::new();
            for (key, v) in entries {
                let key = key
                    .as_str()
                    .ok_or_else(|| mismatch("string map keys"))?
                    .to_string();
                let value = from_msgpack_value(v, item, &format!("{path}[\"{key}\"]"))?;
                map.insert(key, value);
            }
            Value::Map(map)
        }
        (M::Map(entries), Type::Object(attributes)) => {
            let mut map: BTreeMap<String, Value> = attributes
                .keys()
                .map(|name| (name.clone(), Value::Null))
                .collect();
            for (key, v) in entries {
                let key = key.as_str().ok_or_else(|| mismatch("attribute names"))?;
                if let Some(attr_ty) = attributes.get(key) {
                    let value = from_msgpack_value(v, attr_ty, &join(path, key))?;
                    map.insert(key.to_string(), value);
                }
            }
            Value::Map(map)
        }
        (_, ty) => return Err(mismatch(describe(ty))),
    })
}

fn to_msgpack_value(value: &Value, ty: &Type) -> rmpv::Value {
    use rmpv::Value as M;
    match (value, ty) {
        (Value::Unknown, _) => M::Ext(UNKNOWN_EXTENSION, vec![0]),
        (Value::Null, _) => M::Nil,
        (Value::Bool(b), _) => M::Boolean(*b),
        (Value::String(s), _) => M::from(s.as_str()),
        (Value::Number(n), _) => {
            if let Some(i) = n.as_i64() {
                M::from(i)
            } else if let Some(u) = n.as_u64() {
                M::from(u)
            } else {
                M::F64(n.as_f64().unwrap_or_default())
            }
        }
        (Value::List(items), Type::List(item) | Type::Set(item)) => {
            M::Array(items.iter().map(|v| to_msgpack_value(v, item)).collect())
        }
        (Value::Map(map), Type::Map(item)) => M::Map(
            map.iter()
                .map(|(k, v)| (M::from(k.as_str()), to_msgpack_value(v, item)))
                .collect(),
        ),
        (Value::Map(map), Type::Object(attributes)) => M::Map(
            attributes
                .iter()
                .map(|(name, attr_ty)| {
                    let v = map.get(name).unwrap_or(&Value::Null);
                    (M::from(name.as_str()), to_msgpack_value(v, attr_ty))
                })
                .collect(),
        ),
        // A value that does not fit its type is a bug in this provider; null keeps the
        // message well-formed and Terraform reports the inconsistency.
        _ => M::Nil,
    }
}

fn from_json_at(json: &Json, ty: &Type, path: &str) -> Result<Value, DecodeError> {
    let mismatch = || DecodeError(format!("{}: expected {}", at(path), describe(ty)));
    Ok(match (json, ty) {
        (Json::Null, _) => Value::Null,
        (Json::Bool(b), Type::Bool) => Value::Bool(*b),
        (Json::Number(n), Type::Number) => Value::Number(n.clone()),
        (Json::String(s), Type::String | Type::Duration) => Value::String(s.clone()),
        (Json::Number(n), Type::String) => Value::String(n.to_string()),
        (Json::Bool(b), Type::String) => Value::String(b.to_string()),
        (Json::Number(n), Type::Duration) => {
            Value::String(duration::format(n.as_u64().ok_or_else(mismatch)?))
        }
        (Json::Array(items), Type::List(item) | Type::Set(item)) => Value::List(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| from_json_at(v, item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        (Json::Object(entries), Type::Map(item)) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_json_at(v, item, &format!("{path}[\"{k}\"]"))?)))
                .collect::<Result<_, DecodeError>>()?,
        ),
        (Json::Object(entries), Type::Object(attributes)) => Value::Map(
            attributes
                .iter()
                .map(|(name, attr_ty)| {
                    let v = match entries.get(name) {
                        Some(v) => from_json_at(v, attr_ty, &join(path, name))?,
                        None => Value::Null,
                    };
                    Ok((name.clone(), v))
                })
                .collect::<Result<_, DecodeError>>()?,
        ),
        _ => return Err(mismatch()),
    })
}

/// A JSON number for a float, whole floats as integers (the component reads counts as
/// integers).
fn float(f: f64) -> Option<Number> {
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Some(Number::from(f as i64))
    } else {
        Number::from_f64(f)
    }
}

fn describe(ty: &Type) -> &'static str {
    match ty {
        Type::String => "a string",
        Type::Duration => "a duration",
        Type::Number => "a number",
        Type::Bool => "a bool",
        Type::List(_) => "a list",
        Type::Set(_) => "a set",
        Type::Map(_) => "a map",
        Type::Object(_) => "an object",
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() { "the value" } else { path }
}

/// Whether two values mean the same to the component: sets compare without order, durations
/// by their seconds, and nothing unknown is equal to anything.
pub fn equivalent(ty: &Type, a: &Value, b: &Value) -> bool {
    match (a, b, ty) {
        (Value::Unknown, _, _) | (_, Value::Unknown, _) => false,
        (Value::String(x), Value::String(y), Type::Duration) => {
            x == y || matches!((duration::seconds(x), duration::seconds(y)), (Ok(p), Ok(q)) if p == q)
        }
        (Value::List(xs), Value::List(ys), Type::Set(item)) => {
            if xs.len() != ys.len() {
                return false;
            }
            let mut unused: Vec<&Value> = ys.iter().collect();
            xs.iter()
                .all(|x| match unused.iter().position(|y| equivalent(item, x, y)) {
                    Some(i) => {
                        unused.swap_remove(i);
                        true
                    }
                    None => false,
                })
        }
        (Value::List(xs), Value::List(ys), Type::List(item)) => {
            xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| equivalent(item, x, y))
        }
        (Value::Map(xs), Value::Map(ys), Type::Map(item)) => {
            xs.len() == ys.len()
                && xs
                    .iter()
                    .all(|(k, x)| ys.get(k).is_some_and(|y| equivalent(item, x, y)))
        }
        (Value::Map(xs), Value::Map(ys), Type::Object(attributes)) => {
            attributes.iter().all(|(name, attr_ty)| {
                let x = xs.get(name).unwrap_or(&Value::Null);
                let y = ys.get(name).unwrap_or(&Value::Null);
                equivalent(attr_ty, x, y)
            })
        }
        (Value::Number(x), Value::Number(y), _) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether a value says "nothing": null, an empty collection, or an object whose attributes
/// all say nothing. The component writes `[]`, `{}` and objects of nulls where Terraform
/// configurations leave things out.
pub fn is_empty(ty: &Type, value: &Value) -> bool {
    match (value, ty) {
        (Value::Null, _) => true,
        (Value::List(items), Type::List(_) | Type::Set(_)) => items.is_empty(),
        (Value::Map(map), Type::Map(_)) => map.is_empty(),
        (Value::Map(map), Type::Object(attributes)) => attributes
            .iter()
            .all(|(name, attr_ty)| is_empty(attr_ty, map.get(name).unwrap_or(&Value::Null))),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn image_type() -> Type {
        Type::Object(BTreeMap::from([
            ("id".to_string(), Type::String),
            ("size".to_string(), Type::Number),
            ("tags".to_string(), Type::Set(Box::new(Type::String))),
            ("properties".to_string(), Type::Map(Box::new(Type::String))),
            ("protected".to_string(), Type::Bool),
            (
                "timeouts".to_string(),
                Type::Object(BTreeMap::from([("create".to_string(), Type::Duration)])),
            ),
        ]))
    }

    fn sample() -> Value {
        Value::Map(BTreeMap::from([
            ("id".to_string(), Value::Unknown),
            ("size".to_string(), Value::Number(Number::from(13_287_936u64))),
            (
                "tags".to_string(),
                Value::List(vec![Value::String("a".into()), Value::Unknown]),
            ),
            (
                "properties".to_string(),
                Value::Map(BTreeMap::from([(
                    "os_distro".to_string(),
                    Value::String("cirros".into()),
                )])),
            ),
            ("protected".to_string(), Value::Bool(false)),
            ("timeouts".to_string(), Value::Null),
        ]))
    }

    #[test]
    fn msgpack_round_trips_with_unknowns() {
        let ty = image_type();
        let bytes = sample().to_msgpack(&ty);
        assert_eq!(Value::from_msgpack(&bytes, &ty).unwrap(), sample());
    }

    #[test]
    fn unknown_is_cty_extension_zero() {
        let bytes = Value::Unknown.to_msgpack(&Type::String);
        assert_eq!(bytes, vec![0xd4, 0, 0]);
        // A refined unknown (another extension type, any payload) is still unknown.
        assert_eq!(
            Value::from_msgpack(&[0xc7, 2, 12, 1, 2], &Type::String).unwrap(),
            Value::Unknown
        );
    }

    #[test]
    fn objects_are_written_with_every_attribute() {
        let ty = image_type();
        let partial = Value::Map(BTreeMap::from([("id".to_string(), Value::String("x".into()))]));
        let back = Value::from_msgpack(&partial.to_msgpack(&ty), &ty).unwrap();
        assert_eq!(back.get("id"), &Value::String("x".into()));
        assert_eq!(back.get("tags"), &Value::Null);
        let Value::Map(map) = back else { panic!() };
        assert_eq!(map.len(), 6);
    }

    #[test]
    fn numbers_arrive_as_integers_floats_or_text() {
        let whole = rmpv::Value::F64(600.0);
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &whole).unwrap();
        assert_eq!(
            Value::from_msgpack(&bytes, &Type::Number).unwrap(),
            Value::Number(600.into())
        );
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &rmpv::Value::from("18446744073709551615")).unwrap();
        assert_eq!(
            Value::from_msgpack(&bytes, &Type::Number).unwrap(),
            Value::Number(u64::MAX.into())
        );
    }

    #[test]
    fn mismatched_types_name_the_path() {
        let ty = image_type();
        let bad = json!({ "tags": [1], "size": "big" });
        let err = Value::from_json(&bad, &ty).unwrap_err();
        assert!(err.0.contains("size"), "{err}");
    }

    #[test]
    fn json_documents_read_through_the_type() {
        let ty = image_type();
        let doc = json!({
            "id": "6b0f", "size": 3, "tags": ["b", "a"], "properties": { "n": 2, "ok": true },
            "timeouts": { "create": 1800 }, "not_in_schema": 1,
        });
        let value = Value::from_json(&doc, &ty).unwrap();
        let Value::Map(props) = value.get("properties") else {
            panic!()
        };
        assert_eq!(props["n"], Value::String("2".into()));
        assert_eq!(props["ok"], Value::String("true".into()));
        assert_eq!(
            value.get("timeouts").get("create"),
            &Value::String("30m0s".into())
        );
        assert_eq!(value.get("not_in_schema"), &Value::Null);
    }

    #[test]
    fn equivalence_ignores_set_order_and_duration_spelling() {
        let set = Type::Set(Box::new(Type::String));
        let ab = Value::List(vec![Value::String("a".into()), Value::String("b".into())]);
        let ba = Value::List(vec![Value::String("b".into()), Value::String("a".into())]);
        assert!(equivalent(&set, &ab, &ba));
        assert!(!equivalent(&Type::List(Box::new(Type::String)), &ab, &ba));
        assert!(equivalent(
            &Type::Duration,
            &Value::String("30m".into()),
            &Value::String("1800s".into())
        ));
        assert!(!equivalent(&Type::String, &Value::Unknown, &Value::Unknown));
    }

    #[test]
    fn empty_values() {
        let ty = image_type();
        assert!(is_empty(&Type::Set(Box::new(Type::String)), &Value::List(vec![])));
        let Type::Object(attrs) = &ty else { panic!() };
        let timeouts = &attrs["timeouts"];
        let all_null = Value::Map(BTreeMap::from([("create".to_string(), Value::Null)]));
        assert!(is_empty(timeouts, &all_null));
        assert!(!is_empty(&Type::Bool, &Value::Bool(false)));
    }

    #[test]
    fn constraints_are_terraform_type_json() {
        assert_eq!(image_type().constraint()[1]["tags"], json!(["set", "string"]));
        assert_eq!(Type::Duration.constraint(), json!("string"));
    }
}
