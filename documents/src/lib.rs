//! The documents of the OpenStack image resource, each defined once: the spec (an image's
//! inputs), the state (inputs as applied plus what Glance computed), the cloud (a clouds.yaml
//! cloud entry) and the state file. Everything that reads or writes them uses these types: the
//! host's spec file parser, state file and `show`, the guest's JSON face; the JSON Schema the
//! component publishes is generated from them ([`schema::schema`]).
//!
//! # One field, written once
//!
//! An image field lives in the WIT record and in one entry of [`image_records!`]. That list
//! declares the document type with its serde and schema attributes, and it drives
//! [`convert_records!`], which each side invokes with the path of its own generated WIT
//! module (`image_records!(convert_records, crate::types)`): wit-bindgen's types in the guest
//! and wasmtime bindgen's in the host are different Rust types of the same records, and both
//! get `From` conversions from the one list. A macro callback was chosen over serde derives on
//! the generated types because the documents' shapes differ from the records' on purpose
//! (properties as objects, durations and counts as people write them, secrets never written),
//! and over a proc-macro crate because a `macro_rules!` list needs no build step of its own.
//! The typed cloud is declared the same way ([`cloud_records!`]).
//!
//! Builds natively and for wasm32-wasip2; pure-Rust dependencies only.

pub mod cloud;
pub mod clouds_yaml;
pub mod failure;
#[cfg(feature = "fixtures")]
pub mod fixtures;
pub mod records;
pub mod resolution;
pub mod schema;
pub mod spec;
pub mod state;
pub mod state_file;
pub mod text;

pub use records::{
    EndpointRecord, FingerprintDoc, ImageDoc, ImportResultDoc, MembershipDoc, MembershipSpecDoc, QueryDoc,
    SessionRecord, SpecDoc, TimeoutsDoc,
};
