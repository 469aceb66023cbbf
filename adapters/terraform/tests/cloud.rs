//! The provider binary, with the real component in its sandbox, under the real Terraform
//! 1.0.3 (the oldest supported) and, for write-only attributes, the machine's Terraform >= 1.11
//! when there is one (each workspace prints which version ran), against the dev cloud
//! (`scripts/dev-cloud`): every step is checked with
//! python-openstackclient (`openstack image show`), the observer the CLI's tests use too.
//! Scenarios read as a user's session: write a configuration, plan, apply, look at the cloud,
//! change the configuration, look again.

#[path = "support/real_cloud.rs"]
mod real_cloud;
mod support;

use openstack_image_tests::fault_proxy::{Fault, FaultProxy};
use openstack_image_tests::keystone_counter::CountingKeystone;
use openstack_image_tests::source_server::{Served, SourceServer, compressed_variants};
use openstack_image_tests::{Scenario, TestRegion, cloud_env, digest, observer};
use real_cloud::{attributes, expect_code, id_of, main_tf, workspace};
use serde_json::Value as Json;

/// The image resource `web` named `name`, over `file`, with `extra` attribute lines.
fn image_tf(name: &str, file: &std::path::Path, extra: &str) -> String {
    main_tf(&format!(
        r#"resource "openstack_images_image_v2" "web" {{
  provider         = openstackimage
  name             = "{name}"
  container_format = "bare"
  local_file_path  = "{file}"
{extra}
  timeouts {{
    create = "10m"
  }}
}}
"#,
        file = file.display()
    ))
}

/// The image resource `web` (a qcow2), with `extra` attribute lines.
fn web(s: &Scenario, file: &std::path::Path, extra: &str) -> String {
    image_tf(
        &s.image_name("web"),
        file,
        &format!("  disk_format      = \"qcow2\"\n{extra}"),
    )
}

