//! The generated reference pages: the documents' fields from the component's `schema()`, the
//! commands from the command line's clap definition.

use anyhow::{Context, Result, anyhow};
use clap::CommandFactory;
use serde_json::Value;

/// The spec and state reference: one table per document of `schema` (the JSON Schema the
/// component's `schema()` returns).
pub fn spec_page(schema: &Value) -> Result<String> {
    let defs = schema["$defs"].as_object().context("the schema has no $defs")?;
    let def = |name: &str| {
        defs.get(name)
            .ok_or_else(|| anyhow!("the schema has no $defs.{name}"))
    };
    let mut page = String::from(
        "# Spec and state reference\n\n\
         Every field of the documents the component takes and returns, as its `schema()` describes\n\
         them (the JSON face's `schema`; `openstack-image component export` writes the component\n\
         that answers it). An entry under `images:` in a [spec file](../spec-file.md) is a `spec`\n\
         document, an entry under `memberships:` a `membership_spec`; the Terraform resources'\n\
         attributes, the Node adapter's inputs (in camelCase) and the Python adapter's dicts use\n\
         the same names.\n\n\
         **On change** says what a change of the field does to an existing image: *in place* (one\n\
         Glance update, or only the state when Glance does not hold the field) or *replace* (a new\n\
         image is created, then the old one deleted). *Unset: not managed* means that leaving the\n\
         field out leaves what the cloud has alone. In a spec file, `timeouts` may also be written\n\
         as durations (`90s`, `30m`, `1h30m`).\n\n",
    );
    page += "## Image spec (`spec`)\n\nThe inputs of an image.\n\n";
    page += &input_table(def("spec")?);
    let spec_fields: Vec<&String> = def("spec")?["properties"]
        .as_object()
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    page += "\n## Image state (`state`)\n\n\
             The state holds the spec's fields as applied, plus what the cloud reports:\n\n";
    page += &output_table(def("state")?, &spec_fields);
    page += "\n## Membership spec (`membership_spec`)\n\n\
             One project's membership of a shared image: the owner's offer (`side: owner`) or the\n\
             member project's answer (`side: member`).\n\n";
    page += &input_table(def("membership_spec")?);
    let membership_fields: Vec<&String> = def("membership_spec")?["properties"]
        .as_object()
        .map(|p| p.keys().collect())
        .unwrap_or_default();
    page += "\n## Membership state (`membership_state`)\n\nBeside the spec's fields:\n\n";
    page += &output_table(def("membership_state")?, &membership_fields);
    for (name, what) in [
        (
            "membership_offer",
            "the owner's side (Terraform: `openstack_images_image_access_v2`)",
        ),
        (
            "membership_answer",
            "the member's side (Terraform: `openstack_images_image_access_accept_v2`)",
        ),
    ] {
        let view = def(name)?;
        let fields: Vec<String> = view["properties"]
            .as_object()
            .map(|p| p.keys().map(|k| format!("`{k}`")).collect())
            .unwrap_or_default();
        page += &format!(
            "\n`{name}`, {what}: {}. Fields: {}.\n",
            one_line(view["description"].as_str().unwrap_or("")),
            fields.join(", ")
        );
    }
    page += "\n## Image query (`query`)\n\n\
             What `find` (the CLI's `find`, Terraform's data source) looks for; every field set\n\
             narrows the search.\n\n";
    page += &plain_table(def("query")?);
    page += "\n## Cloud (`cloud`)\n\nA clouds.yaml cloud entry, as the component takes it.\n\n";
    page += &plain_table(def("cloud")?);
    Ok(page)
}

/// A row per field (nested objects' fields as `outer.inner`).
fn rows<'a>(def: &'a Value, prefix: &str, out: &mut Vec<(String, &'a Value, bool)>) {
    let required: Vec<&str> = def["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let Some(properties) = def["properties"].as_object() else {
        return;
    };
    for (name, field) in properties {
        let path = format!("{prefix}{name}");
        out.push((path.clone(), field, required.contains(&name.as_str())));
        let inner = branch(field);
        if inner["properties"].is_object() {
            rows(inner, &format!("{path}."), out);
        }
    }
}

