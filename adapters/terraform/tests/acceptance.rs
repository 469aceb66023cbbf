//! terraform-provider-openstack's acceptance tests of `openstack_images_image_v2`
//! (`openstack/resource_openstack_images_image_v2_test.go` and the import test), run step by
//! step with the real Terraform 1.0.3 against the dev cloud. Each configuration sets the same
//! attributes as the peer's, with the `provider = openstackimage` line added; the only
//! substitutions are the source URL (a local server instead of releases.rancher.com and
//! github.com: this machine has no other network) and the fixed `image_id` (a fresh UUID per
//! run: Glance never reuses the id of a deleted image).
//!
//! Each step does what the peer's test framework does: apply, then a plan that must be empty,
//! then the step's checks on the state and on the image in Glance; the case ends with destroy
//! and a check that every image of the case is gone.

// Shared with cloud.rs and terraform.rs, which use the helpers this file does not.
#[allow(dead_code)]
#[path = "support/real_cloud.rs"]
mod real_cloud;
#[allow(dead_code)]
mod support;

use openstack_image_tests::source_server::{Served, SourceServer, compressed_variants};
use openstack_image_tests::{Scenario, WEB_DOWNLOAD_PORTS, digest, observer};
use real_cloud::{attributes, expect_code, main_tf, workspace};
use serde_json::Value as Json;
use support::Workspace;

const ADDRESS: &str = "openstack_images_image_v2.image_1";

/// One acceptance case: a workspace, the source server with the peer's image path, and the ids
/// of every image the case's steps made (for the destroy check).
struct Case {
    w: Workspace,
    url: String,
    seen: Vec<String>,
    _server: SourceServer,
    _scenario: Scenario,
}

impl Case {
    fn new(test: &str) -> Case {
        Case::serving(test, SourceServer::start())
    }

    fn serving(test: &str, server: SourceServer) -> Case {
        let s = Scenario::new(test);
        let file = s.qcow2("rancheros-openstack.img", 1);
        server.serve(
            "/os/latest/rancheros-openstack.img",
            Served::new(std::fs::read(&file).unwrap()),
        );
        let w = workspace(&[]);
        Case {
            url: server.url("/os/latest/rancheros-openstack.img"),
            w,
            seen: Vec::new(),
            _server: server,
            _scenario: s,
        }
    }

    /// The peer's `image_1`: its name, the source URL, bare/qcow2, and `extra` lines.
    fn config(&self, name: &str, extra: &str) -> String {
        main_tf(&format!(
            r#"resource "openstack_images_image_v2" "image_1" {{
  provider         = openstackimage
  name             = "{name}"
  image_source_url = "{url}"
  container_format = "bare"
  disk_format      = "qcow2"
{extra}}}
"#,
            url = self.url
        ))
    }

    /// One step: apply `config`, expect an empty plan, and return the state's attributes and
    /// the image as Glance shows it (the peer's `testAccCheckImagesImageV2Exists`).
    fn step(&mut self, config: &str) -> (Json, Json) {
        self.w.configure(config);
        if self.seen.is_empty() {
            self.w.init();
        }
        self.w.apply();
        let plan = expect_code(self.w.plan(), 0);
        assert!(plan.stdout.contains("No changes"), "{}", plan.stdout);
        let state = attributes(&self.w, ADDRESS);
        let id = state["id"].as_str().expect("an id in the state").to_string();
        let image = observer::image(&id).unwrap_or_else(|| panic!("image {id} is not in Glance"));
        assert_eq!(image["id"], id.as_str());
        assert_eq!(image["status"], "active");
        if !self.seen.contains(&id) {
            self.seen.push(id);
        }
        (state, image)
    }

    /// Destroy, then the peer's `testAccCheckImagesImageV2Destroy`: no image of the case left.
    fn destroy(self) {
        self.w.destroy();
        for id in &self.seen {
            assert!(observer::image(id).is_none(), "image {id} still exists");
        }
    }
}

/// The peer's basic checks: name, formats and the schema path.
fn basic_checks(state: &Json, image: &Json) {
    assert_eq!(state["name"], "Rancher TerraformAccTest");
    assert_eq!(state["container_format"], "bare");
    assert_eq!(state["disk_format"], "qcow2");
    assert_eq!(state["schema"], "/v2/schemas/image");
    assert_eq!(image["name"], "Rancher TerraformAccTest");
    assert_eq!(image["disk_format"], "qcow2");
}

