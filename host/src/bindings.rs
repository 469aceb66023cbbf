//! Host-side types and call glue generated from the WIT contract.

wasmtime::component::bindgen!({
    world: "lifecycle-provider",
    path: "../wit",
    exports: { default: async },
    additional_derives: [serde::Serialize, serde::Deserialize],
});

pub use openstack::image::types::{
    Action, ApplicationCredentialAuth, Cloud, Credentials, Error as GuestError, ImageSpec, ImageState,
    PasswordAuth, Plan, ProjectScope, Session, Timeouts,
};
