//! What an image publisher does besides uploading: members (the projects a shared image is
//! offered to), deactivation, and the check of properties against the cloud's own metadata
//! definitions.

use super::*;
use crate::metadefs::{Definitions, RESOURCE_TYPE};

/// The metadefs reads and the member and action calls are quick metadata requests.
const METADATA_TIMEOUT: u64 = 2 * 60;

impl<T: Transport> Provider<T> {
    /// `lifecycle.check-with-cloud`: the spec's properties against the cloud's metadata
    /// definitions for images (read once per instance and endpoint). A spec without
    /// properties needs no request.
    pub fn check_with_cloud(&mut self, cloud: &Cloud, spec: &ImageSpec) -> Result<(), Error> {
        if spec.properties.is_empty() {
            return Ok(());
        }
        let mut op = self.begin(cloud, spec.region.as_deref(), "check", METADATA_TIMEOUT)?;
        if !self.metadefs.contains_key(&op.endpoint) {
            let definitions = self.read_metadefs(&mut op)?;
            self.metadefs.insert(op.endpoint.clone(), definitions);
        }
        let errors = self.metadefs[&op.endpoint].check(&spec.properties);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidSpec(errors))
        }
    }

    /// Every namespace that defines image properties, read whole. A cloud without metadefs
    /// (404, or none for images) defines nothing, so nothing is checked.
    fn read_metadefs(&mut self, op: &mut Op) -> Result<Definitions, Error> {
        let url = op.url(&format!(
            "/metadefs/namespaces?resource_types={RESOURCE_TYPE}&limit=1000"
        ));
        let response = self.call(op, "GET", &url, None)?;
        if response.status == 404 {
            progress::debug(format!(
                "{}: the cloud has no metadata definitions (404); properties are not checked",
                op.endpoint
            ));
            return Ok(Definitions::default());
        }
        expect(&response, "GET", &url, &[200])?;
        let listed = response.json().map_err(Error::Transport)?;
        let mut documents = Vec::new();
        for namespace in listed
            .get("namespaces")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = namespace.get("namespace").and_then(Value::as_str) else {
                continue;
            };
            let url = namespace_url(&op.url("/metadefs/namespaces"), name)?;
            let response = self.call(op, "GET", &url, None)?;
            // A namespace deleted between the two reads defines nothing.
            if response.status == 404 {
                continue;
            }
            expect(&response, "GET", &url, &[200])?;
            documents.push((
                Definitions::prefix_of(namespace),
                response.json().map_err(Error::Transport)?,
            ));
        }
        let definitions =
            Definitions::from_namespaces(documents.iter().map(|(prefix, doc)| (prefix.as_str(), doc)));
        if definitions.is_empty() {
            progress::debug(format!(
                "{}: the cloud defines no image properties; properties are not checked",
                op.endpoint
            ));
        } else {
            progress::debug(format!(
                "{}: {} image properties defined in {} namespaces",
                op.endpoint,
                definitions.len(),
                documents.len()
            ));
        }
        Ok(definitions)
    }

    /// The members of a shared image and their statuses, sorted by project id.
    pub(super) fn members(&mut self, op: &mut Op, id: &str) -> Result<Vec<(String, String)>, Error> {
        let url = op.url(&format!("/images/{id}/members"));
        let response = self.call(op, "GET", &url, None)?;
        expect(&response, "GET", &url, &[200])?;
        let body = response.json().map_err(Error::Transport)?;
        let mut members: Vec<(String, String)> = body
            .get("members")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|m| {
                let id = m.get("member_id").and_then(Value::as_str)?;
                let status = m.get("status").and_then(Value::as_str).unwrap_or("pending");
                Some((id.to_string(), status.to_string()))
            })
            .collect();
        members.sort();
        Ok(members)
    }

    /// Adds and removes members so that the image is shared with exactly `desired`.
    pub(super) fn set_members(
        &mut self,
        op: &mut Op,
        id: &str,
        current: &[(String, String)],
        desired: &[String],
    ) -> Result<(), Error> {
        for (member, _) in current.iter().filter(|(m, _)| !desired.contains(m)) {
            let url = op.url(&format!("/images/{id}/members/{member}"));
            let response = self.call(op, "DELETE", &url, None)?;
            match response.status {
                204 | 404 => {}
                403 => return Err(owner_only(id, "remove", member, &response)),
                _ => return Err(status_error("DELETE", &url, &response)),
            }
        }
        for member in desired.iter().filter(|m| !current.iter().any(|(c, _)| c == *m)) {
            let url = op.url(&format!("/images/{id}/members"));
            let response = self.call(op, "POST", &url, Some(json!({"member": member})))?;
            match response.status {
                200 => {}
                // Added meanwhile (by another run or tool): what was wanted.
                409 => {}
                403 => return Err(owner_only(id, "add", member, &response)),
                _ => return Err(status_error("POST", &url, &response)),
            }
        }
        Ok(())
    }

    /// What a new image gets once its data is in place, before it is protected (so a failure
    /// leaves an image the create can still delete): its members, then deactivation.
    pub(super) fn publish(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        id: &str,
        image: Value,
    ) -> Result<Value, Error> {
        if let Some(members) = spec.members.as_ref().filter(|m| !m.is_empty()) {
            self.set_members(op, id, &[], members)?;
        }
        if spec.deactivated != Some(true) {
            return Ok(image);
        }
        self.set_deactivated(op, id, true)?;
        op.last_status = "deactivated".into();
        let url = op.url(&format!("/images/{id}"));
        let response = self.call(op, "GET", &url, None)?;
        expect(&response, "GET", &url, &[200])?;
        response.json().map_err(Error::Transport)
    }

    /// The state with the image's members as Glance has them: their statuses always (for a
    /// shared image), and the spec's `members` when the spec manages them (`manage`).
    pub(super) fn with_members(
        &mut self,
        op: &mut Op,
        mut state: ImageState,
        manage: bool,
    ) -> Result<ImageState, Error> {
        let members = if state.spec.visibility.as_deref() == Some("shared") {
            self.members(op, &state.id)?
        } else {
            Vec::new()
        };
        if manage {
            state.spec.members = Some(members.iter().map(|(m, _)| m.clone()).collect());
        }
        state.member_statuses = members;
        Ok(state)
    }

    /// Deactivates or reactivates an image (Glance's actions; 204).
    pub(super) fn set_deactivated(&mut self, op: &mut Op, id: &str, deactivated: bool) -> Result<(), Error> {
        let action = if deactivated { "deactivate" } else { "reactivate" };
        let url = op.url(&format!("/images/{id}/actions/{action}"));
        let response = self.call(op, "POST", &url, None)?;
        match response.status {
            204 => Ok(()),
            403 => Err(Error::Forbidden(format!(
                "Glance refused to {action} image {id} (403): the cloud's policy `{action}` keeps it \
                 for other roles (Glance's default allows the image's project with the `member` role, \
                 or `admin`); ask an operator for the role, or leave `deactivated` as it is. \
                 Glance said: {}",
                response.message()
            ))),
            _ => Err(status_error("POST", &url, &response)),
        }
    }
}

