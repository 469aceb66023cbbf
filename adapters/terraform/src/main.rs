//! The provider binary `terraform-provider-openstackimage`.
//!
//! The component runtime (the host library's sandbox) plugs in as a [`Backend`]. This build
//! links none yet, so Terraform gets a clear error instead of a schema.

use std::process::ExitCode;

use serde_json::Value;
use terraform_provider_openstackimage::{Backend, CloudConfig, ComponentError, Function};

fn main() -> ExitCode {
    terraform_provider_openstackimage::run(Unlinked)
}

/// The answer of a build without a component runtime.
struct Unlinked;

fn unlinked() -> ComponentError {
    ComponentError::new(
        "unavailable",
        "this build of terraform-provider-openstackimage has no component runtime linked in",
    )
}

impl Backend for Unlinked {
    async fn schema(&self) -> Result<Value, ComponentError> {
        Err(unlinked())
    }

    async fn configure(&self, _config: CloudConfig) -> Result<(), ComponentError> {
        Err(unlinked())
    }

    async fn call(&self, _function: Function, _request: Value) -> Result<Value, ComponentError> {
        Err(unlinked())
    }
}
