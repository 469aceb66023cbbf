//! The sandbox against a hostile component (`tests/hostile/`), run with `--component` as a
//! user would: whatever it tries, the host refuses or stops it with an error naming the
//! limit, nothing leaks, and neither the state file nor the cloud changes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use openstack_image_tests::source_server::{Served, SourceServer};
use openstack_image_tests::{Run, Scenario, cloud_env, digest, hostile, observer};

/// An image id the hostile component's fake cloud holds.
const FAKE_IMAGE: &str = "00000000-0000-4000-8000-000000000001";
/// The file, beside the image file, listing the image endpoints the hostile `authenticate`
/// claims besides the metadata service (one a line).
const CLAIMED_ENDPOINTS: &str = "claimed-endpoints";
/// The cloud metadata service.
const METADATA_URL: &str = "http://169.254.169.254/latest/meta-data/";

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

    /// Makes the hostile `authenticate` claim `endpoints` as the cloud's image endpoints.
    fn claim_endpoints(&self, endpoints: &[String]) {
        std::fs::write(
            self.s.path("images").join(CLAIMED_ENDPOINTS),
            endpoints.join("\n"),
        )
        .unwrap();
    }

    /// Nothing leaked, and the state file, the image file and the cloud are unchanged.
    #[track_caller]
    fn assert_contained(&self, run: &Run) {
        assert_nothing_leaked(run);
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
        planted.retain(|n| {
            n != "disk.qcow2" && n != CLAIMED_ENDPOINTS && !n.to_string_lossy().ends_with("-link")
        });
        assert!(planted.is_empty(), "the component planted {planted:?}");
        assert!(self.s.cloud_images().is_empty(), "{:?}", self.s.cloud_images());
    }
}

/// Neither the component's reports nor the host's output show anything that got through:
/// no `LEAKED`, no `/etc/passwd`, not the cloud's password.
#[track_caller]
fn assert_nothing_leaked(run: &Run) {
    let password = &cloud_env()["OS_PASSWORD"];
    for output in [&run.stdout, &run.stderr] {
        assert!(!output.contains("LEAKED"), "the component got through:\n{output}");
        assert!(!output.contains("root:x:0:0"), "/etc/passwd leaked:\n{output}");
        assert!(
            !output.contains(password.as_str()),
            "the cloud's password leaked:\n{output}"
        );
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
    denied(&run.stderr, &["example.org:8080", "169.254.169.254:80"]);
}

/// Asserts that the host's own denial names each of `hosts` (`host:port`) and `--allow-host`.
#[track_caller]
fn denied(stderr: &str, hosts: &[&str]) {
    for host in hosts {
        assert!(
            stderr.lines().any(|l| l.contains("denied outgoing HTTP")
                && l.contains("--allow-host")
                && l.contains(host)),
            "the host's denial names {host} and --allow-host:\n{stderr}"
        );
    }
}

/// A listener on 127.0.0.1 where a leak would land: it records every connection with the
/// first bytes sent on it, and answers `200 OK`, so a component that got through says so too.
struct Observer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl Observer {
    /// Listens on a free port of 127.0.0.1.
    fn start() -> Observer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the observer");
        let addr = listener.local_addr().expect("the observer's address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (record, stopping) = (seen.clone(), stop.clone());
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut client) = client else { continue };
                let _ = client.set_read_timeout(Some(Duration::from_secs(2)));
                let mut first = [0u8; 4096];
                let n = client.read(&mut first).unwrap_or(0);
                record
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(String::from_utf8_lossy(&first[..n]).into_owned());
                let _ =
                    client.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            }
        });
        Observer {
            addr,
            seen,
            stop,
            accept: Some(accept),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://HOST:PORT/PATH`: the observer's port under the name `host`.
    fn url(&self, host: &str, path: &str) -> String {
        format!("http://{host}:{}{path}", self.port())
    }

    /// Stops the observer; fails if anything reached it.
    #[track_caller]
    fn assert_unreached(mut self) {
        self.shut_down();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            seen.is_empty(),
            "{} connection(s) reached the observer on {}: {seen:?}",
            seen.len(),
            self.addr
        );
    }

    fn shut_down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept(); only wait for the thread if the wake-up got through.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).is_ok();
        if let Some(accept) = self.accept.take()
            && woke
        {
            let _ = accept.join();
        }
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if self.accept.is_some() {
            self.shut_down();
        }
    }
}

