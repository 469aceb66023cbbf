//! The provider under the real Terraform 1.0.3, end to end over plugin protocol 6 (go-plugin
//! handshake, AutoMTLS with Terraform's P-521 client certificate), against the fake cloud of
//! `fake_cloud`. The test binary is its own provider: Terraform starts it from the
//! mirror with the plugin cookie set, and then it serves instead of testing.
//!
//! The steps build on each other, as a user's session would: init, create, a clean plan,
//! an in-place update, drift, a replacement, an image deleted elsewhere, a diagnostic on the
//! right attribute, import, the data source, secrets out of the trace log, destroy.

mod fake_cloud;
mod support;

use std::process::ExitCode;

use serde_json::{Value as Json, json};
use support::{Run, Workspace};

const PASSWORD: &str = "keystone-pw-8c1f7d";
const SOURCE_SECRET: &str = "mirror-pw-51ab9e";
const ADOPTED_ID: &str = "0b7a3f70-1111-4222-8333-444455556666";

/// A named step of the scenario.
type Step = (&'static str, fn(&Scenario));

fn main() -> ExitCode {
    if fake_cloud::serving() {
        return fake_cloud::serve();
    }
    let steps: &[Step] = &[
        ("init installs the provider from the local mirror", init),
        ("apply creates the image", create),
        ("a plan after apply is clean", clean_plan),
        ("a name change updates in place", update_in_place),
        ("drift is found and repaired", drift),
        ("a disk format change replaces the image", replace),
        ("an image deleted elsewhere is created again", deleted_elsewhere),
        ("a component field error lands on its attribute", diagnostic),
        ("import adopts an image", import),
        ("the data source finds an image", data_source),
        ("secrets stay out of the trace log", trace_log),
        ("destroy deletes everything", destroy),
    ];
    // `cargo test NAME` passes NAME on: the steps build on each other, so the scenario runs
    // whole when NAME picks any of them (or the binary), and not at all otherwise.
    let filters: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let picked = filters.is_empty()
        || filters.iter().any(|f| {
            "terraform".contains(f.as_str()) || steps.iter().any(|(name, _)| name.contains(f.as_str()))
        });
    if !picked {
        println!(
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; {} filtered out",
            steps.len()
        );
        return ExitCode::SUCCESS;
    }
    let scenario = Scenario::new();
    let mut passed = 0;
    for (name, step) in steps {
        if std::panic::catch_unwind(|| step(&scenario)).is_err() {
            println!("test {name} ... FAILED");
            println!("test result: FAILED. {passed} passed; 1 failed; 0 ignored; 0 measured; 0 filtered out");
            return ExitCode::FAILURE;
        }
        println!("test {name} ... ok");
        passed += 1;
    }
    // The closing line in libtest's form, which scripts/test and CI count.
    println!("test result: ok. {passed} passed; 0 failed; 0 ignored; 0 measured; 0 filtered out");
    ExitCode::SUCCESS
}

/// The workspace, the fake cloud's store and the configuration being edited.
struct Scenario {
    workspace: Workspace,
    _scratch: tempfile::TempDir,
    store: std::path::PathBuf,
    image_file: std::path::PathBuf,
}

/// What the configuration varies between steps.
struct Config<'a> {
    name: &'a str,
    disk_format: &'a str,
    extra_properties: &'a str,
    adopted: bool,
    data_source: bool,
}

const BASE: Config<'static> = Config {
    name: "cirros",
    disk_format: "qcow2",
    extra_properties: "",
    adopted: false,
    data_source: false,
};

impl Scenario {
    fn new() -> Scenario {
        let provider = std::env::current_exe().expect("test binary");
        let scratch = tempfile::tempdir().expect("temp dir");
        let store = scratch.path().join("cloud.json");
        let workspace = Workspace::new(
            support::terraform(),
            &provider,
            &[
                (fake_cloud::STORE_ENV, store.to_str().expect("utf-8 path")),
                // An OS_* setting the block leaves out: resolved below the block by the
                // host's cloud rule, never written into the block's entry.
                ("OS_REGION_NAME", "RegionTwo"),
            ],
        );
        let image_file = workspace.path("cirros.img");
        std::fs::write(&image_file, b"not really a qcow2 image").expect("image file");
        Scenario {
            workspace,
            _scratch: scratch,
            store,
            image_file,
        }
    }

