//! The diff rule for every field: what changes in place, what forces a new image, and what
//! is state-only (source credentials, cache path, checksum verification, timeouts).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use openstack_image_documents::spec::{FALLBACK_UPLOAD, fallback_image_id};

use crate::placement;
use crate::types::{Action, FieldChange, ImageSpec, ImageState, Plan};

/// Compares a validated desired spec with an image's (refreshed) state.
pub fn diff(desired: &ImageSpec, prior: &ImageState) -> Plan {
    let old = &prior.spec;
    let mut changes = Vec::new();
    let mut field = |name: &str, old: Option<String>, new: Option<String>, replace: bool| {
        if old != new {
            changes.push(FieldChange {
                field: name.to_string(),
                old,
                new,
                forces_replacement: replace,
            });
        }
    };

    // Data that cannot change under an existing image id (a deactivated image keeps its
    // data: `deactivated` below changes in place).
    if prior.status != "active" && prior.status != "deactivated" {
        field("status", json(&prior.status), json(&"active"), true);
    }
    field(
        "container_format",
        json(&old.container_format),
        json(&desired.container_format),
        true,
    );
    field(
        "disk_format",
        json(&old.disk_format),
        json(&desired.disk_format),
        true,
    );
    field("region", opt(&old.region), opt(&desired.region), true);
    if let Some(id) = &desired.image_id {
        // An upload fallback's image has the id derived from the one asked for.
        let fell_back = prior
            .import_result
            .as_ref()
            .is_some_and(|r| r.fallback.as_deref() == Some(FALLBACK_UPLOAD))
            && prior.id == fallback_image_id(id);
        let current = if fell_back { id } else { &prior.id };
        field("image_id", json(current), json(id), true);
    }
    // An adopted image's source is unknown: the spec's source is taken to describe it.
    let adopted =
        old.local_file_path.is_none() && old.image_source_url.is_none() && old.source_image_id.is_none();
    if !adopted {
        field(
            "local_file_path",
            opt(&old.local_file_path),
            opt(&desired.local_file_path),
            true,
        );
        field(
            "image_source_url",
            opt(&old.image_source_url),
            opt(&desired.image_source_url),
            true,
        );
        field(
            "decompress",
            opt(&old.decompress.filter(|d| *d)),
            opt(&desired.decompress.filter(|d| *d)),
            true,
        );
        field(
            "web_download",
            opt(&old.web_download.filter(|d| *d)),
            opt(&desired.web_download.filter(|d| *d)),
            true,
        );
        // A change web_download alone explains is shown once, as web_download.
        if old.import_method.is_some() || desired.import_method.is_some() {
            field(
                "import_method",
                json(placement::method(old).name()),
                json(placement::method(desired).name()),
                true,
            );
        }
        field(
            "source_region",
            opt(&old.source_region),
            opt(&desired.source_region),
            true,
        );
        field(
            "source_image_id",
            opt(&old.source_image_id),
            opt(&desired.source_image_id),
            true,
        );
    }
    // Stores change in place; an unset `stores` leaves them as they are.
    if !desired.stores.is_empty() {
        field(
            "stores",
            json(&sorted(&old.stores)),
            json(&sorted(&desired.stores)),
            false,
        );
    }

    // Attributes Glance can change in place. An unset name is not managed.
    if desired.name.is_some() {
        field("name", opt(&old.name), opt(&desired.name), false);
    }
    field(
        "visibility",
        opt(&old.visibility),
        opt(&desired.visibility),
        false,
    );
    field("protected", opt(&old.protected), opt(&desired.protected), false);
    field("hidden", opt(&old.hidden), opt(&desired.hidden), false);
    field(
        "min_disk_gb",
        opt(&old.min_disk_gb),
        opt(&desired.min_disk_gb),
        false,
    );
    field(
        "min_ram_mb",
        opt(&old.min_ram_mb),
        opt(&desired.min_ram_mb),
        false,
    );
    field(
        "tags",
        json(&sorted(&old.tags)),
        json(&sorted(&desired.tags)),
        false,
    );
    field(
        "deactivated",
        json(&old.deactivated.unwrap_or(prior.status == "deactivated")),
        opt(&desired.deactivated),
        false,
    );
    // Members change in place; unset `members` leaves them alone. What the image has is
    // what Glance reported (also when the spec did not manage them before).
    if let Some(members) = &desired.members {
        let held: Vec<String> = prior.member_statuses.iter().map(|(m, _)| m.clone()).collect();
        field("members", json(&sorted(&held)), json(&sorted(members)), false);
    }

    // Only properties the spec names now or managed before (the prior spec holds exactly the
    // managed keys); server-set keys, other tools' keys and an adopted image's unnamed keys
    // are left alone. A named key is compared with what the image holds, so a spec naming a
    // property an adopted image already has plans no change.
    let managed = pairs(&old.properties);
    let held = pairs(&prior.metadata);
    let after = pairs(&desired.properties);
    let keys: BTreeSet<&str> = managed.keys().chain(after.keys()).copied().collect();
    for key in keys {
        let before = held.get(key).or(managed.get(key));
        field(
            &format!("properties.{key}"),
            before.and_then(json),
            after.get(key).and_then(json),
            false,
        );
    }

    plan_of(changes)
}