#[test]
fn create_update_replace_drift_and_destroy_a_local_image() {
    let s = Scenario::new("tf-local");
    let file = s.qcow2("web.qcow2", 2);
    let w = workspace(&[]);
    w.configure(&web(
        &s,
        &file,
        "  tags = [\"linux\", \"test\"]\n  min_disk_gb = 1\n  min_ram_mb = 64\n  properties = {\n    os_distro = \"cirros\"\n    hw_disk_bus = \"virtio\"\n  }",
    ));
    w.init();
    let plan = expect_code(w.plan(), 2);
    assert!(plan.stdout.contains("will be created"), "{}", plan.stdout);
    w.apply();
    let id = id_of(&w, "openstack_images_image_v2.web");
    let image = observer::image(&id).expect("the image exists");
    assert_eq!(image["status"], "active");
    assert_eq!(image["name"], s.image_name("web"));
    assert_eq!(image["min_disk"], 1);
    assert_eq!(image["min_ram"], 64);
    assert_eq!(image["visibility"], "private");
    assert_eq!(observer::sorted_tags(&image), vec!["linux", "test"]);
    assert_eq!(image["properties"]["os_distro"], "cirros");
    assert_eq!(image["checksum"], digest("md5sum", &file));
    assert_eq!(image["properties"]["os_hash_value"], digest("sha512sum", &file));
    let state = attributes(&w, "openstack_images_image_v2.web");
    assert_eq!(state["checksum"], image["checksum"]);
    assert_eq!(state["schema"], "/v2/schemas/image");
    assert_eq!(state["status"], "active");
    assert_eq!(state["size_bytes"], image["size"]);
    expect_code(w.plan(), 0);

    // In place: every mutable attribute at once keeps the id.
    w.configure(&image_tf(
        &s.image_name("web-renamed"),
        &file,
        "  disk_format = \"qcow2\"\n  tags = []\n  visibility = \"public\"\n  min_disk_gb = 2\n  min_ram_mb = 128\n  protected = true\n  hidden = true\n  properties = {\n    os_distro = \"ubuntu\"\n  }\n",
    ));
    let plan = expect_code(w.plan(), 2);
    assert!(plan.stdout.contains("updated in-place"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("forces replacement"), "{}", plan.stdout);
    w.apply();
    assert_eq!(id_of(&w, "openstack_images_image_v2.web"), id, "updated in place");
    let image = observer::image(&id).unwrap();
    assert_eq!(image["name"], s.image_name("web-renamed"));
    assert_eq!(
        observer::sorted_tags(&image),
        Vec::<String>::new(),
        "tags cleared"
    );
    assert_eq!(image["visibility"], "public");
    assert_eq!(image["min_disk"], 2);
    assert_eq!(image["min_ram"], 128);
    assert_eq!(image["protected"], true);
    assert_eq!(image["properties"]["os_hidden"], true);
    assert_eq!(image["properties"]["os_distro"], "ubuntu");
    assert!(
        image["properties"].get("hw_disk_bus").is_none(),
        "a removed property is removed"
    );
    expect_code(w.plan(), 0);

    // A protected image cannot be destroyed: a diagnostic, and it stays.
    let refused = expect_code(w.run(&["destroy", "-auto-approve", "-no-color"]), 1);
    assert!(refused.output().contains("protected"), "{}", refused.output());
    assert!(observer::image(&id).is_some());

    // Drift out of band is found and repaired.
    let unprotected = web(&s, &file, "  protected = false\n");
    w.configure(&unprotected);
    w.apply();
    assert!(
        observer::openstack(&["image", "set", "--name", &s.image_name("drifted"), &id])
            .status
            .success()
    );
    let plan = expect_code(w.plan(), 2);
    assert!(plan.stdout.contains(&s.image_name("drifted")), "{}", plan.stdout);
    w.apply();
    assert_eq!(observer::image(&id).unwrap()["name"], s.image_name("web"));
    expect_code(w.plan(), 0);

    // The file's content changes under the same path: a replacement.
    std::fs::copy(s.qcow2("other.qcow2", 2), &file).unwrap();
    let plan = expect_code(w.plan(), 2);
    assert!(plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    w.apply();
    let replaced = id_of(&w, "openstack_images_image_v2.web");
    assert_ne!(replaced, id);
    assert!(observer::image(&id).is_none(), "the old image is deleted");
    assert_eq!(
        observer::image(&replaced).unwrap()["properties"]["os_hash_value"],
        digest("sha512sum", &file)
    );

    // A disk format change (the same disk converted to raw: the bytes must agree with the
    // declared format): a replacement too.
    let raw_file = s.raw_copy(&file, "web.raw");
    w.configure(&image_tf(
        &s.image_name("web"),
        &raw_file,
        "  disk_format = \"raw\"\n",
    ));
    let plan = expect_code(w.plan(), 2);
    assert!(plan.stdout.contains("forces replacement"), "{}", plan.stdout);
    w.apply();
    let raw = id_of(&w, "openstack_images_image_v2.web");
    assert_ne!(raw, replaced);
    assert!(observer::image(&replaced).is_none());
    assert_eq!(observer::image(&raw).unwrap()["disk_format"], "raw");

    w.destroy();
    assert!(observer::image(&raw).is_none());
}

#[test]
fn a_url_source_decompressed_as_it_streams_and_through_the_cache() {
    let s = Scenario::new("tf-url");
    let raw = s.qcow2("disk.qcow2", 3);
    let server = SourceServer::start();
    let gzip = compressed_variants(&raw)
        .into_iter()
        .find(|(f, _)| *f == "gzip")
        .unwrap()
        .1;
    server.serve("/disk.qcow2.gz", Served::new(std::fs::read(gzip).unwrap()));
    let cache = s.path("cache");
    // The provider trims the cache after each operation: with a limit of nothing, no
    // download outlives the create that used it.
    let w = workspace(&[("OPENSTACK_IMAGE_CACHE_MAX_SIZE", "0")]);
    let image = |key: &str, extra: &str| {
        format!(
            r#"resource "openstack_images_image_v2" "{key}" {{
  provider         = openstackimage
  name             = "{name}"
  container_format = "bare"
  disk_format      = "qcow2"
  image_source_url = "{url}"
  decompress       = true
{extra}}}
"#,
            name = s.image_name(key),
            url = server.url("/disk.qcow2.gz")
        )
    };
    w.configure(&main_tf(&format!(
        "{}{}",
        image("streamed", "  image_cache_path = \"none\"\n"),
        image(
            "cached",
            &format!("  image_cache_path = \"{}\"\n", cache.display())
        )
    )));
    w.init();
    w.apply();
    for key in ["streamed", "cached"] {
        let id = id_of(&w, &format!("openstack_images_image_v2.{key}"));
        let image = observer::image(&id).unwrap();
        assert_eq!(image["status"], "active", "{key}");
        assert_eq!(
            image["properties"]["os_hash_value"],
            digest("sha512sum", &raw),
            "{key}"
        );
    }
    let kept: Vec<_> = std::fs::read_dir(&cache)
        .unwrap()
        .flat_map(|area| std::fs::read_dir(area.unwrap().path()).into_iter().flatten())
        .map(|file| file.unwrap().path())
        .filter(|file| file.extension().is_some_and(|e| e == "img"))
        .collect();
    assert!(kept.is_empty(), "the cache limit was not applied: {kept:?}");
    expect_code(w.plan(), 0);
    w.destroy();
}

