//! clouds.yaml with each Keystone method: password, application credential, token; and the
//! one table of cloud settings every runtime resolves alike, through `cloud show`.

use openstack_image_tests::tls_proxy::TlsProxy;
use openstack_image_tests::{Scenario, cloud_env, cloud_resolution, observer};

#[test]
fn each_auth_type_in_clouds_yaml_manages_images() {
    let s = Scenario::new("cloudsyaml");
    s.qcow2("disk.qcow2", 1);
    let env = cloud_env();
    let credential = observer::json(&[
        "application",
        "credential",
        "create",
        &s.image_name("appcred"),
        "-f",
        "json",
    ]);
    let token = observer::json(&["token", "issue", "-f", "json"]);
    let common = format!(
        "      auth_url: {}\n      project_name: {}\n      user_domain_name: {}\n      project_domain_name: {}\n",
        env["OS_AUTH_URL"], env["OS_PROJECT_NAME"], env["OS_USER_DOMAIN_NAME"], env["OS_PROJECT_DOMAIN_NAME"]
    );
    std::fs::write(
        s.path("clouds.yaml"),
        format!(
            "clouds:\n  pw:\n    region_name: RegionOne\n    auth:\n      username: {}\n{common}\n  appcred:\n    auth_type: v3applicationcredential\n    region_name: RegionOne\n    auth:\n      auth_url: {}\n      application_credential_id: {}\n      application_credential_secret: {}\n  tok:\n    auth_type: v3token\n    region_name: RegionOne\n    auth:\n      token: {}\n{common}",
            env["OS_USERNAME"],
            env["OS_AUTH_URL"],
            credential["ID"].as_str().unwrap(),
            credential["Secret"].as_str().unwrap(),
            token["id"].as_str().unwrap(),
        ),
    )
    .unwrap();
    // The password lives in secure.yaml, as openstacksdk users keep it.
    std::fs::write(
        s.path("secure.yaml"),
        format!(
            "clouds:\n  pw:\n    auth:\n      password: {}\n",
            env["OS_PASSWORD"]
        ),
    )
    .unwrap();

    for cloud in ["pw", "appcred", "tok"] {
        s.write_spec(&format!(
            "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: disk.qcow2\n",
            s.image_name(cloud)
        ));
        s.run_without_os_env(&["apply", "-f", "images.yaml", "--cloud", cloud], &[])
            .expect_code(0);
        let id = s.state_id("web");
        assert_eq!(
            observer::image(&id).expect("created")["status"],
            "active",
            "{cloud}"
        );
        // OS_CLOUD works as well as --cloud.
        s.run_without_os_env(&["destroy"], &[("OS_CLOUD", cloud)])
            .expect_code(0);
        assert!(observer::image(&id).is_none(), "{cloud}");
    }

    let unknown = s
        .run_without_os_env(&["plan", "-f", "images.yaml", "--cloud", "nope"], &[])
        .expect_code(1);
    assert!(
        unknown.stderr.contains("cloud 'nope' is not in") && unknown.stderr.contains("appcred"),
        "{}",
        unknown.stderr
    );
    let id = credential["ID"].as_str().unwrap();
    let _ = observer::openstack(&["application", "credential", "delete", id]);
}

#[test]
fn https_keystone_behind_a_private_ca_needs_cacert_or_verify_false() {
    let s = Scenario::new("tls");
    s.qcow2("disk.qcow2", 1);
    let env = cloud_env();
    let keystone = env["OS_AUTH_URL"]
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .expect("the dev cloud's Keystone address");
    let proxy = TlsProxy::start(keystone, &s.path(""));
    let auth = format!(
        "    auth:\n      auth_url: {}\n      username: {}\n      password: {}\n      project_name: {}\n      user_domain_name: {}\n      project_domain_name: {}\n",
        proxy.url("/v3"),
        env["OS_USERNAME"],
        env["OS_PASSWORD"],
        env["OS_PROJECT_NAME"],
        env["OS_USER_DOMAIN_NAME"],
        env["OS_PROJECT_DOMAIN_NAME"]
    );
    std::fs::write(
        s.path("clouds.yaml"),
        format!(
            "clouds:\n  trusted:\n    cacert: {}\n{auth}  untrusted:\n{auth}  insecure:\n    verify: false\n{auth}",
            proxy.ca_pem.display()
        ),
    )
    .unwrap();
    s.write_spec(&format!(
        "images:\n  web:\n    name: {}\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: disk.qcow2\n",
        s.image_name("tls")
    ));

    // Without the CA the handshake is refused, the error says how to fix it, and nothing
    // was created.
    let refused = s
        .run_without_os_env(&["apply", "-f", "images.yaml", "--cloud", "untrusted"], &[])
        .expect_code(4);
    assert!(
        refused.stderr.contains("TLS certificate is not trusted") && refused.stderr.contains("cacert"),
        "{}",
        refused.stderr
    );
    assert!(s.cloud_images().is_empty());
    assert!(
        s.state()
            .is_none_or(|st| st["images"].as_object().unwrap().is_empty())
    );

    // With `cacert` the private CA is trusted.
    let trusted = s
        .run_without_os_env(&["apply", "-f", "images.yaml", "--cloud", "trusted"], &[])
        .expect_code(0);
    assert!(!trusted.stderr.contains("WARNING"), "{}", trusted.stderr);
    let id = s.state_id("web");
    assert_eq!(observer::image(&id).expect("created")["status"], "active");
    // OS_CACERT works as well as clouds.yaml's key.
    let ca = proxy.ca_pem.to_string_lossy().into_owned();
    s.run_without_os_env(&["destroy", "--cloud", "untrusted"], &[("OS_CACERT", &ca)])
        .expect_code(0);
    assert!(observer::image(&id).is_none());

    // verify: false connects, with a loud warning.
    let insecure = s
        .run_without_os_env(&["apply", "-f", "images.yaml", "--cloud", "insecure"], &[])
        .expect_code(0);
    assert!(
        insecure
            .stderr
            .contains("WARNING: TLS certificate verification is OFF"),
        "{}",
        insecure.stderr
    );
    s.run_without_os_env(&["destroy", "--cloud", "insecure"], &[])
        .expect_code(0);
    assert!(s.cloud_images().is_empty());
}

#[test]
fn the_cloud_resolution_table_resolves_as_every_runtime_resolves_it() {
    for case in cloud_resolution::cases() {
        let s = Scenario::offline("cloud-table");
        let mut command = s.command(&["cloud", "show"]);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        command.envs(case.environment(&s.path("")));
        let run = openstack_image_tests::Run::from(command.output().expect("run openstack-image"));
        let outcome = match run.code {
            0 => Ok(serde_json::from_str(&run.stdout).expect("cloud show prints JSON")),
            _ => Err(run.stderr),
        };
        case.check("openstack-image cloud show", outcome);
    }
}
