//! Ansible as a second real engine: `ansible-playbook` (ansible-core from PyPI) drives the
//! collection `openstackimage.cloud` (adapters/ansible, installed by its install.sh) against the
//! dev cloud, observed with the `openstack` CLI.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use openstack_image_tests::source_server::{Served, SourceServer};
use openstack_image_tests::{Run, Scenario, cloud_env, digest, observer, root, setup_script};
use serde_json::Value;

/// The venv's bin directory with ansible-core and wasmtime-py (adapters/ansible/test-setup.sh).
fn ansible_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| PathBuf::from(setup_script(&root().join("adapters/ansible/test-setup.sh"))))
}

/// A scenario with the collection installed into its own collections path.
struct Playbooks {
    s: Scenario,
    collections: PathBuf,
}

impl Playbooks {
    fn new(test: &str) -> Playbooks {
        let s = Scenario::new(test);
        let collections = s.path("collections");
        let install = Command::new("bash")
            .arg(root().join("adapters/ansible/install.sh"))
            .arg(&collections)
            .env("PATH", path_with_ansible())
            .env("CARGO_TARGET_DIR", root().join("target"))
            .output()
            .expect("run install.sh");
        assert!(
            install.status.success(),
            "install.sh failed:\n{}",
            String::from_utf8_lossy(&install.stderr)
        );
        Playbooks { s, collections }
    }

    /// `ansible-playbook` with `playbook` (YAML) on localhost, with the dev cloud's OS_*
    /// variables unless `os_env` is false; `args` after the playbook.
    fn run(&self, playbook: &str, args: &[&str], os_env: bool) -> Run {
        let file = self.s.path("play.yml");
        let _ = std::fs::remove_file(self.s.path("out.json"));
        std::fs::write(&file, format!("{playbook}{RECORD}")).unwrap();
        let mut command = Command::new(ansible_bin().join("ansible-playbook"));
        command
            .args(["-i", "localhost,", "-c", "local"])
            .args(["-e", "ansible_python_interpreter={{ ansible_playbook_python }}"])
            .arg(&file)
            .args(args)
            .current_dir(self.s.path(""))
            .env_clear()
            .env("PATH", path_with_ansible())
            .env("HOME", self.s.path(""))
            .env("ANSIBLE_COLLECTIONS_PATH", &self.collections)
            .env("ANSIBLE_NOCOLOR", "1")
            .env("OPENSTACK_IMAGE_CACHE_DIR", self.s.path("cache"));
        if os_env {
            command.envs(cloud_env().iter().filter(|(k, _)| k.starts_with("OS_")));
        }
        Run::from(command.output().expect("run ansible-playbook"))
    }

    /// The module task's result, which every playbook here registers as `out` and writes to
    /// `out.json` (ansible-core has no JSON output of its own since the json callback moved
    /// to ansible.posix).
    fn result(&self, run: &Run) -> Value {
        let text = std::fs::read_to_string(self.s.path("out.json"))
            .unwrap_or_else(|e| panic!("{e}: no result\n{}\n{}", run.stdout, run.stderr));
        serde_json::from_str(&text).unwrap()
    }
}

