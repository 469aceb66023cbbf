//! The cloud's own definitions of image properties (Glance's metadata definitions, "metadefs",
//! for the resource type `OS::Glance::Image`) and the check of a spec's properties against
//! them. Pure: `lifecycle` fetches the namespaces; this module reads them and decides.
//!
//! What is checked is what the definitions say: a property's type (string, integer, number,
//! boolean), its `enum`, `minimum`/`maximum`, `minLength`/`maxLength` and `pattern`. Keys the
//! cloud does not define are allowed, except a key one edit away from a defined one (a typo
//! that Nova would silently ignore), which gets a "did you mean". There is no list of keys
//! here: everything comes from the cloud.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::types::FieldError;

/// The resource type whose properties image specs set.
pub const RESOURCE_TYPE: &str = "OS::Glance::Image";

/// One definition of a property key, from one namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Definition {
    /// The namespace that defines it (e.g. `OS::Compute::LibvirtImage`).
    pub namespace: String,
    /// string, integer, number, boolean or array (arrays are not checked).
    pub kind: String,
    pub allowed: Vec<String>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub min_length: Option<u64>,
    pub max_length: Option<u64>,
    pub pattern: Option<String>,
}

/// Every property key the cloud defines for images (prefixes applied), each with its
/// definitions (a key several namespaces define passes when any of them admits the value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Definitions {
    keys: BTreeMap<String, Vec<Definition>>,
}

impl Definitions {
    /// Reads the namespaces' documents (`GET /v2/metadefs/namespaces/{ns}`), each with the
    /// prefix its association with `OS::Glance::Image` gives its keys (from the namespace list).
    pub fn from_namespaces<'a>(namespaces: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Self {
        let mut keys: BTreeMap<String, Vec<Definition>> = BTreeMap::new();
        for (prefix, document) in namespaces {
            let namespace = document
                .get("namespace")
                .and_then(Value::as_str)
                .unwrap_or("(unnamed namespace)");
            let objects = document
                .get("objects")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|object| object.get("properties"));
            for properties in document.get("properties").into_iter().chain(objects) {
                let Some(properties) = properties.as_object() else {
                    continue;
                };
                for (name, property) in properties {
                    keys.entry(format!("{prefix}{name}"))
                        .or_default()
                        .push(definition(namespace, property));
                }
            }
        }
        Definitions { keys }
    }

    /// The prefix a namespace of the list (`GET /v2/metadefs/namespaces?resource_types=...`)
    /// gives its keys on images.
    pub fn prefix_of(namespace: &Value) -> String {
        namespace
            .get("resource_type_associations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|association| association.get("name").and_then(Value::as_str) == Some(RESOURCE_TYPE))
            .and_then(|association| association.get("prefix").and_then(Value::as_str))
            .unwrap_or("")
            .to_string()
    }

    /// How many keys the cloud defines.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the cloud defines no key at all (no metadefs: nothing is checked).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The problems of a spec's properties, each naming the property, the value, what is
    /// allowed and the namespace.
    pub fn check(&self, properties: &[(String, String)]) -> Vec<FieldError> {
        let mut errors = Vec::new();
        for (key, value) in properties {
            let field = format!("properties.{key}");
            match self.keys.get(key) {
                Some(definitions) => {
                    let refusals: Vec<String> = definitions
                        .iter()
                        .map(|d| d.refusal(value))
                        .collect::<Option<Vec<_>>>()
                        .unwrap_or_default();
                    if !refusals.is_empty() {
                        errors.push(FieldError {
                            field,
                            message: refusals.join("; and "),
                        });
                    }
                }
                None => {
                    if let Some(near) = self.near(key) {
                        errors.push(FieldError {
                            field,
                            message: format!(
                                "'{key}' is not a property this cloud defines; did you mean '{near}' \
                                 (defined by {})? Fix the key, or pick a name further from the defined ones",
                                self.keys[near][0].namespace
                            ),
                        });
                    }
                }
            }
        }
        errors
    }

    /// The defined key one edit (insertion, deletion, substitution or swap of neighbours) away
    /// from `key`, if there is one.
    fn near(&self, key: &str) -> Option<&str> {
        self.keys
            .keys()
            .map(String::as_str)
            .find(|defined| one_edit_apart(key, defined))
    }
}

fn definition(namespace: &str, property: &Value) -> Definition {
    let number = |name: &str| property.get(name).and_then(Value::as_f64);
    let count = |name: &str| property.get(name).and_then(Value::as_u64);
    Definition {
        namespace: namespace.to_string(),
        kind: property
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("string")
            .to_string(),
        allowed: property
            .get("enum")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect(),
        minimum: number("minimum"),
        maximum: number("maximum"),
        min_length: count("minLength"),
        max_length: count("maxLength"),
        pattern: property
            .get("pattern")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

impl Definition {
    /// Why the definition rules `value` out, or `None` when it admits it.
    fn refusal(&self, value: &str) -> Option<String> {
        let ns = &self.namespace;
        let refuse = |allowed: String| Some(format!("'{value}' is not allowed: {allowed} (namespace {ns})"));
        if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a == value) {
            return refuse(format!("use one of {}", self.allowed.join(", ")));
        }
        match self.kind.as_str() {
            "integer" | "number" => {
                let parsed = if self.kind == "integer" {
                    value.trim().parse::<i64>().ok().map(|n| n as f64)
                } else {
                    value.trim().parse::<f64>().ok().filter(|n| n.is_finite())
                };
                let Some(number) = parsed else {
                    return refuse(format!("the value must be {} {}", article(&self.kind), self.kind));
                };
                match (self.minimum, self.maximum) {
                    (Some(min), _) if number < min => refuse(range(self.minimum, self.maximum)),
                    (_, Some(max)) if number > max => refuse(range(self.minimum, self.maximum)),
                    _ => None,
                }
            }
            // As Nova reads booleans (oslo's bool_from_string).
            "boolean" => {
                const WORDS: &[&str] = &[
                    "true", "false", "yes", "no", "on", "off", "1", "0", "t", "f", "y", "n",
                ];
                (!WORDS.contains(&value.trim().to_ascii_lowercase().as_str())).then(|| {
                    format!("'{value}' is not allowed: the value must be true or false (namespace {ns})")
                })
            }
            "string" => {
                let length = value.chars().count() as u64;
                if self.min_length.is_some_and(|min| length < min)
                    || self.max_length.is_some_and(|max| length > max)
                {
                    return refuse(format!(
                        "the length must be {}",
                        range(
                            self.min_length.map(|n| n as f64),
                            self.max_length.map(|n| n as f64)
                        )
                    ));
                }
                // A pattern this engine cannot read is not held against the value.
                let pattern = self.pattern.as_deref()?;
                let regex = regex_lite::Regex::new(pattern).ok()?;
                (!regex.is_match(value))
                    .then(|| format!("'{value}' is not allowed: it must match {pattern} (namespace {ns})"))
            }
            _ => None,
        }
    }
}

fn article(kind: &str) -> &'static str {
    if kind == "integer" { "an" } else { "a" }
}

