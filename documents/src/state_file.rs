//! The state file's own, versioned types: what the `openstack-image` host records, by logical
//! name. The images are [`ImageDoc`](crate::ImageDoc)s, so the file changes only when the
//! documents do, never because a WIT record changed.
//!
//! Versions:
//! - 1: written by releases before the documents existed: each image was the WIT
//!   `image-state` record as serde wrote it (`spec` nested, `properties` and `metadata` as
//!   `[key, value]` lists, `source_fingerprint.mtime_ns` a number). Read by upgrading to 2.
//! - 2: each image is an `ImageDoc` (`properties` and `metadata` objects, `mtime_ns` decimal
//!   text, no secrets).
//! - 3: `stores` is an input: a list in the image's `spec` (was Glance's comma-separated
//!   text beside it); `all_stores_must_succeed` is recorded (true for older images). Later
//!   additions that older files simply lack (`memberships`) keep the version.
//!
//! A file without `version` was not written by this tool and is refused. A change that old
//! files cannot be read as adds a version and a step to [`upgrade`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The state format this build writes.
pub const STATE_VERSION: u32 = 3;
/// The oldest state format this build reads (upgraded on reading).
pub const OLDEST_STATE_VERSION: u32 = 1;

/// The whole state file, with images of type `I` (`ImageDoc` on disk; a runtime may keep its
/// own typed records in memory, see [`StateFile::map`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile<I> {
    pub version: u32,
    #[serde(default)]
    pub images: BTreeMap<String, Entry<I>>,
    /// Creates in progress: the image id is recorded before Glance hears of it, so an
    /// apply that is killed midway leaves nothing the next run cannot find.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub creating: BTreeMap<String, DeposedImage>,
    /// Memberships of shared images (the spec file's `memberships`), by logical name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub memberships: BTreeMap<String, crate::MembershipDoc>,
}

/// One managed image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry<I> {
    pub image: I,
    /// Images this one replaced whose deletion has not succeeded yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposed: Vec<DeposedImage>,
}

/// An image known by id and region only: one replaced and still to delete, or one being created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeposedImage {
    pub id: String,
    pub region: Option<String>,
}

impl<I> StateFile<I> {
    /// An empty state of the current version.
    pub fn empty() -> Self {
        StateFile {
            version: STATE_VERSION,
            images: BTreeMap::new(),
            creating: BTreeMap::new(),
            memberships: BTreeMap::new(),
        }
    }

    /// The same state with every image converted by `f`.
    pub fn map<J>(self, mut f: impl FnMut(I) -> J) -> StateFile<J> {
        StateFile {
            version: self.version,
            images: self
                .images
                .into_iter()
                .map(|(name, entry)| {
                    let image = f(entry.image);
                    (
                        name,
                        Entry {
                            image,
                            deposed: entry.deposed,
                        },
                    )
                })
                .collect(),
            creating: self.creating,
            memberships: self.memberships,
        }
    }
}

/// What is wrong with a state file's `version`.
#[derive(Debug, Clone, PartialEq)]
pub enum VersionProblem {
    /// There is none.
    Missing,
    /// It is not a whole number.
    NotANumber(Value),
    /// A number this build does not read.
    Unknown(u64),
}

/// The format version of a state file's JSON object.
pub fn version_of(file: &Map<String, Value>) -> Result<u32, VersionProblem> {
    match file.get("version") {
        None => Err(VersionProblem::Missing),
        Some(v) => match v.as_u64() {
            None => Err(VersionProblem::NotANumber(v.clone())),
            Some(n) => match u32::try_from(n) {
                Ok(n) if (OLDEST_STATE_VERSION..=STATE_VERSION).contains(&n) => Ok(n),
                _ => Err(VersionProblem::Unknown(n)),
            },
        },
    }
}

