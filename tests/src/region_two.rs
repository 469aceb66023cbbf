//! The dev cloud's RegionTwo: its multi-store Glance (stores fast, cheap and edge, every import
//! method, the conversion plugin), observed with `openstack image show` and the store
//! directories. Used by tests/stores.rs and tests/examples.rs.

use std::path::PathBuf;

use serde_json::Value;

use crate::{Scenario, cloud_env, observer};

pub fn region() -> String {
    cloud_env()["DEV_CLOUD_STORES_REGION"].clone()
}

/// `openstack image show` in RegionTwo.
pub fn show(id: &str) -> Option<Value> {
    let out = observer::openstack_as(
        &[("OS_REGION_NAME", &region())],
        &["image", "show", id, "-f", "json"],
    );
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).expect("openstack prints JSON"))
}

/// The stores an image's data is in, as Glance reports them (sorted).
pub fn stores(id: &str) -> Vec<String> {
    let image = show(id).expect("the image exists");
    let text = image["stores"]
        .as_str()
        .or_else(|| image["properties"]["stores"].as_str())
        .unwrap_or("");
    let mut stores: Vec<String> = text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    stores.sort();
    stores
}

/// Whether store `store`'s directory holds the data of image `id`.
pub fn on_disk(store: &str, id: &str) -> bool {
    PathBuf::from(&cloud_env()["DEV_CLOUD_STORES_DATADIR"])
        .join(store)
        .join(id)
        .is_file()
}

/// This scenario's images in RegionTwo.
pub fn images_here(s: &Scenario) -> Vec<String> {
    let prefix = s.image_name("");
    observer::list_as(&[("OS_REGION_NAME", &region())])
        .into_iter()
        .filter(|i| i["Name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .filter_map(|i| i["ID"].as_str().map(str::to_string))
        .collect()
}

/// Deletes the scenario's RegionTwo images when the test ends, passed or not (the Scenario
/// cleans RegionOne).
pub struct Cleanup<'a>(pub &'a Scenario);

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        let region = region();
        for id in images_here(self.0) {
            let _ = observer::openstack_as(
                &[("OS_REGION_NAME", &region)],
                &["image", "set", "--unprotected", &id],
            );
            let _ = observer::openstack_as(&[("OS_REGION_NAME", &region)], &["image", "delete", &id]);
        }
    }
}

/// A hold on the `edge` store: tests/stores.rs breaks it for a while to see a failed copy,
/// so every test that writes to it (in any test binary) takes this first. A file lock in the
/// dev cloud's directory, released when dropped.
pub struct EdgeStore(#[allow(dead_code)] std::fs::File);

/// Waits until no other test holds the `edge` store, then holds it.
pub fn hold_edge_store() -> EdgeStore {
    let path = PathBuf::from(&cloud_env()["DEV_CLOUD_DIR"]).join("tests-edge-store.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("lock {}: {e}", path.display()));
    EdgeStore(file)
}

/// A raw image of `mib` MiB made in RegionOne by the observer, active, for glance-download
/// to copy (raw, so no import plugin converts the copy); the Scenario deletes it. Its id.
pub fn glance_download_source(s: &Scenario, mib: usize) -> String {
    let file = s.path("source.raw");
    std::fs::write(&file, vec![7u8; mib * 1024 * 1024]).expect("write the source data");
    let created = observer::json(&[
        "image",
        "create",
        "--disk-format",
        "raw",
        "--container-format",
        "bare",
        "--private",
        "--file",
        file.to_str().expect("a UTF-8 path"),
        "-f",
        "json",
        &s.image_name("source"),
    ]);
    created["id"].as_str().expect("an image id").to_string()
}
