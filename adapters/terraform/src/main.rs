//! The provider binary `terraform-provider-openstackimage`: the provider over the embedded
//! component, sandboxed as the `openstack-image` command runs it.

use std::process::ExitCode;

use terraform_provider_openstackimage::component::SandboxBackend;

fn main() -> ExitCode {
    match SandboxBackend::new() {
        Ok(backend) => terraform_provider_openstackimage::run(backend),
        Err(err) => {
            eprintln!("terraform-provider-openstackimage: cannot load the component: {err}");
            ExitCode::FAILURE
        }
    }
}
