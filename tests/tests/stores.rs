//! Where the data lives: the dev cloud's multi-store Glance (RegionTwo: stores fast, cheap
//! and edge; every import method; the image conversion plugin, output raw). Stores are added
//! and removed in place, glance-direct imports convert qcow2 to raw without planning as drift,
//! glance-download copies an image from RegionOne with no byte through this machine, a store
//! that fails leaves the image as it was, and a spec the cloud cannot serve is refused before
//! anything is created. Observed with `openstack image show` and the store directories.

use std::path::PathBuf;

use openstack_image_tests::region_two::{
    Cleanup, glance_download_source, hold_edge_store, images_here, on_disk, region, show, stores,
};
use openstack_image_tests::{Run, Scenario, cloud_env, observer};
use serde_json::Value;

fn spec(s: &Scenario, fields: &str) -> String {
    format!(
        "images:\n  data:\n    name: {}\n    container_format: bare\n    region: {}\n{fields}",
        s.image_name("data"),
        region()
    )
}

/// The spec of one qcow2 image from `disk.qcow2`, its data in `stores` (`fast, cheap`).
fn in_stores(s: &Scenario, stores: &str) -> String {
    spec(
        s,
        &format!("    disk_format: qcow2\n    local_file_path: disk.qcow2\n    stores: [{stores}]\n"),
    )
}

/// A run that failed with exit code `code` (1: the spec; 4: the cloud refused or failed),
/// its errors naming each of `words`.
fn fails(run: Run, code: i32, words: &[&str]) -> Run {
    let run = run.expect_code(code);
    for word in words {
        assert!(run.stderr.contains(word), "expected {word:?} in:\n{}", run.stderr);
    }
    run
}

#[test]
fn stores_are_added_and_removed_in_place() {
    let _edge = hold_edge_store();
    let s = Scenario::new("stores");
    let _cleanup = Cleanup(&s);
    s.qcow2("disk.qcow2", 1);
    let with = |stores: &str| in_stores(&s, stores);

    s.write_spec(&with("fast, cheap"));
    s.apply();
    let id = s.state_id("data");
    assert_eq!(stores(&id), ["cheap", "fast"]);
    assert!(on_disk("fast", &id) && on_disk("cheap", &id) && !on_disk("edge", &id));
    let recorded = &s.state().unwrap()["images"]["data"]["image"];
    assert_eq!(recorded["spec"]["stores"], serde_json::json!(["cheap", "fast"]));
    assert_eq!(recorded["import_result"]["method"], "copy-image", "{recorded}");
    let digest = show(&id).unwrap()["checksum"].clone();
    s.plan().expect_code(0);

    // A third store: in place, same image, data in three stores.
    s.write_spec(&with("fast, cheap, edge"));
    let plan = s.plan().expect_code(2);
    assert!(plan.stdout.contains("~ data: update in place"), "{}", plan.stdout);
    assert!(plan.stdout.contains("stores"), "{}", plan.stdout);
    s.apply();
    assert_eq!(s.state_id("data"), id);
    assert_eq!(stores(&id), ["cheap", "edge", "fast"]);
    assert!(on_disk("edge", &id));
    assert_eq!(show(&id).unwrap()["checksum"], digest);
    s.plan().expect_code(0);

    // One store fewer: its copy is deleted, the others stay.
    s.write_spec(&with("fast, edge"));
    let plan = s.plan().expect_code(2);
    assert!(plan.stdout.contains("~ data: update in place"), "{}", plan.stdout);
    s.apply();
    assert_eq!(s.state_id("data"), id);
    assert_eq!(stores(&id), ["edge", "fast"]);
    assert!(!on_disk("cheap", &id) && on_disk("fast", &id) && on_disk("edge", &id));
    s.plan().expect_code(0);

    // Leaving `stores` out keeps them as they are.
    s.write_spec(&spec(
        &s,
        "    disk_format: qcow2\n    local_file_path: disk.qcow2\n",
    ));
    s.plan().expect_code(0);
}

