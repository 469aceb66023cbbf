//! The `openstack-image` host: the sandbox that runs the image component, and everything
//! around it — spec, state and cloud configuration, plans, progress. The binary
//! (`src/main.rs`) is its command line; the fuzz targets (`fuzz/`) use the parsers.
//!
//! The `runtime` feature (on by default) is the sandbox and everything it needs: wasmtime,
//! WASI, the HTTP transport and the embedded component. Without it only the pure parts are
//! built (spec, state and cloud configuration, plans, reports), as the fuzz targets use them.

#[cfg(feature = "runtime")]
pub mod auth;
pub mod bindings;
#[cfg(feature = "runtime")]
pub mod cli;
pub mod cloud;
#[cfg(feature = "runtime")]
pub mod engine;
pub mod exit;
#[cfg(feature = "runtime")]
pub mod grants;
#[cfg(feature = "runtime")]
pub mod guest_log;
#[cfg(feature = "runtime")]
pub mod image_cache;
#[cfg(feature = "runtime")]
pub mod memberships;
#[cfg(feature = "runtime")]
pub mod network;
pub mod plan;
pub mod progress;
pub mod report;
#[cfg(feature = "runtime")]
pub mod runtime;
#[cfg(feature = "runtime")]
pub mod sandbox;
pub mod spec;
pub mod state;
#[cfg(feature = "runtime")]
pub mod transport;
