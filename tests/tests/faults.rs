//! Failures after the image record exists: the half-made image is deleted and the state
//! never records it.

use openstack_image_tests::fault_proxy::{Fault, FaultProxy, Rule};
use openstack_image_tests::{Scenario, TestRegion, glance_addr, observer};

fn is_upload(line: &str) -> bool {
    line.starts_with("PUT ") && line.contains("/file ")
}

#[test]
fn a_refused_upload_deletes_the_half_made_image() {
    let run = failed_upload("refused", |line| {
        is_upload(line).then_some(Fault::Answer(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\nConnection: close\r\n\r\nstore down\n",
        ))
    });
    assert!(run.contains("503") && run.contains("store down"), "{run}");
}

/// A server's own error answer (not 429/502/503/504) would only come again: the upload is
/// not restarted (so a URL source is not downloaded again), and the error says what Glance
/// answered.
#[test]
fn a_server_error_answer_to_the_upload_is_not_restarted() {
    let run = failed_create(
        "answered500",
        |line| {
            is_upload(line).then_some(Fault::Answer(
                "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 30\r\nConnection: close\r\n\r\nunable to receive chunked part",
            ))
        },
        "",
        1,
    );
    assert!(
        run.contains("500") && run.contains("unable to receive chunked part"),
        "{run}"
    );
    assert!(!run.contains("starts again"), "{run}");
}

#[test]
fn a_broken_upload_connection_deletes_the_half_made_image() {
    let run = failed_upload("broken", |line| is_upload(line).then_some(Fault::Drop));
    assert!(run.contains("the connection broke"), "{run}");
}

/// An upload that always fails: tried once, then started again `--retries` (default 4)
/// times while Glance keeps the image `queued`.
fn failed_upload(test: &str, rule: Rule) -> String {
    failed_create(test, rule, "", 5)
}

#[test]
fn a_stalled_upload_times_out_names_the_status_and_cleans_up() {
    let started = std::time::Instant::now();
    let stall: Rule = |line| is_upload(line).then_some(Fault::Stall);
    let run = failed_create("stalled", stall, "    timeouts:\n      create: 3s\n", 1);
    assert!(
        run.contains("timed out") && run.contains("create gave up after"),
        "{run}"
    );
    assert!(
        run.contains("status 'queued'") && run.contains("timeouts.create"),
        "{run}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the timeout is enforced promptly"
    );
}

/// Applies one image (spec lines `extra` added) through a proxy that applies `rule` (and
/// fails `attempts` requests); returns the error output after checking that nothing is left
/// in the cloud or the state.
fn failed_create(test: &str, rule: Rule, extra: &str, attempts: usize) -> String {
    let s = Scenario::new(test);
    s.qcow2("web.qcow2", 2);
    let proxy = FaultProxy::start(glance_addr(), rule);
    let region = TestRegion::register(&s.image_name("region"), &format!("http://{}", proxy.addr));
    s.write_spec(&format!(
        "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    region: {}\n{extra}",
        s.image_name("web"),
        region.name
    ));

    let run = s.run(&["apply", "-f", "images.yaml"]).expect_code(4);
    assert_eq!(
        proxy.failures(),
        attempts,
        "the upload went through the proxy and failed each time"
    );
    assert!(run.stderr.contains("image 'web'"), "{}", run.stderr);
    assert!(
        s.cloud_images().is_empty(),
        "no half-made image is left: {:?}",
        s.cloud_images()
    );
    let state = s.state();
    assert!(
        state.is_none_or(|st| st["images"].get("web").is_none()),
        "the state does not record it"
    );
    run.stderr
}

#[test]
fn an_apply_killed_mid_upload_is_finished_by_the_next_one() {
    static STALLED_ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let s = Scenario::new("killed");
    s.qcow2("web.qcow2", 2);
    let proxy = FaultProxy::start(glance_addr(), |line| {
        (is_upload(line) && !STALLED_ONCE.swap(true, std::sync::atomic::Ordering::SeqCst))
            .then_some(Fault::Stall)
    });
    let region = TestRegion::register(&s.image_name("region"), &format!("http://{}", proxy.addr));
    s.write_spec(&format!(
        "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    region: {}\n",
        s.image_name("web"),
        region.name
    ));

    let mut child = s
        .command(&["apply", "-f", "images.yaml"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while proxy.failures() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upload never reached the proxy"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A second apply on the same state, while the first is uploading, refuses and names it.
    let second = s.run(&["apply", "-f", "images.yaml"]).expect_code(1);
    assert!(
        second
            .stderr
            .contains(&format!("pid {} running `apply`", child.id())),
        "{}",
        second.stderr
    );
    child.kill().unwrap(); // SIGKILL: no cleanup runs
    child.wait().unwrap();

    let state = s
        .state()
        .expect("the intent was saved before the image was created");
    let intended = state["creating"]["web"]["id"]
        .as_str()
        .expect("an intended id")
        .to_string();
    let leftovers = s.cloud_images();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert_eq!(
        leftovers[0]["ID"],
        intended.as_str(),
        "the half-made image is the one recorded"
    );

    let plan = s.plan().expect_code(2);
    assert!(plan.stderr.contains("interrupted apply"), "{}", plan.stderr);
    let run = s.apply();
    assert!(
        run.stdout.contains(&format!("deleting {intended}")),
        "{}",
        run.stdout
    );
    let images = s.cloud_images();
    assert_eq!(images.len(), 1, "exactly one image per name: {images:?}");
    assert_eq!(images[0]["ID"], s.state_id("web").as_str());
    assert_eq!(images[0]["Status"], "active");
    assert!(s.state().unwrap().get("creating").is_none());
    s.plan().expect_code(0);
}

#[test]
fn a_parallel_apply_of_twelve_images_survives_one_failure() {
    let s = Scenario::new("parallel");
    s.qcow2("web.qcow2", 1);
    let proxy = FaultProxy::start(glance_addr(), |line| {
        is_upload(line).then_some(Fault::Answer(
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 11\r\nConnection: close\r\n\r\nstore down\n",
        ))
    });
    let region = TestRegion::register(&s.image_name("region"), &format!("http://{}", proxy.addr));
    let mut spec = String::from("images:\n");
    for i in 0..11 {
        spec.push_str(&format!(
            "  img{i:02}:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    properties:\n      index: \"{i}\"\n",
            s.image_name(&format!("img{i:02}"))
        ));
    }
    let ok_spec = spec.clone();
    spec.push_str(&format!(
        "  broken:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    region: {}\n",
        s.image_name("broken"),
        region.name
    ));
    s.write_spec(&spec);

    let run = s
        .run(&["apply", "-f", "images.yaml", "--parallel", "4"])
        .expect_code(3);
    assert!(
        run.stderr
            .contains("apply: failed for broken (11 other image(s) done)"),
        "{}",
        run.stderr
    );
    let state = s.state().unwrap();
    let images = state["images"].as_object().unwrap();
    assert_eq!(
        images.len(),
        11,
        "every other image was created: {:?}",
        images.keys()
    );
    for i in 0..11 {
        let id = s.state_id(&format!("img{i:02}"));
        let image = observer::image(&id).unwrap();
        assert_eq!(image["status"], "active");
        assert_eq!(image["properties"]["index"], i.to_string());
    }
    assert_eq!(s.cloud_images().len(), 11, "the failed image was cleaned up");

    s.write_spec(&ok_spec);
    s.plan().expect_code(0);
}