fn path_with_ansible() -> String {
    format!(
        "{}:{}",
        ansible_bin().display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Appended to every playbook's one task: its result, written to `out.json` (also in check
/// mode, and when the task failed).
const RECORD: &str = "      register: out\n      ignore_errors: true\n    - ansible.builtin.copy:\n        content: \"{{ out | to_json }}\"\n        dest: out.json\n      check_mode: false\n";

fn image_task(name: &str, extra: &str) -> String {
    format!(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - openstackimage.cloud.image:\n        name: {name}\n{extra}"
    )
}

#[test]
fn a_playbook_creates_updates_replaces_and_deletes_an_image() {
    let p = Playbooks::new("ansible");
    let s = &p.s;
    let name = s.image_name("web");
    let file = s.qcow2("disk.qcow2", 1);
    let with_tags = |tags: &str| {
        image_task(
            &name,
            &format!(
                "        disk_format: qcow2\n        filename: {}\n        tags: [{tags}]\n        properties:\n          os_distro: cirros\n",
                file.display()
            ),
        )
    };

    let run = p.run(&with_tags("a"), &[], true);
    let result = &p.result(&run);
    assert_eq!(result["changed"], true, "{}", run.stdout);
    let id = result["id"].as_str().unwrap().to_string();
    let image = observer::image(&id).unwrap();
    assert_eq!(image["status"], "active");
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &file).as_str()
    );
    assert_eq!(result["image"]["is_public"], false);
    assert_eq!(result["image"]["tags"], serde_json::json!(["a"]));

    // Again: nothing to do.
    let run = p.run(&with_tags("a"), &[], true);
    assert_eq!(p.result(&run)["changed"], false, "{}", run.stdout);

    // --check --diff: the change shown, nothing sent.
    let run = p.run(&with_tags("a, b"), &["--check", "--diff"], true);
    let result = &p.result(&run);
    assert_eq!(result["changed"], true, "{}", run.stdout);
    assert_eq!(
        result["diff"]["after"]["tags"],
        serde_json::json!(["a", "b"]),
        "{result}"
    );
    assert_eq!(observer::sorted_tags(&observer::image(&id).unwrap()), ["a"]);

    // In place: same id.
    let run = p.run(&with_tags("a, b"), &[], true);
    let result = &p.result(&run);
    assert_eq!(result["changed"], true, "{}", run.stdout);
    assert_eq!(result["id"], id.as_str());
    assert_eq!(observer::sorted_tags(&observer::image(&id).unwrap()), ["a", "b"]);

    // New content: a new image, the old one deleted.
    let newer = s.qcow2("disk.qcow2", 2);
    let run = p.run(&with_tags("a, b"), &[], true);
    let result = &p.result(&run);
    assert_eq!(result["replaced"], id.as_str(), "{}", run.stdout);
    let new_id = result["id"].as_str().unwrap().to_string();
    assert_ne!(new_id, id);
    assert!(observer::image(&id).is_none(), "the replaced image is gone");
    let image = observer::image(&new_id).unwrap();
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &newer).as_str()
    );

    // ansible-doc renders both modules' documentation.
    for module in ["openstackimage.cloud.image", "openstackimage.cloud.image_info"] {
        let doc = Command::new(ansible_bin().join("ansible-doc"))
            .arg(module)
            .env("PATH", path_with_ansible())
            .env("HOME", s.path(""))
            .env("ANSIBLE_COLLECTIONS_PATH", &p.collections)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&doc.stdout);
        assert!(
            doc.status.success() && text.contains("OPTIONS") && text.contains("cloud"),
            "{module}: {text}\n{}",
            String::from_utf8_lossy(&doc.stderr)
        );
    }

    // image_info finds it.
    let info = format!(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - openstackimage.cloud.image_info:\n        image: {name}\n"
    );
    let run = p.run(&info, &[], true);
    let result = &p.result(&run);
    assert_eq!(result["images"][0]["id"], new_id.as_str(), "{}", run.stdout);

    // absent: deleted, then nothing to do; --check first changes nothing.
    let absent = image_task(&name, "        state: absent\n");
    let run = p.run(&absent, &["--check"], true);
    assert_eq!(p.result(&run)["changed"], true, "{}", run.stdout);
    assert!(observer::image(&new_id).is_some());
    let run = p.run(&absent, &[], true);
    assert_eq!(p.result(&run)["changed"], true, "{}", run.stdout);
    assert!(observer::image(&new_id).is_none());
    let run = p.run(&absent, &[], true);
    assert_eq!(p.result(&run)["changed"], false, "{}", run.stdout);
    let run = p.run(&info, &[], true);
    assert_eq!(p.result(&run)["images"], serde_json::json!([]), "{}", run.stdout);
}

#[test]
fn a_url_source_and_bad_input() {
    let p = Playbooks::new("ansible-url");
    let s = &p.s;
    let name = s.image_name("url");
    let file = s.qcow2("disk.qcow2", 1);
    let server = SourceServer::start();
    server.serve(
        "/disk.qcow2",
        Served::new(std::fs::read(&file).unwrap()).etag("v1"),
    );
    let play = image_task(
        &name,
        &format!(
            "        disk_format: qcow2\n        image_source_url: {}\n",
            server.url("/disk.qcow2")
        ),
    );
    let run = p.run(&play, &[], true);
    let result = &p.result(&run);
    assert_eq!(result["changed"], true, "{}\n{}", run.stdout, run.stderr);
    let image = observer::image(result["id"].as_str().unwrap()).unwrap();
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &file).as_str()
    );
    let run = p.run(&play, &[], true);
    assert_eq!(p.result(&run)["changed"], false, "{}", run.stdout);
    p.run(&image_task(&name, "        state: absent\n"), &[], true);

    // Bad input fails the task naming the parameter, and creates nothing.
    let bad = image_task(
        &s.image_name("bad"),
        &format!(
            "        disk_format: raw\n        filename: {}\n",
            s.path("missing.raw").display()
        ),
    );
    let run = p.run(&bad, &[], true);
    let result = &p.result(&run);
    assert_eq!(result["failed"], true, "{}", run.stdout);
    let msg = result["msg"].as_str().unwrap();
    assert!(msg.contains("filename:") && msg.contains("missing.raw"), "{msg}");
    assert!(s.cloud_images().is_empty(), "{:?}", s.cloud_images());
}

