//! Bad input fails before anything reaches the cloud: every malformed spec, state file and
//! clouds.yaml below ends with exit status 1 (not a panic, not a cloud error), an error that
//! names the file, the image or key and the fix, no image in the cloud and the state file
//! byte for byte as it was (absent when it was absent).

use openstack_image_tests::{Run, Scenario};
use serde_json::{Value, json};

const GOOD: &str = "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n";
const STATE_FILE: &str = "openstack-image.state.json";
/// Larger than the 16 MiB the tool reads of a spec, state or clouds.yaml.
const HUGE: usize = 20 * 1024 * 1024;

/// Checks one run of a bad-input case: exit status 1, every needle on stderr.
fn failure(case: &str, command: &str, run: &Run, needles: &[&str]) -> Option<String> {
    let mut problems = Vec::new();
    if run.code != 1 {
        problems.push(format!("exit status {} instead of 1", run.code));
    }
    if run.stderr.contains("panicked") {
        problems.push("it panicked".to_string());
    }
    for needle in needles {
        if !run.stderr.contains(needle) {
            problems.push(format!("the error lacks {needle:?}"));
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{case} ({command}): {}\n--- stderr\n{}",
            problems.join("; "),
            run.stderr
        )
    })
}

/// Fails the test with every case that went wrong, not just the first.
fn report(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failure(s):\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// How a spec case's file is made.
enum Spec {
    /// The body of image `web` in images.yaml, next to a valid image `good`.
    Web(&'static str),
    /// All of images.yaml.
    Yaml(&'static str),
    /// All of images.json.
    Json(&'static str),
    /// All of images.yaml, made by a function (binary or huge content).
    Bytes(fn() -> Vec<u8>),
}

/// (case, spec, what the error must mention)
const SPEC_CASES: &[(&str, Spec, &[&str])] = &[
    // Unknown keys, wrong types and bad enums.
    (
        "unknown key",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    disk_fromat: raw\n",
        ),
        &["images.yaml", "image 'web'", "disk_fromat", "expected one of"],
    ),
    (
        "unknown top-level key",
        Spec::Yaml("images: {}\nimage:\n  web:\n    disk_format: raw\n"),
        &["images.yaml", "unknown field `image`", "`images:`"],
    ),
    (
        "unknown timeouts key",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    timeouts:\n      creat: 5m\n",
        ),
        &["images.yaml", "image 'web'", "timeouts", "creat"],
    ),
    (
        "bad disk format",
        Spec::Web("    container_format: bare\n    disk_format: qcow3\n    local_file_path: web.qcow2\n"),
        &[
            "image 'web'",
            "disk_format",
            "qcow3",
            "qcow2",
            "Nothing was changed",
        ],
    ),
    (
        "bad container format",
        Spec::Web("    container_format: box\n    disk_format: qcow2\n    local_file_path: web.qcow2\n"),
        &["image 'web'", "container_format", "bare"],
    ),
    (
        "bad visibility",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    visibility: everyone\n",
        ),
        &["image 'web'", "visibility", "public"],
    ),
    (
        "missing formats",
        Spec::Web("    local_file_path: web.qcow2\n"),
        &["container_format", "disk_format", "is required"],
    ),
    (
        "wrong type",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    min_ram_mb: lots\n",
        ),
        &["images.yaml", "image 'web'", "min_ram_mb", "whole number"],
    ),
    (
        "boolean as text",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    protected: maybe\n",
        ),
        &["images.yaml", "image 'web'", "protected", "boolean"],
    ),
    (
        "tags not a list",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    tags: linux\n",
        ),
        &["images.yaml", "image 'web'", "tags", "sequence"],
    ),
    (
        "property value a mapping",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    properties:\n      os_distro: {name: cirros}\n",
        ),
        &[
            "images.yaml",
            "image 'web'",
            "properties.os_distro",
            "text, a number or true/false",
        ],
    ),
    (
        "property value null",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    properties:\n      os_distro:\n",
        ),
        &[
            "images.yaml",
            "properties.os_distro",
            "text, a number or true/false",
        ],
    ),
    (
        "image is not a mapping",
        Spec::Yaml("images:\n  web: qcow2\n"),
        &["images.yaml", "image 'web'", "expected struct"],
    ),
    (
        "images left empty",
        Spec::Yaml("images:\n"),
        &["images.yaml", "missing or empty", "images: {}"],
    ),
    (
        "images is a list",
        Spec::Yaml("images:\n  - web\n"),
        &["images.yaml", "images", "expected a map"],
    ),
    (
        "image with an empty name",
        Spec::Yaml(
            "images:\n  '':\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n",
        ),
        &["images.yaml", "empty name", "logical name"],
    ),
    (
        "duplicate key",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    disk_format: raw\n    local_file_path: web.qcow2\n",
        ),
        &["images.yaml", "image 'web'", "duplicate", "disk_format"],
    ),
    // Conflicting and dependent fields.
    (
        "conflicting sources",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    image_source_url: http://127.0.0.1:1/x.img\n",
        ),
        &[
            "image 'web'",
            "local_file_path",
            "image_source_url",
            "keep only one",
        ],
    ),
    (
        "no source",
        Spec::Web("    container_format: bare\n    disk_format: qcow2\n"),
        &[
            "image 'web'",
            "local_file_path",
            "set local_file_path or image_source_url",
        ],
    ),
    (
        "web_download with decompress",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    image_source_url: http://127.0.0.1:1/x.img\n    web_download: true\n    decompress: true\n",
        ),
        &["image 'web'", "decompress", "web_download", "remove it"],
    ),
    (
        "decompress for a local file",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    decompress: true\n",
        ),
        &["image 'web'", "decompress", "remove it"],
    ),
    (
        "username without password",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    image_source_url: http://127.0.0.1:1/x.img\n    image_source_username: alice\n",
        ),
        &["image 'web'", "image_source_password", "set both or neither"],
    ),
    (
        "read-only property",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    properties:\n      os_hash_value: x\n",
        ),
        &["image 'web'", "properties.os_hash_value", "set by Glance"],
    ),
    (
        "duplicate tag",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    tags: [a, a]\n",
        ),
        &["image 'web'", "tags", "appears twice"],
    ),
    (
        "bad image id",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    image_id: nope\n",
        ),
        &["image 'web'", "image_id", "UUID"],
    ),
    (
        "bad checksum",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    source_checksum: sha1:00\n",
        ),
        &["image 'web'", "source_checksum", "sha256"],
    ),
    (
        "empty region",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    region: ' '\n",
        ),
        &["image 'web'", "region", "leave region out"],
    ),
    // Absurd sizes and timeouts.
    (
        "negative min_disk_gb",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    min_disk_gb: -1\n",
        ),
        &[
            "images.yaml",
            "image 'web'",
            "min_disk_gb",
            "negative",
            "0 to 2147483647",
        ],
    ),
    (
        "min_ram_mb of 2^70",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    min_ram_mb: 1180591620717411303424\n",
        ),
        &[
            "images.yaml",
            "image 'web'",
            "min_ram_mb",
            "too large",
            "0 to 2147483647",
        ],
    ),
    (
        "min_disk_gb beyond Glance's limit",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    min_disk_gb: 1099511627776\n",
        ),
        &["image 'web'", "min_disk_gb", "at most 2147483647"],
    ),
    (
        "fractional min_ram_mb",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    min_ram_mb: 1.5\n",
        ),
        &["images.yaml", "image 'web'", "min_ram_mb", "whole number"],
    ),
    (
        "bad timeout",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    timeouts:\n      create: soon\n",
        ),
        &[
            "images.yaml",
            "image 'web'",
            "timeouts.create",
            "not a duration",
            "90s",
        ],
    ),
    (
        "negative timeout text",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    timeouts:\n      create: -5m\n",
        ),
        &[
            "images.yaml",
            "image 'web'",
            "timeouts.create",
            "'-5m' is not a duration",
        ],
    ),
    (
        "negative timeout number",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    timeouts:\n      update: -5\n",
        ),
        &["images.yaml", "image 'web'", "timeouts.update", "negative", "90s"],
    ),
    (
        "zero timeout",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    timeouts:\n      delete: 0s\n",
        ),
        &["image 'web'", "timeouts.delete", "longer than zero"],
    ),
    (
        "timeout of 999999999h",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    timeouts:\n      create: 999999999h\n",
        ),
        &["image 'web'", "timeouts.create", "more than a week"],
    ),
    (
        "timeout overflowing 64 bits",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    timeouts:\n      create: 99999999999999999999999h\n",
        ),
        &[
            "images.yaml",
            "image 'web'",
            "timeouts.create",
            "far too long",
            "7d",
        ],
    ),
    // Path tricks (the scenario holds a directory `adir` and a symlink loop `loop.qcow2`).
    (
        "missing file",
        Spec::Web("    container_format: bare\n    disk_format: qcow2\n    local_file_path: missing.qcow2\n"),
        &[
            "image 'web'",
            "local_file_path",
            "missing.qcow2",
            "does not exist",
            "fix the path",
        ],
    ),
    (
        "local file is a directory",
        Spec::Web("    container_format: bare\n    disk_format: qcow2\n    local_file_path: adir\n"),
        &["image 'web'", "local_file_path", "adir", "not a regular file"],
    ),
    (
        "local file is /dev/zero",
        Spec::Web("    container_format: bare\n    disk_format: raw\n    local_file_path: /dev/zero\n"),
        &["image 'web'", "local_file_path", "/dev/zero", "pseudo-filesystem"],
    ),
    (
        "local file in /proc",
        Spec::Web(
            "    container_format: bare\n    disk_format: raw\n    local_file_path: /proc/self/environ\n",
        ),
        &[
            "image 'web'",
            "local_file_path",
            // Resolved as the operating system opens it: /proc/self is this process.
            "/proc/",
            "/environ",
            "pseudo-filesystem",
        ],
    ),
    (
        "dot-dot path to nothing",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    local_file_path: ../../../no-such-dir/web.qcow2\n",
        ),
        &[
            "image 'web'",
            "local_file_path",
            "no-such-dir/web.qcow2",
            "does not exist",
        ],
    ),
    (
        "symlink loop",
        Spec::Web("    container_format: bare\n    disk_format: qcow2\n    local_file_path: loop.qcow2\n"),
        &[
            "image 'web'",
            "local_file_path",
            "loop.qcow2",
            "link loop",
            "readable image file",
        ],
    ),
    // Sources that are not http(s).
    (
        "file:// URL",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    image_source_url: file:///etc/passwd\n",
        ),
        &[
            "image 'web'",
            "image_source_url",
            "file:///etc/passwd",
            "http:// or https://",
            "local_file_path",
        ],
    ),
    (
        "ftp:// URL",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    image_source_url: ftp://127.0.0.1/x.img\n",
        ),
        &["image 'web'", "image_source_url", "http:// or https://"],
    ),
    (
        "javascript: URL",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    image_source_url: 'javascript:alert(1)'\n",
        ),
        &["image 'web'", "image_source_url", "http:// or https://"],
    ),
    (
        "data: URL",
        Spec::Web(
            "    container_format: bare\n    disk_format: qcow2\n    image_source_url: 'data:application/octet-stream;base64,AAAA'\n",
        ),
        &["image 'web'", "image_source_url", "http:// or https://"],
    ),
    // Whole files that are not specs.
    ("empty file", Spec::Yaml(""), &["images.yaml", "empty", "images:"]),
    (
        "only a comment",
        Spec::Yaml("# images to come\n"),
        &["images.yaml", "images:"],
    ),
    (
        "not YAML",
        Spec::Yaml("images: [\n  web: {\n"),
        &["images.yaml", "line"],
    ),
    (
        "not UTF-8",
        Spec::Bytes(|| b"images:\n  web:\n    name: caf\xe9\n    disk_format: raw\n".to_vec()),
        &["images.yaml", "not UTF-8", "offset 28"],
    ),
    (
        "20 MiB",
        Spec::Bytes(|| {
            let mut spec = b"images: {}\n".to_vec();
            spec.resize(HUGE, b'#');
            spec
        }),
        &["images.yaml", "larger than 16 MiB", "right file"],
    ),
    (
        "truncated JSON spec",
        Spec::Json(r#"{"images": {"web": {"container_format": "bare", "disk_fo"#),
        &["images.json", "EOF", "line 1"],
    ),
    (
        "wrong type in a JSON spec",
        Spec::Json(
            r#"{"images": {"web": {"container_format": "bare", "disk_format": "qcow2", "local_file_path": "web.qcow2", "tags": {"a": 1}}}}"#,
        ),
        &["images.json", "image 'web'", "tags", "expected a sequence"],
    ),
    (
        "JSON spec that is an array",
        Spec::Json(r#"[{"images": {}}]"#),
        &["images.json", "not a mapping", "images:"],
    ),
];

#[test]
fn bad_specs_fail_with_a_field_naming_error_and_change_nothing() {
    assert!(SPEC_CASES.len() >= 40, "the table keeps at least 40 cases");
    let s = Scenario::new("badspec");
    s.qcow2("web.qcow2", 1);
    std::fs::create_dir(s.path("adir")).unwrap();
    std::os::unix::fs::symlink("loop.qcow2", s.path("loop.qcow2")).unwrap();
    let mut failures = Vec::new();
    for (case, spec, needles) in SPEC_CASES {
        let _ = std::fs::remove_file(s.path("images.json"));
        let file = match spec {
            Spec::Web(body) => {
                // A valid image next to the bad one proves that nothing at all is applied.
                s.write_spec(&format!(
                    "images:\n  good:\n    name: {}\n{GOOD}  web:\n    name: {}\n{body}",
                    s.image_name("good"),
                    s.image_name("web")
                ));
                "images.yaml"
            }
            Spec::Yaml(text) => {
                s.write_spec(text);
                "images.yaml"
            }
            Spec::Json(text) => {
                std::fs::write(s.path("images.json"), text).unwrap();
                "images.json"
            }
            Spec::Bytes(make) => {
                std::fs::write(s.path("images.yaml"), make()).unwrap();
                "images.yaml"
            }
        };
        for command in ["plan", "apply"] {
            let run = s.run(&[command, "-f", file]);
            failures.extend(failure(case, command, &run, needles));
        }
        if s.path(STATE_FILE).exists() {
            failures.push(format!("{case}: a state file was written"));
            let _ = std::fs::remove_file(s.path(STATE_FILE));
        }
    }
    // Any image a case had created would still be there (nothing here deletes images).
    assert!(s.cloud_images().is_empty(), "the cloud must be untouched");
    report(failures);
}

#[test]
fn spec_errors_are_found_before_the_cloud_is_needed() {
    // No OS_* settings and no clouds.yaml: a bad spec is still named field by field...
    let s = Scenario::offline("offline-spec");
    s.qcow2("web.qcow2", 1);
    std::fs::write(s.path("raw.img"), vec![0u8; 1024 * 1024]).unwrap();
    overlay(&s, "overlay.qcow2", "web.qcow2");
    let image = |body: &str| format!("images:\n  web:\n    container_format: bare\n{body}");
    let mut failures = Vec::new();
    for (case, body, needles) in [
        (
            "bad disk_format",
            "    disk_format: qcow3\n    local_file_path: web.qcow2\n",
            &["image 'web'", "disk_format", "qcow2"][..],
        ),
        (
            "missing file",
            "    disk_format: qcow2\n    local_file_path: gone.qcow2\n",
            &["image 'web'", "local_file_path", "gone.qcow2"][..],
        ),
        // The bytes against the declared format, and images that read other files.
        (
            "raw bytes declared qcow2",
            "    disk_format: qcow2\n    local_file_path: raw.img\n",
            &[
                "image 'web'",
                "field disk_format",
                "no qcow2 header",
                "set disk_format: raw",
            ][..],
        ),
        (
            "a qcow2 declared raw",
            "    disk_format: raw\n    local_file_path: web.qcow2\n",
            &[
                "image 'web'",
                "field disk_format",
                "is a qcow2 image, not raw",
                "set disk_format: qcow2",
            ][..],
        ),
        (
            "a qcow2 with a backing file",
            "    disk_format: qcow2\n    local_file_path: overlay.qcow2\n",
            &["image 'web'", "field local_file_path", "backing file"][..],
        ),
    ] {
        s.write_spec(&image(body));
        for command in ["plan", "apply"] {
            let run = s.run(&[command, "-f", "images.yaml"]);
            failures.extend(failure(case, command, &run, needles));
            if run.stderr.contains("OS_AUTH_URL") {
                failures.push(format!(
                    "{case} ({command}): the cloud came first:\n{}",
                    run.stderr
                ));
            }
        }
    }
    assert!(!s.path(STATE_FILE).exists(), "no state file is written");
    report(failures);
    // ...and a good one gets as far as the missing cloud, which the error names.
    s.write_spec(&image("    disk_format: qcow2\n    local_file_path: web.qcow2\n"));
    let run = s.run(&["plan", "-f", "images.yaml"]).expect_code(1);
    assert!(run.stderr.contains("OS_AUTH_URL is not set"), "{}", run.stderr);
}

/// A qcow2 `file` whose backing file is `backing` (qemu-img create -b).
fn overlay(s: &Scenario, file: &str, backing: &str) {
    let status = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", backing, file])
        .current_dir(s.path(""))
        .status()
        .expect("run qemu-img");
    assert!(status.success(), "qemu-img create -b failed");
}

/// How a state case's file is made.
enum StateFile {
    /// The whole file.
    Text(&'static str),
    /// A valid state recording image `web`, changed by a function.
    Edited(fn(&mut Value)),
    /// The whole file, made by a function (binary or huge content).
    Bytes(fn() -> Vec<u8>),
}

/// A state as `apply` writes it, recording image `web` (an id no cloud has).
fn recorded_state() -> Value {
    json!({
        "version": 1,
        "images": {
            "web": {
                "image": {
                    "id": "7d3c58a1-4c1e-4b7a-9a61-0b5b1d9e2f10",
                    "spec": {
                        "name": "web", "container_format": "bare", "disk_format": "qcow2",
                        "local_file_path": "/nowhere/web.qcow2", "image_source_url": null,
                        "image_source_username": null, "image_source_password": null,
                        "image_cache_path": null, "source_checksum": null, "decompress": false,
                        "web_download": false, "image_id": null, "min_disk_gb": 0,
                        "min_ram_mb": 0, "properties": [], "protected": false, "hidden": false,
                        "region": null, "tags": [], "verify_checksum": true,
                        "visibility": "private",
                        "timeouts": {"create": null, "update": null, "delete": null}
                    },
                    "status": "active", "checksum": null, "os_hash_algo": null,
                    "os_hash_value": null, "size_bytes": 1024, "virtual_size": null,
                    "owner": null, "created_at": "2026-01-01T00:00:00Z",
                    "updated_at": "2026-01-01T00:00:00Z", "update_at": "2026-01-01T00:00:00Z",
                    "file": "/v2/images/7d3c58a1-4c1e-4b7a-9a61-0b5b1d9e2f10/file",
                    "schema": "/v2/schemas/image", "metadata": [], "stores": null,
                    "direct_url": null, "source_fingerprint": null
                }
            }
        }
    })
}

/// (case, state file, what the error must mention besides the file's name)
const STATE_CASES: &[(&str, StateFile, &[&str])] = &[
    (
        "truncated JSON",
        StateFile::Text("{\"version\": 1, \"images\": {\"web\": {\"ima"),
        &["not valid JSON", "EOF", "restore it from a backup"],
    ),
    (
        "empty file",
        StateFile::Text(""),
        &["not valid JSON", "restore it from a backup"],
    ),
    (
        "a JSON array",
        StateFile::Text("[{\"version\": 1}]"),
        &["not a JSON object", "restore it from a backup"],
    ),
    (
        "a JSON string",
        StateFile::Text("\"images\""),
        &["not a JSON object"],
    ),
    (
        "unknown future version",
        StateFile::Edited(|s| s["version"] = json!(99)),
        &["format version 99", "reads version 1", "matching release"],
    ),
    (
        "version as text",
        StateFile::Edited(|s| s["version"] = json!("1")),
        &["version \"1\"", "not a format number", "restore it from a backup"],
    ),
    (
        "no version",
        StateFile::Edited(|s| {
            s.as_object_mut().unwrap().remove("version");
        }),
        &["no version field", "restore it from a backup"],
    ),
    (
        "image entry without its id",
        StateFile::Edited(|s| {
            s["images"]["web"]["image"].as_object_mut().unwrap().remove("id");
        }),
        &["damaged", "images.web.image", "missing field `id`", "import"],
    ),
    (
        "image entry without its image",
        StateFile::Edited(|s| s["images"]["web"] = json!({"deposed": []})),
        &["damaged", "images.web", "missing field `image`", "import"],
    ),
    (
        "image id that is a path",
        StateFile::Edited(|s| s["images"]["web"]["image"]["id"] = json!("../../v3/users")),
        &[
            "image 'web'",
            "'../../v3/users'",
            "not a Glance image id",
            "import",
        ],
    ),
    (
        "empty image id",
        StateFile::Edited(|s| s["images"]["web"]["image"]["id"] = json!("")),
        &["image 'web'", "not a Glance image id"],
    ),
    (
        "deposed id that is not a UUID",
        StateFile::Edited(|s| s["images"]["web"]["deposed"] = json!([{"id": "x?y", "region": null}])),
        &["image 'web'", "deposed id 'x?y'", "not a Glance image id"],
    ),
    (
        "creating id that is not a UUID",
        StateFile::Edited(|s| s["creating"] = json!({"new": {"id": "nope", "region": null}})),
        &["image 'new'", "creating id 'nope'", "not a Glance image id"],
    ),
    (
        "images as an array",
        StateFile::Edited(|s| s["images"] = json!([])),
        &["damaged", "images", "expected a map"],
    ),
    (
        "unknown top-level key",
        StateFile::Edited(|s| s["imagez"] = json!({})),
        &["damaged", "imagez"],
    ),
    (
        "wrong type in an entry",
        StateFile::Edited(|s| s["images"]["web"]["image"]["size_bytes"] = json!("big")),
        &["damaged", "images.web.image.size_bytes", "invalid type"],
    ),
    (
        "not UTF-8",
        StateFile::Bytes(|| b"{\"version\": 1, \"images\": {\"caf\xe9\": {}}}".to_vec()),
        &["not UTF-8", "right file"],
    ),
    (
        "20 MiB",
        StateFile::Bytes(|| {
            let mut state = b"{\"version\": 1, \"images\": {}}".to_vec();
            state.resize(HUGE, b' ');
            state
        }),
        &["larger than 16 MiB", "right file"],
    ),
];

#[test]
fn bad_state_files_fail_naming_the_file_and_stay_untouched() {
    let s = Scenario::new("badstate");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&format!(
        "images:\n  web:\n    name: {}\n{GOOD}",
        s.image_name("web")
    ));
    let mut failures = Vec::new();
    for (case, state, needles) in STATE_CASES {
        let bytes = match state {
            StateFile::Text(text) => text.as_bytes().to_vec(),
            StateFile::Edited(edit) => {
                let mut value = recorded_state();
                edit(&mut value);
                serde_json::to_vec_pretty(&value).unwrap()
            }
            StateFile::Bytes(make) => make(),
        };
        std::fs::write(s.path(STATE_FILE), &bytes).unwrap();
        let needles: Vec<&str> = std::iter::once(STATE_FILE)
            .chain(needles.iter().copied())
            .collect();
        for command in ["plan", "apply", "destroy", "refresh", "show"] {
            let run = s.run(&[command, "-f", "images.yaml"]);
            failures.extend(failure(case, command, &run, &needles));
            if std::fs::read(s.path(STATE_FILE)).ok().as_ref() != Some(&bytes) {
                failures.push(format!("{case} ({command}): the state file was changed"));
                std::fs::write(s.path(STATE_FILE), &bytes).unwrap();
            }
        }
    }
    assert!(s.cloud_images().is_empty(), "the cloud must be untouched");
    report(failures);
}

/// (case, clouds.yaml, secure.yaml beside it, what the error must mention) for cloud `dev`.
type CloudsCase<'a> = (&'a str, &'a [u8], Option<&'a [u8]>, &'a [&'a str]);

