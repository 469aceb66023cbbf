//! Bad specs fail before anything reaches the cloud, with an error naming image and field.

use openstack_image_tests::Scenario;

const GOOD: &str = "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n";

/// (case, spec body for image `web`, what the error must mention)
const CASES: &[(&str, &str, &[&str])] = &[
    (
        "unknown key",
        "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    disk_fromat: raw\n",
        &["image 'web'", "disk_fromat"],
    ),
    (
        "bad disk format",
        "    container_format: bare\n    disk_format: qcow3\n    local_file_path: web.qcow2\n",
        &["image 'web'", "disk_format", "qcow3", "qcow2"],
    ),
    (
        "bad container format",
        "    container_format: box\n    disk_format: qcow2\n    local_file_path: web.qcow2\n",
        &["image 'web'", "container_format", "bare"],
    ),
    (
        "bad visibility",
        "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    visibility: everyone\n",
        &["visibility", "public"],
    ),
    (
        "conflicting sources",
        "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    image_source_url: http://127.0.0.1:1/x.img\n",
        &["image 'web'", "local_file_path", "image_source_url"],
    ),
    (
        "missing file",
        "    container_format: bare\n    disk_format: qcow2\n    local_file_path: missing.qcow2\n",
        &[
            "image 'web'",
            "local_file_path",
            "missing.qcow2",
            "does not exist",
        ],
    ),
    (
        "missing formats",
        "    local_file_path: web.qcow2\n",
        &["container_format", "disk_format", "is required"],
    ),
    (
        "read-only property",
        "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    properties:\n      os_hash_value: x\n",
        &["properties.os_hash_value", "set by Glance"],
    ),
    (
        "wrong type",
        "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    min_ram_mb: lots\n",
        &["image 'web'", "min_ram_mb"],
    ),
    (
        "bad image id",
        "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    image_id: nope\n",
        &["image_id", "UUID"],
    ),
    (
        "bad timeout",
        "    container_format: bare\n    disk_format: qcow2\n    local_file_path: web.qcow2\n    timeouts:\n      create: soon\n",
        &["timeouts", "duration"],
    ),
];

#[test]
fn bad_specs_fail_with_a_field_naming_error_and_change_nothing() {
    let s = Scenario::new("badspec");
    s.qcow2("web.qcow2", 1);
    for (case, body, expected) in CASES {
        // A valid image next to the bad one proves that nothing at all is applied.
        s.write_spec(&format!(
            "images:\n  good:\n    name: {}\n{GOOD}  web:\n    name: {}\n{body}",
            s.image_name("good"),
            s.image_name("web")
        ));
        for command in ["plan", "apply"] {
            let run = s.run(&[command, "-f", "images.yaml"]);
            assert_eq!(
                run.code, 1,
                "{case}: {command} must fail\n{}\n{}",
                run.stdout, run.stderr
            );
            for needle in *expected {
                assert!(
                    run.stderr.contains(needle),
                    "{case}: {command}'s error lacks {needle:?}:\n{}",
                    run.stderr
                );
            }
        }
        assert!(s.state().is_none(), "{case}: no state file may be written");
        assert!(s.cloud_images().is_empty(), "{case}: the cloud must be untouched");
    }
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