/// The plan the field changes add up to: a replacement when one forces it, else an update
/// when there are any, else nothing to do.
pub(crate) fn plan_of(changes: Vec<FieldChange>) -> Plan {
    let action = if changes.iter().any(|c| c.forces_replacement) {
        Action::Replace
    } else if changes.is_empty() {
        Action::NoOp
    } else {
        Action::Update
    };
    Plan { action, changes }
}

/// A value as a plan shows it: its JSON text.
pub(crate) fn json<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    Some(serde_json::to_string(value).expect("plain values serialise"))
}

fn opt<T: Serialize>(value: &Option<T>) -> Option<String> {
    value.as_ref().and_then(|v| json(v))
}

fn sorted(tags: &[String]) -> Vec<&str> {
    let mut tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    tags.sort_unstable();
    tags
}

fn pairs(properties: &[(String, String)]) -> BTreeMap<&str, &str> {
    properties.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{check, tests::spec};
    use openstack_image_documents::fixtures;

    pub(crate) fn state_of(spec: &ImageSpec) -> ImageState {
        fixtures::image(spec.clone().into()).into()
    }

    fn changed(plan: &Plan) -> Vec<&str> {
        plan.changes.iter().map(|c| c.field.as_str()).collect()
    }

    #[test]
    fn same_spec_is_no_op() {
        let s = check(spec()).unwrap();
        let plan = diff(&s, &state_of(&s));
        assert_eq!(plan.action, Action::NoOp);
        assert!(plan.changes.is_empty());
    }

    #[test]
    fn disk_format_forces_replacement() {
        let s = check(spec()).unwrap();
        let mut new = s.clone();
        new.disk_format = "raw".into();
        let plan = diff(&new, &state_of(&s));
        assert_eq!(plan.action, Action::Replace);
        assert_eq!(changed(&plan), vec!["disk_format"]);
        assert_eq!(plan.changes[0].old.as_deref(), Some("\"qcow2\""));
        assert!(plan.changes[0].forces_replacement);
    }

    #[test]
    fn in_place_fields_update() {
        let s = check(spec()).unwrap();
        let mut new = s.clone();
        new.name = Some("renamed".into());
        new.tags = vec![];
        new.min_ram_mb = Some(512);
        new.hidden = Some(true);
        let plan = diff(&new, &state_of(&s));
        assert_eq!(plan.action, Action::Update);
        assert_eq!(changed(&plan), vec!["name", "hidden", "min_ram_mb"]);
    }

    #[test]
    fn removing_all_tags_is_a_change() {
        let mut s = spec();
        s.tags = vec!["a".into(), "b".into()];
        let s = check(s).unwrap();
        let mut new = s.clone();
        new.tags.clear();
        let plan = diff(&new, &state_of(&s));
        assert_eq!(changed(&plan), vec!["tags"]);
        assert_eq!(plan.changes[0].new.as_deref(), Some("[]"));
    }

    #[test]
    fn only_managed_properties_are_compared() {
        let mut s = spec();
        s.properties = vec![("os_distro".into(), "cirros".into()), ("old".into(), "1".into())];
        let s = check(s).unwrap();
        let mut state = state_of(&s);
        // Server-set keys live in metadata only: never part of the managed spec.
        state.metadata = vec![
            ("os_hash_algo".into(), "sha512".into()),
            ("stores".into(), "file".into()),
        ];
        let mut new = s.clone();
        new.properties = vec![("new".into(), "2".into()), ("os_distro".into(), "ubuntu".into())];
        let plan = diff(&new, &state);
        assert_eq!(plan.action, Action::Update);
        assert_eq!(
            changed(&plan),
            vec!["properties.new", "properties.old", "properties.os_distro"]
        );
    }

    #[test]
    fn named_properties_an_adopted_image_already_has_are_no_change() {
        let s = check(spec()).unwrap();
        let mut state = state_of(&s);
        // Adopted: nothing managed yet; the image holds a property the spec will name, one
        // with another value, and one the spec never names.
        state.spec.properties.clear();
        state.metadata = vec![
            ("foreign".into(), "x".into()),
            ("os_distro".into(), "cirros".into()),
            ("os_version".into(), "0.5".into()),
        ];
        let mut new = s.clone();
        new.properties = vec![
            ("os_distro".into(), "cirros".into()),
            ("os_version".into(), "0.6".into()),
        ];
        let plan = diff(&new, &state);
        assert_eq!(changed(&plan), vec!["properties.os_version"]);
        assert_eq!(plan.changes[0].old.as_deref(), Some("\"0.5\""));
    }

    #[test]
    fn unset_name_is_not_managed_and_state_only_fields_never_diff() {
        let s = check(spec()).unwrap();
        let mut new = s.clone();
        new.name = None;
        new.verify_checksum = Some(false);
        new.image_cache_path = Some("/tmp/cache".into());
        new.timeouts.create = Some(60);
        assert_eq!(diff(&new, &state_of(&s)).action, Action::NoOp);
    }

    #[test]
    fn an_adopted_image_takes_the_specs_source() {
        let s = check(spec()).unwrap();
        let mut adopted = s.clone();
        adopted.local_file_path = None;
        assert_eq!(diff(&s, &state_of(&adopted)).action, Action::NoOp);
        let mut raw = s.clone();
        raw.disk_format = "raw".into();
        assert_eq!(diff(&raw, &state_of(&adopted)).action, Action::Replace);
    }

    #[test]
    fn broken_image_is_replaced() {
        let s = check(spec()).unwrap();
        let mut state = state_of(&s);
        state.status = "killed".into();
        let plan = diff(&s, &state);
        assert_eq!(plan.action, Action::Replace);
        assert_eq!(changed(&plan), vec!["status"]);
    }

    #[test]
    fn explicit_image_id_must_match() {
        let s = check(spec()).unwrap();
        let mut new = s.clone();
        new.image_id = Some("6f1e0c2e-0000-4000-8000-000000000002".into());
        assert_eq!(diff(&new, &state_of(&s)).action, Action::Replace);
        new.image_id = Some(fixtures::IMAGE_ID.into());
        assert_eq!(diff(&new, &state_of(&s)).action, Action::NoOp);
    }

    #[test]
    fn deactivation_changes_in_place_and_a_deactivated_image_is_not_broken() {
        let s = check(spec()).unwrap();
        let mut prior = state_of(&s);
        prior.status = "deactivated".into();
        prior.spec.deactivated = Some(true);
        let plan = diff(&s, &prior);
        assert_eq!(changed(&plan), ["deactivated"]);
        assert!(matches!(plan.action, Action::Update));
        let mut wanted = s.clone();
        wanted.deactivated = Some(true);
        assert!(matches!(diff(&wanted, &prior).action, Action::NoOp));
    }

    #[test]
    fn members_are_compared_with_what_glance_reports_only_when_managed() {
        const A: &str = "0123456789abcdef0123456789abcdef";
        const B: &str = "fedcba9876543210fedcba9876543210";
        let mut s = spec();
        s.visibility = Some("shared".into());
        let s = check(s).unwrap();
        let mut prior = state_of(&s);
        prior.member_statuses = vec![(A.into(), "accepted".into())];
        // Unset: left alone.
        assert!(matches!(diff(&s, &prior).action, Action::NoOp));
        let mut wanted = s.clone();
        wanted.members = Some(vec![B.into(), A.into()]);
        let plan = diff(&wanted, &prior);
        assert_eq!(changed(&plan), ["members"]);
        assert_eq!(
            plan.changes[0].new.as_deref(),
            Some(format!("[\"{A}\",\"{B}\"]").as_str())
        );
        assert!(matches!(plan.action, Action::Update));
        wanted.members = Some(Vec::new());
        assert_eq!(diff(&wanted, &prior).changes[0].new.as_deref(), Some("[]"));
        wanted.members = Some(vec![A.into()]);
        assert!(matches!(diff(&wanted, &prior).action, Action::NoOp));
    }
}
