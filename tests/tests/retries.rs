//! Create, update and delete under every kind of fault between the tool and Glance: transient
//! faults are retried (re-authenticating on 401, restarting an upload Glance put back to
//! `queued`) and succeed; persistent ones fail cleanly. After every case the cloud holds
//! exactly the images the state records, and nothing `queued`.

use std::sync::{Arc, Mutex};

use openstack_image_tests::fault_proxy::{Fault, FaultProxy, Script, first};
use openstack_image_tests::{Scenario, TestRegion, cloud_env, observer};

const UNAVAILABLE: &str =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\nConnection: close\r\n\r\nbusy\n";
const TOO_MANY: &str = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 5\r\nConnection: close\r\n\r\nslow\n";
const EXPIRED: &str = "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 63\r\nConnection: close\r\n\r\n{\"error\": {\"code\": 401, \"message\": \"The token has expired.\"}}\n";

fn upload(line: &str) -> bool {
    line.starts_with("PUT ") && line.contains("/file ")
}
fn post(line: &str) -> bool {
    line.starts_with("POST /v2/images ")
}
fn get_image(line: &str) -> bool {
    line.starts_with("GET /v2/images/")
}
fn patch(line: &str) -> bool {
    line.starts_with("PATCH /v2/images/")
}
fn delete(line: &str) -> bool {
    line.starts_with("DELETE /v2/images/")
}
fn always(matches: fn(&str) -> bool, fault: Fault) -> Script {
    first(usize::MAX, matches, fault)
}

/// A scenario whose one image `web` talks to Glance through a fault proxy whose script the
/// test switches between cases.
struct Faulty {
    s: Scenario,
    script: Arc<Mutex<Script>>,
    _proxy: FaultProxy,
    region: TestRegion,
}

impl Faulty {
    fn new(test: &str) -> Faulty {
        let s = Scenario::new(test);
        s.qcow2("web.qcow2", 2);
        let script: Arc<Mutex<Script>> = Arc::new(Mutex::new(Arc::new(|_: &str| None)));
        let current = script.clone();
        let glance = cloud_env()["DEV_CLOUD_GLANCE_URL"]
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("DEV_CLOUD_GLANCE_URL is http://IP:PORT");
        let proxy = FaultProxy::scripted(
            glance,
            Arc::new(move |line: &str| {
                let script = current.lock().unwrap().clone();
                script(line)
            }),
        );
        let region = TestRegion::register(&s.image_name("region"), &format!("http://{}", proxy.addr));
        Faulty {
            s,
            script,
            _proxy: proxy,
            region,
        }
    }

    fn spec(&self, extra: &str) {
        self.s.write_spec(&format!(
            "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    region: {}\n{extra}",
            self.s.image_name("web"),
            self.region.name
        ));
    }

