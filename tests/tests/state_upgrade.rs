//! A state file written by the release before the documents existed (format version 1, kept
//! in `tests/fixtures/state-v1.json` as that binary wrote it) still loads, and `plan` against
//! it shows no changes: the file is rewritten to name images this test creates (ids, names,
//! paths, the URL and the fingerprints of this run's data); everything else is as the old
//! release wrote it.

use openstack_image_tests::source_server::{Served, SourceServer};
use openstack_image_tests::{Scenario, observer};
use serde_json::{Value, json};

/// The bytes the fixture's images were made from (1 MiB, raw).
fn data() -> Vec<u8> {
    (0..1usize << 20).map(|i| ((i * 7 + 3) % 251) as u8).collect()
}

#[test]
fn a_version_1_state_file_loads_and_plans_no_changes() {
    let s = Scenario::new("stateup");
    std::fs::write(s.path("disk.raw"), data()).unwrap();
    let server = SourceServer::start();
    server.serve("/remote.raw", Served::new(data()).etag("\"v1\""));
    // The spec the fixture was applied from, with this run's names and URL.
    s.write_spec(&format!(
        "images:
  local:
    name: {}
    container_format: bare
    disk_format: raw
    local_file_path: disk.raw
    min_disk_gb: 1
    min_ram_mb: 64
    protected: true
    tags: [e2e, fixture]
    properties:
      os_distro: cirros
      hw_disk_bus: virtio
      cores: 2
    timeouts:
      create: 30m
      update: 10m
      delete: 5m
  url:
    name: {}
    container_format: bare
    disk_format: raw
    image_source_url: {}
    image_cache_path: cache
    properties:
      source: url
    tags: [url]
    timeouts:
      create: 1h
",
        s.image_name("local"),
        s.image_name("url"),
        server.url("/remote.raw")
    ));
    s.apply();
    let current = s.state().unwrap();
    assert_eq!(current["version"], 3, "{current}");
    let state_file = s.path("openstack-image.state.json");
    let current_text = std::fs::read_to_string(&state_file).unwrap();

    let mut old: Value = serde_json::from_str(include_str!("../fixtures/state-v1.json")).unwrap();
    assert_eq!(old["version"], 1);
    for name in ["local", "url"] {
        let new = &current["images"][name]["image"];
        let image = &mut old["images"][name]["image"];
        for key in ["id", "file"] {
            image[key] = new[key].clone();
        }
        for key in [
            "name",
            "image_id",
            "local_file_path",
            "image_source_url",
            "image_cache_path",
        ] {
            image["spec"][key] = new["spec"][key].clone();
        }
        // Version 1 wrote the file's mtime as a number.
        let mut fingerprint = new["source_fingerprint"].clone();
        if let Some(ns) = fingerprint["mtime_ns"].as_str() {
            fingerprint["mtime_ns"] = json!(ns.parse::<u64>().unwrap());
        }
        image["source_fingerprint"] = fingerprint;
    }
    std::fs::write(&state_file, serde_json::to_vec_pretty(&old).unwrap()).unwrap();

    let plan = s.plan().expect_code(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    // `show` tells the same images from either file, but for what Glance stamped on them
    // when the fixture was made.
    let shown_old = show(&s);
    std::fs::write(&state_file, &current_text).unwrap();
    let shown_new = show(&s);
    for name in ["local", "url"] {
        let mut a = shown_old["images"][name].clone();
        let mut b = shown_new["images"][name].clone();
        for stamped in [
            "created_at",
            "updated_at",
            "update_at",
            "owner",
            "stores",
            "direct_url",
        ] {
            a[stamped] = Value::Null;
            b[stamped] = Value::Null;
        }
        assert_eq!(a, b, "{name}");
    }

    // Reading a version 1 file never rewrites it; the first change writes the current version.
    std::fs::write(&state_file, serde_json::to_vec_pretty(&old).unwrap()).unwrap();
    s.run(&["destroy", "-f", "images.yaml", "--force"]).expect_code(0);
    assert_eq!(s.state().unwrap()["version"], 3);
    for name in ["local", "url"] {
        let id = current["images"][name]["image"]["id"].as_str().unwrap();
        assert!(observer::image(id).is_none(), "{name} was not deleted");
    }
}

fn show(s: &Scenario) -> Value {
    let run = s.run(&["show", "-f", "images.yaml"]).expect_code(0);
    serde_json::from_str(&run.stdout).expect("show prints JSON")
}