/// Rewrites a state file's JSON object of a version this build reads as the current version.
/// Parts that are not as the old version wrote them are left for the reader to name.
pub fn upgrade(file: &mut Map<String, Value>) -> Result<(), VersionProblem> {
    let from = version_of(file)?;
    if from < 2
        && let Some(Value::Object(images)) = file.get_mut("images")
    {
        for entry in images.values_mut() {
            let Some(image) = entry.get_mut("image") else {
                continue;
            };
            if let Some(properties) = image.pointer_mut("/spec/properties") {
                pairs_to_object(properties);
            }
            if let Some(metadata) = image.get_mut("metadata") {
                pairs_to_object(metadata);
            }
        }
    }
    if from < 3
        && let Some(Value::Object(images)) = file.get_mut("images")
    {
        for entry in images.values_mut() {
            let Some(Value::Object(image)) = entry.get_mut("image") else {
                continue;
            };
            let stores = match image.remove("stores") {
                Some(Value::String(text)) => store_list(&text),
                _ => Vec::new(),
            };
            if let Some(Value::Object(spec)) = image.get_mut("spec") {
                spec.insert("stores".into(), stores.into());
                // What every earlier release did, as `check` fills it in today.
                spec.entry("all_stores_must_succeed")
                    .or_insert(crate::spec::defaults::ALL_STORES_MUST_SUCCEED.into());
            }
        }
    }
    // Images recorded before `deactivated` existed: what their status says.
    if let Some(Value::Object(images)) = file.get_mut("images") {
        for entry in images.values_mut() {
            let Some(Value::Object(image)) = entry.get_mut("image") else {
                continue;
            };
            let deactivated = image.get("status").and_then(Value::as_str) == Some("deactivated");
            if let Some(Value::Object(spec)) = image.get_mut("spec") {
                spec.entry("deactivated").or_insert(deactivated.into());
            }
        }
    }
    file.insert("version".into(), STATE_VERSION.into());
    Ok(())
}

/// Glance's `stores` text (`"fast,cheap"`) as a sorted list.
pub fn store_list(text: &str) -> Vec<String> {
    let mut stores: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    stores.sort();
    stores.dedup();
    stores
}

/// `[["k", "v"], ...]` as `{"k": "v", ...}`; anything else is left as it is.
fn pairs_to_object(value: &mut Value) {
    let Value::Array(items) = value else { return };
    let pairs: Option<Map<String, Value>> = items
        .iter()
        .map(|item| match item.as_array().map(Vec::as_slice) {
            Some([Value::String(k), v]) => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect();
    if let Some(pairs) = pairs {
        *value = Value::Object(pairs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ImageDoc;

    /// A state file written by the release before this crate existed (version 1): two images
    /// applied from a local file and from a URL against the dev cloud.
    const V1: &str = include_str!("../../tests/fixtures/state-v1.json");

    fn load(text: &str) -> StateFile<ImageDoc> {
        let Value::Object(mut file) = serde_json::from_str(text).unwrap() else {
            panic!("an object")
        };
        upgrade(&mut file).unwrap();
        serde_json::from_value(Value::Object(file)).unwrap()
    }

    #[test]
    fn version_1_files_upgrade() {
        let state = load(V1);
        assert_eq!(state.version, STATE_VERSION);
        let local = &state.images["local"].image;
        assert_eq!(local.spec.properties["os_distro"], "cirros");
        assert_eq!(local.spec.protected, Some(true));
        assert_eq!(local.spec.tags, ["e2e", "fixture"]);
        assert_eq!(local.spec.timeouts.create, Some(1800));
        assert!(local.source_fingerprint.as_ref().unwrap().mtime_ns.is_some());
        assert_eq!(local.metadata["hw_disk_bus"], "virtio");
        let url = &state.images["url"].image;
        assert!(url.spec.image_source_url.is_some());
        assert!(url.source_fingerprint.is_some());
        // Written back as version 2 and read again: the same.
        let text = serde_json::to_string(&state).unwrap();
        let again = load(&text);
        assert_eq!(again.images["local"].image, *local);
        assert_eq!(again.images["url"].image, *url);
    }

    #[test]
    fn version_2_stores_move_into_the_spec() {
        let v2 = serde_json::json!({"version": 2, "images": {"a": {"image": {
            "id": "6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69", "stores": "fast,cheap",
            "spec": {"container_format": "bare", "disk_format": "raw"}}}}});
        let state = load(&v2.to_string());
        assert_eq!(state.images["a"].image.spec.stores, ["cheap", "fast"]);
        assert_eq!(state.images["a"].image.spec.all_stores_must_succeed, Some(true));
    }

    #[test]
    fn versions_are_checked() {
        let version = |v: Value| version_of(serde_json::json!({ "version": v }).as_object().unwrap());
        assert_eq!(version(1.into()), Ok(1));
        assert_eq!(version(2.into()), Ok(2));
        assert_eq!(version(3.into()), Ok(3));
        assert_eq!(version(99.into()), Err(VersionProblem::Unknown(99)));
        assert_eq!(version(0.into()), Err(VersionProblem::Unknown(0)));
        assert_eq!(version("1".into()), Err(VersionProblem::NotANumber("1".into())));
        assert_eq!(version_of(&Map::new()), Err(VersionProblem::Missing));
    }
}
