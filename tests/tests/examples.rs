//! The examples under examples/ as shipped, each run against the dev cloud: the file is read
//! from the repository and only its URLs, ids, local paths and image names are substituted
//! (names made unique per run), then applied, observed with the `openstack` CLI, planned
//! clean and destroyed.
//!
//! Here: local-file, url-cached, web-download and the four stores examples (direct,
//! glance-direct, web-download, glance-download; RegionTwo, the multi-store Glance). The other
//! examples are run elsewhere: url-streamed by tests/tests/sources.rs
//! (`streamed_uploads_pass_a_stock_glance_including_the_example`), sharing by
//! tests/tests/sharing.rs, terraform/main.tf by adapters/terraform/tests/cloud.rs.
//! (`scripts/demo` also applies local-file, but it is no test.)

use std::path::{Path, PathBuf};

use openstack_image_tests::region_two::{
    Cleanup, glance_download_source, hold_edge_store, images_here, on_disk, region, show, stores,
};
use openstack_image_tests::source_server::{Served, SourceServer, compressed_variants};
use openstack_image_tests::{Run, Scenario, WEB_DOWNLOAD_PORTS, cloud_env, digest, observer, root};
use serde_json::Value;

/// The example file `path` (under examples/) as shipped.
fn example(path: &str) -> String {
    std::fs::read_to_string(root().join("examples").join(path))
        .unwrap_or_else(|e| panic!("read examples/{path}: {e}"))
}

/// `text` with `from` replaced by `to`; `from` must be there (so a changed example is noticed
/// rather than silently run unsubstituted).
#[track_caller]
fn substitute(text: &str, from: &str, to: &str) -> String {
    assert!(
        text.contains(from),
        "the example no longer contains {from:?}:\n{text}"
    );
    text.replace(from, to)
}

/// The example with its image `name: NAME` lines made unique to the scenario (`key` is the
/// suffix given to `s.image_name`).
#[track_caller]
fn renamed(s: &Scenario, text: &str, names: &[(&str, &str)]) -> String {
    names.iter().fold(text.to_string(), |text, (name, key)| {
        substitute(
            &text,
            &format!("    name: {name}\n"),
            &format!("    name: {}\n", s.image_name(key)),
        )
    })
}

/// The `.img` files a cache directory holds (in the component's own area, `component-<digest>`).
fn cache_files(cache: &Path) -> Vec<PathBuf> {
    let list = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };
    list(cache)
        .into_iter()
        .filter(|area| {
            area.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("component-"))
        })
        .flat_map(|area| list(&area))
        .filter(|p| p.extension().is_some_and(|e| e == "img"))
        .collect()
}

/// Destroys what the state records, then checks the cloud holds none of the scenario's images.
#[track_caller]
fn destroy_leaves_nothing(s: &Scenario) {
    let run = s.run(&["destroy", "-f", "images.yaml"]).expect_code(0);
    assert!(
        s.cloud_images().is_empty(),
        "no image may be left: {:?}\n{}",
        s.cloud_images(),
        run.stderr
    );
}

#[test]
fn the_local_file_example_publishes_its_image() {
    let s = Scenario::new("ex-local");
    // The scenario directory is the copy of examples/local-file: the spec and demo.qcow2 beside
    // it (local_file_path is relative to the spec file), as scripts/demo makes it.
    let spec = renamed(
        &s,
        &example("local-file/images.yaml"),
        &[("openstack-image-demo", "demo")],
    );
    s.write_spec(&spec);
    let disk = s.qcow2("demo.qcow2", 1);
    s.apply();

    let image = observer::image(&s.state_id("demo")).expect("the image exists");
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(image["visibility"], "private", "{image}");
    assert_eq!(image["disk_format"], "qcow2", "{image}");
    assert_eq!(image["min_disk"], 1, "{image}");
    assert_eq!(image["min_ram"], 64, "{image}");
    assert_eq!(observer::sorted_tags(&image), ["demo", "qcow2"]);
    assert_eq!(image["properties"]["os_distro"], "cirros", "{image}");
    assert_eq!(image["properties"]["hw_disk_bus"], "virtio", "{image}");
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &disk).as_str()
    );
    s.plan().expect_code(0);
    destroy_leaves_nothing(&s);
}

