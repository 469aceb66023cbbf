//! The membership resource's cloud calls: one project's membership of a shared image, offered
//! by the image's owner (`side: owner`) and answered by the member project (`side: member`),
//! through Glance's `/v2/images/{id}/members` API. Glance's 403s become errors that say
//! which side must act.

use super::*;
use crate::membership::{self, Side};
use crate::types::{MembershipSpec, MembershipState};

/// Membership requests are quick metadata calls.
const MEMBERSHIP_TIMEOUT: u64 = 2 * 60;

impl<T: Transport> Provider<T> {
    /// `membership.check-membership`.
    pub fn check_membership(&mut self, spec: MembershipSpec) -> Result<MembershipSpec, Error> {
        membership::check(spec).map_err(Error::InvalidSpec)
    }

    /// `membership.diff-membership`.
    pub fn diff_membership(
        &mut self,
        desired: MembershipSpec,
        prior: &MembershipState,
    ) -> Result<Plan, Error> {
        let desired = self.check_membership(desired)?;
        Ok(membership::diff(&desired, prior))
    }

    /// `membership.create-membership`: the owner offers the image (and sets the status, as an
    /// admin may); the member answers an offer that must exist.
    pub fn create_membership(
        &mut self,
        cloud: &Cloud,
        spec: MembershipSpec,
    ) -> Result<MembershipState, Error> {
        let mut spec = self.check_membership(spec)?;
        let mut op = self.begin(cloud, spec.region.as_deref(), "create", MEMBERSHIP_TIMEOUT)?;
        let member = self.member_of(&mut op, &spec)?;
        spec.member_id = Some(member.clone());
        let image = spec.image_id.clone();
        if Side::of(&spec) == Side::Owner {
            let url = op.url(&format!("/images/{image}/members"));
            let response = self.call(&mut op, "POST", &url, Some(json!({ "member": member })))?;
            match response.status {
                // 409: offered already (by another run or tool), which is what was wanted.
                200 | 409 => {}
                404 => return Err(image_not_found(&image, &response)),
                403 => return Err(owner_must_act(&image, &member, "offer the image to", &response)),
                _ => return Err(status_error("POST", &url, &response)),
            }
        }
        if let Some(status) = spec.status.clone() {
            self.answer(&mut op, &image, &member, &status)?;
        }
        self.membership(&mut op, &spec)?.ok_or_else(|| {
            Error::NotFound(format!(
                "the membership of project {member} in image {image} was gone right after it was made"
            ))
        })
    }

    /// `membership.read-membership`: `None` when the image or the membership is gone.
    pub fn read_membership(
        &mut self,
        cloud: &Cloud,
        spec: MembershipSpec,
    ) -> Result<Option<MembershipState>, Error> {
        // The ids become URL paths: checked first.
        let mut spec = self.check_membership(spec)?;
        let mut op = self.begin(cloud, spec.region.as_deref(), "read", READ_TIMEOUT)?;
        if spec.member_id.is_none() {
            spec.member_id = Some(self.member_of(&mut op, &spec)?);
        }
        self.membership(&mut op, &spec)
    }

    /// `membership.update-membership`: answers again when the status differs.
    pub fn update_membership(
        &mut self,
        cloud: &Cloud,
        prior: &MembershipState,
        desired: MembershipSpec,
    ) -> Result<MembershipState, Error> {
        let mut desired = self.check_membership(desired)?;
        let mut op = self.begin(cloud, desired.region.as_deref(), "update", MEMBERSHIP_TIMEOUT)?;
        let prior_spec = self.check_membership(prior.spec.clone())?;
        let member = match (&desired.member_id, &prior_spec.member_id) {
            (Some(member), _) | (None, Some(member)) => member.clone(),
            (None, None) => self.member_of(&mut op, &desired)?,
        };
        desired.member_id = Some(member.clone());
        let image = desired.image_id.clone();
        let current = self
            .membership(&mut op, &desired)?
            .ok_or_else(|| gone(&image, &member))?;
        match &desired.status {
            Some(status) if *status != current.status => {
                self.answer(&mut op, &image, &member, status)?;
                self.membership(&mut op, &desired)?
                    .ok_or_else(|| gone(&image, &member))
            }
            _ => Ok(current),
        }
    }

    /// `membership.delete-membership`: the owner withdraws the offer, the member rejects it.
    /// A membership already gone counts as done.
    pub fn delete_membership(&mut self, cloud: &Cloud, prior: &MembershipState) -> Result<(), Error> {
        // The ids become URL paths: checked first.
        let spec = &self.check_membership(prior.spec.clone())?;
        let mut op = self.begin(cloud, spec.region.as_deref(), "delete", MEMBERSHIP_TIMEOUT)?;
        let image = &spec.image_id;
        let Some(member) = spec.member_id.clone() else {
            return Err(invalid(
                "member_id",
                format!("the state of membership {} names no member", prior.id),
            ));
        };
        if Side::of(spec) == Side::Member {
            return match self.answer(&mut op, image, &member, "rejected") {
                Err(Error::NotFound(_)) => Ok(()),
                other => other,
            };
        }
        let url = op.url(&format!("/images/{image}/members/{member}"));
        let response = self.call(&mut op, "DELETE", &url, None)?;
        match response.status {
            204 | 404 => Ok(()),
            403 => Err(owner_must_act(image, &member, "withdraw the offer of", &response)),
            _ => Err(status_error("DELETE", &url, &response)),
        }
    }