    fn write(&self, config: &Config) {
        let mut tf = format!(
            r#"terraform {{
  required_providers {{
    openstack = {{
      source  = "{source}"
      version = "{version}"
    }}
  }}
}}

provider "openstack" {{
  auth_url    = "http://127.0.0.1:5000/v3"
  user_name   = "demo"
  password    = "{PASSWORD}"
  tenant_name = "demo"
  domain_name = "Default"
  allow_hosts = ["images.example.org"]
}}

resource "openstack_images_image_v2" "cirros" {{
  name                  = "{name}"
  container_format      = "bare"
  disk_format           = "{disk_format}"
  image_source_url      = "https://images.example.org/cirros.img"
  image_source_username = "mirror"
  image_source_password = "{SOURCE_SECRET}"
  tags                  = ["web", "base"]
  properties = {{
    os_distro = "cirros"
{extra_properties}  }}

  timeouts {{
    create = "30m"
  }}
}}
"#,
            source = support::SOURCE,
            version = support::VERSION,
            name = config.name,
            disk_format = config.disk_format,
            extra_properties = config.extra_properties,
        );
        if config.adopted {
            tf.push_str(&format!(
                r#"
resource "openstack_images_image_v2" "adopted" {{
  name             = "adopted"
  container_format = "bare"
  disk_format      = "qcow2"
  local_file_path  = "{}"
  properties = {{
    os_distro = "debian"
  }}
}}
"#,
                self.image_file.display()
            ));
        }
        if config.data_source {
            tf.push_str(
                r#"
data "openstack_images_image_v2" "adopted" {
  name = "adopted"
}

output "adopted_id" {
  value = data.openstack_images_image_v2.adopted.id
}

output "adopted_distro" {
  value = data.openstack_images_image_v2.adopted.properties["os_distro"]
}
"#,
            );
        }
        self.workspace.configure(&tf);
    }

    fn cloud(&self) -> fake_cloud::CloudData {
        fake_cloud::load(&self.store)
    }

    fn image(&self, name: &str) -> Json {
        let cloud = self.cloud();
        let found: Vec<&Json> = cloud
            .images
            .values()
            .filter(|i| i["name"] == json!(name))
            .collect();
        assert_eq!(found.len(), 1, "images named {name}: {:#?}", cloud.images);
        found[0].clone()
    }

    fn assert_clean(&self) {
        let plan = self.workspace.plan();
        assert_eq!(plan.code, 0, "expected no changes:\n{}", plan.output());
    }

    fn assert_changes(&self, plan: &Run, expected: &[&str]) {
        assert_eq!(plan.code, 2, "expected changes:\n{}", plan.output());
        for text in expected {
            assert!(
                plan.stdout.contains(text),
                "the plan lacks {text:?}:\n{}",
                plan.stdout
            );
        }
    }
}

fn init(s: &Scenario) {
    s.write(&BASE);
    let init = s.workspace.init();
    assert!(
        init.stdout
            .contains("Installing openstack-image/openstackimage v0.1.0"),
        "{}",
        init.output()
    );
    assert!(s.workspace.dir().join(".terraform.lock.hcl").exists());
}

