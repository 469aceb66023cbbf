//! Helpers for the tests that run the provider binary with the real component against the dev
//! cloud (`cloud.rs`, `acceptance.rs`).

use crate::support::{self, Run, Workspace};
use openstack_image_tests::{cloud_env, root};
use serde_json::Value as Json;

/// A Terraform workspace for the provider binary, with the dev cloud's OS_* variables (the
/// provider's fallbacks, as terraform-provider-openstack reads them).
pub fn workspace(extra: &[(&str, &str)]) -> Workspace {
    workspace_with(support::terraform(), extra)
}

/// [`workspace`] with a given Terraform binary (the newer one: `support::newer_terraform`).
#[allow(
    dead_code,
    reason = "each test binary compiles this module; not all of them use every helper"
)]
pub fn workspace_with(terraform: std::path::PathBuf, extra: &[(&str, &str)]) -> Workspace {
    let cache = root().join("target/component-cache");
    let mut env: Vec<(&str, &str)> = cloud_env()
        .iter()
        .filter(|(k, _)| k.starts_with("OS_"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    env.push(("OPENSTACK_IMAGE_CACHE_DIR", cache.to_str().expect("utf-8 path")));
    env.extend_from_slice(extra);
    let provider = std::path::Path::new(env!("CARGO_BIN_EXE_terraform-provider-openstackimage"));
    Workspace::new(terraform, provider, &env)
}

/// `main.tf`: the provider block and `body`, the resources exactly as a
/// terraform-provider-openstack user writes them plus the `provider` line.
pub fn main_tf(body: &str) -> String {
    format!(
        r#"terraform {{
  required_providers {{
    openstackimage = {{
      source  = "{source}"
      version = "{version}"
    }}
  }}
}}

provider "openstackimage" {{}}

{body}"#,
        source = support::SOURCE,
        version = support::VERSION
    )
}

/// The attributes of `address` in the Terraform state (`terraform show -json`).
pub fn attributes(w: &Workspace, address: &str) -> Json {
    let shown: Json = serde_json::from_str(&w.ok(&["show", "-json"]).stdout).expect("terraform show -json");
    let resources = shown["values"]["root_module"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    resources
        .into_iter()
        .find(|r| r["address"] == address)
        .unwrap_or_else(|| panic!("{address} is not in the state"))["values"]
        .clone()
}

#[track_caller]
pub fn expect_code(run: Run, code: i32) -> Run {
    assert_eq!(run.code, code, "expected exit status {code}:\n{}", run.output());
    run
}

pub fn id_of(w: &Workspace, address: &str) -> String {
    attributes(w, address)["id"].as_str().expect("an id").to_string()
}