/// A fresh UUID (Glance reserves the ids of deleted images, so a fixed one works only once).
fn fresh_uuid() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/uuid")
        .expect("the kernel's UUID source")
        .trim()
        .to_string()
}

const CREATE_TIMEOUT: &str = "\n  timeouts {\n    create = \"10m\"\n  }\n";

/// TestAccImagesImageV2_basic: Basic, BasicWithID (a replacement with the given id),
/// BasicHidden.
#[test]
fn basic() {
    let mut case = Case::new("acc-basic");
    let (state, image) = case.step(&case.config("Rancher TerraformAccTest", CREATE_TIMEOUT));
    basic_checks(&state, &image);

    let uuid = fresh_uuid();
    let (state, image) = case.step(&case.config(
        "Rancher TerraformAccTest",
        &format!("  image_id = \"{uuid}\"\n{CREATE_TIMEOUT}"),
    ));
    basic_checks(&state, &image);
    assert_eq!(state["image_id"], uuid.as_str());
    assert_eq!(image["id"], uuid.as_str());

    let (state, image) = case.step(&case.config(
        "Rancher TerraformAccTest",
        &format!("  hidden = true\n{CREATE_TIMEOUT}"),
    ));
    basic_checks(&state, &image);
    assert_eq!(state["hidden"], true);
    assert_eq!(image["properties"]["os_hidden"], true);
    case.destroy();
}

/// TestAccImagesImageV2_name: Name1, Name2 (an update in place).
#[test]
fn name() {
    let mut case = Case::new("acc-name");
    let (state, _) = case.step(&case.config("Rancher TerraformAccTest", ""));
    assert_eq!(state["name"], "Rancher TerraformAccTest");
    let (state, image) = case.step(&case.config("TerraformAccTest Rancher", ""));
    assert_eq!(state["name"], "TerraformAccTest Rancher");
    assert_eq!(image["name"], "TerraformAccTest Rancher");
    assert_eq!(case.seen.len(), 1, "renamed in place");
    case.destroy();
}

/// TestAccImagesImageV2_tags: Tags1 (foo, bar), Tags2 (+ baz), Tags3 (foo, baz).
#[test]
fn tags() {
    let mut case = Case::new("acc-tags");
    for tags in [&["foo", "bar"][..], &["foo", "bar", "baz"], &["foo", "baz"]] {
        let list = tags
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(",");
        let (_, image) = case.step(&case.config("Rancher TerraformAccTest", &format!("  tags = [{list}]\n")));
        let mut expected: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        expected.sort();
        assert_eq!(observer::sorted_tags(&image), expected);
    }
    assert_eq!(case.seen.len(), 1, "tags change in place");
    case.destroy();
}

/// TestAccImagesImageV2_visibility: private, then public (the dev cloud's user is an admin,
/// as the peer's test requires).
#[test]
fn visibility() {
    let mut case = Case::new("acc-visibility");
    for visibility in ["private", "public"] {
        let (state, image) = case.step(&case.config(
            "Rancher TerraformAccTest",
            &format!("  visibility = \"{visibility}\"\n"),
        ));
        assert_eq!(state["visibility"], visibility);
        assert_eq!(image["visibility"], visibility);
    }
    assert_eq!(case.seen.len(), 1);
    case.destroy();
}

/// TestAccImagesImageV2_properties: Basic, Properties1 (foo=bar, bar=foo), Properties2
/// (foo=bar), Properties3 (foo=baz), Properties4 (foo=baz, bar=foo). The peer checks
/// `properties.os_hash_value` on every step; here Glance's own keys are attributes of their own
/// (`os_hash_value`, `os_hash_algo`; the README's differences: under
/// protocol 6 a configured map cannot also hold keys the configuration does not set).
#[test]
fn properties() {
    let mut case = Case::new("acc-properties");
    let (state, image) = case.step(&case.config("Rancher TerraformAccTest", CREATE_TIMEOUT));
    assert!(state["os_hash_value"].is_string(), "{state}");
    assert_eq!(state["os_hash_value"], image["properties"]["os_hash_value"]);
    let steps: [&[(&str, &str)]; 4] = [
        &[("foo", "bar"), ("bar", "foo")],
        &[("foo", "bar")],
        &[("foo", "baz")],
        &[("foo", "baz"), ("bar", "foo")],
    ];
    for properties in steps {
        let body: String = properties
            .iter()
            .map(|(k, v)| format!("    {k} = \"{v}\"\n"))
            .collect();
        let (state, image) = case.step(&case.config(
            "Rancher TerraformAccTest",
            &format!("\n  properties = {{\n{body}  }}\n"),
        ));
        for (k, v) in properties {
            assert_eq!(state["properties"][k], *v, "{state}");
            assert_eq!(image["properties"][k], *v, "{image}");
        }
        let absent = if properties.iter().any(|(k, _)| *k == "bar") {
            None
        } else {
            Some("bar")
        };
        if let Some(k) = absent {
            assert!(state["properties"].get(k).is_none(), "{state}");
            assert!(
                image["properties"].get(k).is_none(),
                "{k} removed from Glance: {image}"
            );
        }
        assert_eq!(state["os_hash_value"], image["properties"]["os_hash_value"]);
    }
    assert_eq!(case.seen.len(), 1, "properties change in place");
    case.destroy();
}

