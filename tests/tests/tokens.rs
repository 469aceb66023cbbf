//! Keystone requests per run, counted at a relaying proxy in front of Keystone (logins and
//! token checks both): one login per run however many images (and instances) it has, none
//! at all for a run that finds a kept session (`--token-cache`), and exactly one when the
//! cloud refuses the kept session — as keystoneauth keeps sessions.

use std::os::unix::fs::PermissionsExt;

use openstack_image_tests::fault_proxy::{self, Fault, FaultProxy};
use openstack_image_tests::keystone_counter::CountingKeystone;
use openstack_image_tests::{Run, Scenario, TestRegion, cloud_env, glance_addr, observer, root};

/// `openstack-image ARGS` against the dev cloud through `keystone`, plus `vars`.
fn run(keystone: &CountingKeystone, s: &Scenario, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let auth_url = keystone.auth_url();
    let mut all: Vec<(&str, &str)> = cloud_env()
        .iter()
        .filter(|(k, _)| k.starts_with("OS_") && k.as_str() != "OS_AUTH_URL")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.push(("OS_AUTH_URL", &auth_url));
    all.extend_from_slice(vars);
    s.run_without_os_env(args, &all)
}

fn raw(s: &Scenario, name: &str) {
    let data: Vec<u8> = (0..64 * 1024).map(|_| rand::random::<u8>()).collect();
    std::fs::write(s.path(name), data).unwrap();
}

#[test]
fn one_login_serves_every_image_of_a_run_and_no_token_is_checked() {
    let s = Scenario::new("token-run");
    let keystone = CountingKeystone::start();
    let mut spec = String::from("images:\n");
    for i in 0..3 {
        raw(&s, &format!("disk{i}.raw"));
        spec.push_str(&format!(
            "  img{i}:\n    name: {}\n    container_format: bare\n    disk_format: raw\n    local_file_path: disk{i}.raw\n",
            s.image_name(&format!("img{i}"))
        ));
    }
    s.write_spec(&spec);

    // Three images, three instances running side by side (up to eight at once): one login.
    run(
        &keystone,
        &s,
        &["apply", "-f", "images.yaml", "--parallel", "8"],
        &[],
    )
    .expect_code(0);
    assert_eq!(keystone.logins(), 1, "one login for the whole apply");
    assert_eq!(keystone.requests(), 1, "and no token check");
    for i in 0..3 {
        let id = s.state_id(&format!("img{i}"));
        assert_eq!(observer::image(&id).expect("created")["status"], "active");
    }
    // Each run logs in once (no session is kept between runs unless asked).
    run(&keystone, &s, &["plan", "-f", "images.yaml"], &[]).expect_code(0);
    assert_eq!((keystone.logins(), keystone.requests()), (2, 2));
    run(&keystone, &s, &["destroy", "-f", "images.yaml"], &[]).expect_code(0);
    assert_eq!((keystone.logins(), keystone.requests()), (3, 3));
    assert!(s.cloud_images().is_empty());
}