/// Applies an image whose create POSTs what the host gave it (credentials and session) to
/// `urls`, with the hostile `authenticate` claiming their origins as image endpoints:
/// refused and contained, each POST reported.
#[track_caller]
fn forged_session(urls: &[&str]) -> Run {
    let h = Hostile::new(
        "forged-session",
        &format!("    properties:\n      urls: {}\n", urls.join(",")),
    );
    let origins: Vec<String> = urls
        .iter()
        .map(|url| format!("http://{}", url_authority(url)))
        .collect();
    h.claim_endpoints(&origins);
    let run = h.apply_fails(&[]);
    for url in urls {
        tried(&run.stderr, &[&format!("POST {url}: ")]);
    }
    run
}

#[test]
fn a_session_sent_to_another_loopback_port_is_denied() {
    let observer = Observer::start();
    let run = forged_session(&[&observer.url("127.0.0.1", "/v2/images")]);
    denied(&run.stderr, &[&format!("127.0.0.1:{}", observer.port())]);
    observer.assert_unreached();
}

#[test]
fn a_session_sent_to_a_host_name_is_denied() {
    // Denied by name, before any lookup: images.example.com would not resolve here,
    // localhost resolves to the observer.
    let observer = Observer::start();
    let run = forged_session(&[
        &observer.url("images.example.com", "/"),
        &observer.url("localhost", "/"),
    ]);
    denied(
        &run.stderr,
        &[
            &format!("images.example.com:{}", observer.port()),
            &format!("localhost:{}", observer.port()),
        ],
    );
    observer.assert_unreached();
}

#[test]
fn a_session_sent_to_the_metadata_service_is_denied() {
    let observer = Observer::start();
    let run = forged_session(&[METADATA_URL, &observer.url("127.0.0.1", "/latest/meta-data/")]);
    denied(
        &run.stderr,
        &["169.254.169.254:80", &format!("127.0.0.1:{}", observer.port())],
    );
    observer.assert_unreached();
}

#[test]
fn a_component_gets_the_run_s_session_and_no_credentials() {
    let observer = Observer::start();
    let run = forged_session(&[&observer.url("127.0.0.1", "/")]);
    tried(&run.stderr, &["credentials: session-only", "session: given"]);
    observer.assert_unreached();
}

#[test]
fn image_endpoints_the_component_claims_are_never_opened() {
    // The hostile `authenticate` claims the metadata service and the observer as the cloud's
    // image endpoints; its create asks both for their images.
    let observer = Observer::start();
    let h = Hostile::new("claimed-endpoint", "");
    let endpoint = observer.url("127.0.0.1", "");
    h.claim_endpoints(std::slice::from_ref(&endpoint));
    let run = h.apply_fails(&[]);
    tried(
        &run.stderr,
        &[
            "GET http://169.254.169.254/v2/images: ",
            &format!("GET {endpoint}/v2/images: "),
        ],
    );
    denied(
        &run.stderr,
        &["169.254.169.254:80", &format!("127.0.0.1:{}", observer.port())],
    );
    observer.assert_unreached();
}

/// The hex digest of `bytes` by the system's `tool` (`md5sum`, `sha512sum`, …).
fn digest_of(s: &Scenario, tool: &str, bytes: &[u8]) -> String {
    let file = s.path("digest-input");
    std::fs::write(&file, bytes).unwrap();
    digest(tool, &file)
}

/// The one `component-*` area of `cache` other than `not`.
fn other_area(cache: &Path, not: &Path) -> PathBuf {
    let areas: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.as_path() != not)
        // The host's own entry locks (`.locks`) sit beside the areas.
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("component-"))
        })
        .collect();
    assert_eq!(
        areas.len(),
        1,
        "{} holds one other component's area: {areas:?}",
        cache.display()
    );
    areas[0].clone()
}