/// Cloud `dev`'s Keystone would be 127.0.0.1:9, where nothing listens, so a case that got as
/// far as the cloud would fail with status 4.
const CLOUDS_CASES: &[CloudsCase<'static>] = &[
    (
        "unknown auth_type",
        b"clouds:\n  dev:\n    auth_type: saml2\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "auth_type 'saml2'", "v3applicationcredential"],
    ),
    (
        "auth_type not text",
        b"clouds:\n  dev:\n    auth_type: [password]\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "auth_type", "must be text"],
    ),
    (
        "missing auth_url",
        b"clouds:\n  dev:\n    auth:\n      username: alice\n      password: secret\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "no auth.auth_url", "Keystone URL"],
    ),
    (
        "auth_url a list",
        b"clouds:\n  dev:\n    auth:\n      auth_url: [http://127.0.0.1:9/v3]\n      username: alice\n      password: secret\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "auth.auth_url", "must be text"],
    ),
    (
        "auth not a mapping",
        b"clouds:\n  dev:\n    auth: http://127.0.0.1:9/v3\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "`auth` must be a mapping"],
    ),
    (
        "cloud not a mapping",
        b"clouds:\n  dev: [http://127.0.0.1:9/v3]\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "must be a mapping"],
    ),
    (
        "clouds a list",
        b"clouds:\n  - dev\n",
        None,
        &["clouds.yaml", "`clouds` must be a mapping"],
    ),
    (
        "file a list",
        b"- clouds\n",
        None,
        &["clouds.yaml", "not a YAML mapping", "clouds:"],
    ),
    (
        "not YAML",
        b"clouds:\n  dev: {auth: [\n",
        None,
        &["clouds.yaml", "not valid YAML", "line"],
    ),
    (
        "not UTF-8",
        b"clouds:\n  dev:\n    auth:\n      username: jos\xe9\n",
        None,
        &["clouds.yaml", "not UTF-8"],
    ),
    (
        "empty file",
        b"",
        None,
        &["cloud 'dev'", "clouds.yaml", "no clouds", "--cloud"],
    ),
    (
        "another cloud",
        b"clouds:\n  prod:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "it has: prod", "--cloud"],
    ),
    (
        "verify not a boolean",
        b"clouds:\n  dev:\n    verify: nope\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: alice\n      password: secret\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "`verify` must be true or false"],
    ),
    (
        "bad interface",
        b"clouds:\n  dev:\n    interface: sideways\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: alice\n      password: secret\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "interface", "public, internal or admin"],
    ),
    (
        "region_name a mapping",
        b"clouds:\n  dev:\n    region_name: {one: 1}\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: alice\n      password: secret\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "region_name", "must be text"],
    ),
    (
        "no password anywhere",
        b"clouds:\n  dev:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: alice\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "auth.password", "secure.yaml"],
    ),
    (
        "no credentials at all",
        b"clouds:\n  dev:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "no credentials", "auth.username"],
    ),
    (
        "application credential secret without id",
        b"clouds:\n  dev:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      application_credential_secret: s\n",
        None,
        &["cloud 'dev'", "clouds.yaml", "auth.application_credential_id"],
    ),
    (
        "cacert that does not exist",
        b"clouds:\n  dev:\n    cacert: /nonexistent/ca.pem\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: alice\n      password: secret\n",
        None,
        &["cacert", "/nonexistent/ca.pem"],
    ),
    (
        "secure.yaml not YAML",
        b"clouds:\n  dev:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: alice\n",
        Some(b"clouds: [\n"),
        &["secure.yaml", "not valid YAML"],
    ),
    (
        "secure.yaml clouds a string",
        b"clouds:\n  dev:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: alice\n",
        Some(b"clouds: secret\n"),
        &["secure.yaml", "`clouds` must be a mapping"],
    ),
    (
        "secure.yaml cloud not a mapping",
        b"clouds:\n  dev:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: alice\n",
        Some(b"clouds:\n  dev: secret\n"),
        &["secure.yaml", "cloud 'dev'", "must be a mapping"],
    ),
    (
        "secure.yaml not UTF-8",
        b"clouds:\n  dev:\n    auth:\n      auth_url: http://127.0.0.1:9/v3\n      username: alice\n",
        Some(b"clouds:\n  dev:\n    auth:\n      password: \xff\xfe\n"),
        &["secure.yaml", "not UTF-8"],
    ),
];

