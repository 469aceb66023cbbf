//! The spec file's `memberships`: one project's membership of a shared image each, planned
//! and applied beside the images (after them: an offer needs its image shared; destroyed
//! before them). Memberships are quick metadata calls, so they are worked one after another
//! in the run's first instance; the state file records each change as it is made.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, anyhow};
use openstack_image_documents::MembershipDoc;

use crate::bindings::{Action, Cloud, GuestError, MembershipSpec, MembershipState};
use crate::engine::{check_each, targeted};
use crate::exit::{CloudError, Outcome};
use crate::plan::{Change, MembershipStep};
use crate::report::{self, Narrator};
use crate::runtime::{CallResult, Instance};
use crate::say;
use crate::state::{Ledger, State};

/// Turns a membership call's outcome into a message naming the membership.
fn named<T>(name: &str, result: CallResult<T>) -> Result<T> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err @ GuestError::InvalidSpec(_))) => {
            Err(anyhow!(report::guest_error_of("membership", name, &err)))
        }
        Ok(Err(err)) => Err(anyhow::Error::new(CloudError(report::guest_error_of(
            "membership",
            name,
            &err,
        )))),
        Err(err) => Err(anyhow!("membership '{name}': {err:#}")),
    }
}

/// Validates every membership of the spec; reports all problems at once, before any cloud
/// call.
pub async fn check_all(
    instance: &mut Instance,
    memberships: &BTreeMap<String, MembershipSpec>,
) -> Result<BTreeMap<String, MembershipSpec>> {
    check_each(memberships, named, async |spec| {
        instance.check_membership(spec).await
    })
    .await
}

/// Reads every recorded membership and decides what each needs.
pub async fn plan(
    instance: &mut Instance,
    cloud: &Cloud,
    desired: &BTreeMap<String, MembershipSpec>,
    state: &State,
    targets: &[String],
) -> Result<Vec<MembershipStep>> {
    let names: BTreeSet<&String> = desired
        .keys()
        .chain(state.memberships.keys())
        .filter(|n| targeted(targets, n))
        .collect();
    let mut steps = Vec::new();
    for name in names {
        let recorded = state.memberships.get(name).cloned().map(MembershipState::from);
        let prior = match &recorded {
            Some(recorded) => named(name, instance.read_membership(cloud, &recorded.spec).await)?,
            None => None,
        };
        let spec = desired.get(name).cloned();
        let change = match (&spec, &prior) {
            (Some(_), None) => Change::Create,
            (Some(spec), Some(prior)) => {
                let plan = named(name, instance.diff_membership(spec, prior).await)?;
                match plan.action {
                    Action::NoOp => Change::NoOp,
                    Action::Update => Change::Update(plan),
                    Action::Replace => Change::Replace(plan),
                }
            }
            (None, _) => Change::Delete,
        };
        steps.push(MembershipStep {
            name: name.clone(),
            change,
            desired: spec,
            prior: prior.or(recorded),
        });
    }
    Ok(steps)
}

/// Carries out the membership steps one by one; one failure does not stop the others.
pub async fn apply(
    instance: &mut Instance,
    cloud: &Cloud,
    steps: Vec<MembershipStep>,
    ledger: &Ledger,
    narrator: Narrator,
    outcome: &mut Outcome,
) {
    for step in steps.into_iter().filter(MembershipStep::changes_anything) {
        let name = step.name.clone();
        let result = apply_step(instance, cloud, step, ledger, narrator).await;
        outcome.record(name, &result);
    }
}

async fn apply_step(
    instance: &mut Instance,
    cloud: &Cloud,
    step: MembershipStep,
    ledger: &Ledger,
    narrator: Narrator,
) -> Result<()> {
    let name = &step.name;
    let gone_from_cloud = matches!(step.change, Change::Create) && step.prior.is_some();
    if let (Change::Replace(_) | Change::Delete, Some(prior)) = (&step.change, &step.prior)
        && !gone_from_cloud
    {
        named(name, instance.delete_membership(cloud, prior).await)?;
        forget(ledger, name)?;
        if matches!(step.change, Change::Delete) {
            say!(narrator, "{name}: membership {} ended", prior.id);
            return Ok(());
        }
    }
    let Some(desired) = &step.desired else {
        return forget(ledger, name);
    };
    let state = match (&step.change, &step.prior) {
        (Change::Update(_), Some(prior)) => {
            named(name, instance.update_membership(cloud, prior, desired).await)?
        }
        _ => named(name, instance.create_membership(cloud, desired).await)?,
    };
    say!(narrator, "{name}: membership {} is {}", state.id, state.status);
    ledger.update(|s| {
        s.memberships.insert(name.clone(), MembershipDoc::from(state));
    })
}

/// The recorded memberships (`targets`' only, when given), by name.
fn recorded(ledger: &Ledger, targets: &[String]) -> Vec<(String, MembershipDoc)> {
    ledger.read(|s| {
        s.memberships
            .iter()
            .filter(|(name, _)| targeted(targets, name))
            .map(|(n, m)| (n.clone(), m.clone()))
            .collect()
    })
}

fn forget(ledger: &Ledger, name: &str) -> Result<()> {
    ledger.update(|s| {
        s.memberships.remove(name);
    })
}

/// Ends every recorded membership (`targets`' only, when given): the owner's offers are
/// withdrawn, the member's answers become `rejected`.
pub async fn destroy(
    instance: &mut Instance,
    cloud: &Cloud,
    ledger: &Ledger,
    targets: &[String],
    narrator: Narrator,
    outcome: &mut Outcome,
) {
    for (name, doc) in recorded(ledger, targets) {
        let prior = MembershipState::from(doc);
        let result = async {
            named(&name, instance.delete_membership(cloud, &prior).await)?;
            say!(narrator, "{name}: membership {} ended", prior.id);
            forget(ledger, &name)
        }
        .await;
        outcome.record(name, &result);
    }
}

/// Re-reads every recorded membership (`targets`' only, when given) and records it as the
/// cloud has it; one that is gone leaves the state.
pub async fn refresh(
    instance: &mut Instance,
    cloud: &Cloud,
    ledger: &Ledger,
    targets: &[String],
    narrator: Narrator,
) -> Result<()> {
    for (name, doc) in recorded(ledger, targets) {
        let spec = MembershipState::from(doc).spec;
        match named(&name, instance.read_membership(cloud, &spec).await)? {
            Some(state) => ledger.update(|s| {
                s.memberships.insert(name.clone(), MembershipDoc::from(state));
            })?,
            None => {
                say!(narrator, "{name}: the membership is gone; removed from the state");
                forget(ledger, &name)?;
            }
        }
    }
    Ok(())
}
