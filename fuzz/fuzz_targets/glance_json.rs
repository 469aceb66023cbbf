//! Whatever Glance or Keystone answer, reading it never panics: image JSON to state, a token
//! response's session and endpoint lookup, checksum texts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openstack_image_guest::{glance, source};
use openstack_image_keystone as keystone;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = source::parse_checksum(text);
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(state) = glance::state_from_image(&json, None) {
        let _ = glance::state_from_image(&json, Some(&state.spec));
    }
    let _ = glance::properties(&json);
    if let Ok(session) = keystone::session("t".into(), &json) {
        for interface in ["public", "internal"] {
            let _ = keystone::image_endpoint(&session.image_endpoints, None, interface);
            let _ = keystone::image_endpoint(&session.image_endpoints, Some("RegionOne"), interface);
        }
    }
});