#[test]
fn import_adopts_an_existing_image() {
    let s = Scenario::new("tf-import");
    let file = s.qcow2("disk.qcow2", 1);
    let id = observer::create_qcow2(
        &s.image_name("web"),
        &file,
        &["--property", "os_distro=cirros", "--tag", "adopted"],
    );
    let w = workspace(&[]);
    w.configure(&web(
        &s,
        &file,
        "  tags = [\"adopted\"]\n  properties = {\n    os_distro = \"cirros\"\n  }\n",
    ));
    w.init();
    w.ok(&["import", "-no-color", "openstack_images_image_v2.web", &id]);
    let state = attributes(&w, "openstack_images_image_v2.web");
    assert_eq!(state["id"], id.as_str());
    assert_eq!(state["name"], s.image_name("web"));
    assert_eq!(state["properties"]["os_distro"], "cirros");
    // Glance does not know where an image's data came from: the first plan records the
    // configuration's source and timeouts in place (nothing is replaced or sent to the cloud
    // but a no-op), and then the plan is clean.
    let plan = expect_code(w.plan(), 2);
    assert!(plan.stdout.contains("updated in-place"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("replaced"), "{}", plan.stdout);
    w.apply();
    assert_eq!(id_of(&w, "openstack_images_image_v2.web"), id);
    expect_code(w.plan(), 0);
    w.destroy();
    assert!(observer::image(&id).is_none());
}

#[test]
fn the_data_source_finds_the_newest_image_by_name_and_tag() {
    let s = Scenario::new("tf-data");
    let file = s.qcow2("disk.qcow2", 1);
    let mut ids = Vec::new();
    for tag in ["lts", "lts", "edge"] {
        ids.push(observer::create_qcow2(
            &s.image_name("ubuntu"),
            &file,
            &["--tag", tag, "--property", "os_distro=ubuntu"],
        ));
        // created_at has a resolution of one second.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let data = |extra: &str| {
        main_tf(&format!(
            r#"data "openstack_images_image_v2" "ubuntu" {{
  provider    = openstackimage
  name        = "{name}"
  tag         = "lts"
  properties  = {{ os_distro = "ubuntu" }}
{extra}}}

output "id" {{
  value = data.openstack_images_image_v2.ubuntu.id
}}

output "checksum" {{
  value = data.openstack_images_image_v2.ubuntu.checksum
}}
"#,
            name = s.image_name("ubuntu")
        ))
    };
    let w = workspace(&[]);
    w.configure(&data("  most_recent = true\n"));
    w.init();
    w.apply();
    assert_eq!(w.output("id"), ids[1], "the newer of the two tagged lts");
    assert_eq!(w.output("checksum"), digest("md5sum", &file));

    w.configure(&data(""));
    let refused = expect_code(w.plan(), 1);
    assert!(refused.output().contains("most_recent"), "{}", refused.output());
    w.configure(&data("  name_regex = \"^nothing-matches$\"\n"));
    let none = expect_code(w.plan(), 1);
    assert!(none.output().contains("no image matches"), "{}", none.output());
}

