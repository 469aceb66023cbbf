//! The `openstack-image` host: the sandbox that runs the image component, and everything
//! around it — spec, state and cloud configuration, plans, progress. The binary
//! (`src/main.rs`) is its command line; the fuzz targets (`fuzz/`) use the parsers.

pub mod bindings;
pub mod cloud;
pub mod clouds_yaml;
pub mod engine;
pub mod exit;
pub mod guest_log;
pub mod plan;
pub mod policy;
pub mod progress;
pub mod report;
pub mod runtime;
pub mod sandbox;
pub mod session;
pub mod spec;
pub mod state;
pub mod transport;
