//! The download cache over many runs: its size limit (least recently used entries go, across
//! runs), entries a concurrent process holds (never removed), what a killed download leaves
//! (removed, never reused), and `cache list` / `cache prune` on a populated cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use openstack_image_tests::source_server::{Served, SourceServer};
use openstack_image_tests::{Scenario, digest, observer};
use rand::RngCore;
use serde_json::Value;

/// Bytes of each image: raw data, distinct per URL.
const IMAGE_BYTES: usize = 256 * 1024;

/// A raw URL image named `key`, cached in the scenario's `cache`.
fn url_image(s: &Scenario, key: &str, url: &str) -> String {
    format!(
        "  {key}:\n    name: {}\n    container_format: bare\n    disk_format: raw\n    image_source_url: {url}\n    image_cache_path: cache\n",
        s.image_name(key)
    )
}

fn spec(images: &[String]) -> String {
    format!("images:\n{}", images.concat())
}

/// Serves `path` with random bytes (and an ETag, so the cache may reuse it); returns them.
fn serve_random(server: &SourceServer, path: &str) -> Vec<u8> {
    let mut bytes = vec![0u8; IMAGE_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    server.serve(path, Served::new(bytes.clone()).etag(path));
    bytes
}

/// `cache list --json` for the scenario's cache.
fn listed(s: &Scenario, limit: &str) -> Value {
    let run = s
        .run(&[
            "cache",
            "list",
            "--dir",
            "cache",
            "--json",
            "--cache-max-size",
            limit,
        ])
        .expect_code(0);
    serde_json::from_str(&run.stdout).expect("cache list --json prints JSON")
}

fn listed_urls(list: &Value) -> Vec<String> {
    list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap().to_string())
        .collect()
}

/// Every file below the scenario's cache, except its locks.
fn cache_files(s: &Scenario) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.file_name().is_some_and(|n| n == ".locks") {
                continue;
            }
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&s.path("cache"), &mut files);
    files.sort();
    files
}

fn partials(s: &Scenario) -> Vec<PathBuf> {
    cache_files(s)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect()
}

/// Waits until a partial download shows up in the cache.
#[track_caller]
fn wait_for_partial(s: &Scenario) {
    let start = Instant::now();
    while partials(s).is_empty() {
        assert!(start.elapsed() < Duration::from_secs(60), "no download started");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn twenty_creates_keep_only_the_most_recently_used_downloads_within_the_limit() {
    let s = Scenario::new("lru");
    let server = SourceServer::start();
    // Room for three entries (data and record), not for four.
    let limit = format!("{}", 3 * (IMAGE_BYTES + 2048));
    let limit_bytes: u64 = limit.parse().unwrap();
    let mut images = Vec::new();
    let mut data = Vec::new();
    for round in 0..5 {
        let mut this_round = Vec::new();
        for i in 0..4 {
            let n = round * 4 + i;
            let path = format!("/disk-{n}.raw");
            data.push(serve_random(&server, &path));
            images.push(url_image(&s, &format!("img{n}"), &server.url(&path)));
            this_round.push(server.url(&path));
        }
        s.write_spec(&spec(&images));
        s.run(&["apply", "-f", "images.yaml", "--cache-max-size", &limit])
            .expect_code(0);
        let list = listed(&s, &limit);
        let urls = listed_urls(&list);
        assert!(
            urls.len() <= 3 && list["size"].as_u64().unwrap() <= limit_bytes,
            "round {round}: the cache outgrew its limit: {list:#}"
        );
        assert!(
            urls.iter().all(|u| this_round.contains(u)),
            "round {round}: only this round's downloads are the most recently used: {urls:?}"
        );
        assert!(partials(&s).is_empty());
    }
    assert_eq!(s.cloud_images().len(), 20);
    for (n, bytes) in data.iter().enumerate() {
        let file = s.path(&format!("expected-{n}.raw"));
        std::fs::write(&file, bytes).unwrap();
        let image = observer::image(&s.state_id(&format!("img{n}"))).unwrap();
        assert_eq!(
            image["properties"]["os_hash_value"],
            digest("sha512sum", &file).as_str(),
            "img{n}"
        );
    }
    s.run(&["plan", "-f", "images.yaml", "--cache-max-size", &limit])
        .expect_code(0);

    // An early image, deleted elsewhere, is created again: its evicted download is fetched
    // again, verified, and becomes the most recently used entry.
    let gone = s.state_id("img0");
    assert!(observer::openstack(&["image", "delete", &gone]).status.success());
    let hits = server.hits("/disk-0.raw");
    s.run(&["apply", "-f", "images.yaml", "--cache-max-size", &limit])
        .expect_code(0);
    assert_eq!(server.hits("/disk-0.raw"), hits + 1, "downloaded again");
    let image = observer::image(&s.state_id("img0")).unwrap();
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &s.path("expected-0.raw")).as_str()
    );
    let list = listed(&s, &limit);
    let urls = listed_urls(&list);
    assert!(urls.len() <= 3, "{list:#}");
    assert_eq!(urls.last(), Some(&server.url("/disk-0.raw")), "{list:#}");

    // `cache prune` with no option trims to the limit; `--max-size 0` empties the cache.
    let pruned = s
        .run(&["cache", "prune", "--dir", "cache", "--max-size", "0"])
        .expect_code(0);
    assert!(pruned.stdout.contains("removed http://"), "{}", pruned.stdout);
    assert!(listed_urls(&listed(&s, &limit)).is_empty());
    s.run(&["destroy", "-f", "images.yaml"]).expect_code(0);
}