#[test]
fn bad_input_is_a_diagnostic_on_its_attribute_and_creates_nothing() {
    let s = Scenario::new("tf-bad");
    let file = s.qcow2("disk.qcow2", 1);
    let w = workspace(&[]);
    w.configure(&web(&s, &file, ""));
    w.init();

    w.configure(&web(&s, &file, "").replace("\"qcow2\"", "\"qcow3\""));
    let bad = expect_code(w.plan(), 1);
    assert!(bad.output().contains("disk_format"), "{}", bad.output());
    assert!(bad.output().contains("qcow3"), "{}", bad.output());

    let missing = s.path("missing.qcow2");
    w.configure(&web(&s, &missing, ""));
    let bad = expect_code(w.plan(), 1);
    assert!(bad.output().contains("local_file_path"), "{}", bad.output());
    assert!(bad.output().contains("does not exist"), "{}", bad.output());

    w.configure(&web(&s, &file, ""));
    let wrong = expect_code(
        w.run_with(
            &["apply", "-auto-approve", "-no-color"],
            &[("OS_PASSWORD", "not-the-password")],
        ),
        1,
    );
    assert!(
        wrong.output().contains("rejected the credentials"),
        "{}",
        wrong.output()
    );
    assert!(!wrong.output().contains("not-the-password"), "{}", wrong.output());
    assert!(
        s.cloud_images().is_empty(),
        "nothing was created: {:?}",
        s.cloud_images()
    );
}

#[test]
fn members_deactivation_and_the_clouds_property_definitions() {
    let s = Scenario::new("tf-share");
    let file = s.qcow2("disk.qcow2", 1);
    let consumer = observer::project_id("consumer");
    let w = workspace(&[]);
    let shared = |extra: &str| {
        web(
            &s,
            &file,
            &format!(
                "  visibility = \"shared\"\n  members = [\"{consumer}\"]\n  deactivated = true\n{extra}"
            ),
        )
    };
    w.configure(&shared(""));
    w.init();
    w.apply();
    let id = id_of(&w, "openstack_images_image_v2.web");
    let image = observer::image(&id).expect("the image exists");
    assert_eq!(image["status"], "deactivated");
    assert_eq!(image["visibility"], "shared");
    let state = attributes(&w, "openstack_images_image_v2.web");
    assert_eq!(state["member_statuses"][&consumer], "pending", "{state}");
    assert_eq!(state["deactivated"], true);
    expect_code(w.plan(), 0);

    // A value the cloud's metadefs rule out: a diagnostic on the property, nothing changes.
    w.configure(&shared("  properties = {\n    hw_disk_bus = \"virtoi\"\n  }\n"));
    let refused = expect_code(w.plan(), 1);
    assert!(refused.output().contains("hw_disk_bus"), "{}", refused.output());
    assert!(refused.output().contains("virtio"), "{}", refused.output());

    // Reactivated and withdrawn in place.
    w.configure(&web(
        &s,
        &file,
        "  visibility = \"shared\"\n  members = []\n  deactivated = false\n",
    ));
    w.apply();
    assert_eq!(id_of(&w, "openstack_images_image_v2.web"), id, "in place");
    assert_eq!(observer::image(&id).unwrap()["status"], "active");
    let members = observer::json(&["image", "member", "list", &id, "-f", "json"]);
    assert_eq!(members, serde_json::json!([]));
    expect_code(w.plan(), 0);
    w.destroy();
    assert!(observer::image(&id).is_none());
}

