//! Harness for the end-to-end tests: runs the real `openstack-image` binary against the
//! local dev cloud (`scripts/dev-cloud`) and checks the cloud through an independent
//! observer, python-openstackclient.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use rand::RngCore;
use serde_json::Value;

pub mod cloud_resolution;
pub mod hostile;
pub mod keepalive_relay;
pub mod keystone_counter;
pub mod region_two;
pub mod source_server;
pub mod tls_proxy;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is in the workspace")
        .to_path_buf()
}

/// Ports Glance's web-download may fetch from on the dev cloud (scripts/dev-cloud).
pub const WEB_DOWNLOAD_PORTS: std::ops::RangeInclusive<u16> = 28080..=28089;

/// The dev cloud's main Glance as a socket address (for proxies put in front of it).
pub fn glance_addr() -> std::net::SocketAddr {
    let url = &cloud_env()["DEV_CLOUD_GLANCE_URL"];
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("DEV_CLOUD_GLANCE_URL is http://IP:PORT")
}

/// The dev cloud's `OS_*` settings, as `scripts/dev-cloud env` prints them.
pub fn cloud_env() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let script = root().join("scripts/dev-cloud");
        let status = Command::new(&script)
            .arg("status")
            .output()
            .expect("run scripts/dev-cloud status");
        assert!(
            status.status.success(),
            "the dev cloud is not running: start it with `scripts/dev-cloud up` (or run `scripts/test`)"
        );
        let out = Command::new(&script)
            .arg("env")
            .output()
            .expect("run scripts/dev-cloud env");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.trim_matches(['"', '\'']).to_string()))
            .collect()
    })
}

/// The `openstack-image` binary under test: `OPENSTACK_IMAGE_BIN`, or the one built beside
/// this test executable's profile.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("OPENSTACK_IMAGE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("openstack-image");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p openstack-image` in the same profile (scripts/test does)",
        bin.display()
    );
    bin
}

