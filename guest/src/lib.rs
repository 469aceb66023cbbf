//! The OpenStack Glance image resource: every lifecycle decision and every cloud call.
//!
//! Pure modules (`validate`, `diff`, `patch`, `glance`) work on plain data and are
//! unit-tested natively (Keystone's requests and answers are the `openstack_image_keystone`
//! crate's, shared with the bundled host); `wasi_http` is the only module that touches WASI HTTP, and
//! `component` is the thin wit-bindgen glue.

mod bindings;
pub mod decompress;
pub mod diff;
pub mod find;
pub mod glance;
pub mod glance_fields;
pub mod http;
pub mod inspect;
pub mod json_face;
pub mod lifecycle;
pub mod membership;
pub mod metadefs;
pub mod patch;
pub mod placement;
pub mod progress;
pub mod retry;
pub mod source;
pub mod upload;
pub mod validate;

#[cfg(target_arch = "wasm32")]
mod component;
#[cfg(target_arch = "wasm32")]
mod wasi_http;

/// The contract's records (generated from `wit/image.wit`).
pub mod types {
    pub use crate::bindings::openstack::image::types::*;
}

// `From` conversions between the documents and these types, from the documents' field lists.
use openstack_image_documents::convert_records;
openstack_image_documents::image_records!(convert_records, crate::types);
openstack_image_documents::membership_records!(convert_records, crate::types);
openstack_image_documents::cloud_records!(convert_records, crate::types);