/// A provider block acting as the dev cloud's `publisher` or `consumer` user (alias `who`).
fn provider_as(who: &str) -> String {
    let settings = openstack_image_tests::user_settings(who);
    let [(_, user), (_, password), (_, project)] = &settings[..] else {
        panic!("user, password and project of {who}")
    };
    format!(
        "provider \"openstackimage\" {{\n  alias       = \"{who}\"\n  user_name   = \"{user}\"\n  password    = \"{password}\"\n  tenant_name = \"{project}\"\n}}\n"
    )
}

#[test]
fn an_image_offered_by_one_project_and_accepted_by_another() {
    let s = Scenario::new("tf-access");
    let file = s.qcow2("disk.qcow2", 1);
    let consumer_id = observer::project_id("consumer");
    let image = format!(
        r#"resource "openstack_images_image_v2" "web" {{
  provider         = openstackimage.publisher
  name             = "{name}"
  container_format = "bare"
  disk_format      = "qcow2"
  local_file_path  = "{file}"
  visibility       = "shared"
}}
"#,
        name = s.image_name("web"),
        file = file.display()
    );
    let offer = format!(
        r#"resource "openstack_images_image_access_v2" "offer" {{
  provider  = openstackimage.publisher
  image_id  = openstack_images_image_v2.web.id
  member_id = "{consumer_id}"
}}
"#
    );
    let accept = r#"resource "openstack_images_image_access_accept_v2" "accept" {
  provider = openstackimage.consumer
  image_id = openstack_images_image_access_v2.offer.image_id
  status   = "accepted"
}
"#;
    let configuration = |body: &str| {
        main_tf(&format!(
            "{}{}{body}",
            provider_as("publisher"),
            provider_as("consumer")
        ))
    };
    let w = workspace(&[]);
    w.configure(&configuration(&format!("{image}{offer}{accept}")));
    w.init();
    w.apply();
    let id = id_of(&w, "openstack_images_image_v2.web");
    assert_eq!(
        observer::members(&id),
        [(consumer_id.clone(), "accepted".to_string())]
    );
    let offered = attributes(&w, "openstack_images_image_access_v2.offer");
    assert_eq!(offered["id"], format!("{id}/{consumer_id}"), "{offered}");
    let accepted = attributes(&w, "openstack_images_image_access_accept_v2.accept");
    assert_eq!(
        accepted["member_id"],
        consumer_id.as_str(),
        "the caller's project: {accepted}"
    );
    assert_eq!(accepted["status"], "accepted");
    // The image resource does not set `members`: it leaves the access resources' member alone.
    expect_code(w.plan(), 0);

    // The consumer's answer changed elsewhere is drift of the accept resource, answered again.
    let consumer = openstack_image_tests::user_settings("consumer");
    let consumer: Vec<(&str, &str)> = consumer.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let rejected = observer::openstack_as(&consumer, &["image", "set", "--reject", &id]);
    assert!(
        rejected.status.success(),
        "{}",
        String::from_utf8_lossy(&rejected.stderr)
    );
    let drift = expect_code(w.plan(), 2);
    assert!(
        drift.stdout.contains("\"rejected\" -> \"accepted\""),
        "{}",
        drift.stdout
    );
    w.apply();
    assert_eq!(
        observer::members(&id),
        [(consumer_id.clone(), "accepted".to_string())]
    );

    // Import of the accept resource by IMAGE_ID/MEMBER_ID, as terraform-provider-openstack's.
    w.ok(&["state", "rm", "openstack_images_image_access_accept_v2.accept"]);
    w.ok(&[
        "import",
        "-no-color",
        "openstack_images_image_access_accept_v2.accept",
        &format!("{id}/{consumer_id}"),
    ]);
    expect_code(w.plan(), 0);

    // Withdrawn: the offer's resource removed removes the membership; the image stays shared.
    w.configure(&configuration(&image));
    w.apply();
    assert_eq!(observer::members(&id), []);
    assert_eq!(observer::image(&id).unwrap()["visibility"], "shared");
    w.destroy();
    assert!(observer::image(&id).is_none());
}

