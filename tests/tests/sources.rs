//! Image data from URLs: every compression format, the download cache, streaming without a
//! cache, source checksums, and the ways a download goes wrong.

use std::path::PathBuf;

use openstack_image_tests::source_server::{Served, SourceServer, compressed_variants};
use openstack_image_tests::{Run, Scenario, WEB_DOWNLOAD_PORTS, digest, observer};

/// A URL image named `key` in the spec.
fn url_image(s: &Scenario, key: &str, url: &str, extra: &str) -> String {
    format!(
        "  {key}:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    image_source_url: {url}\n{extra}",
        s.image_name(key)
    )
}

fn spec(images: &[String]) -> String {
    format!("images:\n{}", images.concat())
}

/// The raw qcow2 and its bytes.
fn image_file(s: &Scenario) -> (PathBuf, Vec<u8>) {
    let path = s.qcow2("disk.qcow2", 3);
    let bytes = std::fs::read(&path).unwrap();
    (path, bytes)
}

/// The cache files the component wrote into the scenario's `cache`: in its own area there
/// (`component-<digest>`; no other component runs in these tests).
fn cache_files(s: &Scenario) -> Vec<PathBuf> {
    let list = |dir: PathBuf| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };
    let mut files: Vec<PathBuf> = list(s.path("cache"))
        .into_iter()
        .filter(|area| {
            area.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("component-"))
        })
        .flat_map(list)
        .filter(|p| p.extension().is_some_and(|e| e == "img"))
        .collect();
    files.sort();
    files
}

#[track_caller]
fn assert_no_image_left(s: &Scenario, run: &Run) {
    assert!(
        s.cloud_images().is_empty(),
        "no image may be left: {:?}\n{}",
        s.cloud_images(),
        run.stderr
    );
    assert!(
        s.state()
            .is_none_or(|st| st["images"].as_object().unwrap().is_empty()),
        "{:?}",
        s.state()
    );
}

#[test]
fn every_compression_format_round_trips_to_the_decompressed_digests() {
    let s = Scenario::new("formats");
    let (raw, bytes) = image_file(&s);
    let server = SourceServer::start();
    let variant = |name: &str| {
        let (_, path) = compressed_variants(&raw)
            .into_iter()
            .find(|(n, _)| *n == name)
            .unwrap();
        std::fs::read(path).unwrap()
    };
    // Each format is recognised by a different hint: type, disposition, extension, magic.
    server.serve(
        "/plain.qcow2",
        Served::new(bytes.clone()).content_type("application/octet-stream"),
    );
    server.serve(
        "/by-type",
        Served::new(variant("gzip")).content_type("application/gzip"),
    );
    server.serve(
        "/by-disposition",
        Served::new(variant("bzip2"))
            .content_type("application/octet-stream")
            .content_disposition("attachment; filename=\"disk.qcow2.bz2\""),
    );
    server.serve(
        "/disk.qcow2.xz",
        Served::new(variant("xz")).content_type("application/octet-stream"),
    );
    server.serve("/by-magic", Served::new(variant("zstd")));

    let decompress = "    decompress: true\n    image_cache_path: cache\n";
    s.write_spec(&spec(&[
        url_image(&s, "plain", &server.url("/plain.qcow2"), decompress),
        url_image(&s, "gzip", &server.url("/by-type"), decompress),
        url_image(&s, "bzip2", &server.url("/by-disposition"), decompress),
        url_image(&s, "xz", &server.url("/disk.qcow2.xz"), decompress),
        // Streamed straight into Glance: no cache file, size unknown until the end.
        url_image(
            &s,
            "zstd",
            &server.url("/by-magic"),
            "    decompress: true\n    image_cache_path: none\n",
        ),
    ]));
    s.apply();

    let (md5, sha512) = (digest("md5sum", &raw), digest("sha512sum", &raw));
    for key in ["plain", "gzip", "bzip2", "xz", "zstd"] {
        let image = observer::image(&s.state_id(key)).unwrap_or_else(|| panic!("{key} exists"));
        assert_eq!(image["status"], "active", "{key}");
        assert_eq!(
            image["properties"]["os_hash_value"],
            sha512.as_str(),
            "{key}: sha512 of the decompressed bytes"
        );
        assert_eq!(image["checksum"], md5.as_str(), "{key}");
        assert_eq!(image["size"], bytes.len(), "{key}");
    }
    assert_eq!(cache_files(&s).len(), 4, "the streamed image left no cache file");
    s.plan().expect_code(0);
}

