//! The membership resource's JSON face (`check-membership-json` … `delete-membership-json`):
//! its documents (`MembershipSpecDoc`, the flat `MembershipDoc`) onto the typed records, then
//! the same [`Provider`] methods the typed `membership` interface calls.

use openstack_image_documents::{MembershipDoc, MembershipSpecDoc};
use serde_json::{Value, json};

use super::{Failure, Request, fields_of, plan_doc, run};
use crate::http::Transport;
use crate::lifecycle::Provider;
use crate::types::{MembershipSpec, MembershipState};

/// `check-membership-json`: `{"spec": MSPEC}` -> `{"spec": MSPEC}` with defaults filled in.
pub fn check_membership<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let spec = membership_spec(&mut doc)?;
        let checked = provider.check_membership(spec).map_err(Failure::Typed)?;
        Ok(json!({ "spec": MembershipSpecDoc::from(checked) }))
    })
}

/// `diff-membership-json`: `{"spec": MSPEC, "state": MSTATE}` -> the plan.
pub fn diff_membership<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let spec = membership_spec(&mut doc)?;
        let state = membership_state(&mut doc)?;
        let plan = provider.diff_membership(spec, &state).map_err(Failure::Typed)?;
        // A membership is offered or answered again; there is nothing of it to keep apart.
        Ok(plan_doc(&plan, true))
    })
}

/// `create-membership-json`: `{"cloud": CLOUD, "spec": MSPEC}` -> MSTATE.
pub fn create_membership<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let spec = membership_spec(&mut doc)?;
        let state = provider.create_membership(&cloud, spec).map_err(Failure::Typed)?;
        Ok(MembershipDoc::from(state).to_flat())
    })
}

/// `read-membership-json`: `{"cloud": CLOUD, "spec": MSPEC}` (or an `id`,
/// `IMAGE_ID/MEMBER_ID` or `IMAGE_ID`, standing in for its image and member) -> MSTATE or
/// `null`.
pub fn read_membership<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let id: Option<String> = doc.field("id")?;
        let mut spec: MembershipSpecDoc = match doc.take("spec") {
            Some(value) => fields_of("spec", value, "")?,
            None => MembershipSpecDoc::default(),
        };
        if let Some(id) = id {
            let (image, member) = match id.split_once('/') {
                Some((image, member)) => (image, Some(member)),
                None => (id.as_str(), None),
            };
            spec.image_id = Some(image.to_string());
            if let Some(member) = member {
                spec.member_id = Some(member.to_string());
            }
        }
        if spec.image_id.is_none() {
            return Err(Failure::Request(
                "the request has no `spec` and no `id`; give the membership's spec, or its id IMAGE_ID/MEMBER_ID"
                    .into(),
            ));
        }
        let state = provider
            .read_membership(&cloud, spec.into())
            .map_err(Failure::Typed)?;
        Ok(state
            .map(|state| MembershipDoc::from(state).to_flat())
            .unwrap_or(Value::Null))
    })
}

/// `update-membership-json`: `{"cloud": CLOUD, "state": MSTATE, "spec": MSPEC}` -> MSTATE.
pub fn update_membership<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let prior = membership_state(&mut doc)?;
        let spec = membership_spec(&mut doc)?;
        let state = provider
            .update_membership(&cloud, &prior, spec)
            .map_err(Failure::Typed)?;
        Ok(MembershipDoc::from(state).to_flat())
    })
}

/// `delete-membership-json`: `{"cloud": CLOUD, "state": MSTATE}` -> `{"id", "deleted": true}`.
pub fn delete_membership<T: Transport>(provider: &mut Provider<T>, request: &str) -> Result<String, String> {
    run(|| {
        let mut doc = Request::parse(request)?;
        let cloud = doc.cloud()?;
        let prior = membership_state(&mut doc)?;
        provider
            .delete_membership(&cloud, &prior)
            .map_err(Failure::Typed)?;
        Ok(json!({ "id": prior.id, "deleted": true }))
    })
}

fn membership_spec(doc: &mut Request) -> Result<MembershipSpec, Failure> {
    let value = doc.take("spec").ok_or_else(|| {
        Failure::Request(
            "the request has no `spec`; give the membership's inputs, e.g. {\"spec\": {\"image_id\": \"…\", \"status\": \"accepted\"}}"
                .into(),
        )
    })?;
    let spec: MembershipSpecDoc = fields_of("spec", value, "")?;
    Ok(spec.into())
}

/// Reads a membership's flat state; a bad field is an `invalid-spec` error naming `state.FIELD`.
fn membership_state(doc: &mut Request) -> Result<MembershipState, Failure> {
    let value = doc.take("state").ok_or_else(|| {
        Failure::Request(
            "the request has no `state`; give the membership's state as create/read/update returned it"
                .into(),
        )
    })?;
    let state = MembershipDoc::from_flat(value).map_err(super::state_failure)?;
    Ok(state.into())
}
