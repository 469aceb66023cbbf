//! State files: any bytes are a state or a clear error, never a panic; a state that loads
//! saves and loads back to the same state.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openstack_image::state::{State, StateFileExt};
use openstack_image_fuzz::scratch_dir;

fuzz_target!(|data: &[u8]| {
    let path = scratch_dir().join("state.json");
    std::fs::write(&path, data).expect("write the input");
    let Ok(state) = State::load(&path) else {
        return;
    };
    let saved = scratch_dir().join("saved.json");
    state.save(&saved).expect("a loaded state saves");
    let again = State::load(&saved).expect("a saved state loads");
    let saved_again = scratch_dir().join("saved-again.json");
    again.save(&saved_again).expect("a loaded state saves");
    assert_eq!(
        std::fs::read(&saved).unwrap(),
        std::fs::read(&saved_again).unwrap(),
        "save and load round-trip"
    );
});
