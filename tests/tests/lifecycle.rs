//! Lifecycle scenarios: apply a spec, check the cloud through the observer, change the spec,
//! check again, destroy, check it is gone.

use openstack_image_tests::{Scenario, digest, observer};
use serde_json::Value;

fn spec(s: &Scenario, name: &str, extra: &str) -> String {
    format!(
        "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n{extra}",
        s.image_name(name)
    )
}

#[test]
fn create_from_a_local_qcow2_matches_the_spec_and_the_file_digests() {
    let s = Scenario::new("create");
    let file = s.qcow2("web.qcow2", 6);
    s.write_spec(&spec(
        &s,
        "web",
        "    min_disk_gb: 1\n    min_ram_mb: 128\n    tags: [linux, test]\n    properties:\n      os_distro: cirros\n      hw_disk_bus: virtio\n",
    ));

    let plan = s.plan().expect_code(2);
    assert!(plan.stdout.contains("+ web: create"), "{}", plan.stdout);
    assert!(s.state().is_none(), "plan must not write the state");

    let run = s.apply();
    // Not a terminal: progress comes as plain lines.
    assert!(
        run.stderr.contains("web: uploaded") && run.stderr.contains("(100%)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("web: image is active"), "{}", run.stderr);
    let id = s.state_id("web");
    let image = observer::image(&id).expect("the image exists");
    assert_eq!(image["status"], "active");
    assert_eq!(image["name"], s.image_name("web"));
    assert_eq!(image["disk_format"], "qcow2");
    assert_eq!(image["container_format"], "bare");
    assert_eq!(image["min_disk"], 1);
    assert_eq!(image["min_ram"], 128);
    assert_eq!(image["visibility"], "private");
    assert_eq!(observer::sorted_tags(&image), vec!["linux", "test"]);
    assert_eq!(image["properties"]["os_distro"], "cirros");
    assert_eq!(image["properties"]["hw_disk_bus"], "virtio");
    assert_eq!(image["checksum"], digest("md5sum", &file));
    assert_eq!(image["properties"]["os_hash_algo"], "sha512");
    assert_eq!(image["properties"]["os_hash_value"], digest("sha512sum", &file));
    assert_eq!(image["size"], std::fs::metadata(&file).unwrap().len());

    // Server-set properties (os_hash_*, stores, …) never show up as changes.
    s.run(&["destroy", "-q"]).expect_code(0);
    // -q: nothing but the closing line (no plan, no per-image lines, no progress).
    let quiet = s.run(&["apply", "-f", "images.yaml", "-q"]).expect_code(0);
    assert_eq!(quiet.stdout, "apply: done.\n");
    assert_eq!(quiet.stderr, "");
    let id = s.state_id("web");
    let again = s.plan().expect_code(0);
    assert!(again.stdout.contains("No changes"), "{}", again.stdout);
    let quiet_plan = s.run(&["plan", "-f", "images.yaml", "-q"]).expect_code(0);
    assert_eq!(quiet_plan.stdout, "No changes: the cloud matches the spec.\n");
    assert_eq!(quiet_plan.stderr, "");

    // `show` prints every input and output from the state.
    let shown: Value = serde_json::from_str(&s.run(&["show"]).expect_code(0).stdout).unwrap();
    let web = &shown["images"]["web"];
    assert_eq!(web["id"], id.as_str());
    assert_eq!(web["checksum"], image["checksum"]);
    assert_eq!(web["os_hash_value"], image["properties"]["os_hash_value"]);
    assert_eq!(web["properties"]["os_distro"], "cirros");
    assert_eq!(web["status"], "active");
    assert_eq!(web["updated_at"], web["update_at"]);
}

#[test]
fn in_place_update_keeps_the_id_and_can_remove_every_tag() {
    let s = Scenario::new("update");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&spec(
        &s,
        "web",
        "    tags: [a, b]\n    properties:\n      keep: \"1\"\n      drop/me: x\n",
    ));
    s.apply();
    let id = s.state_id("web");

    s.write_spec(&spec(
        &s,
        "renamed",
        "    tags: []\n    min_ram_mb: 256\n    hidden: true\n    properties:\n      keep: \"2\"\n      new~key: y\n",
    ));
    let plan = s.plan().expect_code(2);
    assert!(plan.stdout.contains("~ web: update in place"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("-/+"), "no replacement: {}", plan.stdout);
    s.apply();

    assert_eq!(s.state_id("web"), id, "an in-place update keeps the image");
    let image = observer::image(&id).expect("the image exists");
    assert_eq!(image["name"], s.image_name("renamed"));
    assert!(
        observer::sorted_tags(&image).is_empty(),
        "all tags removed: {:?}",
        image["tags"]
    );
    assert_eq!(image["min_ram"], 256);
    assert_eq!(image["properties"]["keep"], "2");
    assert_eq!(image["properties"]["new~key"], "y");
    assert_eq!(image["properties"]["os_hidden"], true);
    assert!(
        image["properties"].get("drop/me").is_none(),
        "{:?}",
        image["properties"]
    );
    s.plan().expect_code(0);
}

#[test]
fn changing_disk_format_replaces_the_image() {
    let s = Scenario::new("replace");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&spec(&s, "web", ""));
    s.apply();
    let old = s.state_id("web");

    // The same disk as raw data: the bytes must agree with the declared format.
    s.raw_copy(&s.path("web.qcow2"), "web.raw");
    s.write_spec(
        &spec(&s, "web", "")
            .replace("disk_format: qcow2", "disk_format: raw")
            .replace("web.qcow2", "web.raw"),
    );
    let plan = s.plan().expect_code(2);
    assert!(plan.stdout.contains("-/+ web: replace"), "{}", plan.stdout);
    assert!(
        plan.stdout
            .contains("disk_format: \"qcow2\" → \"raw\"   # forces replacement"),
        "{}",
        plan.stdout
    );
    s.apply();

    let new = s.state_id("web");
    assert_ne!(new, old);
    assert_eq!(
        observer::image(&new).expect("the new image")["disk_format"],
        "raw"
    );
    assert!(observer::image(&old).is_none(), "the old image is gone");
    assert_eq!(s.cloud_images().len(), 1);
    s.plan().expect_code(0);
}

#[test]
fn out_of_band_drift_is_detected_and_repaired() {
    let s = Scenario::new("drift");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&spec(
        &s,
        "web",
        "    tags: [a]\n    properties:\n      os_distro: cirros\n",
    ));
    s.apply();
    let id = s.state_id("web");

    let changed = observer::openstack(&[
        "image",
        "set",
        "--name",
        "drifted",
        "--tag",
        "extra",
        "--property",
        "os_distro=hacked",
        "--min-ram",
        "999",
        "--property",
        "owner_specified.openstack.md5=abc",
        &id,
    ]);
    assert!(
        changed.status.success(),
        "{}",
        String::from_utf8_lossy(&changed.stderr)
    );

    let plan = s.plan().expect_code(2);
    for field in ["name:", "tags:", "min_ram_mb:", "properties.os_distro:"] {
        assert!(
            plan.stdout.contains(field),
            "plan misses {field}:\n{}",
            plan.stdout
        );
    }
    assert!(
        !plan.stdout.contains("owner_specified"),
        "unmanaged keys never drift:\n{}",
        plan.stdout
    );
    s.apply();

    let image = observer::image(&id).expect("the same image");
    assert_eq!(image["name"], s.image_name("web"));
    assert_eq!(observer::sorted_tags(&image), vec!["a"]);
    assert_eq!(image["min_ram"], 0);
    assert_eq!(image["properties"]["os_distro"], "cirros");
    assert_eq!(
        image["properties"]["owner_specified.openstack.md5"], "abc",
        "unmanaged keys are left alone"
    );
    s.plan().expect_code(0);
}

