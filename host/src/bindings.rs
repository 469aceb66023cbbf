//! Host-side types and call glue generated from the WIT contract. The world is the shipped
//! one (`image-provider`: the typed `lifecycle` and `membership` and the JSON `resource`
//! face); the runtime links each export on its own, so a component exporting only
//! `lifecycle` (the world `lifecycle-provider`) runs too.
//!
//! Without the `runtime` feature there is no wasmtime: the records are the same WIT's
//! `types` interface as plain Rust types (wit-bindgen's), with the same names and fields.

#[cfg(feature = "runtime")]
wasmtime::component::bindgen!({
    world: "image-provider",
    path: "../wit",
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize],
});

#[cfg(not(feature = "runtime"))]
wit_bindgen::generate!({
    inline: "
        package openstack:image-host;
        world records {
            import openstack:image/types@0.1.0;
        }
    ",
    path: "../wit",
    world: "openstack:image-host/records",
    generate_all,
    additional_derives: [serde::Serialize, serde::Deserialize],
});

#[cfg(feature = "runtime")]
pub use exports::openstack::image::lifecycle::{Guest as Lifecycle, GuestIndices as LifecycleIndices};
#[cfg(feature = "runtime")]
pub use exports::openstack::image::membership::{Guest as Membership, GuestIndices as MembershipIndices};
#[cfg(feature = "runtime")]
pub use exports::openstack::image::resource::{Guest as JsonFace, GuestIndices as JsonFaceIndices};
pub use openstack::image::types::{
    Action, ApplicationCredentialAuth, Cloud, Credentials, Endpoint, Error as GuestError, ImageQuery,
    ImageSpec, ImageState, MembershipSpec, MembershipState, PasswordAuth, Plan, ProjectScope, Session,
    Timeouts,
};

// `From` conversions between the documents and these types, from the documents' field lists.
use openstack_image_documents::convert_records;
openstack_image_documents::image_records!(convert_records, crate::bindings::openstack::image::types);
openstack_image_documents::membership_records!(convert_records, crate::bindings::openstack::image::types);
openstack_image_documents::cloud_records!(convert_records, crate::bindings::openstack::image::types);