#[test]
fn glance_direct_converts_qcow2_to_raw_and_plans_clean() {
    let s = Scenario::new("convert");
    let _cleanup = Cleanup(&s);
    s.qcow2("disk.qcow2", 4);
    s.write_spec(&spec(
        &s,
        "    disk_format: qcow2\n    local_file_path: disk.qcow2\n    import_method: glance-direct\n    stores: [fast, cheap]\n",
    ));
    s.apply();
    let id = s.state_id("data");
    let image = show(&id).unwrap();
    assert_eq!(image["disk_format"], "raw", "{image}");
    assert_eq!(
        image["size"],
        4 * 1024 * 1024,
        "the raw data of the 4 MiB disk: {image}"
    );
    assert_eq!(stores(&id), ["cheap", "fast"]);
    let recorded = &s.state().unwrap()["images"]["data"]["image"];
    assert_eq!(
        recorded["spec"]["disk_format"], "qcow2",
        "the spec's format stays: {recorded}"
    );
    assert_eq!(recorded["import_result"]["method"], "glance-direct");
    assert_eq!(recorded["import_result"]["converted_to"], "raw");
    assert_eq!(recorded["import_result"]["status"], "success");
    let plan = s.plan().expect_code(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    // `show` reads the image again: still no drift.
    s.run(&["refresh", "-f", "images.yaml"]).expect_code(0);
    s.plan().expect_code(0);
}

#[test]
fn glance_download_copies_an_image_from_another_region() {
    let s = Scenario::new("gdl");
    let _cleanup = Cleanup(&s);
    // The source, in RegionOne (the Scenario deletes it): raw, so no plugin converts the copy.
    let source_id = glance_download_source(&s, 3);
    let source = observer::image(&source_id).unwrap();

    s.write_spec(&spec(
        &s,
        &format!(
            "    disk_format: raw\n    import_method: glance-download\n    source_region: RegionOne\n    source_image_id: {source_id}\n    stores: [fast, cheap]\n"
        ),
    ));
    s.apply();
    let id = s.state_id("data");
    assert_ne!(id, source_id);
    let image = show(&id).unwrap();
    assert_eq!(image["status"], "active");
    for field in ["checksum", "size"] {
        assert_eq!(image[field], source[field], "{field}");
    }
    let hash = |image: &Value| {
        image["os_hash_value"]
            .as_str()
            .or_else(|| image["properties"]["os_hash_value"].as_str())
            .map(str::to_string)
    };
    assert_eq!(hash(&image), hash(&source));
    assert_eq!(stores(&id), ["cheap", "fast"]);
    let recorded = &s.state().unwrap()["images"]["data"]["image"];
    assert_eq!(recorded["import_result"]["method"], "glance-download");
    assert!(
        recorded["source_fingerprint"].is_null(),
        "no data went through us: {recorded}"
    );
    s.plan().expect_code(0);
}

#[test]
fn a_copy_to_a_failing_store_leaves_the_image_as_it_was() {
    let _edge = hold_edge_store();
    let s = Scenario::new("badstore");
    let _cleanup = Cleanup(&s);
    s.qcow2("disk.qcow2", 1);
    let with = |stores: &str| in_stores(&s, stores);
    s.write_spec(&with("fast"));
    s.apply();
    let id = s.state_id("data");
    let before = std::fs::read(s.path("openstack-image.state.json")).unwrap();

    // Break edge: a regular file where its directory was (writes fail even as root).
    let dir = PathBuf::from(&cloud_env()["DEV_CLOUD_STORES_DATADIR"]).join("edge");
    let saved = dir.with_extension("saved");
    std::fs::rename(&dir, &saved).unwrap();
    std::fs::write(&dir, b"").unwrap();
    struct Heal(PathBuf, PathBuf);
    impl Drop for Heal {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
            let _ = std::fs::rename(&self.1, &self.0);
        }
    }
    let heal = Heal(dir, saved);

    s.write_spec(&with("fast, cheap, edge"));
    fails(
        s.run(&["apply", "-f", "images.yaml"]),
        4,
        &["edge", "copy-image", &id],
    );
    drop(heal);
    assert_eq!(
        stores(&id),
        ["fast"],
        "the image is as it was (cheap's copy undone)"
    );
    assert!(!on_disk("cheap", &id));
    assert_eq!(
        std::fs::read(s.path("openstack-image.state.json")).unwrap(),
        before
    );

    // Healed, the same apply adds both.
    s.apply();
    assert_eq!(stores(&id), ["cheap", "edge", "fast"]);
}

#[test]
fn specs_the_cloud_cannot_serve_are_refused_before_anything_exists() {
    let s = Scenario::new("offer");
    let _cleanup = Cleanup(&s);
    s.qcow2("disk.qcow2", 1);
    let file = "    disk_format: qcow2\n    local_file_path: disk.qcow2\n";

    s.write_spec(&spec(&s, &format!("{file}    stores: [fast, nosuch]\n")));
    fails(
        s.run(&["apply", "-f", "images.yaml"]),
        1,
        &["stores", "'nosuch'", "fast, cheap, edge"],
    );
    assert!(images_here(&s).is_empty());
    assert!(
        s.state()
            .is_none_or(|state| state["images"].as_object().is_none_or(|m| m.is_empty()))
    );

    // No cloud call needed to see this one.
    s.write_spec(&spec(
        &s,
        "    disk_format: raw\n    import_method: glance-download\n    source_region: RegionOne\n",
    ));
    fails(
        s.run(&["plan", "-f", "images.yaml"]),
        1,
        &["source_image_id", "required"],
    );

    // RegionOne does not enable glance-download, and has a single store.
    let one = format!(
        "images:\n  data:\n    name: {}\n    container_format: bare\n    disk_format: raw\n    import_method: glance-download\n    source_region: {}\n    source_image_id: 6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69\n",
        s.image_name("data"),
        region()
    );
    s.write_spec(&one);
    fails(
        s.run(&["apply", "-f", "images.yaml"]),
        1,
        &[
            "import_method",
            "glance-download",
            "glance-direct, web-download, copy-image",
        ],
    );
    s.write_spec(&format!(
        "images:\n  data:\n    name: {}\n    container_format: bare\n{file}    stores: [fast]\n",
        s.image_name("data")
    ));
    fails(
        s.run(&["apply", "-f", "images.yaml"]),
        1,
        &["stores", "single store"],
    );
    assert!(s.cloud_images().is_empty(), "nothing created in RegionOne");
}