#[test]
fn the_cache_is_reused_only_while_it_is_intact() {
    let s = Scenario::new("cache");
    let (raw, bytes) = image_file(&s);
    let server = SourceServer::start();
    server.serve("/disk.qcow2", Served::new(bytes).etag("v1"));
    s.write_spec(&spec(&[url_image(
        &s,
        "web",
        &server.url("/disk.qcow2"),
        "    image_cache_path: cache\n",
    )]));

    s.apply();
    assert_eq!(server.hits("/disk.qcow2"), 1);
    s.run(&["destroy"]).expect_code(0);

    s.apply();
    assert_eq!(server.hits("/disk.qcow2"), 1, "the second create uses the cache");
    s.run(&["destroy"]).expect_code(0);

    // Damage the cached copy: it must be detected and downloaded again, never uploaded.
    let cached = cache_files(&s).pop().expect("a cache file");
    let mut damaged = std::fs::read(&cached).unwrap();
    damaged[1000] ^= 0xff;
    std::fs::write(&cached, damaged).unwrap();
    s.apply();
    assert_eq!(
        server.hits("/disk.qcow2"),
        2,
        "a damaged cache file is downloaded again"
    );
    let image = observer::image(&s.state_id("web")).unwrap();
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &raw).as_str()
    );
    assert_eq!(
        std::fs::read(&cached).unwrap(),
        std::fs::read(&raw).unwrap(),
        "the cache is repaired"
    );
}

#[test]
fn a_changed_source_is_downloaded_again() {
    let s = Scenario::new("changed");
    let (_, bytes) = image_file(&s);
    let server = SourceServer::start();
    server.serve("/disk.qcow2", Served::new(bytes.clone()).etag("v1"));
    s.write_spec(&spec(&[url_image(
        &s,
        "web",
        &server.url("/disk.qcow2"),
        "    image_cache_path: cache\n",
    )]));
    s.apply();
    s.plan().expect_code(0);

    let newer = s.qcow2("newer.qcow2", 1);
    server.serve(
        "/disk.qcow2",
        Served::new(std::fs::read(&newer).unwrap()).etag("v2"),
    );
    let plan = s.plan().expect_code(2);
    assert!(plan.stdout.contains("-/+ web: replace"), "{}", plan.stdout);
    assert!(plan.stdout.contains("source content (etag)"), "{}", plan.stdout);
    s.apply();
    assert_eq!(server.hits("/disk.qcow2"), 2);
    let image = observer::image(&s.state_id("web")).unwrap();
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &newer).as_str()
    );
}

#[test]
fn a_wrong_source_checksum_fails_before_anything_is_uploaded() {
    let s = Scenario::new("checksum");
    let (raw, bytes) = image_file(&s);
    let server = SourceServer::start();
    server.serve("/disk.qcow2", Served::new(bytes));
    let wrong = format!("sha256:{}", "0".repeat(64));
    for cache in ["cache", "none"] {
        s.write_spec(&spec(&[url_image(
            &s,
            "web",
            &server.url("/disk.qcow2"),
            &format!("    image_cache_path: {cache}\n    source_checksum: {wrong}\n"),
        )]));
        let run = s.run(&["apply", "-f", "images.yaml"]).expect_code(1);
        assert!(
            run.stderr.contains("source_checksum sha256"),
            "{cache}: {}",
            run.stderr
        );
        assert_no_image_left(&s, &run);
    }
    // A local file is checked in the same single read as its upload.
    s.write_spec(&format!(
        "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: disk.qcow2\n    source_checksum: {wrong}\n",
        s.image_name("web")
    ));
    let run = s.run(&["apply", "-f", "images.yaml"]).expect_code(1);
    assert!(run.stderr.contains("source_checksum sha256"), "{}", run.stderr);
    assert_no_image_left(&s, &run);

    let right = format!("sha256:{}", digest("sha256sum", &raw));
    s.write_spec(&spec(&[url_image(
        &s,
        "web",
        &server.url("/disk.qcow2"),
        &format!("    image_cache_path: none\n    source_checksum: {right}\n"),
    )]));
    s.apply();
    assert_eq!(observer::image(&s.state_id("web")).unwrap()["status"], "active");
}

