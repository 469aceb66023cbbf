//! clouds.yaml (and secure.yaml): any bytes give a cloud's settings or a clear error, never a
//! panic; settings that load resolve to a cloud or a clear error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openstack_image_documents::resolution::{Sources, resolve_sources};

fuzz_target!(|data: &[u8]| {
    // The first half is clouds.yaml, the rest secure.yaml.
    let (clouds, secure) = data.split_at(data.len() / 2);
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let read = |path: &str| match path {
        "/fuzz/clouds.yaml" => Some(Ok(text(clouds))),
        "/fuzz/secure.yaml" => Some(Ok(text(secure))),
        _ => None,
    };
    let var = |name: &str| (name == "OS_CLIENT_CONFIG_FILE").then(|| "/fuzz/clouds.yaml".to_string());
    let _ = resolve_sources(&Sources {
        explicit: Vec::new(),
        cloud: Some("dev".into()),
        var: &var,
        read: &read,
    });
});