#[test]
fn bad_clouds_yaml_fails_naming_the_file_and_key() {
    let s = Scenario::new("badclouds");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&format!(
        "images:\n  web:\n    name: {}\n{GOOD}",
        s.image_name("web")
    ));
    let mut huge = b"clouds: {}\n".to_vec();
    huge.resize(HUGE, b'#');
    let huge_case: CloudsCase = ("20 MiB", &huge, None, &["clouds.yaml", "larger than 16 MiB"]);
    let mut failures = Vec::new();
    for (case, clouds, secure, needles) in CLOUDS_CASES.iter().chain([&huge_case]) {
        std::fs::write(s.path("clouds.yaml"), clouds).unwrap();
        match secure {
            Some(secure) => std::fs::write(s.path("secure.yaml"), secure).unwrap(),
            None => {
                let _ = std::fs::remove_file(s.path("secure.yaml"));
            }
        }
        for command in ["plan", "apply"] {
            let run = s.run_without_os_env(&[command, "-f", "images.yaml", "--cloud", "dev"], &[]);
            failures.extend(failure(case, command, &run, needles));
        }
        if s.path(STATE_FILE).exists() {
            failures.push(format!("{case}: a state file was written"));
            let _ = std::fs::remove_file(s.path(STATE_FILE));
        }
    }
    assert!(s.cloud_images().is_empty(), "the cloud must be untouched");
    report(failures);
}

