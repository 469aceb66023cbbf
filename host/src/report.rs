//! Words for people: guest errors, plans and state as the CLI prints them.

use console::style;
use openstack_image_documents::{ImageDoc, MembershipDoc};
use serde_json::{Value, json};

use crate::bindings::{Action, GuestError, ImageState, MembershipState};
use crate::plan::{Change, MembershipStep, Step};

/// Tells the user what a command does, image by image, on stdout; `-q` silences it (errors
/// still reach stderr, and each command's closing line is printed either way).
#[derive(Clone, Copy, Debug)]
pub struct Narrator {
    pub quiet: bool,
}

impl Narrator {
    /// Prints `line` unless quiet.
    pub fn say(self, line: std::fmt::Arguments) {
        if !self.quiet {
            println!("{line}");
        }
    }
}

/// `say!(narrator, "format", args…)`: one line of what a command does, unless `-q`.
#[macro_export]
macro_rules! say {
    ($narrator:expr, $($arg:tt)*) => {
        $narrator.say(format_args!($($arg)*))
    };
}

/// A guest error as one or more lines, each naming the image.
pub fn guest_error(image: &str, err: &GuestError) -> String {
    guest_error_of("image", image, err)
}

/// A guest error as one or more lines, each naming the `kind` of resource (image,
/// membership) and its name.
pub fn guest_error_of(kind: &str, image: &str, err: &GuestError) -> String {
    let line = |what: &str, detail: &str| format!("{kind} '{image}': {what}: {detail}");
    match err {
        GuestError::InvalidSpec(fields) => fields
            .iter()
            .map(|f| format!("{kind} '{image}', field {}: {}", f.field, f.message))
            .collect::<Vec<_>>()
            .join("\n"),
        GuestError::AuthFailed(m) => line("authentication failed", m),
        GuestError::Unauthorized(u) => line("the cloud refused the session", &u.message),
        GuestError::NotFound(m) => line("not found", m),
        GuestError::Forbidden(m) => line("forbidden", m),
        GuestError::Conflict(m) => line("conflict", m),
        GuestError::Quota(m) => line("over quota or size limit", m),
        GuestError::ChecksumMismatch(c) => line(
            "checksum mismatch",
            &format!(
                "{} of the uploaded bytes is {}, Glance computed {}; the image was deleted, apply again",
                c.algorithm, c.expected, c.actual
            ),
        ),
        GuestError::Timeout(t) => line(
            "timed out",
            &format!(
                "{} gave up after {}s with the image in status '{}'; raise timeouts.{} in the spec",
                t.operation, t.elapsed_seconds, t.last_status, t.operation
            ),
        ),
        GuestError::ImportFailed(m) => line("import failed", m),
        GuestError::Transport(m) => line("cannot reach the cloud", m),
        GuestError::DeniedByHost(m) => line("blocked by the sandbox", m),
        GuestError::Api(a) => line(
            "cloud error",
            &format!("{} {} answered HTTP {}: {}", a.method, a.url, a.status, a.message),
        ),
    }
}

/// A host-side failure (a login, for one) as the JSON face's error document, so a JSON-face
/// caller reads it as it reads the component's: `{"kind", "message", "fields"}`.
pub fn error_document(err: &GuestError) -> Value {
    let (kind, message) = match err {
        GuestError::InvalidSpec(_) => ("invalid-spec", String::new()),
        GuestError::AuthFailed(m) => ("auth-failed", m.clone()),
        GuestError::Unauthorized(u) => ("unauthorized", u.message.clone()),
        GuestError::NotFound(m) => ("not-found", m.clone()),
        GuestError::Forbidden(m) => ("forbidden", m.clone()),
        GuestError::Conflict(m) => ("conflict", m.clone()),
        GuestError::Quota(m) => ("quota", m.clone()),
        GuestError::ChecksumMismatch(c) => (
            "checksum-mismatch",
            format!(
                "{} mismatch: sent {}, Glance has {}",
                c.algorithm, c.expected, c.actual
            ),
        ),
        GuestError::Timeout(t) => (
            "timeout",
            format!(
                "{} timed out after {}s (last status {})",
                t.operation, t.elapsed_seconds, t.last_status
            ),
        ),
        GuestError::ImportFailed(m) => ("import-failed", m.clone()),
        GuestError::Transport(m) => ("transport", m.clone()),
        GuestError::DeniedByHost(m) => ("denied-by-host", m.clone()),
        GuestError::Api(a) => (
            "api",
            format!("{} {} answered {}: {}", a.method, a.url, a.status, a.message),
        ),
    };
    let fields: Vec<Value> = match err {
        GuestError::InvalidSpec(fields) => fields
            .iter()
            .map(|f| json!({ "field": f.field, "message": f.message }))
            .collect(),
        _ => Vec::new(),
    };
    json!({ "kind": kind, "message": message, "fields": fields })
}

