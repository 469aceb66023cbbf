//! Terraform diagnostics: component errors attached to the attribute each field names
//! (`properties.foo` -> `properties["foo"]`), and secrets kept out of every message.

use crate::backend::ComponentError;
use crate::proto::tfplugin6 as tf;
use crate::schema::Schema;
use crate::value::{Type, Value};

/// A path to an attribute or an element inside one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Path(pub Vec<Step>);

/// One step of a [`Path`].
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    Attribute(String),
    /// A map key.
    Key(String),
    /// A list index.
    Index(i64),
}

impl Path {
    /// A top-level attribute.
    pub fn attribute(name: &str) -> Path {
        Path(vec![Step::Attribute(name.to_string())])
    }

    pub fn to_proto(&self) -> tf::AttributePath {
        use tf::attribute_path::step::Selector;
        tf::AttributePath {
            steps: self
                .0
                .iter()
                .map(|step| tf::attribute_path::Step {
                    selector: Some(match step {
                        Step::Attribute(name) => Selector::AttributeName(name.clone()),
                        Step::Key(key) => Selector::ElementKeyString(key.clone()),
                        Step::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }
}

/// An error diagnostic, attached to `path` when there is one.
pub fn error(summary: impl Into<String>, detail: impl Into<String>, path: Option<&Path>) -> tf::Diagnostic {
    tf::Diagnostic {
        severity: tf::diagnostic::Severity::Error as i32,
        summary: summary.into(),
        detail: detail.into(),
        attribute: path.map(Path::to_proto),
    }
}

/// The diagnostics for a component error: one per field for `invalid-spec` (on the attribute
/// the field names, when the schema has it), otherwise one that says what kind of failure it
/// was.
pub fn from_component(err: &ComponentError, schema: &Schema) -> Vec<tf::Diagnostic> {
    if err.kind == "invalid-spec" && !err.fields.is_empty() {
        return err
            .fields
            .iter()
            .map(|f| {
                let path = field_path(schema, &f.field);
                error(format!("Invalid {}", f.field), f.message.clone(), path.as_ref())
            })
            .collect();
    }
    vec![error(summary(&err.kind), err.message.clone(), None)]
}

/// The summary line for an error kind (the typed `error` cases of wit/image.wit).
fn summary(kind: &str) -> String {
    match kind {
        "invalid-spec" => "Invalid image configuration",
        "invalid-request" => "The image component could not read the request",
        "auth-failed" => "Authentication to the cloud failed",
        "not-found" => "Image not found",
        "forbidden" => "The cloud refused the request",
        "conflict" => "The image is in a conflicting state",
        "quota" => "Image quota exceeded",
        "checksum-mismatch" => "Image data checksum mismatch",
        "timeout" => "Timed out waiting for the image",
        "import-failed" => "Glance could not import the image data",
        "transport" => "Cannot reach the cloud or the image source",
        "denied-by-host" => "The sandbox denied the image component",
        "api" => "The image API returned an error",
        other => return format!("Image component error ({other})"),
    }
    .to_string()
}

/// The attribute path a component field name points at: `disk_format`, `properties.foo`
/// (map key, dots included), `timeouts.create` (block attribute), `tags[1]`; a `spec.` or
/// `state.` prefix is the document's, not the attribute's.
pub fn field_path(schema: &Schema, field: &str) -> Option<Path> {
    let field = ["spec.", "state.", "query."]
        .iter()
        .find_map(|prefix| field.strip_prefix(prefix))
        .filter(|rest| schema.attribute(head(rest).0).is_some())
        .unwrap_or(field);
    let (name, rest) = head(field);
    let attr = schema.attribute(name)?;
    let mut steps = vec![Step::Attribute(name.to_string())];
    descend(&attr.ty, rest, &mut steps);
    Some(Path(steps))
}

fn head(field: &str) -> (&str, &str) {
    let end = field.find(['.', '[']).unwrap_or(field.len());
    field.split_at(end)
}

fn descend(ty: &Type, rest: &str, steps: &mut Vec<Step>) {
    match ty {
        // A map key may itself contain dots: the rest is the key.
        Type::Map(_) => {
            if let Some(key) = rest.strip_prefix('.').filter(|k| !k.is_empty()) {
                steps.push(Step::Key(key.to_string()));
            }
        }
        Type::Object(fields) => {
            if let Some(rest) = rest.strip_prefix('.') {
                let (name, rest) = head(rest);
                if let Some(field_ty) = fields.get(name) {
                    steps.push(Step::Attribute(name.to_string()));
                    descend(field_ty, rest, steps);
                }
            }
        }
        Type::List(item) => {
            let index = rest
                .strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .and_then(|(i, after)| Some((i.parse::<i64>().ok()?, after)));
            if let Some((i, after)) = index {
                steps.push(Step::Index(i));
                descend(item, after, steps);
            }
        }
        // Set elements have no address; the attribute itself is the closest.
        _ => {}
    }
}

/// Secret strings to keep out of diagnostics and logs.
#[derive(Clone, Debug, Default)]
pub struct Secrets(Vec<String>);

/// Shorter strings would blank out ordinary words in messages.
const MIN_SECRET_LEN: usize = 4;

impl Secrets {
    /// The values of the sensitive attributes of `value`.
    pub fn of(schema: &Schema, value: &Value) -> Secrets {
        let mut secrets = Secrets::default();
        for attr in schema.attributes.iter().filter(|a| a.sensitive) {
            secrets.collect(value.get(&attr.name));
        }
        secrets
    }

    pub fn add(&mut self, secret: &str) {
        if secret.len() >= MIN_SECRET_LEN && !self.0.iter().any(|s| s == secret) {
            self.0.push(secret.to_string());
        }
    }

    pub fn extend(&mut self, other: &Secrets) {
        for secret in &other.0 {
            self.add(secret);
        }
    }

    fn collect(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.add(s),
            Value::List(items) => items.iter().for_each(|v| self.collect(v)),
            Value::Map(map) => map.values().for_each(|v| self.collect(v)),
            _ => {}
        }
    }

    /// `text` with every secret replaced.
    pub fn redact(&self, text: &str) -> String {
        self.0.iter().fold(text.to_string(), |text, secret| {
            text.replace(secret.as_str(), "(sensitive)")
        })
    }

    /// The diagnostics with every secret replaced.
    pub fn redact_all(&self, diagnostics: Vec<tf::Diagnostic>) -> Vec<tf::Diagnostic> {
        diagnostics
            .into_iter()
            .map(|d| tf::Diagnostic {
                summary: self.redact(&d.summary),
                detail: self.redact(&d.detail),
                ..d
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::FieldError;
    use crate::schema::tests::resource;

    fn path(field: &str) -> Option<Path> {
        field_path(&resource(), field)
    }

    fn steps(steps: &[Step]) -> Option<Path> {
        Some(Path(steps.to_vec()))
    }

    #[test]
    fn fields_become_attribute_paths() {
        use Step::*;
        assert_eq!(path("disk_format"), steps(&[Attribute("disk_format".into())]));
        assert_eq!(
            path("properties.os_hash_value"),
            steps(&[Attribute("properties".into()), Key("os_hash_value".into())])
        );
        assert_eq!(
            path("properties.com.example.key"),
            steps(&[Attribute("properties".into()), Key("com.example.key".into())])
        );
        assert_eq!(
            path("timeouts.create"),
            steps(&[Attribute("timeouts".into()), Attribute("create".into())])
        );
        assert_eq!(
            path("tags[1]"),
            steps(&[Attribute("tags".into())]),
            "sets have no index"
        );
        assert_eq!(path("state.min_ram_mb"), steps(&[Attribute("min_ram_mb".into())]));
        assert_eq!(path("source content (sha512)"), None);
        assert_eq!(path("timeouts.nope"), steps(&[Attribute("timeouts".into())]));
    }

    #[test]
    fn paths_in_protocol_form() {
        use tf::attribute_path::step::Selector;
        let proto = path("properties.foo").unwrap().to_proto();
        assert_eq!(
            proto.steps[0].selector,
            Some(Selector::AttributeName("properties".into()))
        );
        assert_eq!(
            proto.steps[1].selector,
            Some(Selector::ElementKeyString("foo".into()))
        );
    }

    #[test]
    fn invalid_spec_errors_land_on_their_attributes() {
        let err = ComponentError {
            kind: "invalid-spec".into(),
            message: "2 problems".into(),
            fields: vec![
                FieldError {
                    field: "disk_format".into(),
                    message: "'qcow3' is not allowed".into(),
                },
                FieldError {
                    field: "properties.os_hash_value".into(),
                    message: "is read-only".into(),
                },
            ],
        };
        let diags = from_component(&err, &resource());
        assert_eq!(diags.len(), 2);
        assert_eq!(diags[0].summary, "Invalid disk_format");
        assert_eq!(diags[0].detail, "'qcow3' is not allowed");
        assert_eq!(diags[1].attribute.as_ref().unwrap().steps.len(), 2);
    }

    #[test]
    fn other_errors_say_their_kind() {
        let diags = from_component(
            &ComponentError::new("auth-failed", "Keystone said 401"),
            &resource(),
        );
        assert_eq!(diags.len(), 1);
        assert_eq!(diags[0].summary, "Authentication to the cloud failed");
        assert!(diags[0].attribute.is_none());
        let odd = from_component(&ComponentError::new("brand-new", "?"), &resource());
        assert_eq!(odd[0].summary, "Image component error (brand-new)");
    }

    #[test]
    fn secrets_are_redacted() {
        let schema = resource();
        let config = Value::from_json(
            &serde_json::json!({ "image_source_password": "hunter22", "name": "hunter22-image" }),
            &schema.object_type(),
        )
        .unwrap();
        let mut secrets = Secrets::of(&schema, &config);
        secrets.add("abc");
        let diags = secrets.redact_all(vec![error("x", "login with hunter22 failed (abc)", None)]);
        assert_eq!(diags[0].detail, "login with (sensitive) failed (abc)");
    }
}