#[test]
fn an_image_deleted_out_of_band_is_created_again() {
    let s = Scenario::new("gone");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&spec(&s, "web", ""));
    s.apply();
    let old = s.state_id("web");
    assert!(observer::openstack(&["image", "delete", &old]).status.success());

    let plan = s.plan().expect_code(2);
    assert!(
        plan.stdout.contains("+ web: create (it is gone from the cloud)"),
        "{}",
        plan.stdout
    );
    s.apply();
    let new = s.state_id("web");
    assert_ne!(new, old);
    assert_eq!(observer::image(&new).expect("recreated")["status"], "active");
}

#[test]
fn destroy_deletes_everything_and_protected_images_need_unprotecting() {
    let s = Scenario::new("destroy");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&format!(
        "{}  db:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    protected: true\n",
        spec(&s, "web", ""),
        s.image_name("db")
    ));
    s.apply();
    let (web, db) = (s.state_id("web"), s.state_id("db"));
    assert_eq!(observer::image(&db).expect("db")["protected"], true);

    let refused = s.run(&["destroy"]).expect_code(3);
    assert!(refused.stderr.contains("image 'db'"), "{}", refused.stderr);
    assert!(refused.stderr.contains("protected"), "{}", refused.stderr);
    assert!(
        observer::image(&web).is_none(),
        "the unprotected image is deleted anyway"
    );
    assert!(observer::image(&db).is_some(), "the protected image stays");
    let state = s.state().unwrap();
    assert!(
        state["images"].get("web").is_none() && state["images"].get("db").is_some(),
        "{state}"
    );

    s.write_spec(&format!(
        "images:\n  db:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    protected: false\n",
        s.image_name("db")
    ));
    s.apply();
    s.run(&["destroy"]).expect_code(0);
    assert!(observer::image(&db).is_none());
    assert!(s.cloud_images().is_empty());
    assert_eq!(s.state().unwrap()["images"], serde_json::json!({}));
}

#[test]
fn removing_an_image_from_the_spec_deletes_it() {
    let s = Scenario::new("remove");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&spec(&s, "web", ""));
    s.apply();
    let id = s.state_id("web");
    s.write_spec("images: {}\n");
    let plan = s.plan().expect_code(2);
    assert!(plan.stdout.contains("- web: delete"), "{}", plan.stdout);
    s.apply();
    assert!(observer::image(&id).is_none());
}

