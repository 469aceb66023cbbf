//! Keystone tokens: one per run however many images (and instances) it has, and with
//! `--token-cache` one across runs. Counted at a relaying proxy in front of Keystone.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use openstack_image_tests::fault_proxy::FaultProxy;
use openstack_image_tests::{Run, Scenario, cloud_env, observer, root};

/// A proxy in front of the dev cloud's Keystone that relays everything and counts token
/// requests.
struct CountingKeystone {
    proxy: FaultProxy,
    tokens: Arc<AtomicUsize>,
}

impl CountingKeystone {
    fn start() -> CountingKeystone {
        let auth_url = &cloud_env()["OS_AUTH_URL"];
        let authority = auth_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .expect("host:port in OS_AUTH_URL");
        let upstream: SocketAddr = authority.parse().expect("the dev cloud listens on an IP");
        let tokens = Arc::new(AtomicUsize::new(0));
        let counter = tokens.clone();
        let proxy = FaultProxy::scripted(
            upstream,
            Arc::new(move |line: &str| {
                if line.starts_with("POST ") && line.contains("/auth/tokens") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                None
            }),
        );
        CountingKeystone { proxy, tokens }
    }

    fn count(&self) -> usize {
        self.tokens.load(Ordering::SeqCst)
    }

    /// `openstack-image ARGS` against the dev cloud through this proxy, plus `vars`.
    fn run(&self, s: &Scenario, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let auth_url = format!("http://{}/v3", self.proxy.addr);
        let mut all: Vec<(&str, &str)> = cloud_env()
            .iter()
            .filter(|(k, _)| k.starts_with("OS_") && k.as_str() != "OS_AUTH_URL")
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        all.push(("OS_AUTH_URL", &auth_url));
        all.extend_from_slice(vars);
        s.run_without_os_env(args, &all)
    }
}

fn raw(s: &Scenario, name: &str) {
    let data: Vec<u8> = (0..64 * 1024).map(|_| rand::random::<u8>()).collect();
    std::fs::write(s.path(name), data).unwrap();
}

#[test]
fn one_token_serves_every_image_of_a_run() {
    let s = Scenario::new("token-run");
    let keystone = CountingKeystone::start();
    let mut spec = String::from("images:\n");
    for i in 0..4 {
        raw(&s, &format!("disk{i}.raw"));
        spec.push_str(&format!(
            "  img{i}:\n    name: {}\n    container_format: bare\n    disk_format: raw\n    local_file_path: disk{i}.raw\n",
            s.image_name(&format!("img{i}"))
        ));
    }
    s.write_spec(&spec);

    // Four images, four instances running side by side: one token.
    keystone
        .run(&s, &["apply", "-f", "images.yaml", "--parallel", "4"], &[])
        .expect_code(0);
    assert_eq!(keystone.count(), 1, "one Keystone token for the whole apply");
    for i in 0..4 {
        let id = s.state_id(&format!("img{i}"));
        assert_eq!(observer::image(&id).expect("created")["status"], "active");
    }
    // Each run authenticates once (no token is kept between runs unless asked).
    keystone
        .run(&s, &["plan", "-f", "images.yaml"], &[])
        .expect_code(0);
    assert_eq!(keystone.count(), 2);
    keystone
        .run(&s, &["destroy", "-f", "images.yaml"], &[])
        .expect_code(0);
    assert_eq!(keystone.count(), 3);
    assert!(s.cloud_images().is_empty());
}

#[test]
fn token_cache_keeps_the_token_for_later_runs_and_recovers_from_a_bad_one() {
    let s = Scenario::new("token-cache");
    let keystone = CountingKeystone::start();
    let tokens_dir = root().join("target/component-cache/tokens");
    raw(&s, "disk.raw");
    s.write_spec(&format!(
        "images:\n  one:\n    name: {}\n    container_format: bare\n    disk_format: raw\n    local_file_path: disk.raw\n",
        s.image_name("one")
    ));

    keystone
        .run(&s, &["apply", "-f", "images.yaml", "--token-cache"], &[])
        .expect_code(0);
    assert_eq!(keystone.count(), 1);
    // The token file: private, and it is the only place the token was written.
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
    let cached: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let token = cached["token"].as_str().expect("a token").to_string();
    assert!(!token.is_empty());

    // Later runs reuse it: by flag, by variable.
    keystone
        .run(&s, &["plan", "-f", "images.yaml", "--token-cache"], &[])
        .expect_code(0);
    keystone
        .run(
            &s,
            &["plan", "-f", "images.yaml"],
            &[("OPENSTACK_IMAGE_TOKEN_CACHE", "1")],
        )
        .expect_code(0);
    assert_eq!(keystone.count(), 1, "no new token while the cached one is good");
    // Without the cache a run authenticates as always.
    keystone
        .run(&s, &["plan", "-f", "images.yaml"], &[])
        .expect_code(0);
    assert_eq!(keystone.count(), 2);

    // A token Keystone no longer accepts: the run falls back to the credentials and keeps
    // the new token.
    let mut revoked = cached.clone();
    revoked["token"] = serde_json::json!("gAAAAABnot-a-valid-token");
    std::fs::write(&file, revoked.to_string()).unwrap();
    let run = keystone.run(&s, &["plan", "-f", "images.yaml", "--token-cache"], &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(keystone.count(), 3);
    let renewed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_ne!(renewed["token"], revoked["token"]);
    assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token));

    keystone
        .run(&s, &["destroy", "-f", "images.yaml", "--token-cache"], &[])
        .expect_code(0);
    assert_eq!(keystone.count(), 3);
    std::fs::remove_file(&file).unwrap();
}
