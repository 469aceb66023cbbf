//! Host-side types and call glue generated from the WIT contract. The world is the shipped
//! one (`image-provider`: the typed `lifecycle` and the JSON `resource` face); the runtime
//! links each export on its own, so a component exporting only `lifecycle` (the world
//! `lifecycle-provider`) runs too.

wasmtime::component::bindgen!({
    world: "image-provider",
    path: "../wit",
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize],
});

pub use exports::openstack::image::lifecycle::{Guest as Lifecycle, GuestIndices as LifecycleIndices};
pub use exports::openstack::image::resource::{Guest as JsonFace, GuestIndices as JsonFaceIndices};
pub use openstack::image::types::{
    Action, ApplicationCredentialAuth, Cloud, Credentials, Error as GuestError, ImageQuery, ImageSpec,
    ImageState, PasswordAuth, Plan, ProjectScope, Session, Timeouts,
};

// `From` conversions between the documents and these types, from the documents' field lists.
use openstack_image_documents::convert_records;
openstack_image_documents::image_records!(convert_records, crate::bindings::openstack::image::types);
openstack_image_documents::cloud_records!(convert_records, crate::bindings::openstack::image::types);
