//! Checks and diffs: `check` never panics and is idempotent; a spec compared with a state
//! holding the same spec has nothing to change; every diff names real changes.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use openstack_image_fuzz::{Spec, state};
use openstack_image_guest::types::Action;
use openstack_image_guest::{diff, validate};

#[derive(Debug, Arbitrary)]
struct Input {
    desired: Spec,
    prior: Spec,
    active: bool,
}

fuzz_target!(|input: Input| {
    let desired = input.desired.to_spec();
    let prior = input.prior.to_spec();
    if let Ok(checked) = validate::check(desired.clone()) {
        assert_eq!(
            validate::check(checked.clone()).as_ref(),
            Ok(&checked),
            "check is idempotent"
        );
        let same = diff::diff(&checked, &state(checked.clone(), "active"));
        assert_eq!(same.action, Action::NoOp, "{:?}", same.changes);
        let plan = diff::diff(
            &checked,
            &state(prior, if input.active { "active" } else { "queued" }),
        );
        for change in &plan.changes {
            assert_ne!(
                change.old, change.new,
                "a change that changes nothing: {change:?}"
            );
        }
        assert_eq!(
            plan.action == Action::NoOp,
            plan.changes.is_empty(),
            "the action agrees with the changes"
        );
    }
});