/// The plan as the `plan` and `apply` commands print it (coloured when stdout is a terminal
/// and NO_COLOR is not set).
pub fn plan_text(steps: &[Step]) -> String {
    plan_text_with(steps, &[])
}

/// [`plan_text`] with the memberships' changes after the images'.
pub fn plan_text_with(steps: &[Step], memberships: &[MembershipStep]) -> String {
    let mut out = String::new();
    for step in steps {
        match &step.change {
            Change::NoOp => {}
            Change::Create => {
                let why = if step.prior.is_some() {
                    " (it is gone from the cloud)"
                } else {
                    ""
                };
                out.push_str(&format!(
                    "  {} {}: create{why}\n",
                    style("+").green().bold(),
                    step.name
                ));
                if let Some(spec) = &step.desired {
                    for (field, value) in [
                        ("name", spec.name.clone()),
                        ("container_format", Some(spec.container_format.clone())),
                        ("disk_format", Some(spec.disk_format.clone())),
                        ("local_file_path", spec.local_file_path.clone()),
                    ] {
                        if let Some(value) = value {
                            out.push_str(&format!("      {field} = {}\n", json!(value)));
                        }
                    }
                }
            }
            Change::Update(plan) | Change::Replace(plan) => {
                let id = step.prior.as_ref().map(|p| p.id.as_str()).unwrap_or("?");
                out.push_str(&changed(&step.name, id, plan));
            }
            Change::Delete => {
                let id = step.prior.as_ref().map(|p| p.id.as_str()).unwrap_or("?");
                out.push_str(&format!(
                    "  {} {}: delete (id {id}; no longer in the spec)\n",
                    style("-").red().bold(),
                    step.name
                ));
            }
        }
        for deposed in &step.deposed {
            out.push_str(&format!(
                "  {} {}: delete replaced image {}\n",
                style("-").red().bold(),
                step.name,
                deposed.id
            ));
        }
    }
    out.push_str(&membership_plan_text(memberships));
    if steps.iter().any(Step::changes_anything) || memberships.iter().any(MembershipStep::changes_anything) {
        out.push('\n');
    }
    out.push_str(&plan_summary_with(steps, memberships));
    out
}

/// An update's or replacement's lines: the header and one line per changed field.
fn changed(name: &str, id: &str, plan: &crate::bindings::Plan) -> String {
    let (mark, verb) = if plan.action == Action::Replace {
        (style("-/+").red().bold(), "replace")
    } else {
        (style("~").yellow().bold(), "update in place")
    };
    let mut out = format!("  {mark} {name}: {verb} (id {id})\n");
    for c in &plan.changes {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".to_string());
        let forces = if c.forces_replacement {
            style("   # forces replacement").red()
        } else {
            style("")
        };
        out.push_str(&format!(
            "      {}: {} → {}{forces}\n",
            c.field,
            show(&c.old),
            show(&c.new)
        ));
    }
    out
}

