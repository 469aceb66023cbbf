//! `wasmtime --version` prints the wasmtime-cli version this build uses, read from the
//! workspace's Cargo.lock (a build script is not told its dependencies' versions).

fn main() {
    let lock = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.lock");
    println!("cargo::rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).expect("read the workspace's Cargo.lock");
    let mut lines = text.lines();
    let version = loop {
        match lines.next() {
            Some("name = \"wasmtime-cli\"") => {
                let line = lines.next().expect("a version line after the package name");
                break line
                    .trim_start_matches("version = \"")
                    .trim_end_matches('"')
                    .to_string();
            }
            Some(_) => {}
            None => panic!("Cargo.lock has no wasmtime-cli package"),
        }
    };
    println!("cargo::rustc-env=WASMTIME_CLI_VERSION={version}");
}