fn owner_only(id: &str, verb: &str, member: &str, response: &Response) -> Error {
    Error::Forbidden(format!(
        "Glance refused to {verb} member {member} of image {id} (403): only the project that owns a \
         shared image adds or removes its members (a member project accepts or rejects the offer \
         with its own membership resource). Glance said: {}",
        response.message()
    ))
}

/// The URL of namespace `name` below `namespaces`, the name as one path segment (names hold
/// `:`, and may hold anything else too).
fn namespace_url(namespaces: &str, name: &str) -> Result<String, Error> {
    let mut url = url::Url::parse(namespaces).map_err(|e| Error::Transport(format!("{namespaces}: {e}")))?;
    url.path_segments_mut()
        .map_err(|()| Error::Transport(format!("{namespaces} cannot hold a path")))?
        .push(name);
    Ok(url.into())
}

#[cfg(test)]
mod tests {
    use super::namespace_url;

    #[test]
    fn a_namespace_name_is_one_path_segment() {
        let base = "http://glance.test:9292/v2/metadefs/namespaces";
        assert_eq!(
            namespace_url(base, "OS::Compute::LibvirtImage").unwrap(),
            format!("{base}/OS::Compute::LibvirtImage")
        );
        assert_eq!(
            namespace_url(base, "a/b c?").unwrap(),
            format!("{base}/a%2Fb%20c%3F")
        );
    }
}