#[test]
fn broken_sources_fail_clearly_and_leave_nothing() {
    let s = Scenario::new("broken");
    let (_, bytes) = image_file(&s);
    let server = SourceServer::start();
    server.serve("/short.qcow2", Served::new(bytes));
    server.truncate("/short.qcow2", 100_000);
    server.redirect("/loop-a", "/loop-b");
    server.redirect("/loop-b", "/loop-a");

    let cases = [
        ("/missing.qcow2", "cache", "no such file (HTTP 404)"),
        ("/missing.qcow2", "none", "no such file (HTTP 404)"),
        ("/short.qcow2", "cache", "cut short"),
        ("/short.qcow2", "none", "cut short"),
        ("/loop-a", "cache", "redirects in a loop"),
    ];
    for (path, cache, expected) in cases {
        s.write_spec(&spec(&[url_image(
            &s,
            "web",
            &server.url(path),
            &format!("    image_cache_path: {cache}\n"),
        )]));
        let run = s.run(&["apply", "-f", "images.yaml"]).expect_code(4);
        assert!(
            run.stderr.contains("image 'web'") && run.stderr.contains(expected),
            "{path} {cache}: {}",
            run.stderr
        );
        assert_no_image_left(&s, &run);
    }
    assert!(
        cache_files(&s).is_empty(),
        "no partial download is kept as a cache file"
    );
}

#[test]
fn basic_auth_works_and_a_wrong_password_is_never_shown() {
    let s = Scenario::new("auth");
    let (_, bytes) = image_file(&s);
    let server = SourceServer::start();
    server.serve(
        "/private.qcow2",
        Served::new(bytes).basic_auth("reader", "open-sesame"),
    );
    let with = |password: &str| {
        spec(&[url_image(
            &s,
            "web",
            &server.url("/private.qcow2"),
            &format!(
                "    image_cache_path: cache\n    image_source_username: reader\n    image_source_password: {password}\n"
            ),
        )])
    };

    s.write_spec(&with("wrong-secret-123"));
    let run = s.run(&["apply", "-f", "images.yaml"]).expect_code(4);
    assert!(run.stderr.contains("refused access (HTTP 401)"), "{}", run.stderr);
    assert!(run.stderr.contains("image_source_password"), "{}", run.stderr);
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("wrong-secret-123"));
    assert_no_image_left(&s, &run);

    s.write_spec(&with("open-sesame"));
    let run = s.apply();
    assert!(!format!("{}{}", run.stdout, run.stderr).contains("open-sesame"));
    let state = std::fs::read_to_string(s.path("openstack-image.state.json")).unwrap();
    assert!(!state.contains("open-sesame"), "the password is never stored");
    assert_eq!(observer::image(&s.state_id("web")).unwrap()["status"], "active");
    let shown = s.run(&["show"]).expect_code(0).stdout;
    assert!(!shown.contains("open-sesame"));
}

#[test]
fn web_download_imports_through_glance() {
    let s = Scenario::new("webdownload");
    let (raw, bytes) = image_file(&s);
    let server = SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS);
    server.serve("/disk.qcow2", Served::new(bytes));
    let sha512 = digest("sha512sum", &raw);
    s.write_spec(&spec(&[url_image(
        &s,
        "web",
        &server.url("/disk.qcow2"),
        &format!("    web_download: true\n    source_checksum: sha512:{sha512}\n"),
    )]));
    s.apply();
    let image = observer::image(&s.state_id("web")).unwrap();
    assert_eq!(image["status"], "active");
    assert_eq!(image["properties"]["os_hash_value"], sha512.as_str());
    assert_eq!(server.hits("/disk.qcow2"), 1, "Glance fetched it, once");
    assert!(!s.path("cache").exists(), "the tool downloaded nothing");
    s.plan().expect_code(0);
}

#[test]
fn a_failing_web_download_fails_fast_and_leaves_nothing() {
    let s = Scenario::new("webdownloadfail");
    let server = SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS);
    s.write_spec(&spec(&[url_image(
        &s,
        "web",
        &server.url("/missing.qcow2"),
        "    web_download: true\n",
    )]));
    let started = std::time::Instant::now();
    let run = s.run(&["apply", "-f", "images.yaml"]).expect_code(4);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        run.stderr.contains("image 'web'") && run.stderr.contains("Glance could not import"),
        "{}",
        run.stderr
    );
    assert_no_image_left(&s, &run);
}

#[test]
fn images_sharing_a_url_download_it_once() {
    let s = Scenario::new("shared");
    let (raw, bytes) = image_file(&s);
    let server = SourceServer::start();
    server.serve("/disk.qcow2", Served::new(bytes).etag("v1"));
    let cached = "    image_cache_path: cache\n";
    s.write_spec(&spec(&[
        url_image(&s, "one", &server.url("/disk.qcow2"), cached),
        url_image(&s, "two", &server.url("/disk.qcow2"), cached),
    ]));
    s.apply();
    assert_eq!(server.hits("/disk.qcow2"), 1);
    for key in ["one", "two"] {
        let image = observer::image(&s.state_id(key)).unwrap();
        assert_eq!(
            image["properties"]["os_hash_value"],
            digest("sha512sum", &raw).as_str()
        );
    }
}