#[test]
fn missing_cloud_settings_are_named() {
    let s = Scenario::new("nocloud");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&format!("images:\n  web:\n{GOOD}"));
    let binary = openstack_image_tests::binary();
    let out = std::process::Command::new(binary)
        .args(["plan", "-f", "images.yaml"])
        .current_dir(s.path(""))
        .env_clear()
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("OS_AUTH_URL is not set"));
}

#[test]
fn wrong_password_is_an_authentication_error() {
    let s = Scenario::new("badauth");
    s.qcow2("web.qcow2", 1);
    s.write_spec(&format!(
        "images:\n  web:\n    name: {}\n{GOOD}",
        s.image_name("web")
    ));
    let binary = openstack_image_tests::binary();
    let out = std::process::Command::new(binary)
        .args(["apply", "-f", "images.yaml"])
        .current_dir(s.path(""))
        .env_clear()
        .envs(
            openstack_image_tests::cloud_env()
                .iter()
                .filter(|(k, _)| k.starts_with("OS_")),
        )
        .env("OS_PASSWORD", "definitely-wrong")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("image 'web'") && stderr.contains("authentication failed"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("definitely-wrong"),
        "the password never appears: {stderr}"
    );
    assert!(s.cloud_images().is_empty());
    assert!(s.state().is_none() || s.state().unwrap()["images"] == serde_json::json!({}));
}