#[test]
fn a_cache_entry_another_component_planted_is_never_uploaded() {
    let s = Scenario::new("plant-cache");
    let server = SourceServer::start();
    let real = b"the image bytes the source really serves\n".repeat(1024);
    server.serve("/disk.raw", Served::new(real.clone()).etag("v1"));
    let url = server.url("/disk.raw");
    let cache = s.path("cache");
    let image = |key: &str, extra: &str| {
        format!(
            "images:\n  {key}:\n    name: {}\n    container_format: bare\n    disk_format: raw\n    image_source_url: {url}\n    image_cache_path: {}\n{extra}",
            s.image_name(key),
            cache.display()
        )
    };

    // A download cache entry for the URL, with a record the shipped component would accept
    // (guest/src/source.rs): same URL and decompress flag, the server's ETag, and the
    // digests of the planted bytes.
    let entry = format!(
        "{}.img",
        digest_of(&s, "md5sum", format!("{url}false").as_bytes())
    );
    let sidecar = format!("{entry}.json");
    let planted = "planted by a hostile component; ".repeat(64);
    let record = format!(
        r#"{{"url":"{url}","decompress":false,"digests":{{"size":{},"md5":"{}","sha512":"{}"}},"compression":null,"etag":"\"v1\"","last_modified":null}}"#,
        planted.len(),
        digest_of(&s, "md5sum", planted.as_bytes()),
        digest_of(&s, "sha512sum", planted.as_bytes()),
    );
    let plant_path = format!("{}/{entry}", cache.display());
    s.write_spec(&image(
        "plant-cache",
        &format!(
            "    properties:\n      plant_path: '{plant_path}'\n      plant_data: '{planted}'\n      plant_sidecar: '{record}'\n"
        ),
    ));
    let component = hostile::component();
    let run = s
        .run(&[
            "--component",
            component.to_str().unwrap(),
            "apply",
            "-f",
            "images.yaml",
        ])
        .expect_code(1);
    assert_nothing_leaked(&run);
    tried(
        &run.stderr,
        &[
            &format!("plant {plant_path}: written"),
            &format!("plant {plant_path}.json: written"),
        ],
    );
    let hostile_id = &digest("sha256sum", component)[..32];
    let hostile_area = cache.join(format!("component-{hostile_id}"));
    assert_eq!(
        std::fs::read_to_string(hostile_area.join(&entry)).unwrap(),
        planted,
        "the hostile component writes in its own area"
    );
    assert!(
        !cache.join(&entry).exists(),
        "nothing lands in the shared directory itself"
    );

    s.write_spec(&image("web", ""));
    s.apply();
    assert_eq!(
        server.hits("/disk.raw"),
        1,
        "the shipped component downloads the source"
    );
    let uploaded = observer::image(&s.state_id("web")).expect("the image exists");
    assert_eq!(uploaded["checksum"], digest_of(&s, "md5sum", &real).as_str());
    assert_eq!(uploaded["size"], real.len());
    let shipped_area = other_area(&cache, &hostile_area);
    assert!(
        std::fs::read(shipped_area.join(&entry)).unwrap() == real,
        "the shipped component caches the source's bytes"
    );

    // Control: the planted entry, copied where the shipped component reads, is uploaded;
    // only the separate areas kept it out above.
    s.run(&["destroy"]).expect_code(0);
    for file in [&entry, &sidecar] {
        std::fs::copy(hostile_area.join(file), shipped_area.join(file)).unwrap();
    }
    s.apply();
    assert_eq!(
        server.hits("/disk.raw"),
        1,
        "the planted entry is taken as cached"
    );
    let uploaded = observer::image(&s.state_id("web")).expect("the image exists");
    assert_eq!(
        uploaded["checksum"],
        digest_of(&s, "md5sum", planted.as_bytes()).as_str()
    );
    s.run(&["destroy"]).expect_code(0);
    assert!(s.cloud_images().is_empty(), "{:?}", s.cloud_images());
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
