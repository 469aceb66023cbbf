//! The tfplugin6 `Provider` service: each RPC decodes Terraform's values, asks the component
//! (through the [`Backend`]) and answers in Terraform's terms. Every failure the user can act on
//! is a diagnostic in the response, never a gRPC error, and no diagnostic carries a secret.

use std::collections::BTreeMap;
use std::sync::Mutex;

use serde_json::{Value as Json, json};
use tokio::sync::OnceCell;
use tonic::{Request, Response, Status};

use crate::backend::{Backend, ComponentError, Function};
use crate::diagnostics::{self, Path, Secrets};
use crate::document;
use crate::log;
use crate::plan::{Decision, plan};
use crate::proto::tfplugin6 as tf;
use crate::provider_config;
use crate::schema::{Mode, Schema};
use crate::value::{Type, Value};

/// The image resource's and the data source's type name, as in terraform-provider-openstack.
pub const TYPE_NAME: &str = "openstack_images_image_v2";
/// The owner's side of a membership (the owner offers the image to a project).
pub const ACCESS_TYPE_NAME: &str = "openstack_images_image_access_v2";
/// The member's side of a membership (the member project answers the offer).
pub const ACCEPT_TYPE_NAME: &str = "openstack_images_image_access_accept_v2";

type Diagnostics = Vec<tf::Diagnostic>;

/// Which of the component's resources a Terraform resource type is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Image,
    Membership,
}

/// One resource type: its schema, the component resource behind it and the inputs the type
/// sets itself.
struct Resource {
    schema: Schema,
    kind: Kind,
    /// The inputs the component's view of this type fixes (a membership's `side`), added to
    /// every spec and state document sent.
    fixed: serde_json::Map<String, Json>,
}

impl Resource {
    /// The component function that does `function`'s work for this resource.
    fn function(&self, function: Function) -> Function {
        match (self.kind, function) {
            (Kind::Image, function) => function,
            (Kind::Membership, Function::Check) => Function::CheckMembership,
            (Kind::Membership, Function::Diff) => Function::DiffMembership,
            (Kind::Membership, Function::Create) => Function::CreateMembership,
            (Kind::Membership, Function::Read) => Function::ReadMembership,
            (Kind::Membership, Function::Update) => Function::UpdateMembership,
            (Kind::Membership, Function::Delete) => Function::DeleteMembership,
            (Kind::Membership, function) => function,
        }
    }

    /// A spec or state document with the type's fixed inputs.
    fn with_fixed(&self, mut doc: Json) -> Json {
        if let Json::Object(map) = &mut doc {
            map.extend(self.fixed.clone());
        }
        doc
    }

    /// The state document of a Terraform state value.
    fn state(&self, value: &Value) -> Json {
        self.with_fixed(document::state(&self.schema, value))
    }

    /// The spec document of a Terraform configuration.
    fn input(&self, config: &Value) -> Result<Json, Diagnostics> {
        document::input(&self.schema, config)
            .map(|spec| self.with_fixed(spec))
            .map_err(problem_diagnostics)
    }
}

/// The resource and data source schemas, derived once from the component's.
struct Schemas {
    /// By type name.
    resources: Vec<(&'static str, Resource)>,
    data_source: Schema,
}

/// The provider service over a backend.
pub struct Provider<B> {
    backend: B,
    schemas: OnceCell<Schemas>,
    /// The provider block's secrets, kept out of every later diagnostic.
    secrets: Mutex<Secrets>,
}

impl<B: Backend> Provider<B> {
    pub fn new(backend: B) -> Provider<B> {
        Provider {
            backend,
            schemas: OnceCell::new(),
            secrets: Mutex::new(Secrets::default()),
        }
    }

    async fn schemas(&self) -> Result<&Schemas, Diagnostics> {
        self.schemas
            .get_or_try_init(|| async {
                let component = self.backend.schema().await.map_err(|err| {
                    vec![diagnostics::error(
                        "Cannot load the image component",
                        format!("{} ({})", err.message, err.kind),
                        None,
                    )]
                })?;
                let derive = || -> Result<Schemas, crate::schema::SchemaError> {
                    let membership = |def: &str| -> Result<Resource, crate::schema::SchemaError> {
                        Ok(Resource {
                            schema: Schema::view(&component, def)?,
                            kind: Kind::Membership,
                            fixed: Schema::fixed(&component, def)?,
                        })
                    };
                    let image = Resource {
                        schema: Schema::resource(&component)?,
                        kind: Kind::Image,
                        fixed: serde_json::Map::new(),
                    };
                    Ok(Schemas {
                        resources: vec![
                            (TYPE_NAME, image),
                            (ACCESS_TYPE_NAME, membership("membership_offer")?),
                            (ACCEPT_TYPE_NAME, membership("membership_answer")?),
                        ],
                        data_source: Schema::data_source(&component)?,
                    })
                };
                derive().map_err(|err| {
                    vec![diagnostics::error(
                        "Unusable image component",
                        err.to_string(),
                        None,
                    )]
                })
            })
            .await
    }

    /// The resource type Terraform asks about.
    async fn resource(&self, type_name: &str) -> Result<&Resource, Diagnostics> {
        let schemas = self.schemas().await?;
        schemas
            .resources
            .iter()
            .find(|(name, _)| *name == type_name)
            .map(|(_, resource)| resource)
            .ok_or_else(|| unknown_type(type_name))
    }

    async fn data_source(&self, type_name: &str) -> Result<&Schema, Diagnostics> {
        if type_name != TYPE_NAME {
            return Err(unknown_type(type_name));
        }
        Ok(&self.schemas().await?.data_source)
    }

    /// Calls the component; its error becomes diagnostics on the attributes it names.
    async fn call(&self, function: Function, request: Json, schema: &Schema) -> Result<Json, Diagnostics> {
        log::debug(&format!("calling the component's {}", function.name()));
        self.backend.call(function, request).await.map_err(|err| {
            log::debug(&format!(
                "the component's {} failed: {}",
                function.name(),
                err.kind
            ));
            diagnostics::from_component(&err, schema)
        })
    }

