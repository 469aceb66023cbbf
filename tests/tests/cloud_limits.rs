//! Clouds configured differently from the dev cloud's main Glance — its RegionLimits Glance
//! has an 8 MiB `image_size_cap`, a 24 MiB per-project `user_storage_quota` and a policy that
//! denies `upload_image` to the role `no_upload`. Each refusal names the image, the cause and
//! the fix, leaves no image behind and the state as it was.

use openstack_image_tests::source_server::{Served, SourceServer, compressed_variants};
use openstack_image_tests::{Run, Scenario, WEB_DOWNLOAD_PORTS, cloud_env, observer};
use serde_json::Value;

/// The settings that make a run (ours or the observer's) act as `user` in RegionLimits.
fn as_user(user: &str) -> Vec<(&'static str, String)> {
    let env = cloud_env();
    let mut vars = vec![("OS_REGION_NAME", env["DEV_CLOUD_LIMITS_REGION"].clone())];
    if let Some(prefix) = match user {
        "admin" => None,
        "quota" => Some("DEV_CLOUD_QUOTA"),
        "noupload" => Some("DEV_CLOUD_NO_UPLOAD"),
        other => panic!("no test user {other}"),
    } {
        vars.extend([
            ("OS_USERNAME", env[&format!("{prefix}_USERNAME")].clone()),
            ("OS_PASSWORD", env[&format!("{prefix}_PASSWORD")].clone()),
            ("OS_PROJECT_NAME", env[&format!("{prefix}_PROJECT")].clone()),
        ]);
    }
    vars
}

fn borrowed<'a>(vars: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    vars.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn run_as(s: &Scenario, user: &str, args: &[&str]) -> Run {
    s.run_with(args, &borrowed(&as_user(user)))
}

/// This scenario's images in RegionLimits, as `user` sees them.
fn images_as(s: &Scenario, user: &str) -> Vec<Value> {
    let prefix = s.image_name("");
    observer::list_as(&borrowed(&as_user(user)))
        .into_iter()
        .filter(|i| i["Name"].as_str().is_some_and(|n| n.starts_with(&prefix)))
        .collect()
}

/// Deletes this scenario's images in RegionLimits (the Scenario itself cleans RegionOne only).
fn clean_up(s: &Scenario, user: &str) {
    let vars = as_user(user);
    for image in images_as(s, user) {
        let id = image["ID"].as_str().unwrap();
        let _ = observer::openstack_as(&borrowed(&vars), &["image", "delete", id]);
    }
}

fn image(s: &Scenario, key: &str, source: &str) -> String {
    format!(
        "  {key}:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n{source}",
        s.image_name(key)
    )
}

fn file(name: &str) -> String {
    format!("    local_file_path: {name}\n")
}

fn state_text(s: &Scenario) -> Option<Value> {
    s.state()
}