    fn fault(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    /// Applies with `script` active; returns the run's output.
    fn apply_with(&self, script: Script, code: i32) -> openstack_image_tests::Run {
        self.fault(script);
        let run = self.s.run(&["apply", "-f", "images.yaml"]).expect_code(code);
        self.fault(Arc::new(|_: &str| None));
        run
    }

    /// The cloud holds exactly the images the state records, none of them `queued`.
    fn consistent(&self, case: &str) {
        let state = self.s.state().unwrap_or_default();
        let mut recorded: Vec<String> = state["images"]
            .as_object()
            .map(|images| {
                images
                    .values()
                    .map(|e| e["image"]["id"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default();
        recorded.sort();
        let images = self.s.cloud_images();
        let mut in_cloud: Vec<String> = images
            .iter()
            .map(|i| i["ID"].as_str().unwrap().to_string())
            .collect();
        in_cloud.sort();
        assert_eq!(in_cloud, recorded, "{case}: cloud and state disagree");
        for image in &images {
            assert_eq!(image["Status"], "active", "{case}: {image}");
        }
        assert!(
            state
                .get("creating")
                .is_none_or(|c| c.as_object().is_none_or(|c| c.is_empty())),
            "{case}: {state}"
        );
    }
}

#[test]
fn create_survives_transient_faults_and_fails_cleanly_on_persistent_ones() {
    let f = Faulty::new("retry-create");
    f.spec("");
    let transient: Vec<(&str, Script)> = vec![
        ("503 twice on POST", first(2, post, Fault::Answer(UNAVAILABLE))),
        (
            "429 with Retry-After on POST",
            first(1, post, Fault::Answer(TOO_MANY)),
        ),
        ("POST answer lost", first(1, post, Fault::Truncate(0))),
        ("401 on the upload", first(1, upload, Fault::Answer(EXPIRED))),
        ("reset mid-upload", first(1, upload, Fault::CutBody(256 * 1024))),
        ("503 on the upload", first(1, upload, Fault::Answer(UNAVAILABLE))),
        (
            "truncated status answer",
            first(1, get_image, Fault::Truncate(40)),
        ),
    ];
    for (case, script) in transient {
        let run = f.apply_with(script, 0);
        f.consistent(case);
        let id = f.s.state_id("web");
        assert_eq!(observer::image(&id).unwrap()["status"], "active", "{case}");
        assert!(
            run.stderr.contains("retr") || run.stderr.contains("starts again"),
            "{case}: {}",
            run.stderr
        );
        f.s.run(&["destroy"]).expect_code(0);
        f.consistent(case);
    }

    // Persistent faults: the create fails, the half-made image is deleted.
    for (case, script, code) in [
        ("refused uploads", always(upload, Fault::Answer(UNAVAILABLE)), 4),
        (
            "uploads always reset",
            always(upload, Fault::CutBody(64 * 1024)),
            4,
        ),
    ] {
        f.fault(script);
        let run =
            f.s.run(&["apply", "-f", "images.yaml", "--retries", "1"])
                .expect_code(code);
        f.fault(Arc::new(|_: &str| None));
        assert!(run.stderr.contains("image 'web'"), "{case}: {}", run.stderr);
        f.consistent(case);
    }
    f.spec("    timeouts:\n      create: 4s\n");
    let stalled = f.apply_with(always(upload, Fault::Stall), 4);
    assert!(stalled.stderr.contains("timed out"), "{}", stalled.stderr);
    f.consistent("stalled upload");
}

#[test]
fn update_survives_transient_faults_and_fails_cleanly_on_persistent_ones() {
    let f = Faulty::new("retry-update");
    f.spec("    min_ram_mb: 1\n");
    f.s.apply();
    let id = f.s.state_id("web");
    let cases: Vec<(&str, Script)> = vec![
        ("503 twice on PATCH", first(2, patch, Fault::Answer(UNAVAILABLE))),
        ("401 on PATCH", first(1, patch, Fault::Answer(EXPIRED))),
        ("PATCH answer lost", first(1, patch, Fault::Truncate(0))),
        ("reset GET", first(1, get_image, Fault::Drop)),
    ];
    for (ram, (case, script)) in (2..).zip(cases) {
        f.spec(&format!("    min_ram_mb: {ram}\n"));
        f.apply_with(script, 0);
        f.consistent(case);
        assert_eq!(f.s.state_id("web"), id, "{case}: updated in place");
        assert_eq!(observer::image(&id).unwrap()["min_ram"], ram, "{case}");
    }

    // A PATCH that never gets through: the image keeps its old values, the state says so.
    f.spec("    min_ram_mb: 100\n");
    let run = f.apply_with(always(patch, Fault::Drop), 4);
    assert!(run.stderr.contains("image 'web'"), "{}", run.stderr);
    f.consistent("PATCH always dropped");
    assert_ne!(observer::image(&id).unwrap()["min_ram"], 100);
    assert_ne!(
        f.s.state().unwrap()["images"]["web"]["image"]["spec"]["min_ram_mb"],
        100
    );
    f.spec("    min_ram_mb: 100\n    timeouts:\n      update: 3s\n");
    let run = f.apply_with(always(patch, Fault::Stall), 4);
    assert!(run.stderr.contains("timed out"), "{}", run.stderr);
    f.consistent("PATCH stalled");
    f.s.plan().expect_code(2);
    f.s.apply();
    assert_eq!(observer::image(&id).unwrap()["min_ram"], 100);
}

#[test]
fn delete_survives_transient_faults_and_fails_cleanly_on_persistent_ones() {
    let f = Faulty::new("retry-delete");
    f.spec("");
    let cases: Vec<(&str, Script)> = vec![
        (
            "503 twice on DELETE",
            first(2, delete, Fault::Answer(UNAVAILABLE)),
        ),
        ("401 on DELETE", first(1, delete, Fault::Answer(EXPIRED))),
        ("DELETE answer lost", first(1, delete, Fault::Truncate(0))),
    ];
    for (case, script) in cases {
        f.s.apply();
        let id = f.s.state_id("web");
        f.fault(script);
        f.s.run(&["destroy"]).expect_code(0);
        f.fault(Arc::new(|_: &str| None));
        assert!(observer::image(&id).is_none(), "{case}");
        f.consistent(case);
    }

    f.s.apply();
    let id = f.s.state_id("web");
    f.fault(always(delete, Fault::Drop));
    f.s.run(&["destroy", "--retries", "1"]).expect_code(4);
    f.consistent("DELETE always dropped");
    assert!(observer::image(&id).is_some());
    f.fault(Arc::new(|_: &str| None));
    f.s.run(&["destroy"]).expect_code(0);
    f.consistent("destroyed at last");
}
