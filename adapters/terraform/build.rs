//! Compiles the vendored protocol definitions with protox (a protobuf compiler in Rust), so
//! building needs no `protoc` binary.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/tfplugin6.5.proto", "proto/go_plugin.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let descriptors = protox::compile(protos, ["proto"])?;
    tonic_prost_build::configure()
        .build_client(false)
        .compile_fds(descriptors)?;
    Ok(())
}
