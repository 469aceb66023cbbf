//! The hostile component (`tests/hostile/`): built once per test process, for the sandbox
//! tests to run with `--component`.

use std::path::PathBuf;
use std::sync::OnceLock;

use openstack_image_component_build::ComponentCrate;

use super::root;

/// The hostile component's `.wasm` file, built on first use (in `target/hostile`, whose
/// cargo lock keeps test binaries running in parallel from building it at the same time).
pub fn component() -> &'static PathBuf {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        ComponentCrate {
            manifest: &root().join("tests/hostile/Cargo.toml"),
            package: "openstack-image-hostile",
            target_dir: &root().join("target/hostile"),
            lint: false,
        }
        .build()
        .unwrap_or_else(|err| panic!("{err}"))
    })
}