#[test]
fn an_upload_failing_midway_leaves_no_image_and_no_state() {
    let s = Scenario::new("tf-fault");
    let file = s.qcow2("disk.qcow2", 2);
    let glance: std::net::SocketAddr = cloud_env()["DEV_CLOUD_GLANCE_URL"]
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let proxy = FaultProxy::start(glance, |line| {
        (line.starts_with("PUT ") && line.contains("/file ")).then_some(Fault::CutBody(256 * 1024))
    });
    let region = TestRegion::register(&s.image_name("region"), &format!("http://{}", proxy.addr));
    let w = workspace(&[]);
    w.configure(&web(&s, &file, &format!("  region = \"{}\"\n", region.name)));
    w.init();
    let failed = expect_code(w.run(&["apply", "-auto-approve", "-no-color"]), 1);
    assert!(failed.output().contains("Error"), "{}", failed.output());
    assert!(
        s.cloud_images().is_empty(),
        "no half-made image: {:?}",
        s.cloud_images()
    );
    let shown: Json = serde_json::from_str(&w.ok(&["show", "-json"]).stdout).unwrap();
    assert!(
        shown["values"]["root_module"]["resources"]
            .as_array()
            .is_none_or(|r| r.is_empty()),
        "{shown}"
    );
}

/// `examples/terraform/main.tf`, the README's example, exactly as it is in the repository.
#[test]
fn the_readme_example_runs_as_written() {
    // With the oldest supported Terraform, and with the machine's newer one when it has one.
    let mut clients = vec![support::terraform()];
    match support::newer_terraform() {
        Ok((newer, _)) => clients.push(newer),
        Err(why) => eprintln!("the example runs with Terraform 1.0.3 only: {why}"),
    }
    for terraform in clients {
        let s = Scenario::new("tf-example");
        let example = openstack_image_tests::root().join("examples/terraform/main.tf");
        let w = real_cloud::workspace_with(terraform, &[]);
        w.configure(&std::fs::read_to_string(example).unwrap());
        std::fs::copy(s.qcow2("demo.qcow2", 1), w.dir().join("demo.qcow2")).unwrap();
        w.init();
        w.apply();
        let id = w.output("image_id");
        let image = observer::image(&id).expect("the image exists");
        assert_eq!(image["status"], "active");
        assert_eq!(observer::sorted_tags(&image), vec!["demo", "terraform"]);
        assert_eq!(w.output("checksum"), image["checksum"].as_str().unwrap());
        expect_code(w.plan(), 0);
        w.destroy();
        assert!(observer::image(&id).is_none());
    }
}

