//! Secrets — passwords, application-credential secrets, tokens and source passwords — never
//! appear in the state, plan output, logs at any verbosity, or error messages.

use openstack_image_tests::source_server::{Served, SourceServer};
use openstack_image_tests::{Run, Scenario, cloud_env, observer};

const SOURCE_PASSWORD: &str = "open-sesame-7f3a";

/// Everything a user or a log collector could see: output, the state, cached sidecars.
fn visible(s: &Scenario, runs: &[Run]) -> String {
    let mut all = String::new();
    for run in runs {
        all.push_str(&run.stdout);
        all.push_str(&run.stderr);
    }
    for entry in walk(&s.path("")) {
        if let Ok(text) = std::fs::read_to_string(&entry) {
            all.push_str(&text);
        }
    }
    all
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if !path.extension().is_some_and(|e| e == "qcow2" || e == "img") {
            files.push(path);
        }
    }
    files
}

#[test]
fn no_secret_is_ever_shown_or_stored() {
    let s = Scenario::new("secrets");
    let disk = s.qcow2("disk.qcow2", 1);
    let server = SourceServer::start();
    server.serve(
        "/private.qcow2",
        Served::new(std::fs::read(&disk).unwrap()).basic_auth("reader", SOURCE_PASSWORD),
    );
    let env = cloud_env();
    let credential = observer::json(&[
        "application",
        "credential",
        "create",
        &s.image_name("ac"),
        "-f",
        "json",
    ]);
    let (ac_id, ac_secret) = (
        credential["ID"].as_str().unwrap().to_string(),
        credential["Secret"].as_str().unwrap().to_string(),
    );
    let token = observer::json(&["token", "issue", "-f", "json"])["id"]
        .as_str()
        .unwrap()
        .to_string();
    std::fs::write(
        s.path("clouds.yaml"),
        format!(
            "clouds:\n  ac:\n    auth_type: v3applicationcredential\n    region_name: RegionOne\n    auth:\n      auth_url: {}\n      application_credential_id: {ac_id}\n      application_credential_secret: {ac_secret}\n",
            env["OS_AUTH_URL"]
        ),
    )
    .unwrap();
    let spec = |password: &str| {
        format!(
            "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    image_source_url: {}\n    image_cache_path: cache\n    image_source_username: reader\n    image_source_password: {password}\n    properties:\n      rev: \"1\"\n",
            s.image_name("web"),
            server.url("/private.qcow2")
        )
    };
    let mut runs = Vec::new();
    let mut run = |args: &[&str], vars: &[(&str, &str)], trace: bool| {
        let mut command = s.command(args);
        command.envs(vars.iter().copied());
        if trace {
            command.env("RUST_LOG", "trace");
        }
        let run = Run::from(command.output().expect("run openstack-image"));
        runs.push(run);
        runs.last().unwrap().code
    };

    // Password (OS_* variables), at every verbosity, through every command.
    s.write_spec(&spec("wrong-pass-91c2"));
    assert_eq!(
        run(&["apply", "-f", "images.yaml", "-vv"], &[], false),
        4,
        "a wrong source password fails"
    );
    s.write_spec(&spec(SOURCE_PASSWORD));
    assert_eq!(run(&["plan", "-f", "images.yaml", "-vv"], &[], true), 2);
    assert_eq!(run(&["apply", "-f", "images.yaml", "-vv"], &[], true), 0);
    assert_eq!(
        run(&["plan", "-f", "images.yaml", "--json", "-vv"], &[], false),
        0
    );
    assert_eq!(run(&["show"], &[], false), 0);
    assert_eq!(run(&["refresh", "-vv"], &[], true), 0);
    assert_eq!(
        run(
            &["plan", "-f", "images.yaml", "-vv"],
            &[("OS_PASSWORD", "wrong-os-pass-55")],
            true
        ),
        4,
        "a wrong cloud password fails"
    );
    // Token and application credential.
    assert_eq!(
        run(
            &["refresh", "-vv"],
            &[("OS_TOKEN", &token), ("OS_PASSWORD", ""), ("OS_AUTH_TYPE", "")],
            true
        ),
        0
    );
    let code = {
        let mut command = s.command(&["destroy", "-vv", "--cloud", "ac"]);
        for name in env.keys().filter(|k| k.starts_with("OS_")) {
            command.env_remove(name);
        }
        command.env("RUST_LOG", "trace");
        let run = Run::from(command.output().expect("run openstack-image"));
        let code = run.code;
        runs.push(run);
        code
    };
    assert_eq!(code, 0, "{}", runs.last().unwrap().stderr);
    assert!(s.cloud_images().is_empty());

    let seen = visible(&s, &runs);
    assert!(
        seen.len() > 10_000,
        "trace logs were captured ({} bytes)",
        seen.len()
    );
    let clouds_yaml = std::fs::read_to_string(s.path("clouds.yaml")).unwrap();
    let seen = seen
        .replace(&clouds_yaml, "")
        .replace(&std::fs::read_to_string(s.path("images.yaml")).unwrap(), "");
    let basic = "cmVhZGVyOm9wZW4tc2VzYW1lLTdmM2E"; // base64("reader:open-sesame-7f3a"), unpadded prefix
    for (what, secret) in [
        ("the cloud password", env["OS_PASSWORD"].as_str()),
        ("a wrong cloud password", "wrong-os-pass-55"),
        ("the application credential secret", ac_secret.as_str()),
        ("the token given", token.as_str()),
        ("the source password", SOURCE_PASSWORD),
        ("a wrong source password", "wrong-pass-91c2"),
        ("the basic-auth header", basic),
        ("any Keystone (Fernet) token", "gAAAAA"),
    ] {
        assert!(
            !seen.contains(secret),
            "{what} appeared in output, state or cache files"
        );
    }
    let _ = observer::openstack(&["application", "credential", "delete", &ac_id]);
}