fn range(min: Option<f64>, max: Option<f64>) -> String {
    match (min, max) {
        (Some(min), Some(max)) => format!("between {min} and {max}"),
        (Some(min), None) => format!("at least {min}"),
        (None, Some(max)) => format!("at most {max}"),
        (None, None) => "in range".to_string(),
    }
}

/// Whether `a` becomes `b` with exactly one insertion, deletion, substitution or swap of two
/// neighbouring characters.
fn one_edit_apart(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b {
        return false;
    }
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[prefix..], &b[prefix..]);
    match ra.len() as isize - rb.len() as isize {
        0 => ra[1..] == rb[1..] || (ra.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..]),
        1 => ra[1..] == *rb,
        -1 => *ra == rb[1..],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Shaped like Glance's stock `OS::Compute::LibvirtImage` (prefix `hw_` on images) and
    /// `OS::Compute::Watchdog` namespaces.
    fn definitions() -> Definitions {
        let libvirt = json!({
            "namespace": "OS::Compute::LibvirtImage",
            "properties": {
                "disk_bus": {"type": "string", "enum": ["scsi", "virtio", "uml", "xen", "ide", "usb", "fdc", "sata", "lxc"]},
                "video_ram": {"type": "integer", "minimum": 0},
                "boot_menu": {"type": "string", "pattern": "^(true|false)$"}
            },
            "objects": [{"name": "o", "properties": {"rng_model": {"type": "string", "maxLength": 8}}}]
        });
        let other = json!({
            "namespace": "OS::Other",
            "properties": {"os_secure_boot": {"type": "boolean"}, "cpu_ratio": {"type": "number", "maximum": 2.5}}
        });
        Definitions::from_namespaces([("hw_", &libvirt), ("", &other)])
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn values_the_definitions_rule_out_are_refused_with_what_is_allowed() {
        let defs = definitions();
        let errors = defs.check(&[("hw_disk_bus".into(), "virtoi".into())]);
        assert_eq!(fields(&errors), ["properties.hw_disk_bus"]);
        let message = &errors[0].message;
        assert!(message.contains("'virtoi'"), "{message}");
        assert!(message.contains("scsi, virtio, uml"), "{message}");
        assert!(message.contains("OS::Compute::LibvirtImage"), "{message}");

        for (key, value) in [
            ("hw_video_ram", "-1"),
            ("hw_video_ram", "lots"),
            ("hw_boot_menu", "maybe"),
            ("hw_rng_model", "much-too-long"),
            ("os_secure_boot", "maybe"),
            ("cpu_ratio", "3"),
        ] {
            assert_eq!(
                defs.check(&[(key.into(), value.into())]).len(),
                1,
                "{key}={value}"
            );
        }
        for (key, value) in [
            ("hw_disk_bus", "virtio"),
            ("hw_video_ram", "64"),
            ("hw_boot_menu", "true"),
            ("hw_rng_model", "virtio"),
            ("os_secure_boot", "True"),
            ("cpu_ratio", "1.5"),
            ("x_custom", "anything"),
        ] {
            assert!(
                defs.check(&[(key.into(), value.into())]).is_empty(),
                "{key}={value}"
            );
        }
    }

    #[test]
    fn a_key_one_edit_from_a_defined_one_gets_a_did_you_mean() {
        let defs = definitions();
        for typo in ["hw_disk_buss", "hw_dsk_bus", "hw_disk_bsu", "hw_disk_bas"] {
            let errors = defs.check(&[(typo.into(), "virtio".into())]);
            assert_eq!(errors.len(), 1, "{typo}");
            assert!(
                errors[0].message.contains("did you mean 'hw_disk_bus'"),
                "{}",
                errors[0].message
            );
        }
        assert!(
            defs.check(&[("hw_disk_controller".into(), "x".into())])
                .is_empty()
        );
        assert!(
            Definitions::default()
                .check(&[("hw_disk_bus".into(), "virtoi".into())])
                .is_empty()
        );
    }

    #[test]
    fn the_prefix_comes_from_the_image_association() {
        let listed = json!({"namespace": "n", "resource_type_associations": [
            {"name": "OS::Cinder::Volume", "prefix": "vol_"},
            {"name": "OS::Glance::Image", "prefix": "hw_"}
        ]});
        assert_eq!(Definitions::prefix_of(&listed), "hw_");
        assert_eq!(Definitions::prefix_of(&json!({"namespace": "n"})), "");
    }
}
