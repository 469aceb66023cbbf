//! The hostile component (`tests/hostile/`): built once per test process, for the sandbox
//! tests to run with `--component`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::root;

/// The hostile component's `.wasm` file, built on first use (in `target/hostile`, whose
/// cargo lock keeps test binaries running in parallel from building it at the same time).
pub fn component() -> &'static PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let target_dir = root().join("target/hostile");
        let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
        build
            .args([
                "build",
                "--release",
                "--locked",
                "--quiet",
                "--target",
                "wasm32-wasip2",
            ])
            .arg("--manifest-path")
            .arg(root().join("tests/hostile/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        // The outer build's settings are for the host, not for this component.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
            "RUSTC_WORKSPACE_WRAPPER",
            "RUSTC_WRAPPER",
        ] {
            build.env_remove(var);
        }
        let status = build.status().expect("run cargo to build tests/hostile");
        assert!(
            status.success(),
            "building the hostile component failed: {status}"
        );
        let wasm = target_dir.join("wasm32-wasip2/release/openstack_image_hostile.wasm");
        assert!(wasm.exists(), "{} was not built", wasm.display());
        wasm
    })
}
