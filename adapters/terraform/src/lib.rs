//! Terraform/OpenTofu provider for the openstack-image component: the resource and data source
//! `openstack_images_image_v2`, spoken over Terraform's plugin protocol 6, with everything
//! about images (schema, validation, diff, lifecycle) left to the component behind a
//! [`Backend`].

pub mod backend;
pub mod component;
pub mod diagnostics;
pub mod document;
pub mod duration;
pub mod log;
pub mod mtls;
pub mod plan;
pub mod plugin;
pub mod proto;
pub mod provider;
pub mod provider_config;
pub mod schema;
pub mod value;

pub use backend::{Backend, CloudConfig, ComponentError, FieldError, Function};
pub use plugin::run;