    /// Sets the member's answer (`PUT …/members/{member}`).
    fn answer(&mut self, op: &mut Op, image: &str, member: &str, status: &str) -> Result<(), Error> {
        let url = op.url(&format!("/images/{image}/members/{member}"));
        let response = self.call(op, "PUT", &url, Some(json!({ "status": status })))?;
        match response.status {
            200 => Ok(()),
            404 => Err(Error::NotFound(format!(
                "image {image} has not been offered to project {member} (or is gone, or not visible \
                 to this project): its owner must offer it first (`members` in the image's spec, a \
                 membership with side owner, or openstack_images_image_access_v2). Glance said: {}",
                response.message()
            ))),
            403 => Err(Error::Forbidden(format!(
                "Glance refused to set the status of project {member} in image {image} to {status} \
                 (403): only the member project answers an offer (an admin may too). Log in to \
                 project {member} and answer with a membership of side member \
                 (openstack_images_image_access_accept_v2 in Terraform), or leave status out on the \
                 owner's side. Glance said: {}",
                response.message()
            ))),
            _ => Err(status_error("PUT", &url, &response)),
        }
    }

    /// The membership `spec` names (its member id filled in), as Glance has it.
    fn membership(&mut self, op: &mut Op, spec: &MembershipSpec) -> Result<Option<MembershipState>, Error> {
        let image = &spec.image_id;
        let member = spec.member_id.clone().unwrap_or_default();
        let url = op.url(&format!("/images/{image}/members/{member}"));
        let response = self.call(op, "GET", &url, None)?;
        match response.status {
            200 => {}
            404 => return Ok(None),
            403 => {
                return Err(Error::Forbidden(format!(
                    "Glance refused to show the membership of project {member} in image {image} \
                     (403): only the image's owner and the member project see it; log in to one of \
                     them. Glance said: {}",
                    response.message()
                )));
            }
            _ => return Err(status_error("GET", &url, &response)),
        }
        let body = response.json().map_err(Error::Transport)?;
        let text = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let status = text("status");
        let mut spec = spec.clone();
        spec.status = Some(status.clone());
        Ok(Some(MembershipState {
            id: format!("{image}/{member}"),
            spec,
            status,
            created_at: text("created_at"),
            updated_at: text("updated_at"),
            schema: text("schema"),
        }))
    }

    /// The member project a spec means: its `member_id`, else the project of the session
    /// (or the cloud's scope), else — for a session that does not say — the one membership
    /// Glance shows this project (a member sees only its own).
    fn member_of(&mut self, op: &mut Op, spec: &MembershipSpec) -> Result<String, Error> {
        if let Some(member) = &spec.member_id {
            return Ok(member.clone());
        }
        let session = self
            .sessions
            .get(&op.session_key)
            .and_then(|s| s.project_id.clone());
        if let Some(project) = session.or_else(|| op.cloud.scope.project_id.clone()) {
            return Ok(project);
        }
        let image = &spec.image_id;
        let url = op.url(&format!("/images/{image}/members"));
        let response = self.call(op, "GET", &url, None)?;
        if response.status == 404 {
            return Err(image_not_found(image, &response));
        }
        expect(&response, "GET", &url, &[200])?;
        let body = response.json().map_err(Error::Transport)?;
        let members: Vec<&str> = body
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| m.get("member_id").and_then(Value::as_str))
            .collect();
        match members.as_slice() {
            [one] => Ok(one.to_string()),
            _ => Err(invalid(
                "member_id",
                format!(
                    "the session does not say which project it is scoped to and image {image} has {} \
                     memberships visible to it; set member_id",
                    members.len()
                ),
            )),
        }
    }
}

fn image_not_found(image: &str, response: &Response) -> Error {
    Error::NotFound(format!(
        "image {image} does not exist or is not visible to this project. Glance said: {}",
        response.message()
    ))
}

fn gone(image: &str, member: &str) -> Error {
    Error::NotFound(format!(
        "project {member} is no longer a member of image {image} (the owner withdrew the offer, or \
         the image is gone)"
    ))
}

/// Glance's 403 for a change only the image's owner makes.
fn owner_must_act(image: &str, member: &str, verb: &str, response: &Response) -> Error {
    Error::Forbidden(format!(
        "Glance refused to {verb} project {member} in image {image} (403): only the project that \
         owns the image offers it and withdraws the offer, and only while its visibility is \
         `shared`. Log in to the owner's project (or set visibility: shared on the image); the \
         member project answers with a membership of side member. Glance said: {}",
        response.message()
    ))
}