#[test]
fn an_entry_a_concurrent_run_uses_is_never_removed() {
    let s = Scenario::new("inuse");
    let server = SourceServer::start();
    let first = serve_random(&server, "/first.raw");
    s.write_spec(&spec(&[url_image(&s, "first", &server.url("/first.raw"))]));
    s.apply();

    // A second image whose source pauses mid-body: while that run downloads it, it holds both
    // its entries (the first image's too: the spec may use it).
    let mut slow = vec![0u8; IMAGE_BYTES];
    rand::rng().fill_bytes(&mut slow);
    server.serve(
        "/slow.raw",
        Served::new(slow.clone())
            .etag("slow")
            .pause_after(IMAGE_BYTES / 2, Duration::from_secs(8)),
    );
    s.write_spec(&spec(&[
        url_image(&s, "first", &server.url("/first.raw")),
        url_image(&s, "slow", &server.url("/slow.raw")),
    ]));
    let running = s
        .command(&["apply", "-f", "images.yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_partial(&s);

    let list = listed(&s, "10G");
    let entries = list["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{list:#}");
    assert_eq!(entries[0]["in_use"], true, "{list:#}");
    let text = s.run(&["cache", "list", "--dir", "cache"]).expect_code(0);
    assert!(text.stdout.contains("[in use]"), "{}", text.stdout);

    // Another process prunes everything it may, and runs with a limit of nothing.
    let pruned = s
        .run(&["cache", "prune", "--dir", "cache", "--max-size", "0"])
        .expect_code(0);
    assert!(
        pruned.stdout.contains("another process is using it"),
        "{}",
        pruned.stdout
    );
    let plan = s.run(&["plan", "-f", "images.yaml", "--cache-max-size", "0"]);
    assert!(plan.code == 0 || plan.code == 2, "{}", plan.stderr);
    assert_eq!(listed_urls(&listed(&s, "10G")), [server.url("/first.raw")]);
    assert_eq!(partials(&s).len(), 1, "the download in progress is left alone");

    let output = running.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let file = s.path("slow.expected");
    std::fs::write(&file, &slow).unwrap();
    let image = observer::image(&s.state_id("slow")).unwrap();
    assert_eq!(image["status"], "active");
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &file).as_str()
    );
    std::fs::write(&file, &first).unwrap();
    let image = observer::image(&s.state_id("first")).unwrap();
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &file).as_str()
    );

    // Released: now a prune removes them.
    s.run(&["cache", "prune", "--dir", "cache", "--max-size", "0"])
        .expect_code(0);
    assert!(listed_urls(&listed(&s, "10G")).is_empty());
    assert!(cache_files(&s).is_empty(), "{:?}", cache_files(&s));
    s.run(&["destroy", "-f", "images.yaml"]).expect_code(0);
}

#[test]
fn a_download_killed_midway_is_removed_and_never_reused() {
    let s = Scenario::new("killed");
    let server = SourceServer::start();
    let mut bytes = vec![0u8; IMAGE_BYTES];
    rand::rng().fill_bytes(&mut bytes);
    server.serve(
        "/disk.raw",
        Served::new(bytes.clone())
            .etag("v1")
            .stall_after(IMAGE_BYTES / 2, Duration::from_secs(60)),
    );
    s.write_spec(&spec(&[url_image(&s, "disk", &server.url("/disk.raw"))]));
    let mut running = s.command(&["apply", "-f", "images.yaml"]).spawn().unwrap();
    wait_for_partial(&s);
    running.kill().unwrap(); // SIGKILL
    running.wait().unwrap();
    assert_eq!(partials(&s).len(), 1, "the kill left a partial download");

    server.serve("/disk.raw", Served::new(bytes.clone()).etag("v1"));
    let hits = server.hits("/disk.raw");
    s.apply();
    assert_eq!(
        server.hits("/disk.raw"),
        hits + 1,
        "downloaded whole, not resumed"
    );
    assert!(partials(&s).is_empty(), "{:?}", cache_files(&s));
    let file = s.path("expected.raw");
    std::fs::write(&file, &bytes).unwrap();
    let image = observer::image(&s.state_id("disk")).unwrap();
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &file).as_str()
    );
    assert_eq!(s.cloud_images().len(), 1, "{:?}", s.cloud_images());
    s.run(&["destroy", "-f", "images.yaml"]).expect_code(0);
}