#[test]
fn an_image_larger_than_the_size_cap_is_refused_and_nothing_is_left() {
    let s = Scenario::new("sizecap");
    s.qcow2("small.qcow2", 1);
    s.qcow2("big.qcow2", 10);
    s.write_spec(&format!("images:\n{}", image(&s, "small", &file("small.qcow2"))));
    run_as(&s, "admin", &["apply", "-f", "images.yaml"]).expect_code(0);
    let before = state_text(&s);

    s.write_spec(&format!(
        "images:\n{}{}",
        image(&s, "small", &file("small.qcow2")),
        image(&s, "big", &file("big.qcow2"))
    ));
    let run = run_as(&s, "admin", &["apply", "-f", "images.yaml"]).expect_code(4);
    for needle in [
        "image 'big'",
        "image_size_cap",
        "413",
        "too large",
        "smaller image",
    ] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    assert_eq!(state_text(&s), before, "the state is as it was");
    let left: Vec<String> = images_as(&s, "admin")
        .iter()
        .map(|i| i["Name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, vec![s.image_name("small")], "no half-made image is left");
    clean_up(&s, "admin");
}

#[test]
fn an_exhausted_storage_quota_is_refused_and_nothing_is_left() {
    let s = Scenario::new("quota");
    // The quota is per project: start from an empty one (a failed earlier run may have left
    // images of its own prefix, which no other test uses).
    for image in observer::list_as(&borrowed(&as_user("quota"))) {
        let id = image["ID"].as_str().unwrap();
        let _ = observer::openstack_as(&borrowed(&as_user("quota")), &["image", "delete", id]);
    }
    for name in ["a", "b", "c", "d"] {
        s.qcow2(&format!("{name}.qcow2"), 7);
    }
    // Data of unknown size (decompressed as it streams, no cache): Glance reads it all
    // before refusing.
    let server = SourceServer::start();
    let (_, gzip) = compressed_variants(&s.path("d.qcow2"))
        .into_iter()
        .find(|(format, _)| *format == "gzip")
        .unwrap();
    server.serve("/e.qcow2.gz", Served::new(std::fs::read(gzip).unwrap()));
    let streamed = format!(
        "    image_source_url: {}\n    decompress: true\n    image_cache_path: none\n",
        server.url("/e.qcow2.gz")
    );
    s.write_spec(&format!(
        "images:\n{}{}{}",
        image(&s, "a", &file("a.qcow2")),
        image(&s, "b", &file("b.qcow2")),
        image(&s, "c", &file("c.qcow2"))
    ));
    run_as(&s, "quota", &["apply", "-f", "images.yaml"]).expect_code(0);
    let before = state_text(&s);

    // 21 MiB used of 24: a fourth 7 MiB image does not fit, whether its size is known in
    // advance (a local file: refused before the body) or not (a streamed URL).
    for (key, source) in [("d", file("d.qcow2")), ("e", streamed)] {
        s.write_spec(&format!(
            "images:\n{}{}{}{}",
            image(&s, "a", &file("a.qcow2")),
            image(&s, "b", &file("b.qcow2")),
            image(&s, "c", &file("c.qcow2")),
            image(&s, key, &source)
        ));
        let run = run_as(&s, "quota", &["apply", "-f", "images.yaml"]).expect_code(4);
        for needle in [&format!("image '{key}'"), "storage quota", "413", "delete images"] {
            assert!(run.stderr.contains(needle), "{key}: {needle}: {}", run.stderr);
        }
        assert_eq!(state_text(&s), before, "{key}: the state is as it was");
        let mut left: Vec<String> = images_as(&s, "quota")
            .iter()
            .map(|i| i["Name"].as_str().unwrap().to_string())
            .collect();
        left.sort();
        assert_eq!(
            left,
            ["a", "b", "c"].map(|k| s.image_name(k)).to_vec(),
            "{key}: no half-made image is left (Glance leaves a refused stream in `saving`)"
        );
    }
    clean_up(&s, "quota");
}

#[test]
fn a_cloud_that_forbids_direct_uploads_points_at_web_download() {
    let s = Scenario::new("noupload");
    s.qcow2("disk.qcow2", 1);
    s.write_spec(&format!("images:\n{}", image(&s, "web", &file("disk.qcow2"))));
    let run = run_as(&s, "noupload", &["apply", "-f", "images.yaml"]).expect_code(4);
    for needle in ["image 'web'", "upload_image", "403", "web_download: true"] {
        assert!(run.stderr.contains(needle), "{needle}: {}", run.stderr);
    }
    assert!(
        s.state()
            .is_none_or(|st| st["images"].as_object().unwrap().is_empty()),
        "{:?}",
        s.state()
    );
    assert!(images_as(&s, "noupload").is_empty(), "no half-made image is left");

    // The fix the error names works: Glance fetches the data itself.
    let server = SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS);
    server.serve(
        "/disk.qcow2",
        Served::new(std::fs::read(s.path("disk.qcow2")).unwrap()),
    );
    s.write_spec(&format!(
        "images:\n{}",
        image(
            &s,
            "web",
            &format!(
                "    image_source_url: {}\n    web_download: true\n",
                server.url("/disk.qcow2")
            )
        )
    ));
    run_as(&s, "noupload", &["apply", "-f", "images.yaml"]).expect_code(0);
    let images = images_as(&s, "noupload");
    assert_eq!(images.len(), 1, "{images:?}");
    assert_eq!(images[0]["Status"], "active");
    clean_up(&s, "noupload");
}