/// TestAccImagesImageV2_webdownload (skipped by the peer for want of a cloud that allows it;
/// the dev cloud does): Glance fetches the URL itself.
#[test]
fn webdownload() {
    let mut case = Case::serving(
        "acc-webdownload",
        SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS),
    );
    let (state, image) = case.step(&case.config(
        "Rancher TerraformAccTest",
        &format!("  web_download = true\n{CREATE_TIMEOUT}"),
    ));
    basic_checks(&state, &image);
    assert_eq!(
        case._server.hits("/os/latest/rancheros-openstack.img"),
        1,
        "Glance fetched it"
    );
    case.destroy();
}

/// TestAccImagesImageV2_decompress_xz: an xz-compressed raw disk, decompressed on the way.
#[test]
fn decompress_xz() {
    let s = Scenario::new("acc-xz");
    let raw = s.path("openstack-amd64.raw");
    std::fs::write(
        &raw,
        (0..3u32 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>(),
    )
    .unwrap();
    let xz = compressed_variants(&raw)
        .into_iter()
        .find(|(f, _)| *f == "xz")
        .unwrap()
        .1;
    let server = SourceServer::start();
    server.serve(
        "/releases/download/v1.6.6/openstack-amd64.raw.xz",
        Served::new(std::fs::read(xz).unwrap()).content_type("application/octet-stream"),
    );
    let w = workspace(&[]);
    w.configure(&main_tf(&format!(
        r#"resource "openstack_images_image_v2" "image_xz" {{
  provider         = openstackimage
  name             = "openstack-xz"
  image_source_url = "{url}"
  decompress       = true
  container_format = "bare"
  disk_format      = "raw"
}}
"#,
        url = server.url("/releases/download/v1.6.6/openstack-amd64.raw.xz")
    )));
    w.init();
    w.apply();
    expect_code(w.plan(), 0);
    let state = attributes(&w, "openstack_images_image_v2.image_xz");
    let id = state["id"].as_str().unwrap().to_string();
    let image = observer::image(&id).expect("the image exists");
    assert_eq!(image["status"], "active");
    assert_eq!(image["properties"]["os_hash_value"], digest("sha512sum", &raw));
    w.destroy();
    assert!(observer::image(&id).is_none());
}

/// TestAccImagesImageV2_importBasic: Basic, then `terraform import` of the same image gives
/// the same state but for what Glance does not hold (the peer's ImportStateVerifyIgnore list
/// plus this provider's own inputs of that kind).
#[test]
fn import_basic() {
    let mut case = Case::new("acc-import");
    let (before, _) = case.step(&case.config("Rancher TerraformAccTest", CREATE_TIMEOUT));
    let id = before["id"].as_str().unwrap().to_string();
    case.w.ok(&["state", "rm", "-no-color", ADDRESS]);
    case.w.ok(&["import", "-no-color", ADDRESS, &id]);
    let after = attributes(&case.w, ADDRESS);
    let ignored = [
        // The peer's ImportStateVerifyIgnore.
        "region",
        "local_file_path",
        "image_cache_path",
        "image_source_url",
        // Inputs Glance does not hold either (this provider's extras and the timeouts block).
        "timeouts",
        "decompress",
        "web_download",
        "verify_checksum",
        "source_checksum",
        "image_source_username",
        "image_source_password",
        "source_fingerprint",
    ];
    let (before, after) = (before.as_object().unwrap(), after.as_object().unwrap());
    for (key, value) in before {
        if !ignored.contains(&key.as_str()) {
            assert_eq!(after.get(key), Some(value), "{key} after import");
        }
    }
    case.destroy();
}