/// The branch of `field` that is not `null` (fields are `anyOf: [T, null]`).
fn branch(field: &Value) -> &Value {
    field["anyOf"]
        .as_array()
        .and_then(|branches| branches.iter().find(|b| b["type"] != "null"))
        .unwrap_or(field)
}

fn input_table(def: &Value) -> String {
    let mut out = Vec::new();
    rows(def, "", &mut out);
    let mut table =
        String::from("| Field | Type | Default | On change | Description |\n|---|---|---|---|---|\n");
    for (path, field, required) in out {
        let change = if flag(field, "x-force-new") {
            "replace"
        } else {
            "in place"
        };
        table += &format!(
            "| `{path}` | {} | {} | {change} | {} |\n",
            type_of(branch(field)),
            default_of(field, required),
            description(field)
        );
    }
    table
}

/// The fields of `def` not among `inputs`: what the cloud reports.
fn output_table(def: &Value, inputs: &[&String]) -> String {
    let mut out = Vec::new();
    rows(def, "", &mut out);
    let mut table = String::from("| Field | Type | Description |\n|---|---|---|\n");
    for (path, field, _) in out {
        let top = path.split('.').next().unwrap_or(&path);
        let an_input = inputs.iter().any(|i| i.as_str() == top);
        // An input's field, unless the cloud reports it back under the same name.
        if an_input && (path != top || !flag(field, "x-computed")) {
            continue;
        }
        table += &format!(
            "| `{path}` | {} | {} |\n",
            type_of(branch(field)),
            description(field)
        );
    }
    table
}

fn plain_table(def: &Value) -> String {
    let mut out = Vec::new();
    rows(def, "", &mut out);
    let mut table = String::from("| Field | Type | Description |\n|---|---|---|\n");
    for (path, field, required) in out {
        let mut text = description(field);
        if required {
            text = format!("Required. {text}");
        }
        table += &format!(
            "| `{path}` | {} | {} |\n",
            type_of(branch(field)),
            text.trim_end()
        );
    }
    table
}

fn flag(field: &Value, key: &str) -> bool {
    field[key] == Value::Bool(true)
}

/// A field's type as people read it.
fn type_of(schema: &Value) -> String {
    if let Some(values) = schema["enum"].as_array() {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", plain(v))).collect();
        return format!("one of {}", values.join(", "));
    }
    let base = match &schema["type"] {
        Value::String(t) => t.as_str(),
        Value::Array(types) => {
            let names: Vec<&str> = types.iter().filter_map(Value::as_str).collect();
            return names.join(" or ");
        }
        _ => return "any".into(),
    };
    match base {
        "string" if schema["format"] == "uuid" => "UUID".into(),
        "string" => match schema["pattern"].as_str() {
            Some(pattern) => format!("string matching `{}`", pattern.replace('|', "\\|")),
            None => "string".into(),
        },
        "integer" => {
            let mut text = String::from("integer");
            if let Some(min) = schema["minimum"].as_i64() {
                text += &format!(" ≥ {min}");
            }
            if let Some(unit) = schema["x-unit"].as_str() {
                text += &format!(" ({unit})");
            }
            text
        }
        "array" => {
            let kind = if schema["uniqueItems"] == true {
                "set"
            } else {
                "list"
            };
            format!("{kind} of {}", type_of(&schema["items"]))
        }
        "object" if schema["properties"].is_object() => "object".into(),
        "object" => match schema.get("additionalProperties") {
            Some(Value::Object(values)) => format!("map of {}", type_of(&Value::Object(values.clone()))),
            _ => "object".into(),
        },
        other => other.into(),
    }
}

