//! Rust types and export glue generated from the WIT contract.

wit_bindgen::generate!({
    world: "image-provider",
    path: "../wit",
    additional_derives: [PartialEq],
    pub_export_macro: true,
});