/// Four image resources, the provider's Keystone requests counted at a relaying proxy: each
/// provider process that acts on the cloud logs in at most once (it shares one session among
/// its resources and checks no token), and with a given token (`OS_AUTH_TOKEN`) it never logs
/// in: the token describes itself once (`GET /v3/auth/tokens`, its catalog).
#[test]
fn one_login_per_provider_process_and_none_with_a_token() {
    let s = Scenario::new("tf-logins");
    let files: Vec<_> = (0..4).map(|i| s.qcow2(&format!("disk{i}.qcow2"), 1)).collect();
    let resources: String = files
        .iter()
        .enumerate()
        .map(|(i, file)| {
            format!(
                r#"resource "openstack_images_image_v2" "img{i}" {{
  provider         = openstackimage
  name             = "{name}"
  container_format = "bare"
  disk_format      = "qcow2"
  local_file_path  = "{file}"
}}
"#,
                name = s.image_name(&format!("img{i}")),
                file = file.display()
            )
        })
        .collect();
    let keystone = CountingKeystone::start();
    let auth_url = keystone.auth_url();
    let w = workspace(&[("OS_AUTH_URL", &auth_url)]);
    w.configure(&main_tf(&resources));
    w.init();
    let debug = [("TF_LOG", "debug")];
    let processes = |run: &support::Run| {
        run.output()
            .lines()
            .filter(|l| l.contains("plugin started") && l.contains("terraform-provider-openstackimage"))
            .count()
    };
    let apply = w.run_with(&["apply", "-auto-approve", "-no-color"], &debug);
    assert_eq!(apply.code, 0, "{}", apply.output());
    let started = processes(&apply);
    assert!(started >= 1, "{}", apply.output());
    assert!(
        (1..=started).contains(&keystone.logins()),
        "{} logins by {started} provider processes for four images",
        keystone.logins()
    );
    assert_eq!(keystone.requests(), keystone.logins(), "no token checks");

    // A given token: no login, only the token describing itself.
    let token = observer::json(&["token", "issue", "-f", "json"])["id"]
        .as_str()
        .expect("a token")
        .to_string();
    let before = keystone.logins();
    let with_token = [
        ("TF_LOG", "debug"),
        ("OS_AUTH_TOKEN", token.as_str()),
        ("OS_PASSWORD", ""),
        ("OS_USERNAME", ""),
        ("OS_AUTH_TYPE", ""),
    ];
    let destroy = w.run_with(&["destroy", "-auto-approve", "-no-color"], &with_token);
    assert_eq!(destroy.code, 0, "{}", destroy.output());
    assert_eq!(keystone.logins(), before, "a token needs no login");
    assert!(
        keystone.requests() - before <= processes(&destroy),
        "at most one token description per provider process"
    );
    assert!(s.cloud_images().is_empty(), "{:?}", s.cloud_images());
}

