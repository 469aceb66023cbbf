//! clouds.yaml (and secure.yaml): any bytes give a cloud's settings or a clear error, never a
//! panic; settings that load resolve to a cloud or a clear error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openstack_image::{cloud, clouds_yaml};
use openstack_image_documents::cloud::CloudSettings;
use openstack_image_fuzz::scratch_dir;

fuzz_target!(|data: &[u8]| {
    // The first half is clouds.yaml, the rest secure.yaml.
    let (clouds, secure) = data.split_at(data.len() / 2);
    std::fs::write(scratch_dir().join("clouds.yaml"), clouds).expect("write clouds.yaml");
    std::fs::write(scratch_dir().join("secure.yaml"), secure).expect("write secure.yaml");
    let Ok(layer) = clouds_yaml::settings("dev", None, &[scratch_dir().to_path_buf()]) else {
        return;
    };
    let _ = cloud::resolve(&CloudSettings::new(vec![layer]));
});