fn default_of(field: &Value, required: bool) -> String {
    if let Some(default) = field.get("default") {
        return format!("`{}`", plain(default));
    }
    if required {
        "required".into()
    } else if flag(field, "x-cloud-default") {
        "the session's project".into()
    } else if flag(field, "x-runtime-default") {
        "the runtime's".into()
    } else if flag(field, "x-keep-when-unset") {
        "unset: not managed".into()
    } else {
        "—".into()
    }
}

/// A value as written in a spec file.
fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn description(field: &Value) -> String {
    let mut text = one_line(field["description"].as_str().unwrap_or(""));
    if flag(field, "x-secret") {
        text = format!("**Secret**: never stored or printed. {text}");
    }
    text.replace('|', "\\|")
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The command-line reference: `openstack-image --help` and every command's `--help`.
pub fn cli_page() -> String {
    let mut command = openstack_image::cli::Cli::command().term_width(100);
    command.build();
    let mut page = String::from(
        "# Command-line reference\n\n\
         Every command's `--help`, as `openstack-image` prints it. The [CLI guide](../cli.md)\n\
         explains the commands with examples.\n\n",
    );
    let mut sections = Vec::new();
    help_of(&mut command, &mut sections);
    page += "Commands:\n\n";
    for (name, _) in &sections {
        page += &format!("- [`{name}`](#{})\n", crate::links::slug(name));
    }
    for (name, help) in sections {
        page += &format!("\n## {name}\n\n```text\n{}\n```\n", help.trim_end());
    }
    page
}

/// `command`'s long help and its subcommands', depth first (`help` itself left out).
fn help_of(command: &mut clap::Command, out: &mut Vec<(String, String)>) {
    let name = command.get_bin_name().unwrap_or(command.get_name()).to_string();
    let help = command.render_long_help().to_string();
    let help: String = help.lines().map(|l| format!("{}\n", l.trim_end())).collect();
    out.push((name, help));
    for sub in command.get_subcommands_mut() {
        if sub.get_name() != "help" {
            help_of(sub, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_field_shows_its_type_default_change_and_secrecy() {
        let def = json!({
            "required": ["disk_format"],
            "properties": {
                "disk_format": {"anyOf": [{"enum": ["raw", "qcow2"]}, {"type": "null"}], "x-force-new": true, "description": "Disk\nformat."},
                "min_ram_mb": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}], "default": 0},
                "password": {"anyOf": [{"type": "string"}, {"type": "null"}], "x-secret": true, "description": "A | B."},
                "timeouts": {"anyOf": [{"type": "object", "properties": {"create": {"type": "integer", "x-unit": "seconds"}}}, {"type": "null"}]},
            }
        });
        let table = input_table(&def);
        assert!(
            table.contains("| `disk_format` | one of `raw`, `qcow2` | required | replace | Disk format. |"),
            "{table}"
        );
        assert!(
            table.contains("| `min_ram_mb` | integer ≥ 0 | `0` | in place |"),
            "{table}"
        );
        assert!(
            table.contains("**Secret**: never stored or printed. A \\| B."),
            "{table}"
        );
        assert!(
            table.contains("| `timeouts.create` | integer (seconds) |"),
            "{table}"
        );
    }

    #[test]
    fn the_cli_page_has_every_command_with_its_exit_statuses() {
        let page = cli_page();
        for command in [
            "openstack-image plan",
            "openstack-image apply",
            "openstack-image component export",
        ] {
            assert!(page.contains(&format!("\n## {command}\n")), "{command}");
        }
        assert!(page.contains("Usage: openstack-image plan"), "bin names are set");
        assert!(page.contains("64  usage error"));
    }

    #[test]
    fn the_spec_page_covers_every_document() {
        let page = spec_page(&openstack_image_documents::schema::schema()).unwrap();
        for heading in [
            "(`spec`)",
            "(`state`)",
            "(`membership_spec`)",
            "(`query`)",
            "(`cloud`)",
        ] {
            assert!(page.contains(heading), "{heading}");
        }
    }
}
