//! The sandbox against a hostile component (`tests/hostile/`), run with `--component` as a
//! user would: whatever it tries, the host refuses or stops it with an error naming the
//! limit, nothing leaks, and neither the state file nor the cloud changes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use openstack_image_tests::{Run, Scenario, cloud_env, hostile};

/// An image id the hostile component's fake cloud holds.
const FAKE_IMAGE: &str = "00000000-0000-4000-8000-000000000001";

/// A scenario whose spec has a benign image `existing` (already in the state) and an image
/// `evil` that asks the hostile component for `behaviour`, with spec lines `extra` added.
struct Hostile {
    s: Scenario,
    state_before: Vec<u8>,
    file_before: Vec<u8>,
}

impl Hostile {
    fn new(behaviour: &str, extra: &str) -> Hostile {
        let s = Scenario::new(behaviour);
        std::fs::create_dir(s.path("images")).unwrap();
        std::fs::write(
            s.path("images/disk.qcow2"),
            b"image data the component must not change",
        )
        .unwrap();
        s.write_spec(&format!(
            "images:\n  existing:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: images/disk.qcow2\n  evil:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: images/disk.qcow2\n{extra}",
            s.image_name("existing"),
            s.image_name(behaviour),
        ));
        let hostile = Hostile {
            s,
            state_before: Vec::new(),
            file_before: Vec::new(),
        };
        hostile
            .run(&["import", "existing", FAKE_IMAGE, "-f", "images.yaml"])
            .expect_code(0);
        Hostile {
            state_before: std::fs::read(hostile.state_file()).expect("import wrote the state"),
            file_before: std::fs::read(hostile.s.path("images/disk.qcow2")).unwrap(),
            ..hostile
        }
    }

    fn state_file(&self) -> PathBuf {
        self.s.path("openstack-image.state.json")
    }

    /// `openstack-image --component <hostile> ARGS`.
    fn run(&self, args: &[&str]) -> Run {
        let component = hostile::component().to_str().expect("UTF-8 path");
        let mut all = vec!["--component", component];
        all.extend_from_slice(args);
        self.s.run(&all)
    }

    /// `apply` with `flags` before it; must fail with status 1 and leave everything as it was.
    #[track_caller]
    fn apply_fails(&self, flags: &[&str]) -> Run {
        let mut args = flags.to_vec();
        args.extend_from_slice(&["apply", "-f", "images.yaml"]);
        let run = self.run(&args).expect_code(1);
        self.assert_contained(&run);
        run
    }