#[test]
fn a_playbook_written_for_openstack_cloud_runs_with_only_the_module_name_changed() {
    let p = Playbooks::new("ansible-compat");
    let s = &p.s;
    let name = s.image_name("compat");
    let file = s.qcow2("cirros.qcow2", 1);
    let env = cloud_env();
    let var = |k: &str| env.get(k).cloned().unwrap_or_default();
    // openstack.cloud.image's own example, authenticating as its docs show (no OS_* set).
    let playbook = format!(
        r#"- hosts: localhost
  gather_facts: false
  tasks:
    - name: Upload an image from a local file named cirros-0.3.0-x86_64-disk.img
      openstackimage.cloud.image:
        auth:
          auth_url: {auth_url}
          username: {user}
          password: {password}
          project_name: {project}
          user_domain_name: {user_domain}
          project_domain_name: {project_domain}
        region_name: {region}
        name: {name}
        container_format: bare
        disk_format: qcow2
        state: present
        filename: {file}
        is_public: false
        wait: true
        timeout: 600
        properties:
          cpu_arch: x86_64
          distro: ubuntu
"#,
        auth_url = var("OS_AUTH_URL"),
        user = var("OS_USERNAME"),
        password = var("OS_PASSWORD"),
        project = var("OS_PROJECT_NAME"),
        user_domain = var("OS_USER_DOMAIN_NAME"),
        project_domain = var("OS_PROJECT_DOMAIN_NAME"),
        region = var("OS_REGION_NAME"),
        file = file.display()
    );
    let run = p.run(&playbook, &[], false);
    let result = &p.result(&run);
    assert_eq!(result["changed"], true, "{}\n{}", run.stdout, run.stderr);
    assert!(
        !run.stdout.contains(&var("OS_PASSWORD")),
        "the password is never shown"
    );
    let image = observer::image(result["id"].as_str().unwrap()).unwrap();
    assert_eq!(image["visibility"], "private");
    assert_eq!(image["properties"]["distro"], "ubuntu");
    let run = p.run(&playbook, &[], false);
    assert_eq!(p.result(&run)["changed"], false, "{}", run.stdout);
    let run = p.run(&image_task(&name, "        state: absent\n"), &[], true);
    assert_eq!(p.result(&run)["changed"], true, "{}", run.stdout);
    assert!(s.cloud_images().is_empty());
}

/// The sanity tests ansible-test runs without test venvs of its own (those need a bootstrap
/// script from ci-files.testing.ansible.com, which this build machine cannot reach).
const OFFLINE_SANITY: &[&str] = &[
    "compile",
    "empty-init",
    "line-endings",
    "no-assert",
    "no-get-exception",
    "no-illegal-filenames",
    "no-smart-quotes",
    "replace-urlopen",
    "shebang",
    "symlinks",
    "use-argspec-type-path",
    "use-compat-six",
];

#[test]
fn the_collection_passes_the_offline_ansible_test_sanity_checks() {
    let p = Playbooks::new("ansible-sanity");
    let tree = p.collections.join("ansible_collections/openstackimage/cloud");
    let mut command = Command::new(ansible_bin().join("ansible-test"));
    command.args(["sanity", "--python", "3.11"]);
    for test in OFFLINE_SANITY {
        command.args(["--test", test]);
    }
    let out = command
        .current_dir(&tree)
        .env("PATH", path_with_ansible())
        .env("HOME", p.s.path(""))
        .output()
        .unwrap();
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    for test in OFFLINE_SANITY {
        assert!(
            text.contains(&format!("Running sanity test \"{test}\"")),
            "{test} did not run:\n{text}"
        );
    }
}