/// The memberships' part of the plan, as `plan` and `apply` print it.
pub fn membership_plan_text(steps: &[MembershipStep]) -> String {
    let mut out = String::new();
    for step in steps {
        let id = step.prior.as_ref().map(|p| p.id.as_str()).unwrap_or("?");
        match &step.change {
            Change::NoOp => {}
            Change::Create => {
                let Some(spec) = &step.desired else { continue };
                let member = spec.member_id.as_deref().unwrap_or("this project");
                let what = match (spec.side.as_deref(), spec.status.as_deref()) {
                    (Some("owner"), _) => format!("offer image {} to {member}", spec.image_id),
                    (_, status) => format!(
                        "answer {} for {member} to image {}",
                        status.unwrap_or("?"),
                        spec.image_id
                    ),
                };
                out.push_str(&format!(
                    "  {} {}: {what}\n",
                    style("+").green().bold(),
                    step.name
                ));
            }
            Change::Update(plan) | Change::Replace(plan) => out.push_str(&changed(&step.name, id, plan)),
            Change::Delete => {
                let verb = match step.prior.as_ref().and_then(|p| p.spec.side.as_deref()) {
                    Some("owner") => "withdraw the offer",
                    _ => "reject the offer",
                };
                out.push_str(&format!(
                    "  {} {}: {verb} (id {id}; no longer in the spec)\n",
                    style("-").red().bold(),
                    step.name
                ));
            }
        }
    }
    out
}

/// The plan's closing line: `Plan: … to create, …` or that nothing changes (all `-q` prints).
pub fn plan_summary(steps: &[Step]) -> String {
    plan_summary_with(steps, &[])
}

/// [`plan_summary`] with the memberships' changes counted too.
pub fn plan_summary_with(steps: &[Step], memberships: &[MembershipStep]) -> String {
    let changes = steps
        .iter()
        .map(|s| &s.change)
        .chain(memberships.iter().map(|m| &m.change));
    let (mut create, mut update, mut replace, mut delete) = (0, 0, 0, 0);
    for change in changes {
        match change {
            Change::NoOp => {}
            Change::Create => create += 1,
            Change::Update(_) => update += 1,
            Change::Replace(_) => replace += 1,
            Change::Delete => delete += 1,
        }
    }
    let deposed: usize = steps.iter().map(|s| s.deposed.len()).sum();
    if create + update + replace + delete + deposed == 0 {
        "No changes: the cloud matches the spec.\n".to_string()
    } else {
        format!(
            "Plan: {create} to create, {update} to update in place, {replace} to replace, {} to delete.\n",
            delete + deposed
        )
    }
}

/// The plan as `plan --json` prints it: one entry per image with its action and changes.
pub fn plan_json(steps: &[Step]) -> Value {
    let images: Vec<Value> = steps
        .iter()
        .map(|step| {
            let mut entry = change_json(
                &step.name,
                &step.change,
                step.prior.as_ref().map(|p| p.id.as_str()),
            );
            entry["delete_replaced"] = json!(step.deposed.iter().map(|d| d.id.clone()).collect::<Vec<_>>());
            entry
        })
        .collect();
    let changes_pending = steps.iter().any(Step::changes_anything);
    json!({ "changes_pending": changes_pending, "images": images })
}

/// One step of `plan --json`: its name, action, id and changed fields (values as JSON).
fn change_json(name: &str, change: &Change, id: Option<&str>) -> Value {
    let (action, changes) = match change {
        Change::NoOp => ("no-op", &[][..]),
        Change::Create => ("create", &[][..]),
        Change::Update(plan) => ("update", &plan.changes[..]),
        Change::Replace(plan) => ("replace", &plan.changes[..]),
        Change::Delete => ("delete", &[][..]),
    };
    json!({
        "name": name,
        "action": action,
        "id": id,
        "changes": changes.iter().map(|c| json!({
            "field": c.field,
            "old": c.old.as_deref().and_then(|v| serde_json::from_str::<Value>(v).ok()),
            "new": c.new.as_deref().and_then(|v| serde_json::from_str::<Value>(v).ok()),
            "forces_replacement": c.forces_replacement,
        })).collect::<Vec<_>>(),
    })
}

/// One membership of the state as `show` prints it: its flat state document.
pub fn membership_json(state: &MembershipState) -> Value {
    MembershipDoc::from(state.clone()).to_flat()
}

/// The memberships' part of `plan --json`: one entry per membership, as for images.
pub fn membership_plan_json(steps: &[MembershipStep]) -> Value {
    steps
        .iter()
        .map(|step| {
            change_json(
                &step.name,
                &step.change,
                step.prior.as_ref().map(|p| p.id.as_str()),
            )
        })
        .collect()
}

/// One image of the state as `show` prints it: the flat state document (every input and
/// output, properties and metadata as objects, secrets left out), as the JSON face returns it.
pub fn image_json(state: &ImageState) -> Value {
    ImageDoc::from(state.clone()).to_flat()
}