#[test]
fn a_kept_session_costs_no_keystone_request_and_a_revoked_one_exactly_one_login() {
    let s = Scenario::new("token-cache");
    let keystone = CountingKeystone::start();
    let tokens_dir = root().join("target/component-cache/tokens");
    raw(&s, "disk.raw");
    s.write_spec(&format!(
        "images:\n  one:\n    name: {}\n    container_format: bare\n    disk_format: raw\n    local_file_path: disk.raw\n",
        s.image_name("one")
    ));

    run(
        &keystone,
        &s,
        &["apply", "-f", "images.yaml", "--token-cache"],
        &[],
    )
    .expect_code(0);
    assert_eq!(keystone.requests(), 1);
    // The session file: private, and it is the only place the token was written.
    let file = std::fs::read_dir(&tokens_dir)
        .expect("a tokens directory")
        .filter_map(|e| e.ok())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .expect("a token file")
        .path();
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(&tokens_dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    let kept: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let token = kept["token"].as_str().expect("a token").to_string();
    assert!(!token.is_empty());

    // Later runs use it as it is: by flag, by variable; no login, no token check.
    run(
        &keystone,
        &s,
        &["plan", "-f", "images.yaml", "--token-cache"],
        &[],
    )
    .expect_code(0);
    run(
        &keystone,
        &s,
        &["plan", "-f", "images.yaml"],
        &[("OPENSTACK_IMAGE_TOKEN_CACHE", "1")],
    )
    .expect_code(0);
    assert_eq!(
        keystone.requests(),
        1,
        "no Keystone request while the kept session is good"
    );
    // Without the cache a run logs in as always.
    run(&keystone, &s, &["plan", "-f", "images.yaml"], &[]).expect_code(0);
    assert_eq!(keystone.requests(), 2);

    // A token Keystone no longer accepts (revoked): Glance refuses it, the run logs in once,
    // keeps the new session, and the next run needs none.
    let mut revoked = kept.clone();
    revoked["token"] = serde_json::json!("gAAAAABnot-a-valid-token");
    std::fs::write(&file, revoked.to_string()).unwrap();
    let renewing = run(
        &keystone,
        &s,
        &["plan", "-f", "images.yaml", "--token-cache"],
        &[],
    );
    assert_eq!(renewing.code, 0, "{}", renewing.stderr);
    assert_eq!((keystone.logins(), keystone.requests()), (3, 3));
    let renewed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_ne!(renewed["token"], revoked["token"]);
    assert!(!renewing.stdout.contains(&token) && !renewing.stderr.contains(&token));
    run(
        &keystone,
        &s,
        &["plan", "-f", "images.yaml", "--token-cache"],
        &[],
    )
    .expect_code(0);
    assert_eq!(keystone.requests(), 3);

    // A session about to expire (within two minutes) is not used: one new login.
    let mut expiring = renewed.clone();
    let soon = time_in(60);
    expiring["expires_at"] = serde_json::json!(soon);
    std::fs::write(&file, expiring.to_string()).unwrap();
    run(
        &keystone,
        &s,
        &["plan", "-f", "images.yaml", "--token-cache"],
        &[],
    )
    .expect_code(0);
    assert_eq!((keystone.logins(), keystone.requests()), (4, 4));

    run(
        &keystone,
        &s,
        &["destroy", "-f", "images.yaml", "--token-cache"],
        &[],
    )
    .expect_code(0);
    assert_eq!(keystone.requests(), 4);
    std::fs::remove_file(&file).unwrap();
}

/// An RFC 3339 time `seconds` from now, as Keystone writes `expires_at`.
fn time_in(seconds: i64) -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn a_session_refused_midway_through_an_upload_costs_one_login_and_leaves_no_image_behind() {
    let s = Scenario::new("token-refused");
    let keystone = CountingKeystone::start();
    // Glance refuses the session once, when the upload starts (as for a token that expired
    // during a long run): the image record exists by then.
    let refused = "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 78\r\nConnection: close\r\n\r\n{\"error\": {\"code\": 401, \"message\": \"The request you have made requires auth\"}}";
    let proxy = FaultProxy::scripted(
        glance_addr(),
        fault_proxy::first(
            1,
            |line| line.starts_with("PUT ") && line.contains("/file "),
            Fault::Answer(refused),
        ),
    );
    let region = TestRegion::register(&s.image_name("region"), &format!("http://{}", proxy.addr));
    raw(&s, "disk.raw");
    s.write_spec(&format!(
        "images:\n  one:\n    name: {}\n    container_format: bare\n    disk_format: raw\n    local_file_path: disk.raw\n    region: {}\n",
        s.image_name("one"),
        region.name
    ));
    let apply = run(&keystone, &s, &["apply", "-f", "images.yaml"], &[]).expect_code(0);
    assert_eq!(proxy.failures(), 1, "{}", apply.stderr);
    assert_eq!(keystone.logins(), 2, "one login, and one after the refusal");
    let images = s.cloud_images();
    assert_eq!(images.len(), 1, "the half-made image is gone: {images:?}");
    let id = s.state_id("one");
    assert_eq!(images[0]["ID"], id.as_str());
    assert_eq!(observer::image(&id).expect("created")["status"], "active");
    run(&keystone, &s, &["destroy", "-f", "images.yaml"], &[]).expect_code(0);
    assert!(s.cloud_images().is_empty());
}
