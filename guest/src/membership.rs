//! The membership resource's decisions, without I/O: what a valid membership spec is (with its
//! defaults) and what differs between a desired spec and a membership's state.

use openstack_image_documents::spec::{MEMBER_STATUSES, MEMBERSHIP_SIDES, defaults, is_project_id};

use crate::diff::{json, plan_of};
use crate::types::{FieldChange, FieldError, MembershipSpec, MembershipState, Plan};

/// Who acts on a membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The image's owner, which offers the image and withdraws the offer.
    Owner,
    /// The member project, which answers the offer.
    Member,
}

impl Side {
    /// The side a checked spec names.
    pub fn of(spec: &MembershipSpec) -> Side {
        if spec.side.as_deref() == Some("owner") {
            Side::Owner
        } else {
            Side::Member
        }
    }
}

/// Validates a membership spec and fills in its defaults (side `member`; the member side's
/// answer `accepted`). Every problem is reported at once.
pub fn check(mut spec: MembershipSpec) -> Result<MembershipSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut error = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    if spec.image_id.is_empty() {
        error(
            "image_id",
            "is required: the id of the shared image (the owner's `openstack image show` gives it)".into(),
        );
    } else if uuid::Uuid::try_parse(&spec.image_id).is_err() {
        error(
            "image_id",
            format!(
                "'{}' is not a Glance image id (a UUID like 3fa85f64-5717-4562-b3fc-2c963f66afa6)",
                spec.image_id
            ),
        );
    }
    if let Some(member) = &spec.member_id
        && !is_project_id(member)
    {
        error(
            "member_id",
            format!(
                "'{member}' is not a Keystone project id (32 lowercase hex digits, as \
                 `openstack project show -f value -c id NAME` prints it); leave member_id out for \
                 the project you are logged in to"
            ),
        );
    }
    match spec.side.as_deref() {
        None => spec.side = Some(defaults::MEMBERSHIP_SIDE.into()),
        Some(side) if MEMBERSHIP_SIDES.contains(&side) => {}
        Some(side) => error(
            "side",
            format!(
                "'{side}' is not a side; use member (the member project answers the owner's offer) \
                 or owner (the image's owner makes the offer)"
            ),
        ),
    }
    match spec.status.as_deref() {
        None if Side::of(&spec) == Side::Member => spec.status = Some(defaults::MEMBERSHIP_STATUS.into()),
        None => {}
        Some(status) if MEMBER_STATUSES.contains(&status) => {}
        Some(status) => error(
            "status",
            format!(
                "'{status}' is not a member status; use one of: {}",
                MEMBER_STATUSES.join(", ")
            ),
        ),
    }
    if spec.side.as_deref() == Some("owner") && spec.member_id.is_none() {
        error(
            "member_id",
            "is required on the owner side: the project (a Keystone project id) to offer the image to".into(),
        );
    }
    if spec.region.as_deref() == Some("") {
        error("region", "is empty; name a region or leave region out".into());
    }
    if errors.is_empty() { Ok(spec) } else { Err(errors) }
}

/// Compares a checked desired spec with a membership's state: a different image, member,
/// side or region is another membership (replace); a different status is answered in place.
/// What the desired spec leaves out (the member, the region, the owner side's status) is not
/// compared.
pub fn diff(desired: &MembershipSpec, prior: &MembershipState) -> Plan {
    let old = &prior.spec;
    let mut changes = Vec::new();
    let mut field = |name: &str, old: &Option<String>, new: &Option<String>, replace: bool| {
        if new.is_some() && old != new {
            changes.push(FieldChange {
                field: name.into(),
                old: old.as_deref().and_then(json),
                new: new.as_deref().and_then(json),
                forces_replacement: replace,
            });
        }
    };
    field(
        "image_id",
        &Some(old.image_id.clone()),
        &Some(desired.image_id.clone()),
        true,
    );
    field("member_id", &old.member_id, &desired.member_id, true);
    field("side", &old.side, &desired.side, true);
    field("region", &old.region, &desired.region, true);
    field("status", &Some(prior.status.clone()), &desired.status, false);
    plan_of(changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Action;

    const IMAGE: &str = "6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69";
    const PROJECT: &str = "0123456789abcdef0123456789abcdef";

    fn spec() -> MembershipSpec {
        MembershipSpec {
            image_id: IMAGE.into(),
            member_id: None,
            status: None,
            side: None,
            region: None,
        }
    }

    fn fields(result: Result<MembershipSpec, Vec<FieldError>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn the_member_side_accepts_by_default() {
        let checked = check(spec()).unwrap();
        assert_eq!(checked.side.as_deref(), Some("member"));
        assert_eq!(checked.status.as_deref(), Some("accepted"));
        let owner = check(MembershipSpec {
            side: Some("owner".into()),
            member_id: Some(PROJECT.into()),
            ..spec()
        })
        .unwrap();
        assert_eq!(owner.status, None, "the owner leaves the answer to the member");
    }

    #[test]
    fn bad_memberships_name_every_field() {
        let bad = MembershipSpec {
            image_id: "cirros".into(),
            member_id: Some("demo".into()),
            status: Some("maybe".into()),
            side: Some("both".into()),
            region: Some(String::new()),
        };
        assert_eq!(
            fields(check(bad)),
            vec!["image_id", "member_id", "side", "status", "region"]
        );
        let no_member = MembershipSpec {
            side: Some("owner".into()),
            ..spec()
        };
        assert_eq!(fields(check(no_member)), vec!["member_id"]);
        let message = check(MembershipSpec {
            status: Some("maybe".into()),
            ..spec()
        })
        .unwrap_err()[0]
            .message
            .clone();
        assert!(message.contains("pending, accepted, rejected"), "{message}");
    }

    #[test]
    fn status_changes_in_place_and_the_rest_replaces() {
        let applied = check(MembershipSpec {
            member_id: Some(PROJECT.into()),
            ..spec()
        })
        .unwrap();
        let prior = MembershipState {
            id: format!("{IMAGE}/{PROJECT}"),
            spec: applied.clone(),
            status: "accepted".into(),
            created_at: String::new(),
            updated_at: String::new(),
            schema: String::new(),
        };
        // The member left out means the caller's project: what the state holds.
        assert_eq!(diff(&check(spec()).unwrap(), &prior).action, Action::NoOp);
        let rejected = check(MembershipSpec {
            status: Some("rejected".into()),
            ..spec()
        })
        .unwrap();
        let plan = diff(&rejected, &prior);
        assert_eq!(plan.action, Action::Update);
        assert_eq!(plan.changes[0].field, "status");
        assert_eq!(plan.changes[0].old.as_deref(), Some("\"accepted\""));
        // Answered elsewhere: drift, answered again.
        let elsewhere = MembershipState {
            status: "pending".into(),
            ..prior.clone()
        };
        assert_eq!(diff(&applied, &elsewhere).action, Action::Update);
        let other = check(MembershipSpec {
            member_id: Some("f".repeat(32)),
            ..spec()
        })
        .unwrap();
        let plan = diff(&other, &prior);
        assert_eq!(plan.action, Action::Replace);
        assert!(plan.changes[0].forces_replacement);
    }
}