#[test]
fn the_exported_component_runs_under_component() {
    let s = Scenario::new("export");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&spec(&s, "web", ""));
    s.run(&["component", "export", "exported.wasm"]).expect_code(0);
    let bytes = std::fs::read(s.path("exported.wasm")).expect("exported component");
    assert_eq!(&bytes[..4], b"\0asm");
    s.run(&["apply", "-f", "images.yaml", "--component", "exported.wasm"])
        .expect_code(0);
    assert_eq!(
        observer::image(&s.state_id("web")).expect("created")["status"],
        "active"
    );
}

#[test]
fn destroy_succeeds_when_the_image_is_already_gone() {
    let s = Scenario::new("gonedestroy");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&spec(&s, "web", ""));
    s.apply();
    let id = s.state_id("web");
    assert!(observer::openstack(&["image", "delete", &id]).status.success());
    s.run(&["destroy"]).expect_code(0);
    assert_eq!(s.state().unwrap()["images"], serde_json::json!({}));
}

#[test]
fn a_changed_local_file_is_a_replacement_and_a_touched_one_is_not() {
    let s = Scenario::new("filechange");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&spec(&s, "web", ""));
    s.apply();
    let old = s.state_id("web");

    // Same bytes, new mtime: nothing to do.
    let file = std::fs::File::options()
        .write(true)
        .open(s.path("web.qcow2"))
        .unwrap();
    let mtime = file.metadata().unwrap().modified().unwrap();
    file.set_modified(mtime + std::time::Duration::from_secs(10))
        .unwrap();
    drop(file);
    s.plan().expect_code(0);

    // An in-place update in between keeps what the data was uploaded from.
    s.write_spec(&spec(&s, "web", "    properties: { stage: two }\n"));
    s.apply();
    assert_eq!(s.state_id("web"), old, "updated in place");
    let recorded = &s.state().unwrap()["images"]["web"]["image"]["source_fingerprint"];
    assert!(
        recorded["sha512"].is_string(),
        "the update dropped the fingerprint: {recorded}"
    );

    // New bytes: a new image.
    s.qcow2("web.qcow2", 1);
    let plan = s.plan().expect_code(2);
    assert!(plan.stdout.contains("-/+ web: replace"), "{}", plan.stdout);
    assert!(plan.stdout.contains("source content (sha512)"), "{}", plan.stdout);
    s.apply();
    let new = s.state_id("web");
    assert_ne!(new, old);
    let image = observer::image(&new).unwrap();
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &s.path("web.qcow2")).as_str()
    );
    assert!(observer::image(&old).is_none());
    s.plan().expect_code(0);
}

/// Paths are resolved as the operating system resolves them when it opens the file: `..`
/// after a symlink leaves the symlink's target, and `..` after a missing directory fails.
/// `plan` shows the resolved path.
#[test]
fn local_paths_resolve_as_the_operating_system_opens_them() {
    let s = Scenario::new("paths");
    std::fs::create_dir_all(s.path("real/sub")).unwrap();
    std::os::unix::fs::symlink(s.path("real/sub"), s.path("link")).unwrap();
    // Two different files: the one the OS opens for `link/../disk.qcow2`, and the one a
    // lexical clean-up of that path would name.
    let opened = s.qcow2("real/disk.qcow2", 1);
    let lexical = s.qcow2("disk.qcow2", 1);
    assert_ne!(digest("sha512sum", &opened), digest("sha512sum", &lexical));
    s.write_spec(&format!(
        "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: link/../disk.qcow2\n",
        s.image_name("web")
    ));
    let resolved = std::fs::canonicalize(&opened).unwrap();
    let plan = s.plan().expect_code(2);
    assert!(
        plan.stdout
            .contains(&format!("local_file_path = \"{}\"", resolved.display())),
        "{}",
        plan.stdout
    );
    s.apply();
    let image = observer::image(&s.state_id("web")).unwrap();
    assert_eq!(image["properties"]["os_hash_value"], digest("sha512sum", &opened));

    // `/missing/../<dir>/disk.qcow2` names a file lexically, but no open(2) gets past a
    // directory that does not exist.
    let escape = format!(
        "{}/no-such-dir/../disk.qcow2",
        std::fs::canonicalize(s.path(".")).unwrap().display()
    );
    let other = Scenario::new("paths-missing");
    other.write_spec(&format!(
        "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: {escape}\n",
        other.image_name("web")
    ));
    let refused = other.run(&["apply", "-f", "images.yaml"]).expect_code(1);
    assert!(
        refused.stderr.contains("image 'web'")
            && refused.stderr.contains("local_file_path")
            && refused.stderr.contains("does not exist"),
        "{}",
        refused.stderr
    );
    assert!(other.cloud_images().is_empty(), "nothing was uploaded");
    assert!(
        other
            .state()
            .is_none_or(|st| st["images"].as_object().unwrap().is_empty())
    );
}