#[test]
fn the_url_cached_example_downloads_into_its_caches() {
    let s = Scenario::new("ex-cached");
    let raw = s.qcow2("disk.qcow2", 2);
    let bytes = std::fs::read(&raw).unwrap();
    let xz = compressed_variants(&raw)
        .into_iter()
        .find(|(name, _)| *name == "xz")
        .map(|(_, path)| std::fs::read(path).unwrap())
        .unwrap();
    let server = SourceServer::start();
    let cirros = "/0.6.2/cirros-0.6.2-x86_64-disk.img";
    let ubuntu = "/images/ubuntu-minimal.qcow2.xz";
    server.serve(cirros, Served::new(bytes.clone()).etag("v1"));
    server.serve(ubuntu, Served::new(xz).etag("v1"));

    let spec = example("url-cached/images.yaml");
    let spec = substitute(
        &spec,
        &format!("https://download.cirros-cloud.net{cirros}"),
        &server.url(cirros),
    );
    let spec = substitute(
        &spec,
        &format!("https://example.org{ubuntu}"),
        &server.url(ubuntu),
    );
    let spec = renamed(
        &s,
        &spec,
        &[("cirros-0.6.2", "cirros"), ("ubuntu-minimal", "ubuntu-minimal")],
    );
    // cirros's `image_cache_path: cache` is relative to the spec file, so already in the
    // scenario's directory; ubuntu-minimal takes the default cache, under
    // OPENSTACK_IMAGE_CACHE_DIR: pointed into the scenario's directory too.
    assert!(spec.contains("    image_cache_path: cache "), "{spec}");
    assert!(spec.contains("    # source_checksum: "), "{spec}");
    s.write_spec(&spec);
    let home_cache = s.path("home-cache");
    let home_cache_var = home_cache.to_str().unwrap();
    let env = [("OPENSTACK_IMAGE_CACHE_DIR", home_cache_var)];
    s.run_with(&["apply", "-f", "images.yaml"], &env).expect_code(0);

    let sha512 = digest("sha512sum", &raw);
    for key in ["cirros", "ubuntu-minimal"] {
        let image = observer::image(&s.state_id(key)).unwrap_or_else(|| panic!("{key} exists"));
        assert_eq!(image["status"], "active", "{key}: {image}");
        assert_eq!(image["size"], bytes.len(), "{key}: the decompressed size");
        assert_eq!(image["properties"]["os_hash_value"], sha512.as_str(), "{key}");
    }
    let cirros_image = observer::image(&s.state_id("cirros")).unwrap();
    assert_eq!(cirros_image["properties"]["os_distro"], "cirros");
    assert_eq!(server.hits(cirros), 1);
    assert_eq!(server.hits(ubuntu), 1);
    assert_eq!(cache_files(&s.path("cache")).len(), 1, "cirros in ./cache");
    assert_eq!(
        cache_files(&home_cache.join("images")).len(),
        1,
        "ubuntu-minimal (decompressed) in the default cache"
    );

    s.run_with(&["plan", "-f", "images.yaml"], &env).expect_code(0);
    let run = s.run_with(&["destroy", "-f", "images.yaml"], &env).expect_code(0);
    assert!(
        s.cloud_images().is_empty(),
        "{:?}\n{}",
        s.cloud_images(),
        run.stderr
    );
}

#[test]
fn the_web_download_example_is_fetched_by_glance() {
    let s = Scenario::new("ex-webdl");
    let raw = s.qcow2("disk.qcow2", 2);
    let server = SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS);
    let path = "/0.6.2/cirros-0.6.2-x86_64-disk.img";
    server.serve(path, Served::new(std::fs::read(&raw).unwrap()));

    let spec = substitute(
        &example("web-download/images.yaml"),
        &format!("https://download.cirros-cloud.net{path}"),
        &server.url(path),
    );
    let spec = renamed(&s, &spec, &[("cirros-0.6.2-imported", "cirros")]);
    assert!(spec.contains("    # source_checksum: "), "left commented: {spec}");
    s.write_spec(&spec);
    s.apply();

    let image = observer::image(&s.state_id("cirros")).expect("the image exists");
    assert_eq!(image["status"], "active", "{image}");
    assert_eq!(
        image["properties"]["os_hash_value"],
        digest("sha512sum", &raw).as_str()
    );
    assert_eq!(server.hits(path), 1, "Glance fetched it, once");
    s.plan().expect_code(0);
    destroy_leaves_nothing(&s);
}

// --- examples/stores: RegionTwo, the dev cloud's multi-store Glance (as tests/tests/stores.rs).

/// The stores the example's `stores: [a, b]` line names (sorted).
fn named_stores(spec: &str) -> Vec<String> {
    let line = spec
        .lines()
        .find_map(|l| l.trim().strip_prefix("stores:"))
        .expect("the example names its stores");
    let mut stores: Vec<String> = line
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    stores.sort();
    stores
}

/// One of examples/stores, written into the scenario's directory under its own name, with its
/// own state file.
struct StoresExample {
    file: &'static str,
    key: &'static str,
    spec: String,
}

impl StoresExample {
    fn state_file(&self) -> String {
        format!("{}.state.json", self.file.trim_end_matches(".yaml"))
    }

