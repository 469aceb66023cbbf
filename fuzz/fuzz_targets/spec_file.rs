//! Spec files: any text, YAML or JSON, is either a spec or an error — never a panic; a spec
//! that parses once parses the same way again.

#![no_main]

use libfuzzer_sys::fuzz_target;
use openstack_image::spec::SpecFile;

fuzz_target!(|data: &[u8]| {
    let Some((&flag, text)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let json = flag & 1 == 1;
    let base = std::path::Path::new("/fuzz/specs");
    if let Ok(spec) = SpecFile::parse(text, json, base) {
        let again = SpecFile::parse(text, json, base).expect("parses again");
        assert_eq!(
            format!("{:?}", spec.images),
            format!("{:?}", again.images),
            "parsing is deterministic"
        );
    }
});
