//! Publishing images to other projects, end to end against the dev cloud: members of a shared
//! image (offered, answered by the member project, drift, removal), deactivation, properties
//! checked against the cloud's own metadata definitions (Glance's stock metadefs, which the
//! dev cloud loads), and `import` keeping what the spec names. The publisher and the consumer
//! are two ordinary member projects of the dev cloud; the `openstack` CLI observes.

use openstack_image_tests::{Scenario, observer};
use serde_json::Value;

fn as_user(who: &str) -> Vec<(&'static str, String)> {
    openstack_image_tests::user_settings(who)
}

fn vars<'a>(settings: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    settings.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn members_of(id: &str) -> Vec<(String, String)> {
    observer::members(id)
}

fn show(s: &Scenario, user: &[(&'static str, &str)], name: &str) -> Value {
    let shown = s.run_with(&["show", "-f", "images.yaml"], user).expect_code(0);
    let all: Value = serde_json::from_str(&shown.stdout).expect("show prints JSON");
    all["images"][name].clone()
}

#[test]
fn a_shared_image_is_offered_answered_and_withdrawn_and_drift_shows() {
    let s = Scenario::new("share-members");
    let publisher = as_user("publisher");
    let publisher = vars(&publisher);
    let consumer = as_user("consumer");
    let consumer = vars(&consumer);
    let (consumer_id, other_id) = (observer::project_id("consumer"), observer::project_id("quota"));
    s.qcow2("base.qcow2", 1);
    // examples/sharing as shipped, with the consumer's project id and the image's test name.
    let example = |file: &str| {
        std::fs::read_to_string(openstack_image_tests::root().join("examples/sharing").join(file))
            .expect("read the example")
    };
    let publisher_example = example("publisher.yaml").replace(
        "name: base-image",
        &format!("name: {}", s.image_name("base-image")),
    );
    let spec = |members: &str| publisher_example.replace("[0123456789abcdef0123456789abcdef]", members);
    s.write_spec(&spec(&format!("[{consumer_id}]")));
    s.run_with(&["apply", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    let id = s.state_id("base-image");
    assert_eq!(members_of(&id), [(consumer_id.clone(), "pending".to_string())]);
    assert_eq!(
        show(&s, &publisher, "base-image")["member_statuses"][&consumer_id],
        "pending"
    );

    // The consumer sees the offer, and accepts it through its own membership resource: a
    // spec file of its own with `memberships` only, and a state of its own.
    let offered = observer::openstack_as(
        &consumer,
        &["image", "list", "--member-status", "pending", "-f", "json"],
    );
    let offered: Value = serde_json::from_slice(&offered.stdout).expect("JSON");
    assert!(
        offered.as_array().unwrap().iter().any(|i| i["ID"] == id.as_str()),
        "{offered}"
    );
    let consumer_example = example("consumer.yaml").replace("6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69", &id);
    let answer = |status: &str| {
        let text = match status {
            "" => consumer_example.clone(),
            status => consumer_example.replace("status: accepted", &format!("status: {status}")),
        };
        std::fs::write(s.path("consumer.yaml"), text).unwrap();
    };
    let as_consumer = |command: &str| {
        s.run_with(
            &[command, "-f", "consumer.yaml", "--state", "consumer.state.json"],
            &consumer,
        )
    };
    answer("");
    let plan = as_consumer("plan").expect_code(2);
    assert!(
        plan.stdout.contains("answer accepted for this project"),
        "{}",
        plan.stdout
    );
    as_consumer("apply").expect_code(0);
    assert_eq!(members_of(&id), [(consumer_id.clone(), "accepted".to_string())]);
    as_consumer("plan").expect_code(0);
    let consumer_state: Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("consumer.state.json")).unwrap()).unwrap();
    let membership = &consumer_state["memberships"]["base-image"];
    assert_eq!(membership["id"], format!("{id}/{consumer_id}"));
    assert_eq!(membership["spec"]["member_id"], consumer_id.as_str());
    assert_eq!(membership["status"], "accepted");

    // The owner's plan is clean and its state says accepted after a refresh.
    s.run_with(&["plan", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    s.run_with(&["refresh", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    assert_eq!(
        show(&s, &publisher, "base-image")["member_statuses"][&consumer_id],
        "accepted"
    );

    // An answer changed elsewhere is drift on the consumer's side, answered again by apply.
    let rejected = observer::openstack_as(&consumer, &["image", "set", "--reject", &id]);
    assert!(
        rejected.status.success(),
        "{}",
        String::from_utf8_lossy(&rejected.stderr)
    );
    let plan = as_consumer("plan").expect_code(2);
    assert!(
        plan.stdout.contains(r#"status: "rejected" → "accepted""#),
        "{}",
        plan.stdout
    );
    as_consumer("apply").expect_code(0);
    assert_eq!(members_of(&id), [(consumer_id.clone(), "accepted".to_string())]);

    // A status that is not one, and an offer the consumer may not make: clear errors, nothing
    // changed in the cloud or in the state.
    let before = std::fs::read(s.path("consumer.state.json")).unwrap();
    answer("maybe");
    let bad = as_consumer("apply").expect_code(1);
    assert!(
        bad.stderr
            .contains("membership 'base-image', field status: 'maybe' is not a member status"),
        "{}",
        bad.stderr
    );
    std::fs::write(
        s.path("offer.yaml"),
        format!("memberships:\n  offer:\n    image_id: {id}\n    member_id: {other_id}\n    side: owner\n"),
    )
    .unwrap();
    let refused = s
        .run_with(
            &["apply", "-f", "offer.yaml", "--state", "offer.state.json"],
            &consumer,
        )
        .expect_code(4);
    assert!(
        refused
            .stderr
            .contains("only the project that owns the image offers it"),
        "{}",
        refused.stderr
    );
    assert!(
        !s.path("offer.state.json").exists() || {
            let offer: Value =
                serde_json::from_str(&std::fs::read_to_string(s.path("offer.state.json")).unwrap()).unwrap();
            offer["memberships"].as_object().is_none_or(|m| m.is_empty())
        }
    );
    assert_eq!(members_of(&id), [(consumer_id.clone(), "accepted".to_string())]);
    assert_eq!(std::fs::read(s.path("consumer.state.json")).unwrap(), before);

    // A member added elsewhere is drift, and apply takes it away again.
    let added = observer::openstack(&["image", "add", "project", &id, &other_id]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let plan = s
        .run_with(&["plan", "-f", "images.yaml"], &publisher)
        .expect_code(2);
    assert!(
        plan.stdout.contains("members") && plan.stdout.contains(&other_id),
        "{}",
        plan.stdout
    );
    s.run_with(&["apply", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    assert_eq!(members_of(&id), [(consumer_id.clone(), "accepted".to_string())]);

    // The consumer's destroy rejects the offer (only the owner removes a membership).
    answer("accepted");
    s.run_with(
        &["destroy", "-f", "consumer.yaml", "--state", "consumer.state.json"],
        &consumer,
    )
    .expect_code(0);
    assert_eq!(members_of(&id), [(consumer_id.clone(), "rejected".to_string())]);

    // `members: []` withdraws every offer and keeps the visibility.
    s.write_spec(&spec("[]"));
    s.run_with(&["apply", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    assert!(members_of(&id).is_empty());
    let image = observer::image(&id).expect("the image is still there");
    assert_eq!(image["visibility"], "shared");
    assert_eq!(s.state_id("base-image"), id, "changed in place");

    // A spec without `members` leaves memberships made elsewhere alone.
    let added = observer::openstack(&["image", "add", "project", &id, &consumer_id]);
    assert!(added.status.success());
    let unmanaged: String = spec("[]")
        .lines()
        .filter(|line| !line.trim_start().starts_with("members:"))
        .map(|line| format!("{line}\n"))
        .collect();
    s.write_spec(&unmanaged);
    s.run_with(&["plan", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    s.run_with(&["destroy", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    assert!(observer::image(&id).is_none());
}

#[test]
fn deactivation_changes_in_place_shows_as_drift_and_does_not_stop_destroy() {
    let s = Scenario::new("share-deactivate");
    let publisher = as_user("publisher");
    let publisher = vars(&publisher);
    s.qcow2("disk.qcow2", 1);
    let spec = |deactivated: bool| {
        format!(
            "images:\n  retired:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    \
             local_file_path: disk.qcow2\n    deactivated: {deactivated}\n",
            s.image_name("retired")
        )
    };
    let status = |id: &str| {
        observer::image(id).expect("the image")["status"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Created deactivated: the data is uploaded and verified first.
    s.write_spec(&spec(true));
    s.run_with(&["apply", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    let id = s.state_id("retired");
    assert_eq!(status(&id), "deactivated");
    s.run_with(&["plan", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    assert_eq!(
        s.state().unwrap()["images"]["retired"]["image"]["status"],
        "deactivated"
    );

    s.write_spec(&spec(false));
    let plan = s
        .run_with(&["plan", "-f", "images.yaml"], &publisher)
        .expect_code(2);
    assert!(
        plan.stdout.contains("deactivated: true → false"),
        "{}",
        plan.stdout
    );
    s.run_with(&["apply", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    assert_eq!(status(&id), "active");
    assert_eq!(s.state_id("retired"), id, "in place");

    // Deactivated by someone else: drift, put back by apply.
    let out = observer::openstack(&["image", "set", "--deactivate", &id]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan = s
        .run_with(&["plan", "-f", "images.yaml"], &publisher)
        .expect_code(2);
    assert!(
        plan.stdout.contains("deactivated: true → false"),
        "{}",
        plan.stdout
    );
    assert!(plan.stdout.contains("update in place"), "{}", plan.stdout);

    // A deactivated image is still destroyed.
    s.run_with(&["destroy", "-f", "images.yaml"], &publisher)
        .expect_code(0);
    assert!(observer::image(&id).is_none());
}

#[test]
fn properties_the_clouds_definitions_rule_out_are_refused_before_anything_is_made() {
    let s = Scenario::new("share-metadefs");
    s.qcow2("disk.qcow2", 1);
    let spec = |properties: &str| {
        format!(
            "images:\n  typed:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    \
             local_file_path: disk.qcow2\n    properties:\n{properties}",
            s.image_name("typed")
        )
    };

    s.write_spec(&spec("      hw_disk_bus: virtoi\n"));
    let refused = s.plan().expect_code(1);
    for part in [
        "properties.hw_disk_bus",
        "'virtoi'",
        "virtio",
        "scsi",
        "OS::Compute::LibvirtImage",
    ] {
        assert!(refused.stderr.contains(part), "{part}: {}", refused.stderr);
    }
    let refused = s.run(&["apply", "-f", "images.yaml"]).expect_code(1);
    assert!(
        refused.stderr.contains("Nothing was changed"),
        "{}",
        refused.stderr
    );
    assert!(s.cloud_images().is_empty(), "nothing was created");
    assert!(
        s.state()
            .is_none_or(|state| state["images"].as_object().is_none_or(|i| i.is_empty()))
    );

    // A key one edit away from a defined one.
    s.write_spec(&spec("      hw_disk_buss: virtio\n"));
    let refused = s.plan().expect_code(1);
    assert!(
        refused.stderr.contains("did you mean 'hw_disk_bus'"),
        "{}",
        refused.stderr
    );

    // Allowed values and keys the cloud does not define pass.
    s.write_spec(&spec("      hw_disk_bus: virtio\n      x_custom: anything\n"));
    s.apply();
    let id = s.state_id("typed");
    let image = observer::image(&id).expect("created");
    assert_eq!(image["properties"]["hw_disk_bus"], "virtio");
    assert_eq!(image["properties"]["x_custom"], "anything");
    s.run(&["destroy", "-f", "images.yaml"]).expect_code(0);
}

#[test]
fn bad_sharing_input_names_the_field_and_changes_nothing() {
    let s = Scenario::new("share-bad");
    s.qcow2("disk.qcow2", 1);
    let consumer_id = observer::project_id("consumer");
    let spec = |visibility: &str, members: &str| {
        format!(
            "images:\n  bad:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    \
             local_file_path: disk.qcow2\n    visibility: {visibility}\n    members: {members}\n",
            s.image_name("bad")
        )
    };
    for (visibility, members, says) in [
        (
            "shared",
            "[consumer]".to_string(),
            "'consumer' is not a project id",
        ),
        ("private", format!("[{consumer_id}]"), "visibility is 'private'"),
        (
            "shared",
            format!("[{consumer_id}, {consumer_id}]"),
            "appears twice",
        ),
    ] {
        s.write_spec(&spec(visibility, &members));
        let refused = s.run(&["apply", "-f", "images.yaml"]).expect_code(1);
        assert!(
            refused.stderr.contains("image 'bad', field members"),
            "{}",
            refused.stderr
        );
        assert!(refused.stderr.contains(says), "{says}: {}", refused.stderr);
    }
    s.write_spec(&spec("shared", "[]").replace("members: []", "deactivated: maybe"));
    let refused = s.run(&["apply", "-f", "images.yaml"]).expect_code(1);
    assert!(refused.stderr.contains("deactivated"), "{}", refused.stderr);
    assert!(s.cloud_images().is_empty(), "nothing was created");
    assert!(
        s.state()
            .is_none_or(|state| state["images"].as_object().is_none_or(|i| i.is_empty()))
    );
}

#[test]
fn import_manages_the_properties_and_members_the_spec_names() {
    let s = Scenario::new("share-import");
    let file = s.qcow2("disk.qcow2", 1);
    let name = s.image_name("adopted");
    let consumer_id = observer::project_id("consumer");
    let id = observer::create_qcow2(
        &name,
        &file,
        &["--property", "os_distro=cirros", "--property", "other_tool=x"],
    );
    let shared = observer::openstack(&["image", "set", "--shared", &id]);
    assert!(
        shared.status.success(),
        "{}",
        String::from_utf8_lossy(&shared.stderr)
    );
    let added = observer::openstack(&["image", "add", "project", &id, &consumer_id]);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    s.write_spec(&format!(
        "images:\n  adopted:\n    name: {name}\n    container_format: bare\n    disk_format: qcow2\n    \
         local_file_path: disk.qcow2\n    visibility: shared\n    members: [{consumer_id}]\n    \
         properties:\n      os_distro: cirros\n"
    ));
    s.run(&["import", "adopted", &id, "-f", "images.yaml"])
        .expect_code(0);
    let shown = show(&s, &[], "adopted");
    assert_eq!(
        shown["properties"],
        serde_json::json!({"os_distro": "cirros"}),
        "{shown}"
    );
    assert_eq!(shown["members"], serde_json::json!([consumer_id]), "{shown}");
    assert_eq!(shown["metadata"]["other_tool"], "x", "left alone: {shown}");
    s.plan().expect_code(0);
}