    /// Diagnostics with the provider block's secrets and `more` replaced.
    fn redacted(&self, diagnostics: Diagnostics, more: &Secrets) -> Diagnostics {
        let mut secrets = self.secrets.lock().expect("secrets lock").clone();
        secrets.extend(more);
        secrets.redact_all(diagnostics)
    }

    async fn plan_resource(
        &self,
        req: &tf::plan_resource_change::Request,
    ) -> Result<tf::plan_resource_change::Response, Diagnostics> {
        let resource = self.resource(&req.type_name).await?;
        let schema = &resource.schema;
        let ty = schema.object_type();
        let prior = decode(req.prior_state.as_ref(), &ty)?;
        let config = decode(req.config.as_ref(), &ty)?;
        if config.is_null() {
            // Destroying: nothing to plan.
            return Ok(planned_response(Value::Null, &ty, Vec::new(), &req.prior_private));
        }
        let mut problems = write_only_conflicts(schema, &config);
        problems.extend(problem_diagnostics(document::duration_problems(schema, &config)));
        if !problems.is_empty() {
            return Err(problems);
        }
        let result = if !config.is_known() {
            let decision = if prior.is_null() {
                Decision::Create { checked: None }
            } else {
                Decision::Undecided
            };
            log::debug("planning with values not known yet; the component decides at apply");
            plan(schema, &prior, &config, decision)
        } else {
            let spec = resource.input(&config)?;
            let checked = self
                .call(
                    resource.function(Function::Check),
                    json!({ "spec": spec }),
                    schema,
                )
                .await?;
            let checked = checked.get("spec").cloned().unwrap_or(Json::Null);
            // The properties the apply would send, against the cloud's own definitions: a
            // new image's all, an existing one's changed values.
            let before = if prior.is_null() {
                Json::Null
            } else {
                document::state(schema, &prior)["properties"].clone()
            };
            if let Some(sent) = sent_properties(&spec, &before) {
                let mut sending = spec.clone();
                sending["properties"] = sent;
                self.call(Function::CheckWithCloud, json!({ "spec": sending }), schema)
                    .await?;
            }
            if prior.is_null() {
                plan(
                    schema,
                    &prior,
                    &config,
                    Decision::Create {
                        checked: Some(&checked),
                    },
                )
            } else {
                let request = json!({ "spec": spec, "state": resource.state(&prior) });
                let diff = self
                    .call(resource.function(Function::Diff), request, schema)
                    .await?;
                let replaces: Vec<String> = diff
                    .get("replaces")
                    .and_then(Json::as_array)
                    .map(|names| {
                        names
                            .iter()
                            .filter_map(Json::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default();
                let decision = match diff.get("action").and_then(Json::as_str) {
                    Some("no-op") => Decision::NoOp,
                    Some("update") => Decision::Update { checked: &checked },
                    Some("replace") => Decision::Replace {
                        checked: &checked,
                        replaces: &replaces,
                    },
                    other => {
                        return Err(vec![diagnostics::error(
                            "The image component answered diff without a known action",
                            format!("action {other:?}; expected no-op, update or replace"),
                            None,
                        )]);
                    }
                };
                log::debug(&format!(
                    "diff: {}",
                    diff.get("action").and_then(Json::as_str).unwrap_or_default()
                ));
                plan(schema, &prior, &config, decision)
            }
        };
        let result = result.map_err(|e| vec![component_answer_error(&e.0)])?;
        let requires_replace = result
            .requires_replace
            .iter()
            .map(|name| Path::attribute(name).to_proto())
            .collect();
        Ok(planned_response(
            schema.without_write_only(result.planned),
            &ty,
            requires_replace,
            &req.prior_private,
        ))
    }

    async fn apply_resource(
        &self,
        req: &tf::apply_resource_change::Request,
    ) -> (Option<tf::DynamicValue>, Diagnostics) {
        let resource = match self.resource(&req.type_name).await {
            Ok(resource) => resource,
            Err(diags) => return (req.prior_state.clone(), diags),
        };
        let schema = &resource.schema;
        let ty = schema.object_type();
        let decoded = (|| {
            Ok::<_, Diagnostics>((
                decode(req.prior_state.as_ref(), &ty)?,
                decode(req.planned_state.as_ref(), &ty)?,
                decode(req.config.as_ref(), &ty)?,
            ))
        })();
        let (prior, planned, config) = match decoded {
            Ok(values) => values,
            Err(diags) => return (req.prior_state.clone(), diags),
        };
        let unchanged = || Some(encode(&schema.without_write_only(prior.clone()), &ty));
        if planned.is_null() && resource.kind == Kind::Membership {
            let request = json!({ "state": resource.state(&prior) });
            return match self.call(Function::DeleteMembership, request, schema).await {
                Ok(_) => (Some(encode(&Value::Null, &ty)), Vec::new()),
                Err(diags) => (unchanged(), diags),
            };
        }
        if planned.is_null() {
            let state = document::state(schema, &prior);
            let mut request = json!({ "id": state.get("id") });
            if let Some(region) = state.get("region") {
                request["region"] = region.clone();
            }
            // The delete request's timeout is the one the image's state records.
            if let Some(timeout) = state.pointer("/timeouts/delete") {
                request["timeout_seconds"] = timeout.clone();
            }
            return match self.call(Function::Delete, request, schema).await {
                Ok(_) => (Some(encode(&Value::Null, &ty)), Vec::new()),
                Err(diags) => (unchanged(), diags),
            };
        }
        let spec = match resource.input(&config) {
            Ok(spec) => spec,
            Err(diags) => return (unchanged(), diags),
        };
        let (function, request) = if prior.is_null() {
            (Function::Create, json!({ "spec": spec }))
        } else {
            (
                Function::Update,
                json!({ "state": resource.state(&prior), "spec": spec }),
            )
        };
        let function = resource.function(function);
        let doc = match self.call(function, request, schema).await {
            Ok(doc) => doc,
            Err(diags) => return (unchanged(), diags),
        };
        // Configured and planned-known inputs stay as planned (Terraform requires it); the
        // component's state supplies the rest.
        let keep = |attr: &crate::schema::Attribute| {
            attr.mode != Mode::Computed && planned.get(&attr.name).is_known()
        };
        // Write-only values (read from `config` for the spec) are never kept.
        match document::from_state(schema, &doc, &planned, keep) {
            Ok(new) => (Some(encode(&schema.without_write_only(new), &ty)), Vec::new()),
            // The image exists but its state cannot be read: keep the prior state so that a
            // later refresh finds it.
            Err(e) => (unchanged(), vec![component_answer_error(&e.0)]),
        }
    }

    async fn refresh(
        &self,
        req: &tf::read_resource::Request,
    ) -> Result<Option<tf::DynamicValue>, Diagnostics> {
        let resource = self.resource(&req.type_name).await?;
        let schema = &resource.schema;
        let ty = schema.object_type();
        let prior = decode(req.current_state.as_ref(), &ty)?;
        if prior.is_null() {
            return Ok(req.current_state.clone());
        }
        let state = document::state(schema, &prior);
        let mut request = json!({ "id": state.get("id") });
        if resource.kind == Kind::Membership {
            // The id (`IMAGE_ID/MEMBER_ID`, or an import's `IMAGE_ID` for the caller's
            // project) names the membership; the spec adds the side and the region.
            request["spec"] = resource.with_fixed(json!({ "region": state.get("region") }));
        } else if !document::only_id(schema, &prior) {
            // After an import the state holds only the id: the component then reads the image
            // as one it adopts (every property managed).
            request["state"] = state;
        }
        let doc = self
            .call(resource.function(Function::Read), request, schema)
            .await?;
        if doc.is_null() {
            log::info("the image or membership is gone; removing it from the state");
            return Ok(Some(encode(&Value::Null, &ty)));
        }
        let new = document::from_state(schema, &doc, &prior, |_| false)
            .map_err(|e| vec![component_answer_error(&e.0)])?;
        Ok(Some(encode(&schema.without_write_only(new), &ty)))
    }

    async fn read_data(&self, req: &tf::read_data_source::Request) -> Result<tf::DynamicValue, Diagnostics> {
        let schema = self.data_source(&req.type_name).await?;
        let ty = schema.object_type();
        let config = decode(req.config.as_ref(), &ty)?;
        let query = document::input(schema, &config).map_err(problem_diagnostics)?;
        let doc = self
            .call(Function::Find, json!({ "query": query }), schema)
            .await?;
        if doc.is_null() {
            return Err(vec![diagnostics::error(
                "No image found",
                "No image matches the data source's arguments.",
                None,
            )]);
        }
        let found = document::from_state(schema, &doc, &config, |_| false)
            .map_err(|e| vec![component_answer_error(&e.0)])?;
        Ok(encode(&found, &ty))
    }
}

fn unknown_type(type_name: &str) -> Diagnostics {
    vec![diagnostics::error(
        "Unknown type",
        format!(
            "this provider has the resources {TYPE_NAME}, {ACCESS_TYPE_NAME} and {ACCEPT_TYPE_NAME} and the data source {TYPE_NAME}, not {type_name}"
        ),
        None,
    )]
}

/// A write-only attribute set alongside the input it stands for (both known: an unknown one
/// may still turn out null, and the plan, where both are known, looks again).
fn write_only_conflicts(schema: &Schema, config: &Value) -> Diagnostics {
    let set = |v: &Value| !matches!(v, Value::Null | Value::Unknown);
    schema
        .write_only_set(config)
        .filter(|attr| set(config.get(&attr.name)))
        .filter_map(|attr| {
            let target = attr.write_only_of.as_deref()?;
            set(config.get(target)).then(|| {
                diagnostics::error(
                    "Conflicting configuration arguments",
                    format!(
                        "\"{}\": conflicts with {target}. Set one of them: {target} (sensitive, \
                         kept in the state) or {} (write-only, never in the plan or the state).",
                        attr.name, attr.name
                    ),
                    Some(&Path::attribute(&attr.name)),
                )
            })
        })
        .collect()
}

/// Write-only attributes a client cannot handle (`write_only_attributes_allowed` unset: an
/// older Terraform would plan and store the value like any other), and conflicts.
fn write_only_problems(schema: &Schema, config: &Value, allowed: bool) -> Diagnostics {
    let mut problems = Vec::new();
    if !allowed {
        problems.extend(schema.write_only_set(config).map(|attr| {
            let instead = attr
                .write_only_of
                .as_deref()
                .map(|target| format!(" Use {target} instead (sensitive; the component never stores it, Terraform keeps it in the state)."))
                .unwrap_or_default();
            diagnostics::error(
                "Write-only attribute not supported by this Terraform",
                format!(
                    "{} is write-only: it needs Terraform 1.11 or later (or an OpenTofu release \
                     with write-only attribute support), which never writes its value to the \
                     plan or the state. This client did not announce write-only support.{instead}",
                    attr.name
                ),
                Some(&Path::attribute(&attr.name)),
            )
        }));
    }
    problems.extend(write_only_conflicts(schema, config));
    problems
}

fn component_answer_error(detail: &str) -> tf::Diagnostic {
    diagnostics::error(
        "The image component's answer does not fit its schema",
        detail,
        None,
    )
}

fn problem_diagnostics(problems: Vec<document::Problem>) -> Diagnostics {
    problems
        .into_iter()
        .map(|p| {
            let summary = match p.path.0.first() {
                Some(diagnostics::Step::Attribute(name)) => format!("Invalid {name}"),
                _ => "Invalid value".to_string(),
            };
            diagnostics::error(summary, p.message, Some(&p.path))
        })
        .collect()
}

/// A `DynamicValue` as a value of `ty`: MessagePack normally, JSON when that is what came.
fn decode(value: Option<&tf::DynamicValue>, ty: &Type) -> Result<Value, Diagnostics> {
    let failed = |e: String| vec![diagnostics::error("Cannot read a value from Terraform", e, None)];
    match value {
        Some(v) if !v.msgpack.is_empty() => Value::from_msgpack(&v.msgpack, ty).map_err(|e| failed(e.0)),
        Some(v) if !v.json.is_empty() => {
            let json: Json = serde_json::from_slice(&v.json).map_err(|e| failed(e.to_string()))?;
            Value::from_json(&json, ty).map_err(|e| failed(e.0))
        }
        _ => Ok(Value::Null),
    }
}

fn encode(value: &Value, ty: &Type) -> tf::DynamicValue {
    tf::DynamicValue {
        msgpack: value.to_msgpack(ty),
        json: Vec::new(),
    }
}

/// The spec's properties whose values differ from `before` (the image's properties, or null
/// for a new image), or `None` when there are none.
fn sent_properties(spec: &Json, before: &Json) -> Option<Json> {
    let sent: serde_json::Map<String, Json> = spec
        .get("properties")
        .and_then(Json::as_object)?
        .iter()
        .filter(|(key, value)| before.get(key.as_str()) != Some(*value))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    (!sent.is_empty()).then_some(Json::Object(sent))
}

fn planned_response(
    planned: Value,
    ty: &Type,
    requires_replace: Vec<tf::AttributePath>,
    private: &[u8],
) -> tf::plan_resource_change::Response {
    tf::plan_resource_change::Response {
        planned_state: Some(encode(&planned, ty)),
        requires_replace,
        planned_private: private.to_vec(),
        ..Default::default()
    }
}

fn capabilities() -> tf::ServerCapabilities {
    tf::ServerCapabilities {
        plan_destroy: false,
        get_provider_schema_optional: false,
        move_resource_state: false,
    }
}

fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[tonic::async_trait]
impl<B: Backend> tf::provider_server::Provider for Provider<B> {
    async fn get_metadata(
        &self,
        _req: Request<tf::get_metadata::Request>,
    ) -> Result<Response<tf::get_metadata::Response>, Status> {
        Ok(Response::new(tf::get_metadata::Response {
            server_capabilities: Some(capabilities()),
            resources: [TYPE_NAME, ACCESS_TYPE_NAME, ACCEPT_TYPE_NAME]
                .into_iter()
                .map(|name| tf::get_metadata::ResourceMetadata {
                    type_name: name.into(),
                })
                .collect(),
            data_sources: vec![tf::get_metadata::DataSourceMetadata {
                type_name: TYPE_NAME.into(),
            }],
            ..Default::default()
        }))
    }

    async fn get_provider_schema(
        &self,
        _req: Request<tf::get_provider_schema::Request>,
    ) -> Result<Response<tf::get_provider_schema::Response>, Status> {
        let mut response = tf::get_provider_schema::Response {
            provider: Some(provider_config::schema()),
            server_capabilities: Some(capabilities()),
            ..Default::default()
        };
        match self.schemas().await {
            Ok(schemas) => {
                response.resource_schemas = schemas
                    .resources
                    .iter()
                    .map(|(name, resource)| (name.to_string(), resource.schema.to_proto()))
                    .collect();
                response.data_source_schemas =
                    [(TYPE_NAME.to_string(), schemas.data_source.to_proto())].into();
            }
            Err(diags) => response.diagnostics = diags,
        }
        Ok(Response::new(response))
    }

    async fn validate_provider_config(
        &self,
        req: Request<tf::validate_provider_config::Request>,
    ) -> Result<Response<tf::validate_provider_config::Response>, Status> {
        let req = req.into_inner();
        let diagnostics = match decode(req.config.as_ref(), &provider_config::object_type()) {
            Ok(config) => {
                let secrets = provider_config::secrets(&config, &process_env);
                let diags = provider_config::validate(&config, &process_env)
                    .into_iter()
                    .map(|(path, message)| {
                        diagnostics::error("Invalid provider setting", message, path.as_ref())
                    })
                    .collect();
                secrets.redact_all(diags)
            }
            Err(diags) => diags,
        };
        Ok(Response::new(tf::validate_provider_config::Response {
            diagnostics,
        }))
    }

    async fn validate_resource_config(
        &self,
        req: Request<tf::validate_resource_config::Request>,
    ) -> Result<Response<tf::validate_resource_config::Response>, Status> {
        let req = req.into_inner();
        let write_only_allowed = req
            .client_capabilities
            .as_ref()
            .is_some_and(|c| c.write_only_attributes_allowed);
        let result = async {
            let resource = self.resource(&req.type_name).await?;
            let schema = &resource.schema;
            let config = decode(req.config.as_ref(), &schema.object_type())?;
            let secrets = Secrets::of(schema, &config);
            let mut problems = write_only_problems(schema, &config, write_only_allowed);
            problems.extend(problem_diagnostics(document::duration_problems(schema, &config)));
            if !problems.is_empty() || !config.is_known() {
                return Ok::<_, Diagnostics>(self.redacted(problems, &secrets));
            }
            // `check` needs no cloud, so `terraform validate` already sees the component's
            // verdict.
            let spec = resource.input(&config)?;
            match self
                .call(
                    resource.function(Function::Check),
                    json!({ "spec": spec }),
                    schema,
                )
                .await
            {
                Ok(_) => Ok(Vec::new()),
                Err(diags) => Ok(self.redacted(diags, &secrets)),
            }
        }
        .await;
        let diagnostics = result.unwrap_or_else(|diags| diags);
        Ok(Response::new(tf::validate_resource_config::Response {
            diagnostics,
        }))
    }

    async fn validate_data_resource_config(
        &self,
        req: Request<tf::validate_data_resource_config::Request>,
    ) -> Result<Response<tf::validate_data_resource_config::Response>, Status> {
        let req = req.into_inner();
        let result = async {
            let schema = self.data_source(&req.type_name).await?;
            let config = decode(req.config.as_ref(), &schema.object_type())?;
            Ok::<_, Diagnostics>(problem_diagnostics(document::duration_problems(schema, &config)))
        }
        .await;
        let diagnostics = result.unwrap_or_else(|diags| diags);
        Ok(Response::new(tf::validate_data_resource_config::Response {
            diagnostics,
        }))
    }

    async fn upgrade_resource_state(
        &self,
        req: Request<tf::upgrade_resource_state::Request>,
    ) -> Result<Response<tf::upgrade_resource_state::Response>, Status> {
        let req = req.into_inner();
        let result = async {
            let schema = &self.resource(&req.type_name).await?.schema;
            let ty = schema.object_type();
            if req.version > 0 {
                return Err(vec![diagnostics::error(
                    "State from a newer provider",
                    format!("the state was written with schema version {}; this provider writes version 0. Use the provider version that wrote it.", req.version),
                    None,
                )]);
            }
            let raw = req.raw_state.unwrap_or_default();
            if raw.json.is_empty() {
                return Err(vec![diagnostics::error(
                    "Unsupported state format",
                    "the state has no JSON form (flatmap state comes from Terraform 0.11, which this provider never served)",
                    None,
                )]);
            }
            // Version 0 is the only version: reading the JSON through the current type
            // drops attributes a component update removed and adds the new ones as null.
            let value = decode(Some(&tf::DynamicValue { msgpack: Vec::new(), json: raw.json }), &ty)?;
            // A write-only value never belongs in a state (one an older Terraform wrote is
            // dropped).
            Ok(encode(&schema.without_write_only(value), &ty))
        }
        .await;
        let response = match result {
            Ok(state) => tf::upgrade_resource_state::Response {
                upgraded_state: Some(state),
                diagnostics: Vec::new(),
            },
            Err(diagnostics) => tf::upgrade_resource_state::Response {
                upgraded_state: None,
                diagnostics,
            },
        };
        Ok(Response::new(response))
    }

    async fn configure_provider(
        &self,
        req: Request<tf::configure_provider::Request>,
    ) -> Result<Response<tf::configure_provider::Response>, Status> {
        let req = req.into_inner();
        let result = async {
            let config = decode(req.config.as_ref(), &provider_config::object_type())?;
            let secrets = provider_config::secrets(&config, &process_env);
            *self.secrets.lock().expect("secrets lock") = secrets;
            let cloud = provider_config::cloud_config(&config).map_err(|problems| {
                problems
                    .into_iter()
                    .map(|(path, message)| {
                        diagnostics::error("Invalid provider setting", message, Some(&path))
                    })
                    .collect::<Diagnostics>()
            })?;
            log::debug(&format!(
                "configuring the component (clouds.yaml cloud: {}, {} extra allowed hosts)",
                cloud.cloud.as_deref().unwrap_or("none"),
                cloud.allow_hosts.len()
            ));
            self.backend
                .configure(cloud)
                .await
                .map_err(|err: ComponentError| {
                    vec![diagnostics::error(
                        "Cannot configure the image component",
                        format!("{} ({})", err.message, err.kind),
                        None,
                    )]
                })
        }
        .await;
        let diagnostics = self.redacted(result.err().unwrap_or_default(), &Secrets::default());
        Ok(Response::new(tf::configure_provider::Response { diagnostics }))
    }

    async fn read_resource(
        &self,
        req: Request<tf::read_resource::Request>,
    ) -> Result<Response<tf::read_resource::Response>, Status> {
        let req = req.into_inner();
        let response = match self.refresh(&req).await {
            Ok(new_state) => tf::read_resource::Response {
                new_state,
                diagnostics: Vec::new(),
                private: req.private,
            },
            Err(diags) => tf::read_resource::Response {
                new_state: req.current_state.clone(),
                diagnostics: self.redacted(diags, &Secrets::default()),
                private: req.private,
            },
        };
        Ok(Response::new(response))
    }

    async fn plan_resource_change(
        &self,
        req: Request<tf::plan_resource_change::Request>,
    ) -> Result<Response<tf::plan_resource_change::Response>, Status> {
        let req = req.into_inner();
        let response = match self.plan_resource(&req).await {
            Ok(response) => response,
            Err(diags) => {
                let secrets = secrets_of_config(
                    self.resource(&req.type_name).await.ok().map(|r| &r.schema),
                    req.config.as_ref(),
                );
                tf::plan_resource_change::Response {
                    diagnostics: self.redacted(diags, &secrets),
                    ..Default::default()
                }
            }
        };
        Ok(Response::new(response))
    }

    async fn apply_resource_change(
        &self,
        req: Request<tf::apply_resource_change::Request>,
    ) -> Result<Response<tf::apply_resource_change::Response>, Status> {
        let req = req.into_inner();
        let (new_state, diags) = self.apply_resource(&req).await;
        let secrets = secrets_of_config(
            self.resource(&req.type_name).await.ok().map(|r| &r.schema),
            req.config.as_ref(),
        );
        Ok(Response::new(tf::apply_resource_change::Response {
            new_state,
            private: req.planned_private,
            diagnostics: self.redacted(diags, &secrets),
            legacy_type_system: false,
        }))
    }

    async fn import_resource_state(
        &self,
        req: Request<tf::import_resource_state::Request>,
    ) -> Result<Response<tf::import_resource_state::Response>, Status> {
        let req = req.into_inner();
        let result = async {
            let schema = &self.resource(&req.type_name).await?.schema;
            if req.id.trim().is_empty() {
                return Err(vec![diagnostics::error(
                    "Missing image id",
                    "give the Glance image id (a UUID) to import",
                    None,
                )]);
            }
            // Only the id: Terraform reads the rest right after (ReadResource).
            let state: BTreeMap<String, Value> = schema
                .attributes
                .iter()
                .map(|a| {
                    let value = if a.name == "id" {
                        Value::String(req.id.clone())
                    } else {
                        Value::Null
                    };
                    (a.name.clone(), value)
                })
                .collect();
            Ok(tf::import_resource_state::ImportedResource {
                type_name: req.type_name.clone(),
                state: Some(encode(&Value::Map(state), &schema.object_type())),
                private: Vec::new(),
            })
        }
        .await;
        let response = match result {
            Ok(imported) => tf::import_resource_state::Response {
                imported_resources: vec![imported],
                diagnostics: Vec::new(),
            },
            Err(diagnostics) => tf::import_resource_state::Response {
                imported_resources: Vec::new(),
                diagnostics,
            },
        };
        Ok(Response::new(response))
    }

    async fn move_resource_state(
        &self,
        _req: Request<tf::move_resource_state::Request>,
    ) -> Result<Response<tf::move_resource_state::Response>, Status> {
        Err(Status::unimplemented("moving resource state is not supported"))
    }

    async fn read_data_source(
        &self,
        req: Request<tf::read_data_source::Request>,
    ) -> Result<Response<tf::read_data_source::Response>, Status> {
        let req = req.into_inner();
        let response = match self.read_data(&req).await {
            Ok(state) => tf::read_data_source::Response {
                state: Some(state),
                diagnostics: Vec::new(),
            },
            Err(diags) => tf::read_data_source::Response {
                state: None,
                diagnostics: self.redacted(diags, &Secrets::default()),
            },
        };
        Ok(Response::new(response))
    }

    async fn get_functions(
        &self,
        _req: Request<tf::get_functions::Request>,
    ) -> Result<Response<tf::get_functions::Response>, Status> {
        Ok(Response::new(tf::get_functions::Response::default()))
    }

    async fn call_function(
        &self,
        _req: Request<tf::call_function::Request>,
    ) -> Result<Response<tf::call_function::Response>, Status> {
        Err(Status::unimplemented("this provider has no functions"))
    }

    async fn stop_provider(
        &self,
        _req: Request<tf::stop_provider::Request>,
    ) -> Result<Response<tf::stop_provider::Response>, Status> {
        // Operations in flight end on their own: each runs within the image's timeouts, and
        // cutting a create short would leave a half-made image behind.
        log::info("Terraform asked to stop; operations in flight finish within their timeouts");
        Ok(Response::new(tf::stop_provider::Response::default()))
    }
}

/// The secrets in a resource configuration, when it can be read.
fn secrets_of_config(schema: Option<&Schema>, config: Option<&tf::DynamicValue>) -> Secrets {
    schema
        .and_then(|schema| Some(Secrets::of(schema, &decode(config, &schema.object_type()).ok()?)))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::tfplugin6::provider_server::Provider as _;
    use crate::schema::tests::fixture;
    use std::collections::HashMap;

    /// A backend that answers each function with a fixed document and records the requests.
    #[derive(Default)]
    struct Scripted {
        answers: HashMap<&'static str, Result<Json, ComponentError>>,
        requests: Mutex<Vec<(Function, Json)>>,
    }

    impl Scripted {
        fn answering(answers: &[(Function, Result<Json, ComponentError>)]) -> Provider<Scripted> {
            Provider::new(Scripted {
                answers: answers.iter().map(|(f, a)| (f.name(), a.clone())).collect(),
                requests: Mutex::default(),
            })
        }
    }

    impl Backend for Scripted {
        async fn schema(&self) -> Result<Json, ComponentError> {
            Ok(fixture())
        }

        async fn configure(&self, _config: crate::backend::CloudConfig) -> Result<(), ComponentError> {
            Ok(())
        }

        async fn call(&self, function: Function, request: Json) -> Result<Json, ComponentError> {
            self.requests.lock().unwrap().push((function, request));
            self.answers
                .get(function.name())
                .cloned()
                .unwrap_or_else(|| Err(ComponentError::new("unexpected", function.name())))
        }
    }

    fn ty() -> Type {
        crate::schema::tests::resource().object_type()
    }

    fn dynamic(json: Json) -> Option<tf::DynamicValue> {
        Some(encode(&Value::from_json(&json, &ty()).unwrap(), &ty()))
    }

    fn value(dynamic: &Option<tf::DynamicValue>) -> Value {
        decode(dynamic.as_ref(), &ty()).unwrap()
    }

    fn config() -> Json {
        json!({
            "name": "cirros", "container_format": "bare", "disk_format": "qcow2",
            "image_source_url": "https://images.example.org/cirros.img",
            "image_source_password": "hunter22",
        })
    }

    #[tokio::test]
    async fn stored_state_is_upgraded_through_the_current_type() {
        let provider = Scripted::answering(&[]);
        let raw = json!({ "id": "6b0f", "disk_format": "raw", "removed_attribute": 1 }).to_string();
        let response = provider
            .upgrade_resource_state(Request::new(tf::upgrade_resource_state::Request {
                type_name: TYPE_NAME.into(),
                version: 0,
                raw_state: Some(tf::RawState {
                    json: raw.into_bytes(),
                    ..Default::default()
                }),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(response.diagnostics.is_empty(), "{:?}", response.diagnostics);
        let state = value(&response.upgraded_state);
        assert_eq!(state.get("id"), &Value::String("6b0f".into()));
        assert_eq!(state.get("checksum"), &Value::Null);
    }

    #[tokio::test]
    async fn unknown_force_new_values_replace_without_asking_the_component() {
        let provider = Scripted::answering(&[]);
        let prior = json!({
            "id": "6b0f", "container_format": "bare", "disk_format": "qcow2", "status": "active",
            "image_source_url": "https://images.example.org/cirros.img",
        });
        let mut config = Value::from_json(&config(), &ty()).unwrap();
        let Value::Map(map) = &mut config else { panic!() };
        map.insert("disk_format".into(), Value::Unknown);
        let response = provider
            .plan_resource_change(Request::new(tf::plan_resource_change::Request {
                type_name: TYPE_NAME.into(),
                prior_state: dynamic(prior),
                config: Some(encode(&config, &ty())),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(response.diagnostics.is_empty(), "{:?}", response.diagnostics);
        assert_eq!(
            response.requires_replace,
            [Path::attribute("disk_format").to_proto()]
        );
        assert!(provider.backend.requests.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_failed_create_leaves_no_state_and_no_secret() {
        let echo = ComponentError::new(
            "transport",
            "GET https://mirror:hunter22@images.example.org failed",
        );
        let provider = Scripted::answering(&[(Function::Create, Err(echo))]);
        let response = provider
            .apply_resource_change(Request::new(tf::apply_resource_change::Request {
                type_name: TYPE_NAME.into(),
                prior_state: dynamic(Json::Null),
                planned_state: dynamic(config()),
                config: dynamic(config()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(value(&response.new_state), Value::Null);
        let diagnostic = &response.diagnostics[0];
        assert_eq!(diagnostic.summary, "Cannot reach the cloud or the image source");
        assert!(
            diagnostic.detail.contains("mirror:(sensitive)@"),
            "{}",
            diagnostic.detail
        );
        let requests = provider.backend.requests.lock().unwrap();
        assert_eq!(
            requests[0].1["spec"]["image_source_password"], "hunter22",
            "the component gets it"
        );
        assert!(requests[0].1.get("cloud").is_none());
    }

    #[tokio::test]
    async fn an_image_gone_elsewhere_leaves_the_state() {
        let provider = Scripted::answering(&[(Function::Read, Ok(Json::Null))]);
        let response = provider
            .read_resource(Request::new(tf::read_resource::Request {
                type_name: TYPE_NAME.into(),
                current_state: dynamic(json!({ "id": "6b0f", "disk_format": "raw" })),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(value(&response.new_state), Value::Null);
        let requests = provider.backend.requests.lock().unwrap();
        assert_eq!(
            requests[0].1,
            json!({ "id": "6b0f", "state": { "id": "6b0f", "disk_format": "raw" } })
        );
    }

    #[tokio::test]
    async fn validation_asks_check_and_points_at_the_field() {
        let invalid = ComponentError {
            kind: "invalid-spec".into(),
            message: "1 problem".into(),
            fields: vec![crate::backend::FieldError {
                field: "timeouts.create".into(),
                message: "must be longer than zero".into(),
            }],
        };
        let provider = Scripted::answering(&[(Function::Check, Err(invalid))]);
        let response = provider
            .validate_resource_config(Request::new(tf::validate_resource_config::Request {
                type_name: TYPE_NAME.into(),
                config: dynamic(config()),
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        let path = response.diagnostics[0].attribute.clone().unwrap();
        assert_eq!(path.steps.len(), 2);
    }

    /// `config()` with the password as a write-only value instead.
    fn write_only_config() -> Json {
        let mut config = config();
        config["image_source_password"] = Json::Null;
        config["image_source_password_wo"] = json!("hunter22");
        config["image_source_password_wo_version"] = json!(1);
        config
    }

    async fn validate(
        provider: &Provider<Scripted>,
        config: Json,
        capabilities: Option<tf::ClientCapabilities>,
    ) -> Vec<tf::Diagnostic> {
        provider
            .validate_resource_config(Request::new(tf::validate_resource_config::Request {
                type_name: TYPE_NAME.into(),
                config: dynamic(config),
                client_capabilities: capabilities,
            }))
            .await
            .unwrap()
            .into_inner()
            .diagnostics
    }

    fn write_only_client() -> Option<tf::ClientCapabilities> {
        Some(tf::ClientCapabilities {
            deferral_allowed: false,
            write_only_attributes_allowed: true,
        })
    }

    #[tokio::test]
    async fn write_only_values_need_a_client_that_says_it_handles_them() {
        let provider = Scripted::answering(&[(Function::Check, Ok(json!({ "spec": config() })))]);
        let wo_path = Some(Path::attribute("image_source_password_wo").to_proto());
        for capabilities in [
            None,
            Some(tf::ClientCapabilities {
                deferral_allowed: true,
                write_only_attributes_allowed: false,
            }),
        ] {
            let diagnostics = validate(&provider, write_only_config(), capabilities).await;
            assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
            let d = &diagnostics[0];
            assert_eq!(d.severity, tf::diagnostic::Severity::Error as i32);
            assert_eq!(d.attribute, wo_path);
            assert!(d.detail.contains("Terraform 1.11"), "{}", d.detail);
            assert!(d.detail.contains("OpenTofu"), "{}", d.detail);
            assert!(
                d.detail.contains("Use image_source_password instead"),
                "{}",
                d.detail
            );
            assert!(!d.detail.contains("hunter22"));
        }
        // An unknown value (a variable during `terraform validate`) is refused too.
        let mut unknown = Value::from_json(&write_only_config(), &ty()).unwrap();
        let Value::Map(map) = &mut unknown else { panic!() };
        map.insert("image_source_password_wo".into(), Value::Unknown);
        let response = provider
            .validate_resource_config(Request::new(tf::validate_resource_config::Request {
                type_name: TYPE_NAME.into(),
                config: Some(encode(&unknown, &ty())),
                client_capabilities: None,
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(response.diagnostics[0].attribute, wo_path);
        // Without a write-only value, an old client is fine.
        assert!(validate(&provider, config(), None).await.is_empty());
        // A client that handles them: the component checks the password as its own.
        assert!(
            validate(&provider, write_only_config(), write_only_client())
                .await
                .is_empty()
        );
        let requests = provider.backend.requests.lock().unwrap();
        let (_, checked) = requests.last().unwrap();
        assert_eq!(checked["spec"]["image_source_password"], "hunter22");
        assert!(checked["spec"].get("image_source_password_wo").is_none());
        assert!(checked["spec"].get("image_source_password_wo_version").is_none());
    }

    #[tokio::test]
    async fn a_write_only_value_conflicts_with_the_sensitive_one() {
        let provider = Scripted::answering(&[(Function::Check, Ok(json!({ "spec": config() })))]);
        let mut both = write_only_config();
        both["image_source_password"] = json!("hunter33");
        let diagnostics = validate(&provider, both.clone(), write_only_client()).await;
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(diagnostics[0].summary, "Conflicting configuration arguments");
        assert_eq!(
            diagnostics[0].attribute,
            Some(Path::attribute("image_source_password_wo").to_proto())
        );
        let planned = provider
            .plan_resource_change(Request::new(tf::plan_resource_change::Request {
                type_name: TYPE_NAME.into(),
                prior_state: dynamic(Json::Null),
                config: dynamic(both),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            planned.diagnostics[0].summary,
            "Conflicting configuration arguments"
        );
        assert!(provider.backend.requests.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn write_only_values_reach_the_component_and_no_answer() {
        let created = json!({
            "id": "6b0f", "name": "cirros", "container_format": "bare", "disk_format": "qcow2",
            "status": "active", "image_source_url": "https://images.example.org/cirros.img",
        });
        let provider = Scripted::answering(&[
            (Function::Check, Ok(json!({ "spec": config() }))),
            (Function::Create, Ok(created.clone())),
            (Function::Read, Ok(created.clone())),
        ]);
        let wo =
            |response: &Option<tf::DynamicValue>| value(response).get("image_source_password_wo").clone();

        let planned = provider
            .plan_resource_change(Request::new(tf::plan_resource_change::Request {
                type_name: TYPE_NAME.into(),
                prior_state: dynamic(Json::Null),
                config: dynamic(write_only_config()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(planned.diagnostics.is_empty(), "{:?}", planned.diagnostics);
        assert_eq!(wo(&planned.planned_state), Value::Null);
        assert_eq!(
            value(&planned.planned_state).get("image_source_password_wo_version"),
            &Value::Number(1.into())
        );

        // Terraform sends the write-only value in the configuration only.
        let applied = provider
            .apply_resource_change(Request::new(tf::apply_resource_change::Request {
                type_name: TYPE_NAME.into(),
                prior_state: dynamic(Json::Null),
                planned_state: planned.planned_state.clone(),
                config: dynamic(write_only_config()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(applied.diagnostics.is_empty(), "{:?}", applied.diagnostics);
        let new_state = value(&applied.new_state);
        assert_eq!(new_state.get("image_source_password_wo"), &Value::Null);
        assert_eq!(new_state.get("image_source_password"), &Value::Null);
        assert_eq!(new_state.get("id"), &Value::String("6b0f".into()));
        assert_eq!(
            new_state.get("image_source_password_wo_version"),
            &Value::Number(1.into())
        );
        {
            let requests = provider.backend.requests.lock().unwrap();
            let (function, create) = requests.last().unwrap();
            assert_eq!(function.name(), Function::Create.name());
            assert_eq!(create["spec"]["image_source_password"], "hunter22");
            assert!(create["spec"].get("image_source_password_wo").is_none());
        }

        // Even a state that somehow holds one (written by a client without write-only support)
        // is answered without it: read and upgrade.
        let mut stored = created.clone();
        stored["image_source_password_wo"] = json!("hunter22");
        stored["image_source_password_wo_version"] = json!(1);
        let read = provider
            .read_resource(Request::new(tf::read_resource::Request {
                type_name: TYPE_NAME.into(),
                current_state: dynamic(stored.clone()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(read.diagnostics.is_empty(), "{:?}", read.diagnostics);
        assert_eq!(wo(&read.new_state), Value::Null);
        assert_eq!(
            value(&read.new_state).get("image_source_password_wo_version"),
            &Value::Number(1.into())
        );
        let upgraded = provider
            .upgrade_resource_state(Request::new(tf::upgrade_resource_state::Request {
                type_name: TYPE_NAME.into(),
                version: 0,
                raw_state: Some(tf::RawState {
                    json: stored.to_string().into_bytes(),
                    ..Default::default()
                }),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(upgraded.diagnostics.is_empty(), "{:?}", upgraded.diagnostics);
        assert_eq!(wo(&upgraded.upgraded_state), Value::Null);
        let imported = provider
            .import_resource_state(Request::new(tf::import_resource_state::Request {
                type_name: TYPE_NAME.into(),
                id: "6b0f".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(wo(&imported.imported_resources[0].state), Value::Null);
    }

    #[tokio::test]
    async fn a_diff_without_a_known_action_is_an_error() {
        let provider = Scripted::answering(&[
            (Function::Check, Ok(json!({ "spec": config() }))),
            (Function::Diff, Ok(json!({ "action": "rebuild" }))),
        ]);
        let response = provider
            .plan_resource_change(Request::new(tf::plan_resource_change::Request {
                type_name: TYPE_NAME.into(),
                prior_state: dynamic(json!({ "id": "6b0f" })),
                config: dynamic(config()),
                ..Default::default()
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(response.diagnostics[0].detail.contains("rebuild"));
        assert!(response.planned_state.is_none());
    }

    #[tokio::test]
    async fn other_type_names_are_refused() {
        let provider = Scripted::answering(&[]);
        let response = provider
            .import_resource_state(Request::new(tf::import_resource_state::Request {
                type_name: "openstack_compute_instance_v2".into(),
                id: "x".into(),
            }))
            .await
            .unwrap()
            .into_inner();
        assert!(response.imported_resources.is_empty());
        assert!(
            response.diagnostics[0]
                .detail
                .contains("openstack_compute_instance_v2")
        );
    }
}