    fn args<'a>(&'a self, command: &'a str, state: &'a str) -> [&'a str; 5] {
        [command, "-f", self.file, "--state", state]
    }

    fn id(&self, s: &Scenario) -> String {
        let text = std::fs::read_to_string(s.path(&self.state_file())).expect("a state file");
        let state: Value = serde_json::from_str(&text).expect("the state file is JSON");
        state["images"][self.key]["image"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: an image id in the state: {state}", self.file))
            .to_string()
    }
}

#[test]
fn the_stores_examples_run_in_region_two() {
    let s = Scenario::new("ex-stores");
    let _cleanup = Cleanup(&s);
    // The examples write to `edge`, which tests/stores.rs breaks for a while.
    let _edge = hold_edge_store();
    let region = region();
    let home = cloud_env()["OS_REGION_NAME"].clone();
    let disk = s.qcow2("cirros.qcow2", 1);

    // glance-download's source, in RegionOne (the Scenario deletes it): raw, as the example's
    // disk_format says.
    let source_id = glance_download_source(&s, 2);
    let source = observer::image(&source_id).expect("the source exists");
    assert_eq!(source["status"], "active", "{source}");

    // web-download's URL: Glance fetches from a port it allows.
    let server = SourceServer::start_in_ports(WEB_DOWNLOAD_PORTS);
    server.serve("/cirros.qcow2", Served::new(std::fs::read(&disk).unwrap()));

    let in_region = |text: &str| {
        substitute(
            text,
            "    region: RegionTwo\n",
            &format!("    region: {region}\n"),
        )
    };
    let examples = [
        ("direct.yaml", "tiers", "cirros-tiers"),
        ("glance-direct.yaml", "converted", "cirros-raw"),
        ("web-download.yaml", "fetched", "cirros-web"),
        ("glance-download.yaml", "copied", "cirros-from-region-one"),
    ]
    .map(|(file, key, name)| {
        let mut spec = in_region(&renamed(&s, &example(&format!("stores/{file}")), &[(name, key)]));
        match file {
            "web-download.yaml" => {
                spec = substitute(
                    &spec,
                    "http://127.0.0.1:28080/cirros.qcow2",
                    &server.url("/cirros.qcow2"),
                )
            }
            "glance-download.yaml" => {
                spec = substitute(&spec, "6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69", &source_id);
                spec = substitute(
                    &spec,
                    "    source_region: RegionOne\n",
                    &format!("    source_region: {home}\n"),
                );
            }
            _ => {}
        }
        std::fs::write(s.path(file), &spec).unwrap();
        StoresExample { file, key, spec }
    });

    // The four at once, each as its own spec with its own state; every run is waited for
    // before anything is checked, so none still creates while the cleanup runs.
    let children: Vec<_> = examples
        .iter()
        .map(|e| {
            let state = e.state_file();
            s.command(&e.args("apply", &state))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .expect("run openstack-image")
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| Run::from(c.wait_with_output().expect("wait for openstack-image")))
        .collect();
    for (e, run) in examples.iter().zip(runs) {
        assert_eq!(
            run.code, 0,
            "apply -f {}\n--- stdout\n{}\n--- stderr\n{}",
            e.file, run.stdout, run.stderr
        );
    }

    let mut ids = Vec::new();
    for e in &examples {
        let id = e.id(&s);
        let image = show(&id).unwrap_or_else(|| panic!("{}: the image exists in {region}", e.file));
        assert_eq!(image["status"], "active", "{}: {image}", e.file);
        let named = named_stores(&e.spec);
        assert_eq!(stores(&id), named, "{}: {image}", e.file);
        for store in &named {
            assert!(on_disk(store, &id), "{}: data in {store}", e.file);
        }
        match e.file {
            "glance-direct.yaml" => {
                assert_eq!(image["disk_format"], "raw", "converted: {image}")
            }
            "glance-download.yaml" => {
                assert_ne!(id, source_id);
                for field in ["checksum", "size"] {
                    assert_eq!(image[field], source[field], "{field}: {image}");
                }
            }
            "web-download.yaml" => assert_eq!(server.hits("/cirros.qcow2"), 1, "Glance fetched it, once"),
            _ => {}
        }
        let state = e.state_file();
        s.run(&e.args("plan", &state)).expect_code(0);
        ids.push(id);
    }

    for e in &examples {
        let state = e.state_file();
        s.run(&e.args("destroy", &state)).expect_code(0);
    }
    assert!(
        images_here(&s).is_empty(),
        "left in {region}: {:?}",
        images_here(&s)
    );
    for id in &ids {
        for store in cloud_env()["DEV_CLOUD_STORES_BACKENDS"].split(',') {
            assert!(!on_disk(store, id), "{id} left in store {store}");
        }
    }
}
