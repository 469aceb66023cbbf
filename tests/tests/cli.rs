//! The command line beyond plan/apply: import, refresh, targets, forced destroy, JSON plans,
//! the state lock and shell completions.

use openstack_image_tests::{Scenario, observer};
use serde_json::Value;

fn image(s: &Scenario, key: &str, extra: &str) -> String {
    format!(
        "  {key}:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: disk.qcow2\n{extra}",
        s.image_name(key)
    )
}

#[test]
fn import_adopts_an_image_that_then_plans_clean_and_updates_in_place() {
    let s = Scenario::new("import");
    let file = s.qcow2("disk.qcow2", 1);
    let id = observer::create_qcow2(
        &s.image_name("web"),
        &file,
        &[
            "--property",
            "os_distro=cirros",
            "--property",
            "owner_team=platform",
            "--tag",
            "adopted",
        ],
    );

    let adopted = s.run(&["import", "web", &id]).expect_code(0);
    assert!(
        adopted.stdout.contains(&format!("adopted {id}")),
        "{}",
        adopted.stdout
    );
    assert_eq!(s.state_id("web"), id);
    // The adopted image's properties are not managed until the spec names them.
    let shown: Value = serde_json::from_str(&s.run(&["show"]).expect_code(0).stdout).unwrap();
    assert_eq!(shown["images"]["web"]["properties"], serde_json::json!({}));
    assert_eq!(shown["images"]["web"]["metadata"]["owner_team"], "platform");

    // The spec names one of its two properties, with the value it has: no change, and the
    // property it does not name (set by another tool) is not planned for removal.
    let with = |properties: &str| {
        s.write_spec(&format!(
            "images:\n{}",
            image(&s, "web", &format!("    tags: [adopted]\n{properties}"))
        ))
    };
    with("    properties:\n      os_distro: cirros\n");
    let plan = s.plan().expect_code(0);
    assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
    s.apply();

    // Named once, managed from then on: dropping it from the spec removes it from the image;
    // the property the spec never named stays.
    with("");
    let plan = s.plan().expect_code(2);
    assert!(plan.stdout.contains("properties.os_distro"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("owner_team"), "{}", plan.stdout);

    with("    properties:\n      os_distro: ubuntu\n");
    s.apply();
    assert_eq!(s.state_id("web"), id, "updated in place");
    let image = observer::image(&id).unwrap();
    assert_eq!(image["properties"]["os_distro"], "ubuntu");
    assert_eq!(image["properties"]["owner_team"], "platform", "left alone");
    with("");
    s.apply();
    let image = observer::image(&id).unwrap();
    assert!(image["properties"].get("os_distro").is_none(), "{image}");
    assert_eq!(image["properties"]["owner_team"], "platform", "left alone");
    s.plan().expect_code(0);

    let again = s.run(&["import", "web", &id]).expect_code(1);
    assert!(again.stderr.contains("already in the state"), "{}", again.stderr);
    let missing = s
        .run(&["import", "other", "00000000-0000-4000-8000-000000000000"])
        .expect_code(1);
    assert!(missing.stderr.contains("has no image"), "{}", missing.stderr);
}

#[test]
fn refresh_records_out_of_band_changes_and_forgets_deleted_images() {
    let s = Scenario::new("refresh");
    s.qcow2("disk.qcow2", 1);
    s.write_spec(&format!("images:\n{}{}", image(&s, "a", ""), image(&s, "b", "")));
    s.apply();
    let (a, b) = (s.state_id("a"), s.state_id("b"));
    assert!(
        observer::openstack(&["image", "set", "--name", "renamed-out-of-band", &a])
            .status
            .success()
    );
    assert!(observer::openstack(&["image", "delete", &b]).status.success());

    let run = s.run(&["refresh"]).expect_code(0);
    assert!(run.stdout.contains("gone from the cloud"), "{}", run.stdout);
    let state = s.state().unwrap();
    assert_eq!(
        state["images"]["a"]["image"]["spec"]["name"],
        "renamed-out-of-band"
    );
    assert!(state["images"].get("b").is_none(), "{state}");
}

#[test]
fn destroy_honours_targets_and_force_removes_protection() {
    let s = Scenario::new("target");
    s.qcow2("disk.qcow2", 1);
    s.write_spec(&format!(
        "images:\n{}{}",
        image(&s, "plain", ""),
        image(&s, "guarded", "    protected: true\n")
    ));
    s.apply();
    let (plain, guarded) = (s.state_id("plain"), s.state_id("guarded"));

    s.run(&["destroy", "--target", "plain"]).expect_code(0);
    assert!(observer::image(&plain).is_none());
    assert!(observer::image(&guarded).is_some());

    // The state says it is protected: refused before any request, as an error on this side.
    let refused = s.run(&["destroy", "--target", "guarded"]).expect_code(1);
    assert!(
        refused.stderr.contains("image 'guarded'")
            && refused.stderr.contains("protected")
            && refused.stderr.contains("--force")
            && refused.stderr.contains("protected: false"),
        "{}",
        refused.stderr
    );
    assert!(!refused.stdout.contains("deleting"), "{}", refused.stdout);
    assert!(observer::image(&guarded).is_some());

    s.run(&["destroy", "--target", "guarded", "--force"])
        .expect_code(0);
    assert!(observer::image(&guarded).is_none());
    assert_eq!(s.state().unwrap()["images"], serde_json::json!({}));

    let unknown = s.run(&["destroy", "--target", "nope"]).expect_code(1);
    assert!(unknown.stderr.contains("--target nope"), "{}", unknown.stderr);
}

#[test]
fn plan_json_matches_what_apply_does() {
    let s = Scenario::new("planjson");
    s.qcow2("disk.qcow2", 1);
    s.write_spec(&format!(
        "images:\n{}{}",
        image(&s, "kept", ""),
        image(&s, "changed", "")
    ));
    s.apply();
    let (kept, changed) = (s.state_id("kept"), s.state_id("changed"));
    s.write_spec(&format!(
        "images:\n{}{}{}",
        image(&s, "kept", ""),
        image(&s, "changed", "    min_ram_mb: 64\n"),
        image(&s, "added", "")
    ));

    let run = s.run(&["plan", "-f", "images.yaml", "--json"]).expect_code(2);
    let plan: Value = serde_json::from_str(&run.stdout).expect("plan --json prints JSON");
    assert_eq!(plan["changes_pending"], true);
    let action = |name: &str| {
        plan["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()["action"]
            .clone()
    };
    assert_eq!(action("kept"), "no-op");
    assert_eq!(action("changed"), "update");
    assert_eq!(action("added"), "create");
    let changed_entry = plan["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "changed")
        .unwrap();
    assert_eq!(changed_entry["changes"][0]["field"], "min_ram_mb");
    assert_eq!(changed_entry["changes"][0]["new"], 64);

    s.apply();
    assert_eq!(s.state_id("kept"), kept);
    assert_eq!(s.state_id("changed"), changed);
    assert_eq!(observer::image(&changed).unwrap()["min_ram"], 64);
    assert!(observer::image(&s.state_id("added")).is_some());

    let targeted = s
        .run(&["plan", "-f", "images.yaml", "--json", "--target", "kept"])
        .expect_code(0);
    let plan: Value = serde_json::from_str(&targeted.stdout).unwrap();
    assert_eq!(plan["images"].as_array().unwrap().len(), 1);
}

#[test]
fn a_second_run_on_a_locked_state_refuses() {
    let s = Scenario::new("lock");
    s.qcow2("disk.qcow2", 1);
    s.write_spec(&format!("images:\n{}", image(&s, "web", "")));
    let lock_path = s.path("openstack-image.state.json.lock");
    let holder = std::fs::File::create(&lock_path).unwrap();
    std::fs::write(&lock_path, "pid 4242 running `apply` since 0").unwrap();
    holder.lock().unwrap();

    for command in [&["apply", "-f", "images.yaml"][..], &["destroy"], &["refresh"]] {
        let run = s.run(command).expect_code(1);
        assert!(
            run.stderr.contains("in use by another openstack-image"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("pid 4242 running `apply`"), "{}", run.stderr);
    }
    assert!(s.cloud_images().is_empty());
    drop(holder);
    s.apply();
}

#[test]
fn completions_are_printed_for_each_shell() {
    let s = Scenario::offline("completions");
    for shell in ["bash", "zsh", "fish"] {
        let run = s.run(&["completions", shell]).expect_code(0);
        assert!(run.stdout.contains("openstack-image"), "{shell}");
        assert!(
            run.stdout.contains("refresh"),
            "{shell}: subcommands are completed"
        );
    }
}

#[test]
fn help_documents_every_command_and_usage_errors_have_their_own_status() {
    let s = Scenario::offline("help");
    for command in ["plan", "apply", "destroy", "show", "import", "refresh"] {
        let run = s.run(&[command, "--help"]).expect_code(0);
        for section in ["Usage: openstack-image", "Exit status:", "Example", "--cloud"] {
            assert!(
                run.stdout.contains(section),
                "{command} --help lacks {section}: {}",
                run.stdout
            );
        }
    }
    // Options that mean nothing for a command are not offered there.
    for command in ["import", "show"] {
        let run = s.run(&[command, "--help"]).expect_code(0);
        assert!(
            !run.stdout.contains("--target"),
            "{command} --help: {}",
            run.stdout
        );
    }
    let import = s.run(&["import", "--help"]).expect_code(0);
    assert!(
        import.stdout.contains("left alone until the spec names"),
        "import --help states the properties rule: {}",
        import.stdout
    );
    let top = s.run(&["--help"]).expect_code(0);
    for section in ["clouds.yaml", "OS_CACERT", "Exit status:", "64  usage error"] {
        assert!(top.stdout.contains(section), "--help lacks {section}");
    }
    // Usage errors are not "changes pending" (2) nor a failed run (1).
    let missing = s.run(&["apply"]).expect_code(64);
    assert!(missing.stderr.contains("--file"), "{}", missing.stderr);
    let typo = s.run(&["plna"]).expect_code(64);
    assert!(
        typo.stderr.contains("similar subcommand exists: 'plan'"),
        "{}",
        typo.stderr
    );
    s.run(&["--version"]).expect_code(0);
}