    /// Nothing leaked, and the state file, the image file and the cloud are unchanged.
    #[track_caller]
    fn assert_contained(&self, run: &Run) {
        for output in [&run.stdout, &run.stderr] {
            assert!(!output.contains("LEAKED"), "the component got through:\n{output}");
            assert!(!output.contains("root:x:0:0"), "/etc/passwd leaked:\n{output}");
        }
        assert!(
            std::fs::read(self.state_file()).unwrap() == self.state_before,
            "the state file changed:\n{}\n--- stderr\n{}",
            std::fs::read_to_string(self.state_file()).unwrap(),
            run.stderr
        );
        assert_eq!(
            std::fs::read(self.s.path("images/disk.qcow2")).unwrap(),
            self.file_before,
            "the image file changed"
        );
        let mut planted: Vec<_> = std::fs::read_dir(self.s.path("images"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        planted.retain(|n| n != "disk.qcow2" && !n.to_string_lossy().ends_with("-link"));
        assert!(planted.is_empty(), "the component planted {planted:?}");
        assert!(self.s.cloud_images().is_empty(), "{:?}", self.s.cloud_images());
    }
}

/// Asserts that `stderr` reports every attempt in `tries` (so the behaviour really ran).
#[track_caller]
fn tried(stderr: &str, tries: &[&str]) {
    for attempt in tries {
        assert!(stderr.contains(attempt), "no report of '{attempt}':\n{stderr}");
    }
}

#[test]
fn reading_etc_passwd_is_refused() {
    let h = Hostile::new("read-passwd", "");
    let run = h.apply_fails(&[]);
    tried(&run.stderr, &["read /etc/passwd: ", "list /: "]);
}

#[test]
fn files_outside_the_preopens_and_the_environment_stay_hidden() {
    let h = Hostile::new("read-outside", "");
    let run = h.apply_fails(&[]);
    tried(
        &run.stderr,
        &[
            "openstack-image.state.json: ",
            "list /root: ",
            "read /proc/self/environ: ",
            "environment and arguments: none",
        ],
    );
}

#[test]
fn the_local_file_directory_is_read_only() {
    let h = Hostile::new("write-read-only", "");
    let run = h.apply_fails(&[]);
    tried(
        &run.stderr,
        &[
            "create ",
            "overwrite ",
            "truncate ",
            "remove ",
            "rename ",
            "mkdir in ",
        ],
    );
}

#[test]
fn dot_dot_does_not_leave_a_preopen() {
    let h = Hostile::new("dotdot-escape", "");
    let run = h.apply_fails(&[]);
    tried(
        &run.stderr,
        &["images/../openstack-image.state.json: ", "etc/passwd: "],
    );
}

#[test]
fn symlinks_do_not_leave_a_preopen() {
    let h = Hostile::new("symlink-escape", "");
    let images = h.s.path("images");
    std::os::unix::fs::symlink("/etc/passwd", images.join("passwd-link")).unwrap();
    std::os::unix::fs::symlink(h.state_file(), images.join("state-link")).unwrap();
    std::os::unix::fs::symlink("..", images.join("parent-link")).unwrap();
    let run = h.apply_fails(&[]);
    tried(
        &run.stderr,
        &[
            "passwd-link: ",
            "state-link: ",
            "list ",
            "parent-link/openstack-image.state.json: ",
        ],
    );
}

#[test]
fn http_to_hosts_not_allowed_and_to_the_metadata_service_is_denied() {
    let h = Hostile::new(
        "http-denied",
        "    properties:\n      url: http://example.org:8080/secrets\n",
    );
    let run = h.apply_fails(&[]);
    tried(
        &run.stderr,
        &[
            "image 'evil': blocked by the sandbox: ",
            "GET http://example.org:8080/secrets: ",
            "GET http://169.254.169.254/latest/meta-data/: ",
        ],
    );
    for host in ["example.org:8080", "169.254.169.254:80"] {
        assert!(
            run.stderr.lines().any(|l| l.contains("denied outgoing HTTP")
                && l.contains("--allow-host")
                && l.contains(host)),
            "the host's denial names {host} and --allow-host:\n{}",
            run.stderr
        );
    }
}

#[test]
fn an_image_endpoint_the_component_claims_does_not_open_the_metadata_service() {
    // The hostile `authenticate` names 169.254.169.254 as the cloud's image endpoint.
    let h = Hostile::new("claimed-endpoint", "");
    let run = h.apply_fails(&[]);
    tried(&run.stderr, &["GET http://169.254.169.254/latest/meta-data/: "]);
}

#[test]
fn raw_sockets_and_name_lookups_are_unavailable() {
    let auth = url_authority(&cloud_env()["OS_AUTH_URL"]);
    let h = Hostile::new("raw-socket", &format!("    properties:\n      addr: {auth}\n"));
    let run = h.apply_fails(&[]);
    tried(
        &run.stderr,
        &[&format!("connect {auth}: "), "resolve localhost: "],
    );
}

#[test]
fn unbounded_allocation_stops_at_the_memory_limit() {
    let h = Hostile::new("allocate-forever", "");
    let run = h.apply_fails(&["--memory-limit-mib", "64"]);
    assert!(
        run.stderr
            .contains("image 'evil': the component ran out of memory: it asked for more than 64 MiB")
            && run.stderr.contains("--memory-limit-mib"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_busy_loop_is_stopped_at_the_deadline() {
    stopped_at_the_deadline("loop-forever");
}

#[test]
fn a_call_blocked_in_the_host_is_stopped_at_the_deadline() {
    stopped_at_the_deadline("sleep-forever");
}

fn stopped_at_the_deadline(behaviour: &str) {
    let h = Hostile::new(behaviour, "");
    let started = Instant::now();
    let run = h.apply_fails(&["--deadline-seconds", "3"]);
    assert!(
        run.stderr.contains("image 'evil'") && run.stderr.contains("--deadline-seconds"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("image 'existing': not run: the component was stopped"),
        "the stopped instance is not entered again: {}",
        run.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_flood_of_output_is_capped() {
    let h = Hostile::new("flood-output", "");
    let started = Instant::now();
    let run = h.apply_fails(&[]);
    tried(&run.stderr, &["flooded stdout and stderr"]);
    let printed = run.stdout.len() + run.stderr.len();
    assert!(printed < 8 * 1024 * 1024, "the host printed {printed} bytes");
    assert!(
        run.stderr.contains("--output-limit-kib"),
        "the cap is named: {}",
        &run.stderr[..run.stderr.len().min(2000)]
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_output_cap_follows_the_flag() {
    let h = Hostile::new("flood-output", "");
    let run = h.apply_fails(&["--output-limit-kib", "64"]);
    let printed = run.stdout.len() + run.stderr.len();
    assert!(printed < 512 * 1024, "the host printed {printed} bytes");
}

#[test]
fn a_huge_error_is_cut_short() {
    let run = Hostile::new("huge-error", "").apply_fails(&[]);
    assert!(
        run.stderr.contains("field field99: EEEE")
            && !run.stderr.contains("field100:")
            && run.stderr.contains("900 more problems not shown"),
        "at most 100 field errors are shown"
    );
    assert!(run.stderr.contains("bytes cut)"), "long texts are cut");
    assert!(
        run.stderr.len() < 1024 * 1024,
        "the host printed {} bytes",
        run.stderr.len()
    );
}

#[test]
fn a_created_image_with_another_id_is_not_recorded() {
    malformed_create(
        "create-wrong-id",
        r#"came back with the id "11111111-2222-4333-8444-555555555555""#,
    );
}

#[test]
fn a_created_image_whose_id_is_not_a_uuid_is_not_recorded() {
    malformed_create(
        "create-not-uuid",
        r#"came back with the id "../../etc/passwd\nnot-a-uuid""#,
    );
}

#[test]
fn a_created_image_with_an_unknown_status_is_not_recorded() {
    malformed_create("create-bad-status", r#"the unknown status "pwned""#);
}

#[test]
fn a_created_image_with_huge_strings_is_not_recorded() {
    let run = malformed_create(
        "create-huge-strings",
        "bytes as JSON, more than the 1048576 allowed",
    );
    assert!(
        run.stderr.len() < 64 * 1024,
        "the error stays short: {} bytes",
        run.stderr.len()
    );
}

/// Applies an image whose create answers something malformed: refused, nothing recorded.
fn malformed_create(behaviour: &str, problem: &str) -> Run {
    let run = Hostile::new(behaviour, "").apply_fails(&[]);
    assert!(
        run.stderr
            .contains("image 'evil': the component returned a malformed answer; nothing was recorded")
            && run.stderr.contains(problem),
        "{}",
        run.stderr
    );
    run
}

#[test]
fn an_image_read_with_another_id_is_not_imported() {
    let h = Hostile::new("benign", "");
    let run = h
        .run(&[
            "import",
            "other",
            "00000000-0000-4000-8000-000000000bad",
            "-f",
            "images.yaml",
        ])
        .expect_code(1);
    h.assert_contained(&run);
    assert!(
        run.stderr.contains("malformed answer")
            && run
                .stderr
                .contains(r#"came back with the id "11111111-2222-4333-8444-555555555555""#),
        "{}",
        run.stderr
    );
}

/// `host:port` of an `http://host:port/...` URL.
fn url_authority(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_string()
}
