//! Generated gRPC bindings: Terraform's plugin protocol 6.5 with 6.8's write-only attribute
//! additions (`tfplugin6`) and go-plugin's controller (`plugin`).

/// Terraform's plugin protocol, version 6.5 (a superset of the 6.0 that Terraform 1.0 speaks)
/// plus 6.8's `Schema.Attribute.write_only` and `ClientCapabilities` in
/// `ValidateResourceConfig` (Terraform 1.11); older clients ignore those fields.
#[allow(clippy::all, missing_docs)]
pub mod tfplugin6 {
    tonic::include_proto!("tfplugin6");
}

/// go-plugin's controller service.
#[allow(clippy::all, missing_docs)]
pub mod go_plugin {
    tonic::include_proto!("plugin");
}