/// What a command printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The outcome of a finished process.
    pub fn from(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics with both streams unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs a test tool's setup script (`bash SCRIPT`: Terraform 1.0.3, Ansible), which must
/// succeed, and returns the last line it printed (the path it installed to).
pub fn setup_script(script: &Path) -> String {
    let output = Command::new("bash")
        .arg(script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        output.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8 path")
        .lines()
        .last()
        .unwrap_or_else(|| panic!("{} printed no path", script.display()))
        .trim()
        .to_string()
}

/// One test's scratch directory, spec, state and uniquely named images. Dropping it deletes
/// any image whose name carries its prefix, so a failed test leaves the cloud clean.
pub struct Scenario {
    dir: tempfile::TempDir,
    prefix: String,
    /// Whether the runs see the dev cloud (its `OS_*` settings); see [`Scenario::offline`].
    cloud: bool,
}

impl Scenario {
    /// A scenario whose image names start with `test` plus a random suffix.
    pub fn new(test: &str) -> Scenario {
        Scenario::with_cloud(test, true)
    }

    /// A scenario for what needs no cloud (help, completions, spec errors): its runs get no
    /// `OS_*` settings and a home of their own (no clouds.yaml), and it neither needs the dev
    /// cloud running nor looks at it when dropped.
    pub fn offline(test: &str) -> Scenario {
        Scenario::with_cloud(test, false)
    }

    fn with_cloud(test: &str, cloud: bool) -> Scenario {
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
        Scenario {
            dir: tempfile::Builder::new()
                .prefix(&format!("{test}-"))
                .tempdir()
                .expect("temp dir"),
            prefix: format!("e2e-{test}-{suffix}"),
            cloud,
        }
    }

    /// A path inside the scenario's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A Glance image name unique to this scenario.
    pub fn image_name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Writes a real qcow2 image of `mib` MiB of random data, made with qemu-img.
    pub fn qcow2(&self, file: &str, mib: usize) -> PathBuf {
        let raw = self.path(&format!("{file}.raw"));
        let mut data = vec![0u8; mib * 1024 * 1024];
        rand::rng().fill_bytes(&mut data);
        std::fs::write(&raw, data).expect("write raw data");
        let out = self.path(file);
        convert("raw", &raw, "qcow2", &out);
        std::fs::remove_file(raw).expect("remove raw data");
        out
    }

    /// The same disk as the qcow2 image `qcow2`, as raw data in `file` (qemu-img convert).
    pub fn raw_copy(&self, qcow2: &Path, file: &str) -> PathBuf {
        let out = self.path(file);
        convert("qcow2", qcow2, "raw", &out);
        out
    }

    /// Writes the spec file `images.yaml`.
    pub fn write_spec(&self, yaml: &str) {
        std::fs::write(self.path("images.yaml"), yaml).expect("write spec");
    }

    /// `openstack-image ARGS` set up to run in the scenario directory against the dev cloud.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("OPENSTACK_IMAGE_CACHE_DIR", root().join("target/component-cache"));
        if self.cloud {
            command.envs(cloud_env().iter().filter(|(k, _)| k.starts_with("OS_")));
        } else {
            command.env("HOME", self.dir.path());
        }
        command
    }

    /// Runs `openstack-image ARGS` in the scenario directory against the dev cloud.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run openstack-image"))
    }

    /// Runs `openstack-image ARGS` against the dev cloud with `vars` overriding its settings
    /// (another user, project or region).
    pub fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut command = self.command(args);
        command.envs(vars.iter().copied());
        Run::from(command.output().expect("run openstack-image"))
    }

    /// Runs `openstack-image ARGS` with no `OS_*` variables but `vars` (e.g. `OS_CLOUD`).
    pub fn run_without_os_env(&self, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let mut command = self.command(args);
        for name in cloud_env().keys().filter(|k| k.starts_with("OS_")) {
            command.env_remove(name);
        }
        // A home of its own, so no clouds.yaml of this machine's user is found.
        command.env("HOME", self.dir.path()).envs(vars.iter().copied());
        Run::from(command.output().expect("run openstack-image"))
    }

    /// `plan -f images.yaml`.
    pub fn plan(&self) -> Run {
        self.run(&["plan", "-f", "images.yaml"])
    }

    /// `apply -f images.yaml`, which must succeed.
    #[track_caller]
    pub fn apply(&self) -> Run {
        self.run(&["apply", "-f", "images.yaml"]).expect_code(0)
    }

    /// The state file, parsed; `None` when it does not exist.
    pub fn state(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.path("openstack-image.state.json")).ok()?;
        Some(serde_json::from_str(&text).expect("the state file is JSON"))
    }

    /// The id the state records for logical image `name`.
    #[track_caller]
    pub fn state_id(&self, name: &str) -> String {
        let state = self.state().expect("a state file");
        state["images"][name]["image"]["id"]
            .as_str()
            .expect("an image id in the state")
            .to_string()
    }

    /// Every image in the cloud whose name carries this scenario's prefix.
    pub fn cloud_images(&self) -> Vec<Value> {
        observer::list()
            .into_iter()
            .filter(|i| i["Name"].as_str().is_some_and(|n| n.starts_with(&self.prefix)))
            .collect()
    }
}

impl Drop for Scenario {
    fn drop(&mut self) {
        if !self.cloud {
            return;
        }
        for image in self.cloud_images() {
            if let Some(id) = image["ID"].as_str() {
                let _ = observer::openstack(&["image", "set", "--unprotected", id]);
                let _ = observer::openstack(&["image", "delete", id]);
            }
        }
    }
}

