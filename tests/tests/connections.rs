//! Connection reuse: the component's requests go out on pooled keep-alive connections that
//! every instance of a run shares, and a server closing them costs no request. Glance is
//! reached through `scripts/keepalive-relay` (HTTP/1.1 keep-alive toward the tool, although
//! the dev cloud's uwsgi closes every connection), registered as a region of its own.

use std::time::Duration;

use openstack_image_tests::keepalive_relay::KeepAliveRelay;
use openstack_image_tests::source_server::{Served, SourceServer};
use openstack_image_tests::{Scenario, TestRegion, WEB_DOWNLOAD_PORTS, glance_addr};

/// Ports the dev cloud's Glance may fetch web-download sources from.
/// A spec of `n` images from one small qcow2 file, in `region`.
fn spec(s: &Scenario, region: &str, n: usize) {
    s.qcow2("disk.qcow2", 1);
    let mut spec = String::from("images:\n");
    for i in 0..n {
        spec.push_str(&format!(
            "  img{i}:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: disk.qcow2\n    region: {region}\n",
            s.image_name(&format!("img{i}"))
        ));
    }
    s.write_spec(&spec);
}

#[test]
fn apply_and_plan_of_several_images_open_far_fewer_connections_than_requests() {
    let s = Scenario::new("reuse");
    let relay = KeepAliveRelay::start(glance_addr(), None);
    let region = TestRegion::register(&s.image_name("region"), &relay.url());
    spec(&s, &region.name, 6);

    let start = relay.traffic();
    s.apply();
    let apply = relay.traffic() - start;
    assert_eq!(s.cloud_images().len(), 6);
    // Each create: POST, PUT of the data, GETs until active; four instances at a time.
    assert!(apply.requests >= 18, "{apply:?}");
    assert!(
        apply.connections * 3 <= apply.requests,
        "connections are reused: {apply:?}"
    );

    let start = relay.traffic();
    s.plan().expect_code(0);
    let plan = relay.traffic() - start;
    assert!(plan.requests >= 6, "{plan:?}");
    // The plan reads the images four at a time: at most a connection per reader.
    assert!(
        plan.connections <= 4 && plan.connections < plan.requests,
        "{plan:?}"
    );
    println!("apply: {apply:?}, plan: {plan:?}");

    s.run(&["destroy", "-f", "images.yaml"]).expect_code(0);
    assert!(s.cloud_images().is_empty());
}

/// The relay closes connections idle for 100 ms, unannounced. A web-download image whose
/// source answers only after 2 s makes the component poll Glance at 200 ms, 400 ms, …, so
/// pooled connections are closed by the server between its requests. With retries off, a
/// request lost to one would fail the run.
#[test]
fn a_server_closing_idle_connections_fails_no_request() {
    let s = Scenario::new("idleclose");
    let relay = KeepAliveRelay::start(glance_addr(), Some(Duration::from_millis(100)));
    let region = TestRegion::register(&s.image_name("region"), &relay.url());
    let source = SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS);
    source.serve(
        "/disk.raw",
        Served::new(vec![7u8; 256 * 1024]).delay(Duration::from_secs(2)),
    );
    s.write_spec(&format!(
        "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: raw\n    image_source_url: {}\n    web_download: true\n    region: {}\n",
        s.image_name("web"),
        source.url("/disk.raw"),
        region.name
    ));

    s.run(&["apply", "-f", "images.yaml", "--retries", "0"])
        .expect_code(0);
    let apply = relay.traffic();
    assert_eq!(s.cloud_images().len(), 1);
    assert!(
        apply.idle_closed >= 1 && apply.connections > apply.idle_closed,
        "the relay closed pooled connections between requests: {apply:?}"
    );
    assert!(apply.connections < apply.requests, "{apply:?}");
    s.run(&["destroy", "-f", "images.yaml", "--retries", "0"])
        .expect_code(0);
    assert!(s.cloud_images().is_empty());
    println!("apply: {apply:?}");
}
