//! Builds the guest component for wasm32-wasip2 so the binary can embed it (with the
//! `runtime` feature only: without it nothing embeds the component).

use std::env;
use std::path::PathBuf;

use openstack_image_component_build::ComponentCrate;

fn main() {
    if env::var_os("CARGO_FEATURE_RUNTIME").is_none() {
        // Nothing to build, nothing to watch.
        println!("cargo:rerun-if-changed=build.rs");
        return;
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let root = manifest_dir
        .parent()
        .expect("host/ sits in the workspace")
        .to_path_buf();
    for watched in [
        "guest/src",
        "guest/Cargo.toml",
        "documents/src",
        "documents/Cargo.toml",
        "keystone/src",
        "keystone/Cargo.toml",
        "wit",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=OPENSTACK_IMAGE_GUEST_TARGET_DIR");
    println!(
        "cargo:rerun-if-env-changed={}",
        openstack_image_component_build::PROFILE_VAR
    );
    // CI's lint wrapper reaches the guest's build too (`ComponentCrate::lint`).
    println!("cargo:rerun-if-env-changed=RUSTC_WORKSPACE_WRAPPER");
    println!("cargo:rerun-if-env-changed=CLIPPY_ARGS");

    let target_dir = env::var_os("OPENSTACK_IMAGE_GUEST_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target").join("guest"));
    let guest = ComponentCrate {
        manifest: &root.join("guest/Cargo.toml"),
        package: "openstack-image-guest",
        target_dir: &target_dir,
        lint: true,
    };
    match guest.build() {
        Ok(wasm) => {
            println!("cargo:rustc-env=OPENSTACK_IMAGE_COMPONENT={}", wasm.display());
            println!(
                "cargo:rustc-env=OPENSTACK_IMAGE_COMPONENT_BUILT_WITH={}",
                openstack_image_component_build::profile()
            );
            // Its identity, hashed here once instead of at every start.
            let bytes = std::fs::read(&wasm).expect("the component just built");
            println!(
                "cargo:rustc-env=OPENSTACK_IMAGE_COMPONENT_ID={}",
                openstack_image_component_build::component_id(&bytes)
            );
        }
        Err(err) => {
            // One line saying what to do, not a build-script panic.
            eprintln!("error: {err}");
            std::process::exit(1);
        }
    }
}
