//! Builds a component crate for `wasm32-wasip2` with a nested `cargo build`: the host's
//! build script embeds the guest built this way, and the sandbox tests build their hostile
//! component the same way. Also a component build's identity ([`component_id`]).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every component is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// A crate to build as a component.
pub struct ComponentCrate<'a> {
    /// Its `Cargo.toml`.
    pub manifest: &'a Path,
    /// Its package name (the `.wasm` file is named after it, `-` as `_`).
    pub package: &'a str,
    /// A target directory of its own: the outer build's would wait forever on its lock.
    pub target_dir: &'a Path,
    /// Keep a lint wrapper the outer build runs under (`RUSTC_WORKSPACE_WRAPPER`: CI's
    /// clippy-driver with `CLIPPY_ARGS`), so the crate's wasm-only code is linted as it is
    /// built instead of by a second, separate clippy pass for wasm32-wasip2.
    pub lint: bool,
}

/// Settings of the outer build that are for the host, not for the component.
const OUTER_BUILD_VARS: &[&str] = &[
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_MAKEFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
];

impl ComponentCrate<'_> {
    /// Builds it (`--locked`, with [`profile`]) and returns the path of its `.wasm` file. The
    /// `wasm32-wasip2` target is added with rustup first when the toolchain lacks it.
    pub fn build(&self) -> Result<PathBuf, String> {
        ensure_target()?;
        let profile = profile();
        let mut build = Command::new(cargo());
        build
            .args(["build", "--locked", "--quiet", "--target", TARGET])
            .args(["--profile", &profile])
            .arg("--manifest-path")
            .arg(self.manifest)
            .args(["-p", self.package])
            .arg("--target-dir")
            .arg(self.target_dir);
        for var in OUTER_BUILD_VARS {
            if !(self.lint && *var == "RUSTC_WORKSPACE_WRAPPER") {
                build.env_remove(var);
            }
        }
        let status = build
            .status()
            .map_err(|e| format!("cannot run cargo to build {}: {e}", self.package))?;
        if !status.success() {
            return Err(format!(
                "building the component {} failed: {status}",
                self.package
            ));
        }
        let wasm = self
            .target_dir
            .join(TARGET)
            .join(&profile)
            .join(format!("{}.wasm", self.package.replace('-', "_")));
        if wasm.exists() {
            Ok(wasm)
        } else {
            Err(format!(
                "the build of {} did not produce {}",
                self.package,
                wasm.display()
            ))
        }
    }
}

/// A component build's identity: the first 16 bytes of its SHA-256, in hex. The host keys
/// its compiled-component cache and each component's writable areas by it; its build script
/// computes the embedded component's once.
pub fn component_id(wasm: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(wasm)[..16])
}

/// The variable that picks the cargo profile components are built with.
pub const PROFILE_VAR: &str = "OPENSTACK_IMAGE_COMPONENT_PROFILE";

/// The cargo profile components are built with: `component` (release, no DWARF), or what
/// [`PROFILE_VAR`] names (`component-debug`: full DWARF).
pub fn profile() -> String {
    std::env::var(PROFILE_VAR).unwrap_or_else(|_| "component".to_string())
}

fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Adds the `wasm32-wasip2` standard library to the toolchain when it is missing (a fresh
/// `cargo install --path host` would otherwise fail with "can't find crate for `core`").
fn ensure_target() -> Result<(), String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    if sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        return Ok(());
    }
    let mut add = Command::new("rustup");
    add.args(["target", "add", TARGET]);
    if let Some(toolchain) = std::env::var_os("RUSTUP_TOOLCHAIN") {
        add.arg("--toolchain").arg(toolchain);
    }
    match add.status() {
        Ok(status) if status.success() => Ok(()),
        _ => Err(format!(
            "the Rust standard library for {TARGET} is missing: run `rustup target add {TARGET}` \
             (or install it for your toolchain) and build again"
        )),
    }
}