/// Streamed uploads (no cache: the size is not known in advance) go out chunked, in chunks a
/// stock uwsgi Glance accepts (its `chunked-input-limit` refuses chunks of about 1 MB); the
/// dev cloud runs with that default. Each source is downloaded exactly once: nothing restarts.
#[test]
fn streamed_uploads_pass_a_stock_glance_including_the_example() {
    let s = Scenario::new("streamed");
    let raw = s.qcow2("disk.qcow2", 6);
    let bytes = std::fs::read(&raw).unwrap();
    let server = SourceServer::start();
    let variants = compressed_variants(&raw);
    let variant = |name: &str| std::fs::read(&variants.iter().find(|(n, _)| *n == name).unwrap().1).unwrap();
    server.serve("/disk.qcow2.gz", Served::new(variant("gzip")));
    server.serve("/disk.qcow2.xz", Served::new(variant("xz")));
    // examples/url-streamed as shipped, with its URL pointed at the local server.
    let example_path = "/images/debian-12-genericcloud-amd64.qcow2.zst";
    server.serve(example_path, Served::new(variant("zstd")));
    let example =
        std::fs::read_to_string(openstack_image_tests::root().join("examples/url-streamed/images.yaml"))
            .unwrap()
            .replace(
                &format!("https://example.org{example_path}"),
                &server.url(example_path),
            )
            .replace(
                "name: debian-12-genericcloud",
                &format!("name: {}", s.image_name("debian")),
            );
    assert!(example.contains(&server.url(example_path)), "{example}");
    let streamed = "    decompress: true\n    image_cache_path: none\n";
    s.write_spec(&format!(
        "{example}{}",
        [
            url_image(&s, "gzip", &server.url("/disk.qcow2.gz"), streamed),
            url_image(&s, "xz", &server.url("/disk.qcow2.xz"), streamed),
        ]
        .concat()
    ));
    let run = s.apply();
    assert!(
        run.stderr
            .contains("gzip: upload started (size not known in advance)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("uploaded started"), "{}", run.stderr);

    let sha512 = digest("sha512sum", &raw);
    for key in ["debian", "gzip", "xz"] {
        let image = observer::image(&s.state_id(key)).unwrap_or_else(|| panic!("{key} exists"));
        assert_eq!(image["status"], "active", "{key}");
        assert_eq!(image["size"], bytes.len(), "{key}");
        assert_eq!(image["properties"]["os_hash_value"], sha512.as_str(), "{key}");
    }
    for path in [example_path, "/disk.qcow2.gz", "/disk.qcow2.xz"] {
        assert_eq!(
            server.hits(path),
            1,
            "{path} was downloaded once, with no restart"
        );
    }
    s.plan().expect_code(0);
}

#[test]
fn downloaded_bytes_that_contradict_the_disk_format_are_refused_before_the_image_exists() {
    let s = Scenario::new("url-format");
    let server = SourceServer::start();
    let (_, qcow2) = image_file(&s);
    let raw: Vec<u8> = (0..2 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    server.serve("/raw.img", Served::new(raw));
    server.serve("/disk.qcow2", Served::new(qcow2));
    // Streamed (no cache) and through the cache: both are inspected before the create.
    for (case, path, extra, needles) in [
        (
            "raw streamed as qcow2",
            "/raw.img",
            "    image_cache_path: none\n",
            &["field disk_format", "no qcow2 header", "set disk_format: raw"][..],
        ),
        (
            "raw cached as qcow2",
            "/raw.img",
            "    image_cache_path: cache\n",
            &["field disk_format", "no qcow2 header"][..],
        ),
        (
            "qcow2 streamed as raw",
            "/disk.qcow2",
            "    image_cache_path: none\n    disk_format: raw\n",
            &["field disk_format", "is a qcow2 image, not raw"][..],
        ),
    ] {
        let image = url_image(&s, "web", &server.url(path), extra);
        // disk_format given twice would be a YAML error: the case's own wins.
        let image = if extra.contains("disk_format") {
            image.replacen("    disk_format: qcow2\n", "", 1)
        } else {
            image
        };
        s.write_spec(&spec(&[image]));
        let run = s.run(&["apply", "-f", "images.yaml"]).expect_code(1);
        for needle in needles {
            assert!(run.stderr.contains(needle), "{case}: {needle:?}\n{}", run.stderr);
        }
        assert!(s.cloud_images().is_empty(), "{case}: no image was created");
    }
}

/// The seconds in the tool's "no progress for N s".
fn quiet_seconds(stderr: &str) -> u64 {
    let at = stderr.find("no progress for ").expect("the stall is reported") + "no progress for ".len();
    stderr[at..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .expect("a number of seconds")
}

#[test]
fn a_web_download_whose_source_stops_sending_is_given_up_at_the_stall_limit() {
    let s = Scenario::new("webstall");
    let (_, bytes) = image_file(&s);
    let server = SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS);
    // The first 256 KiB, then nothing for two minutes: Glance's download hangs.
    server.serve(
        "/stops.qcow2",
        Served::new(bytes).stall_after(256 * 1024, std::time::Duration::from_secs(120)),
    );
    s.write_spec(&spec(&[url_image(
        &s,
        "web",
        &server.url("/stops.qcow2"),
        "    web_download: true\n    timeouts:\n      import_stall: 20s\n",
    )]));
    let run = s.run(&["apply", "-f", "images.yaml"]).expect_code(4);
    assert!(
        run.stderr.contains("image 'web'")
            && run.stderr.contains("web-download import of")
            && run.stderr.contains("stalled: no progress for")
            && run.stderr.contains("timeouts.import_stall is 20 s"),
        "{}",
        run.stderr
    );
    // Given up at the limit, within one poll (5 s) of it.
    let quiet = quiet_seconds(&run.stderr);
    assert!((20..=26).contains(&quiet), "quiet for {quiet} s\n{}", run.stderr);
    assert_no_image_left(&s, &run);
}

#[test]
fn a_stalled_web_download_falls_back_to_uploading_the_data_itself_when_asked() {
    let s = Scenario::new("fallback");
    let (raw, bytes) = image_file(&s);
    let server = SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS);
    // Glance's download gets 256 KiB and then nothing; once it has started, the source serves
    // whole again, for the fallback's own download.
    server.serve(
        "/disk.qcow2",
        Served::new(bytes.clone())
            .etag("v1")
            .stall_after(256 * 1024, std::time::Duration::from_secs(120)),
    );
    s.write_spec(&spec(&[url_image(
        &s,
        "web",
        &server.url("/disk.qcow2"),
        "    web_download: true\n    import_fallback: upload\n    image_cache_path: cache\n    timeouts:\n      import_stall: 15s\n",
    )]));
    let mut command = s.command(&["apply", "-f", "images.yaml"]);
    let apply = std::thread::spawn(move || Run::from(command.output().expect("run openstack-image")));
    let started = std::time::Instant::now();
    while server.hits("/disk.qcow2") == 0 {
        assert!(
            started.elapsed().as_secs() < 60,
            "Glance never asked for the data"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.serve("/disk.qcow2", Served::new(bytes).etag("v1"));
    let run = apply.join().unwrap().expect_code(0);
    assert!(
        run.stderr.contains("stalled: no progress for") && run.stderr.contains("import_fallback is upload"),
        "{}",
        run.stderr
    );

    let state = s.state().unwrap();
    let recorded = &state["images"]["web"]["image"];
    assert_eq!(recorded["import_result"]["method"], "web-download");
    assert_eq!(recorded["import_result"]["fallback"], "upload");
    let image = observer::image(&s.state_id("web")).unwrap();
    assert_eq!(image["status"], "active");
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &raw).as_str()
    );
    assert_eq!(
        s.cloud_images().len(),
        1,
        "the stalled import's image is gone: {:?}",
        s.cloud_images()
    );
    assert_eq!(
        cache_files(&s).len(),
        1,
        "the fallback downloaded through the cache"
    );
    s.plan().expect_code(0);
    s.run(&["destroy", "-f", "images.yaml"]).expect_code(0);
    assert!(s.cloud_images().is_empty());
}

#[test]
fn a_slow_web_download_that_still_delivers_is_not_cut_off() {
    let s = Scenario::new("webslow");
    let (raw, bytes) = image_file(&s);
    let server = SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS);
    // Half, then 8 s of silence, then the rest: slow, but within the 20 s stall limit.
    server.serve(
        "/slow.qcow2",
        Served::new(bytes).pause_after(256 * 1024, std::time::Duration::from_secs(8)),
    );
    s.write_spec(&spec(&[url_image(
        &s,
        "web",
        &server.url("/slow.qcow2"),
        "    web_download: true\n    timeouts:\n      import_stall: 20s\n",
    )]));
    let run = s.apply();
    assert!(!run.stderr.contains("stalled"), "{}", run.stderr);
    let image = observer::image(&s.state_id("web")).unwrap();
    assert_eq!(image["status"], "active");
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &raw).as_str()
    );
    s.run(&["destroy", "-f", "images.yaml"]).expect_code(0);
}