/// The independent observer: python-openstackclient from the dev cloud's virtualenv.
/// `OS_*` settings that make a run act as the dev cloud's `publisher` or `consumer` user
/// (`DEV_CLOUD_{WHO}_USERNAME`, `_PASSWORD`, `_PROJECT` from `scripts/dev-cloud env`).
pub fn user_settings(who: &str) -> Vec<(&'static str, String)> {
    let env = cloud_env();
    let var = |name: &str| {
        let key = format!("DEV_CLOUD_{}_{name}", who.to_uppercase());
        env.get(&key)
            .unwrap_or_else(|| panic!("scripts/dev-cloud env names {key}"))
            .clone()
    };
    vec![
        ("OS_USERNAME", var("USERNAME")),
        ("OS_PASSWORD", var("PASSWORD")),
        ("OS_PROJECT_NAME", var("PROJECT")),
    ]
}

pub mod observer {
    use super::*;

    /// The id of the dev cloud's project `name`, as the admin observer sees it.
    pub fn project_id(name: &str) -> String {
        json(&["project", "show", name, "-f", "json"])["id"]
            .as_str()
            .unwrap_or_else(|| panic!("the dev cloud's project {name}"))
            .to_string()
    }

    /// Runs `openstack ARGS` (with `-f json`), which must succeed, and parses its output.
    pub fn json(args: &[&str]) -> Value {
        let out = openstack(args);
        assert!(
            out.status.success(),
            "openstack {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("openstack printed JSON")
    }

    /// Runs `openstack ARGS` with the dev cloud's settings.
    pub fn openstack(args: &[&str]) -> Output {
        openstack_as(&[], args)
    }

    /// Runs `openstack ARGS` with the dev cloud's settings, `vars` overriding them (another
    /// user, project or region).
    /// An image's members and their statuses, as the owner (admin) sees them, sorted.
    pub fn members(id: &str) -> Vec<(String, String)> {
        let list = json(&["image", "member", "list", id, "-f", "json"]);
        let mut members: Vec<(String, String)> = list
            .as_array()
            .expect("a member list")
            .iter()
            .map(|m| {
                (
                    m["Member ID"].as_str().unwrap_or_default().to_string(),
                    m["Status"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect();
        members.sort();
        members
    }

    pub fn openstack_as(vars: &[(&str, &str)], args: &[&str]) -> Output {
        let venv = cloud_env()
            .get("DEV_CLOUD_VENV")
            .expect("scripts/dev-cloud env names DEV_CLOUD_VENV");
        Command::new(Path::new(venv).join("bin/openstack"))
            .args(args)
            .envs(cloud_env())
            .envs(vars.iter().copied())
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run the openstack CLI")
    }

    /// `openstack image list` as `vars` say (user, project, region).
    pub fn list_as(vars: &[(&str, &str)]) -> Vec<Value> {
        let out = openstack_as(vars, &["image", "list", "-f", "json"]);
        assert!(
            out.status.success(),
            "openstack image list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("openstack prints JSON")
    }

    /// `openstack image show ID`, or `None` when the image does not exist.
    pub fn image(id: &str) -> Option<Value> {
        let out = openstack(&["image", "show", id, "-f", "json"]);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains("No Image found")
                    || stderr.contains("404")
                    || stderr.contains("Could not find"),
                "openstack image show {id} failed unexpectedly: {stderr}"
            );
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("openstack prints JSON"))
    }

    /// `openstack image list` (all visibilities).
    pub fn list() -> Vec<Value> {
        list_as(&[])
    }

    /// Makes a private qcow2 image from `file` with `openstack image create`, as another tool
    /// would (`options`: `--tag`, `--property`, …), and returns its id.
    pub fn create_qcow2(name: &str, file: &Path, options: &[&str]) -> String {
        let file = file.to_str().expect("utf-8 path");
        let mut args = vec![
            "image",
            "create",
            "--disk-format",
            "qcow2",
            "--container-format",
            "bare",
            "--private",
            "--file",
            file,
        ];
        args.extend_from_slice(options);
        args.extend_from_slice(&["-f", "value", "-c", "id", name]);
        let created = openstack(&args);
        assert!(
            created.status.success(),
            "openstack image create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        String::from_utf8_lossy(&created.stdout).trim().to_string()
    }

    /// An image's tags (as `openstack image show` prints them), sorted.
    pub fn sorted_tags(image: &Value) -> Vec<String> {
        let mut tags: Vec<String> = image["tags"]
            .as_array()
            .expect("tags")
            .iter()
            .map(|t| t.as_str().expect("a tag is a string").to_string())
            .collect();
        tags.sort();
        tags
    }
}

/// Hex digest of a file from the system's `md5sum`/`sha512sum` (independent of our code).
pub fn digest(tool: &str, path: &Path) -> String {
    let out = Command::new(tool)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    assert!(out.status.success(), "{tool} failed");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .expect("a digest")
        .to_string()
}

/// A TCP proxy in front of a real service that fails chosen requests: for each connection
/// it reads the request head and either answers it with a canned failure or relays the
/// connection to the upstream untouched.
pub mod fault_proxy {
    use std::io::{Read, Write};
    use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// What the proxy does to a request it fails.
    #[derive(Clone, Copy)]
    pub enum Fault {
        /// Reads the body, then answers with this raw HTTP response.
        Answer(&'static str),
        /// Closes the connection at once, unanswered.
        Drop,
        /// Reads the body, then never answers (until the proxy is dropped).
        Stall,
        /// Relays the head and this many body bytes to the upstream, then cuts both
        /// connections (a connection reset in the middle of an upload).
        CutBody(u64),
        /// Relays the request, but only this many bytes of the answer, then closes.
        Truncate(usize),
    }

    /// Decides from the request line (`PUT /v2/images/… HTTP/1.1`) whether to fail it.
    pub type Rule = fn(&str) -> Option<Fault>;

    /// A rule that may keep state (e.g. fail only the first n matching requests).
    pub type Script = Arc<dyn Fn(&str) -> Option<Fault> + Send + Sync>;

    /// Fails the first `n` requests that `matches` with `fault`, then relays everything.
    pub fn first(n: usize, matches: fn(&str) -> bool, fault: Fault) -> Script {
        let seen = AtomicUsize::new(0);
        Arc::new(move |line| (matches(line) && seen.fetch_add(1, Ordering::SeqCst) < n).then_some(fault))
    }

    /// A running proxy; stops when dropped.
    pub struct FaultProxy {
        pub addr: SocketAddr,
        stop: Arc<AtomicBool>,
        failed: Arc<AtomicUsize>,
    }

    impl FaultProxy {
        /// Listens on 127.0.0.1 (a free port) and relays to `upstream` unless `rule` fails a request.
        pub fn start(upstream: SocketAddr, rule: Rule) -> FaultProxy {
            FaultProxy::scripted(upstream, Arc::new(rule))
        }

        /// Like `start`, with a rule that may keep state.
        pub fn scripted(upstream: SocketAddr, rule: Script) -> FaultProxy {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
            let addr = listener.local_addr().expect("proxy address");
            let stop = Arc::new(AtomicBool::new(false));
            let failed = Arc::new(AtomicUsize::new(0));
            let (stop_flag, failures) = (stop.clone(), failed.clone());
            std::thread::spawn(move || {
                for client in listener.incoming() {
                    if stop_flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    let (failures, stop, rule) = (failures.clone(), stop_flag.clone(), rule.clone());
                    std::thread::spawn(move || serve(client, upstream, &*rule, &failures, &stop));
                }
            });
            FaultProxy { addr, stop, failed }
        }

        /// How many requests the proxy failed.
        pub fn failures(&self) -> usize {
            self.failed.load(Ordering::SeqCst)
        }
    }

    impl Drop for FaultProxy {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(self.addr);
        }
    }

    fn serve(
        mut client: TcpStream,
        upstream: SocketAddr,
        rule: &(dyn Fn(&str) -> Option<Fault> + Send + Sync),
        failures: &AtomicUsize,
        stop: &AtomicBool,
    ) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match client.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                _ => return,
            }
        }
        let text = String::from_utf8_lossy(&head);
        let request_line = text.lines().next().unwrap_or("");
        let fault = rule(request_line);
        if fault.is_some() {
            failures.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            Some(Fault::Drop) => {
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::CutBody(bytes)) => {
                if let Ok(mut server) = TcpStream::connect(upstream)
                    && server.write_all(&head).is_ok()
                {
                    let _ = std::io::copy(&mut (&mut client).take(bytes), &mut server);
                    let _ = server.shutdown(Shutdown::Both);
                }
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            Some(Fault::Truncate(bytes)) => {
                if let Ok(mut server) = TcpStream::connect(upstream)
                    && server.write_all(&head).is_ok()
                {
                    let length = content_length(&text);
                    let _ = std::io::copy(&mut (&mut client).take(length), &mut server);
                    let _ = std::io::copy(&mut (&mut server).take(bytes as u64), &mut client);
                }
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
            _ => {}
        }
        if let Some(fault) = fault {
            // Take the whole body first, as a server does, so the client sees the answer.
            let length = content_length(&text);
            let _ = std::io::copy(&mut (&mut client).take(length), &mut std::io::sink());
            match fault {
                Fault::Answer(response) => {
                    let _ = client.write_all(response.as_bytes());
                }
                _ => {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::sleep(std::time::Duration::from_millis(100));
                    }
                }
            }
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        let Ok(mut server) = TcpStream::connect(upstream) else {
            return;
        };
        if server.write_all(&head).is_err() {
            return;
        }
        let (mut client_read, mut server_write) = (
            client.try_clone().expect("clone"),
            server.try_clone().expect("clone"),
        );
        let upload = std::thread::spawn(move || {
            let _ = std::io::copy(&mut client_read, &mut server_write);
            let _ = server_write.shutdown(Shutdown::Write);
        });
        let _ = std::io::copy(&mut server, &mut client);
        let _ = client.shutdown(Shutdown::Both);
        let _ = upload.join();
    }

    fn content_length(head: &str) -> u64 {
        head.lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    }
}

/// A Keystone region whose image endpoint is `url`, registered through the observer CLI for
/// the lifetime of the value (so the component can be pointed at a proxy with `region:`).
pub struct TestRegion {
    pub name: String,
    endpoint_id: String,
}

impl TestRegion {
    /// Registers region `name` with an image endpoint at `url` (public interface).
    pub fn register(name: &str, url: &str) -> TestRegion {
        let created = observer::openstack(&["region", "create", name]);
        assert!(
            created.status.success(),
            "region create: {}",
            String::from_utf8_lossy(&created.stderr)
        );
        let endpoint = observer::openstack(&[
            "endpoint", "create", "--region", name, "image", "public", url, "-f", "value", "-c", "id",
        ]);
        assert!(
            endpoint.status.success(),
            "endpoint create: {}",
            String::from_utf8_lossy(&endpoint.stderr)
        );
        TestRegion {
            name: name.to_string(),
            endpoint_id: String::from_utf8_lossy(&endpoint.stdout).trim().to_string(),
        }
    }
}

impl Drop for TestRegion {
    fn drop(&mut self) {
        let _ = observer::openstack(&["endpoint", "delete", &self.endpoint_id]);
        let _ = observer::openstack(&["region", "delete", &self.name]);
    }
}

/// `qemu-img convert -f FROM -O TO input output`, which must succeed.
fn convert(from: &str, input: &Path, to: &str, output: &Path) {
    let status = Command::new("qemu-img")
        .args(["convert", "-f", from, "-O", to])
        .arg(input)
        .arg(output)
        .status()
        .expect("run qemu-img (package qemu-utils)");
    assert!(status.success(), "qemu-img convert {from} -> {to} failed");
}