/// `image_source_password_wo` (write-only, Terraform >= 1.11): the password reaches the source's
/// Basic auth at create and is never in the plan or the state (Terraform 1.11 refuses a
/// provider answer that holds a write-only value, so a clean apply is that check too); a new
/// `image_source_password_wo_version` is an update in place. Terraform 1.0.3, which never
/// announces write-only support, gets the capability diagnostic before anything is made.
#[test]
fn a_write_only_source_password_reaches_the_download_and_never_the_state() {
    const PASSWORD: &str = "wo-secret-5d1c9a7e";
    let s = Scenario::new("tf-wo");
    let file = s.qcow2("disk.qcow2", 1);
    let server = SourceServer::start();
    server.serve(
        "/disk.qcow2",
        Served::new(std::fs::read(&file).unwrap()).basic_auth("mirror", PASSWORD),
    );
    let address = "openstack_images_image_v2.wo";
    let config = |version: u32, extra: &str| {
        main_tf(&format!(
            r#"variable "pw" {{
  type      = string
  sensitive = true
}}

resource "openstack_images_image_v2" "wo" {{
  provider                         = openstackimage
  name                             = "{name}"
  container_format                 = "bare"
  disk_format                      = "qcow2"
  image_source_url                 = "{url}"
  image_source_username            = "mirror"
  image_source_password_wo         = var.pw
  image_source_password_wo_version = {version}
  image_cache_path                 = "none"
{extra}}}
"#,
            name = s.image_name("wo"),
            url = server.url("/disk.qcow2")
        ))
    };
    let pw = [("TF_VAR_pw", PASSWORD)];

    // Terraform 1.0.3 would plan and store the value like any other: refused at validate and
    // at plan, on the attribute, before the source is fetched or an image made.
    let old = workspace(&pw);
    old.configure(&config(1, ""));
    old.init();
    for args in [&["validate", "-no-color"][..], &["plan", "-no-color"][..]] {
        let refused = expect_code(old.run(args), 1);
        let output = refused.output();
        assert!(
            output.contains("Write-only attribute not supported by this Terraform"),
            "terraform {args:?}:\n{output}"
        );
        assert!(output.contains("Terraform 1.11"), "{output}");
        assert!(output.contains("image_source_password_wo"), "{output}");
        assert!(!output.contains(PASSWORD), "{output}");
    }
    assert_eq!(server.hits("/disk.qcow2"), 0);
    assert!(s.cloud_images().is_empty(), "{:?}", s.cloud_images());

    let (terraform, version) = match support::newer_terraform() {
        Ok(found) => found,
        Err(why) => {
            eprintln!(
                "SKIPPED the write-only part: it needs Terraform {} or later ({why})",
                support::WRITE_ONLY_TERRAFORM
            );
            return;
        }
    };
    eprintln!(
        "write-only part with Terraform {version} ({})",
        terraform.display()
    );
    let w = real_cloud::workspace_with(terraform, &pw);
    w.configure(&config(1, ""));
    w.init();
    // Under TF_LOG=trace: the password is in no line Terraform or the provider logs.
    let apply = w.run_with(&["apply", "-auto-approve", "-no-color"], &[("TF_LOG", "trace")]);
    assert_eq!(apply.code, 0, "{}", apply.output());
    assert!(
        apply.output().contains("calling the component's"),
        "the trace log holds the provider's own lines"
    );
    assert!(
        !apply.output().contains(PASSWORD),
        "the password is in the trace log"
    );
    let id = id_of(&w, address);
    let image = observer::image(&id).expect("the image exists");
    assert_eq!(image["status"], "active");
    assert_eq!(image["checksum"], digest("md5sum", &file));
    assert!(server.hits("/disk.qcow2") >= 1, "the source was downloaded");
    let no_secret = |w: &support::Workspace| {
        let state = attributes(w, address);
        assert_eq!(state["image_source_password_wo"], Json::Null, "{state}");
        assert_eq!(state["image_source_password"], Json::Null, "{state}");
        let shown = w.ok(&["show", "-json"]).stdout;
        assert!(
            !shown.contains(PASSWORD),
            "terraform show -json holds the password"
        );
        let stored = std::fs::read_to_string(w.dir().join("terraform.tfstate")).unwrap();
        assert!(!stored.contains(PASSWORD), "the state file holds the password");
        state
    };
    assert_eq!(no_secret(&w)["image_source_password_wo_version"], 1);
    expect_code(w.plan(), 0);

    // A new version: recorded in place (the password is used when an image is made), no
    // replacement.
    w.configure(&config(2, ""));
    let plan = expect_code(w.plan(), 2);
    assert!(plan.stdout.contains("updated in-place"), "{}", plan.stdout);
    assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    assert!(!plan.output().contains(PASSWORD), "{}", plan.output());
    w.apply();
    assert_eq!(id_of(&w, address), id, "the same image");
    assert_eq!(no_secret(&w)["image_source_password_wo_version"], 2);
    expect_code(w.plan(), 0);

    // Both passwords at once: a diagnostic on the write-only one (at plan: `validate` sees
    // the variable as unknown, which may still be null).
    w.configure(&config(2, "  image_source_password = var.pw\n"));
    let conflict = expect_code(w.plan(), 1);
    assert!(
        conflict.output().contains("Conflicting configuration arguments"),
        "{}",
        conflict.output()
    );
    assert!(!conflict.output().contains(PASSWORD), "{}", conflict.output());

    w.configure(&config(2, ""));
    w.destroy();
    assert!(observer::image(&id).is_none());
}