fn create(s: &Scenario) {
    let plan = s.workspace.plan();
    s.assert_changes(
        &plan,
        &["will be created", "+ visibility ", "(known after apply)"],
    );
    s.workspace.apply();
    let image = s.image("cirros");
    assert_eq!(image["tags"], json!(["base", "web"]));
    assert_eq!(image["properties"], json!({ "os_distro": "cirros" }));
    assert_eq!(image["visibility"], json!("private"), "the component's default");
    assert_eq!(image["timeouts"], json!({ "create": 1800 }), "30m in seconds");
    assert!(
        !image.to_string().contains(SOURCE_SECRET),
        "secrets are not in the component's state"
    );
    let configured = s.cloud().configured;
    assert_eq!(configured["entry"]["auth"]["password"], json!(PASSWORD));
    assert_eq!(
        configured["entry"]["auth"]["project_domain_name"],
        json!("Default")
    );
    // The block alone: OS_REGION_NAME, and which credentials the settings select, are the
    // host's one cloud rule's (the block over the environment over clouds.yaml).
    assert_eq!(configured["entry"]["auth_type"], json!(null));
    assert_eq!(configured["entry"]["region_name"], json!(null));
    assert_eq!(configured["allow_hosts"], json!(["images.example.org"]));
}

fn clean_plan(s: &Scenario) {
    s.assert_clean();
}

fn update_in_place(s: &Scenario) {
    let id = s.image("cirros")["id"].clone();
    s.write(&Config {
        name: "cirros-2",
        ..BASE
    });
    let plan = s.workspace.plan();
    s.assert_changes(
        &plan,
        &["updated in-place", "~ name ", "\"cirros\" -> \"cirros-2\""],
    );
    assert!(!plan.stdout.contains("replace"), "{}", plan.stdout);
    s.workspace.apply();
    assert_eq!(s.image("cirros-2")["id"], id, "same image");
    s.assert_clean();
}

fn drift(s: &Scenario) {
    let mut cloud = s.cloud();
    for image in cloud.images.values_mut() {
        image["name"] = json!("renamed-elsewhere");
    }
    fake_cloud::save(&s.store, &cloud);
    let plan = s.workspace.plan();
    s.assert_changes(&plan, &["\"renamed-elsewhere\" -> \"cirros-2\""]);
    s.workspace.apply();
    s.image("cirros-2");
    s.assert_clean();
}

fn replace(s: &Scenario) {
    let old = s.image("cirros-2")["id"].clone();
    s.write(&Config {
        name: "cirros-2",
        disk_format: "raw",
        ..BASE
    });
    let plan = s.workspace.plan();
    s.assert_changes(&plan, &["must be replaced", "# forces replacement"]);
    s.workspace.apply();
    let image = s.image("cirros-2");
    assert_ne!(image["id"], old, "a new image");
    assert_eq!(image["disk_format"], json!("raw"));
    assert_eq!(s.cloud().images.len(), 1, "the old one is gone");
    s.assert_clean();
}

fn deleted_elsewhere(s: &Scenario) {
    let mut cloud = s.cloud();
    cloud.images.clear();
    fake_cloud::save(&s.store, &cloud);
    let plan = s.workspace.plan();
    s.assert_changes(&plan, &["will be created"]);
    s.workspace.apply();
    s.image("cirros-2");
    s.assert_clean();
}

fn diagnostic(s: &Scenario) {
    let bad = Config {
        name: "cirros-2",
        disk_format: "raw",
        extra_properties: "    os_hash_value = \"abc\"\n",
        ..BASE
    };
    s.write(&bad);
    let plan = s.workspace.plan();
    assert_eq!(plan.code, 1, "{}", plan.output());
    assert!(
        plan.stderr.contains("Invalid properties.os_hash_value"),
        "{}",
        plan.stderr
    );
    assert!(
        plan.stderr.contains("is set by Glance and cannot be managed"),
        "{}",
        plan.stderr
    );
    // Terraform points at the map element the component named.
    let main_tf = std::fs::read_to_string(s.workspace.dir().join("main.tf")).unwrap();
    let line = main_tf.lines().position(|l| l.contains("os_hash_value")).unwrap() + 1;
    assert!(
        plan.stderr.contains(&format!(
            "on main.tf line {line}, in resource \"openstack_images_image_v2\" \"cirros\""
        )),
        "no source location for properties[\"os_hash_value\"]:\n{}",
        plan.stderr
    );
    s.write(&Config {
        name: "cirros-2",
        disk_format: "raw",
        ..BASE
    });
    s.assert_clean();
}

fn import(s: &Scenario) {
    let mut cloud = s.cloud();
    cloud.images.insert(
        ADOPTED_ID.into(),
        json!({
            "id": ADOPTED_ID, "name": "adopted", "container_format": "bare", "disk_format": "qcow2",
            "visibility": "private", "protected": false, "hidden": false, "min_disk_gb": 0, "min_ram_mb": 0,
            "tags": [], "properties": { "os_distro": "debian" }, "status": "active", "checksum": "c0ffee",
            "size_bytes": 24, "owner": "demo-project", "created_at": "2025-12-31T00:00:00Z",
            "updated_at": "2025-12-31T00:00:00Z", "update_at": "2025-12-31T00:00:00Z",
            "file": format!("/v2/images/{ADOPTED_ID}/file"), "schema": "/v2/schemas/image",
            "metadata": { "os_distro": "debian" },
        }),
    );
    fake_cloud::save(&s.store, &cloud);
    s.write(&Config {
        name: "cirros-2",
        disk_format: "raw",
        adopted: true,
        ..BASE
    });
    let import = s.workspace.ok(&[
        "import",
        "-no-color",
        "openstack_images_image_v2.adopted",
        ADOPTED_ID,
    ]);
    assert!(import.stdout.contains("Import successful"), "{}", import.output());
    let read = s
        .cloud()
        .calls
        .iter()
        .rev()
        .find(|c| c["function"] == json!("read"))
        .cloned()
        .unwrap();
    assert_eq!(
        read["with_state"],
        json!(false),
        "an import reads the image as adopted"
    );
    let show = s
        .workspace
        .ok(&["state", "show", "-no-color", "openstack_images_image_v2.adopted"]);
    assert!(show.stdout.contains("\"debian\""), "{}", show.stdout);
    // What Glance holds matches the configuration; only the inputs Glance cannot know (the
    // source) are recorded, in place.
    let plan = s.workspace.plan();
    s.assert_changes(
        &plan,
        &[
            "openstack_images_image_v2.adopted will be updated in-place",
            "+ local_file_path",
        ],
    );
    assert!(!plan.stdout.contains("must be replaced"), "{}", plan.stdout);
    assert!(
        plan.stdout.contains("Plan: 0 to add, 1 to change, 0 to destroy"),
        "{}",
        plan.stdout
    );
    s.workspace.apply();
    s.assert_clean();
    assert_eq!(s.cloud().images.len(), 2);
}

fn data_source(s: &Scenario) {
    s.write(&Config {
        name: "cirros-2",
        disk_format: "raw",
        adopted: true,
        data_source: true,
        ..BASE
    });
    s.workspace.apply();
    assert_eq!(s.workspace.output("adopted_id"), ADOPTED_ID);
    assert_eq!(s.workspace.output("adopted_distro"), "debian");
}

fn trace_log(s: &Scenario) {
    s.write(&Config {
        name: "cirros-3",
        disk_format: "raw",
        adopted: true,
        data_source: true,
        ..BASE
    });
    let trace = [("TF_LOG", "trace")];
    let plan = s.workspace.run_with(&["plan", "-no-color"], &trace);
    let apply = s
        .workspace
        .run_with(&["apply", "-auto-approve", "-no-color"], &trace);
    assert_eq!(apply.code, 0, "{}", apply.output());
    for run in [&plan, &apply] {
        let log = run.output();
        assert!(
            log.contains("calling the component's"),
            "the provider's own lines are in the log"
        );
        assert!(
            log.contains("plugin exited"),
            "the provider ends when Terraform is done"
        );
        assert!(
            !log.contains("failed to exit gracefully"),
            "it ends without being killed"
        );
        for secret in [PASSWORD, SOURCE_SECRET] {
            assert!(!log.contains(secret), "{secret} in the trace log");
        }
    }
    s.image("cirros-3");
}

fn destroy(s: &Scenario) {
    s.workspace.destroy();
    assert!(s.cloud().images.is_empty(), "{:#?}", s.cloud().images);
    let state = s.workspace.ok(&["state", "list"]);
    assert!(state.stdout.trim().is_empty(), "{}", state.stdout);
}
