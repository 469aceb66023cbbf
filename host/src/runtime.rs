//! The sandbox: one engine, the compiled component (cached on disk), and instances that get
//! exactly the grants the capabilities name: WASI with no environment, arguments or sockets,
//! outgoing HTTP through [`NetworkPolicy`], the directories of [`crate::grants`], a memory
//! cap and a deadline; every call that talks to the cloud gets the run's session from
//! [`Authenticator`] and never a secret.

use openstack_image_documents::spec::{FALLBACK_UPLOAD, fallback_image_id};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use std::sync::Arc;

use openstack_image_documents::SessionRecord;
use openstack_image_documents::cloud::CloudDoc;
use openstack_image_documents::records::CloudRecord;

use crate::auth::Authenticator;
use crate::bindings::openstack::image::types::{
    ApiError, ChecksumMismatch, FieldError, TimeoutInfo, UnauthorizedInfo,
};
use crate::bindings::{
    Cloud, GuestError, ImageQuery, ImageSpec, ImageState, JsonFace, JsonFaceIndices, Lifecycle,
    LifecycleIndices, Membership, MembershipIndices, MembershipSpec, MembershipState, Plan,
};
use crate::grants::{Preopen, component_id};
use crate::guest_log::GuestLog;
use crate::network::NetworkPolicy;
use crate::progress::ImageProgress;

/// The component built from `guest/`, embedded at build time.
pub static EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("OPENSTACK_IMAGE_COMPONENT"));

/// The embedded component's identity ([`component_id`]), computed at build time.
pub const EMBEDDED_COMPONENT_ID: &str = env!("OPENSTACK_IMAGE_COMPONENT_ID");

/// How often the epoch ticks; deadlines are counted in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(100);

/// Limits every instance runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest linear memory, in bytes.
    pub memory_bytes: usize,
    /// Wall-clock limit for one lifecycle call.
    pub call_deadline: Duration,
    /// Most bytes of stdout and stderr accepted from one instance.
    pub output_bytes: usize,
}

/// What one instance may touch.
pub struct Grants {
    pub network: NetworkPolicy,
    /// Directories the guest may read.
    pub read_only: Vec<Preopen>,
    /// Directories the guest may read and write.
    pub read_write: Vec<Preopen>,
}

/// A compiled component ready to instantiate (cheap to clone: clones share the compiled code).
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    pre: InstancePre<GuestState>,
    lifecycle: LifecycleIndices,
    /// The JSON face, when the component exports it (the shipped one does).
    json_face: Option<JsonFaceIndices>,
    /// The membership resource, when the component exports it (the shipped one does).
    membership: Option<MembershipIndices>,
    limits: Limits,
    /// The component build's identity ([`component_id`]).
    id: Arc<str>,
}

/// Per-instance host state.
pub struct GuestState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    network: NetworkPolicy,
    memory: MemoryCap,
}

/// The memory limit; remembers a refused growth so the trap that follows can be explained.
struct MemoryCap {
    bytes: usize,
    refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.bytes && maximum.is_none_or(|max| desired <= max);
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

impl WasiView for GuestState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for GuestState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.network,
        }
    }
}

impl Runtime {
    /// Compiles `wasm` (or loads its compiled form from `compiled_cache`, storing it there on a
    /// miss) and links WASI. `id` is its [`component_id`], when already known.
    pub fn new(
        wasm: &[u8],
        id: Option<&str>,
        limits: Limits,
        compiled_cache: Option<&Path>,
    ) -> Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let id: Arc<str> = id.map_or_else(|| component_id(wasm), str::to_string).into();
        let component = load_cached(&engine, wasm, &id, compiled_cache)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        let pre = linker
            .instantiate_pre(&component)
            .map_err(anyhow::Error::from)
            .context("the component does not fit the lifecycle-provider world's imports")?;
        let lifecycle = LifecycleIndices::new(&pre)
            .map_err(anyhow::Error::from)
            .context("the component does not export openstack:image/lifecycle")?;
        let json_face = JsonFaceIndices::new(&pre).ok();
        let membership = MembershipIndices::new(&pre).ok();

        let ticker = engine.weak();
        std::thread::spawn(move || {
            while let Some(engine) = ticker.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
        Ok(Runtime {
            engine,
            pre,
            lifecycle,
            json_face,
            membership,
            limits,
            id,
        })
    }

    /// The component build's identity.
    pub fn component_id(&self) -> &str {
        &self.id
    }

    /// The same compiled component under other limits.
    pub fn with_limits(&self, limits: Limits) -> Runtime {
        Runtime {
            limits,
            ..self.clone()
        }
    }

    /// The limits instances run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A fresh instance with `grants`, showing its transfers on `progress`.
    pub async fn instantiate(&self, grants: Grants, progress: ImageProgress) -> Result<Instance> {
        let mut wasi = WasiCtxBuilder::new();
        let log = GuestLog::new(self.limits.output_bytes, progress);
        wasi.stdout(log.clone()).stderr(log);
        let read_only = grants.read_only.iter().map(|d| (d, FsPerms::ReadOnly));
        let read_write = grants.read_write.iter().map(|d| (d, FsPerms::ReadWrite));
        for (dir, perms) in read_only.chain(read_write) {
            wasi.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot open {} for the component", dir.host.display()))?;
        }
        let state = GuestState {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            network: grants.network,
            memory: MemoryCap {
                bytes: self.limits.memory_bytes,
                refused: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(deadline_ticks(self.limits.call_deadline));
        let instance = self.pre.instantiate_async(&mut store).await?;
        let lifecycle = self.lifecycle.load(&mut store, &instance)?;
        let json_face = match &self.json_face {
            Some(indices) => Some(indices.load(&mut store, &instance)?),
            None => None,
        };
        let membership = match &self.membership {
            Some(indices) => Some(indices.load(&mut store, &instance)?),
            None => None,
        };
        Ok(Instance {
            store,
            lifecycle,
            json_face,
            membership,
            limits: self.limits,
            stopped: false,
            cloud: None,
        })
    }
}

/// One running component instance.
pub struct Instance {
    store: Store<GuestState>,
    lifecycle: Lifecycle,
    json_face: Option<JsonFace>,
    membership: Option<Membership>,
    limits: Limits,
    /// Set once a call trapped or ran out of time: the instance cannot be entered again.
    stopped: bool,
    /// The cloud its calls act on (none: it reaches no cloud).
    cloud: Option<CloudLink>,
}

/// What an instance needs to act on a cloud.
#[derive(Clone)]
pub struct CloudLink {
    /// The run's sessions.
    pub auth: Arc<Authenticator>,
    /// The cloud as components get it, without credentials (the JSON face's calls act on it).
    pub cloud: Cloud,
}

/// A call's outcome: the component's own answer, or a host-side failure (trap, deadline).
pub type CallResult<T, E = GuestError> = Result<Result<T, E>>;

/// Calls `$face.$method(args)` under the instance's deadline and memory cap; a trap or a
/// deadline stops the instance for good.
macro_rules! guarded_call {
    ($self:ident, $face:expr, $method:ident ( $($arg:expr),* )) => {{
        if $self.stopped {
            return Err(anyhow!("not run: the component was stopped by an earlier failure"));
        }
        $self.store.set_epoch_deadline(deadline_ticks($self.limits.call_deadline));
        $self.store.data_mut().memory.refused = false;
        let call = $face.$method(&mut $self.store, $($arg),*);
        let outcome = match tokio::time::timeout($self.limits.call_deadline, call).await {
            Ok(Ok(result)) => Ok(result),
            Ok(Err(trap)) => Err(explain_trap(trap, &$self.store)),
            Err(_) => Err(anyhow!(
                "the component did not finish within {}s (raise --deadline-seconds)",
                $self.limits.call_deadline.as_secs()
            )),
        };
        $self.stopped = outcome.is_err();
        outcome
    }};
}

/// A `lifecycle` call: [`guarded_call`] with the component's error texts cut short.
macro_rules! lifecycle_call {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        let lifecycle = $self.lifecycle.clone();
        guarded_call!($self, lifecycle, $method($($arg),*)).map(|result| result.map_err(bounded))
    }};
}

/// A `membership` call: [`guarded_call`] with the component's error texts cut short.
macro_rules! membership_call {
    ($self:ident, $method:ident ( $($arg:expr),* )) => {{
        let membership = $self.membership()?;
        guarded_call!($self, membership, $method($($arg),*)).map(|result| result.map_err(bounded))
    }};
}

/// Runs `$call`, which uses `$c` — `$cloud` as the component gets it: no credentials, the
/// run's session — and when the cloud refused that session (`unauthorized`), logs in again
/// (one login for the whole run, whichever instance asks first) and repeats the call once. A
/// `create` that names a half-made image is not repeated here (see [`Instance::create`]).
macro_rules! with_session {
    ($self:ident, $cloud:expr, |$c:ident| $call:expr) => {{
        let auth = $self.link()?.auth;
        let mut session = match auth.session().await {
            Ok(session) => session,
            Err(e) => return Ok(Err(e)),
        };
        let mut repeated = false;
        loop {
            let $c = &Authenticator::for_component($cloud, &session);
            match $call {
                Ok(Err(GuestError::Unauthorized(info))) if !repeated => {
                    session = match auth.refused(&session.token).await {
                        Ok(session) => session,
                        Err(e) => return Ok(Err(e)),
                    };
                    if info.image_id.is_some() {
                        break Ok(Err(GuestError::Unauthorized(info)));
                    }
                    repeated = true;
                }
                other => break other,
            }
        }
    }};
}

// What a component returns is checked before the host prints or records it: a component
// is untrusted code, and its answers end up in the state file.
impl Instance {
    /// Gives the instance a network policy and a cloud (see `Sandbox::connect`).
    pub(crate) fn connect(&mut self, network: NetworkPolicy, cloud: Option<CloudLink>) {
        self.store.data_mut().network = network;
        self.cloud = cloud;
    }

    fn link(&self) -> Result<CloudLink> {
        self.cloud
            .clone()
            .ok_or_else(|| anyhow!("this component instance was given no cloud"))
    }

    /// `lifecycle.check`.
    pub async fn check(&mut self, spec: &ImageSpec) -> CallResult<ImageSpec> {
        vet(lifecycle_call!(self, call_check(spec)), |checked| {
            within_size("the checked spec", checked)
        })
    }

    /// `lifecycle.check-with-cloud`: the spec's properties against the cloud's own metadata
    /// definitions.
    pub async fn check_with_cloud(&mut self, cloud: &Cloud, spec: &ImageSpec) -> CallResult<()> {
        with_session!(self, cloud, |c| lifecycle_call!(
            self,
            call_check_with_cloud(c, spec)
        ))
    }

    /// `lifecycle.diff`.
    pub async fn diff(&mut self, desired: &ImageSpec, prior: &ImageState) -> CallResult<Plan> {
        vet(lifecycle_call!(self, call_diff(desired, prior)), |plan| {
            within_size("the plan", plan)
        })
    }

    /// `lifecycle.create`; the new image must have the id the spec asks for. When the cloud
    /// refused the session after the image record was made, the half-made image is deleted
    /// with a new session, and the create repeated once when the spec did not name that id
    /// (Glance never reuses an image id); otherwise the `unauthorized` error says what became
    /// of it.
    pub async fn create(&mut self, cloud: &Cloud, spec: &ImageSpec) -> CallResult<ImageState> {
        for attempt in 0..2 {
            let created = with_session!(self, cloud, |c| vet(
                lifecycle_call!(self, call_create(c, spec)),
                |image| { well_formed(image, spec.image_id.as_deref()) }
            ));
            let Ok(Err(GuestError::Unauthorized(info))) = &created else {
                return created;
            };
            let Some(id) = info.image_id.clone() else {
                return created;
            };
            let cleanup = self
                .delete(cloud, &id, spec.region.as_deref(), spec.timeouts.delete)
                .await?;
            let repeatable = attempt == 0 && cleanup.is_ok() && spec.image_id.as_deref() != Some(&id);
            if !repeatable {
                let outcome = match cleanup {
                    Ok(()) => format!("the half-made image {id} was deleted"),
                    Err(e) => format!("the half-made image {id} could not be deleted: {e:?}"),
                };
                return Ok(Err(GuestError::Unauthorized(UnauthorizedInfo {
                    message: format!("{}; {outcome}", info.message),
                    image_id: Some(id),
                })));
            }
        }
        unreachable!("the second attempt returns")
    }

    /// `lifecycle.read`; the image found must be the one asked for.
    pub async fn read(
        &mut self,
        cloud: &Cloud,
        id: &str,
        prior: Option<&ImageState>,
    ) -> CallResult<Option<ImageState>> {
        with_session!(self, cloud, |c| vet(
            lifecycle_call!(self, call_read(c, id, prior)),
            |found| {
                found
                    .as_ref()
                    .map_or(Ok(()), |image| well_formed(image, Some(id)))
            }
        ))
    }

    /// `lifecycle.update`; the image must keep its id.
    pub async fn update(
        &mut self,
        cloud: &Cloud,
        prior: &ImageState,
        desired: &ImageSpec,
    ) -> CallResult<ImageState> {
        with_session!(self, cloud, |c| vet(
            lifecycle_call!(self, call_update(c, prior, desired)),
            |image| well_formed(image, Some(&prior.id)),
        ))
    }

    /// `lifecycle.delete`.
    pub async fn delete(
        &mut self,
        cloud: &Cloud,
        id: &str,
        region: Option<&str>,
        timeout_seconds: Option<u64>,
    ) -> CallResult<()> {
        with_session!(self, cloud, |c| lifecycle_call!(
            self,
            call_delete(c, id, region, timeout_seconds)
        ))
    }

    /// `lifecycle.find`.
    pub async fn find(&mut self, cloud: &Cloud, query: &ImageQuery) -> CallResult<ImageState> {
        with_session!(self, cloud, |c| vet(
            lifecycle_call!(self, call_find(c, query)),
            |image| { well_formed(image, None) }
        ))
    }

    /// `membership.check-membership`.
    pub async fn check_membership(&mut self, spec: &MembershipSpec) -> CallResult<MembershipSpec> {
        vet(membership_call!(self, call_check_membership(spec)), |checked| {
            within_size("the checked membership", checked)
        })
    }

    /// `membership.diff-membership`.
    pub async fn diff_membership(
        &mut self,
        desired: &MembershipSpec,
        prior: &MembershipState,
    ) -> CallResult<Plan> {
        vet(
            membership_call!(self, call_diff_membership(desired, prior)),
            |plan| within_size("the plan", plan),
        )
    }

    /// `membership.create-membership`; the membership must be the one the spec names.
    pub async fn create_membership(
        &mut self,
        cloud: &Cloud,
        spec: &MembershipSpec,
    ) -> CallResult<MembershipState> {
        with_session!(self, cloud, |c| vet(
            membership_call!(self, call_create_membership(c, spec)),
            |found| well_formed_membership(found, spec)
        ))
    }

    /// `membership.read-membership`.
    pub async fn read_membership(
        &mut self,
        cloud: &Cloud,
        spec: &MembershipSpec,
    ) -> CallResult<Option<MembershipState>> {
        with_session!(self, cloud, |c| vet(
            membership_call!(self, call_read_membership(c, spec)),
            |found| found
                .as_ref()
                .map_or(Ok(()), |found| well_formed_membership(found, spec))
        ))
    }

    /// `membership.update-membership`; the membership must keep its image and member.
    pub async fn update_membership(
        &mut self,
        cloud: &Cloud,
        prior: &MembershipState,
        desired: &MembershipSpec,
    ) -> CallResult<MembershipState> {
        with_session!(self, cloud, |c| vet(
            membership_call!(self, call_update_membership(c, prior, desired)),
            |found| well_formed_membership(found, &prior.spec)
        ))
    }

    /// `membership.delete-membership`.
    pub async fn delete_membership(&mut self, cloud: &Cloud, prior: &MembershipState) -> CallResult<()> {
        with_session!(self, cloud, |c| membership_call!(
            self,
            call_delete_membership(c, prior)
        ))
    }

    fn membership(&self) -> Result<Membership> {
        self.membership.clone().ok_or_else(|| {
            anyhow!(
                "the component does not export openstack:image/membership, so it cannot manage memberships"
            )
        })
    }

    /// The JSON face's `schema()` document.
    pub async fn schema(&mut self) -> Result<String> {
        let face = self.json_face()?;
        let schema = guarded_call!(self, face, call_schema())?;
        within_size("the schema", &schema)?;
        Ok(schema)
    }

    /// One function of the JSON face (`check-json`, …, `find-json`): the request document in,
    /// the answer or error document out. A function that acts on the cloud gets this
    /// instance's cloud as its `cloud` document (no credentials, the run's session), whatever
    /// the request carried, and a refused session is handled as for the typed calls.
    pub async fn call_json(&mut self, function: JsonFunction, request: &str) -> CallResult<String, String> {
        let mut request: serde_json::Value =
            serde_json::from_str(request).context("the request is not a JSON document")?;
        if matches!(
            function,
            JsonFunction::Check
                | JsonFunction::Diff
                | JsonFunction::CheckMembership
                | JsonFunction::DiffMembership
        ) {
            return self.json_call(function, &request).await;
        }
        let CloudLink { auth, cloud } = self.link()?;
        let mut session = match auth.session().await {
            Ok(session) => session,
            Err(e) => return Ok(Err(crate::report::error_document(&e).to_string())),
        };
        let spec_id = request
            .pointer("/spec/image_id")
            .and_then(|id| id.as_str())
            .map(str::to_string);
        for attempt in 0..2 {
            request["cloud"] = cloud_document(&cloud, &session);
            let answer = self.json_call(function, &request).await?;
            let Err(text) = &answer else {
                return Ok(answer);
            };
            let error: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
            if attempt == 1 || error["kind"] != "unauthorized" {
                return Ok(answer);
            }
            session = match auth.refused(&session.token).await {
                Ok(session) => session,
                Err(e) => return Ok(Err(crate::report::error_document(&e).to_string())),
            };
            let Some(id) = error["image_id"].as_str() else {
                continue;
            };
            // A create's half-made image: deleted with the new session, then created again
            // unless the request named that id.
            let delete = serde_json::json!({
                "cloud": cloud_document(&cloud, &session),
                "id": id,
                "region": request.pointer("/spec/region"),
            });
            let deleted = self.json_call(JsonFunction::Delete, &delete).await?;
            if deleted.is_err() || spec_id.as_deref() == Some(id) {
                let mut error = error.clone();
                let outcome = match &deleted {
                    Ok(_) => format!("the half-made image {id} was deleted"),
                    Err(e) => format!("the half-made image {id} could not be deleted: {e}"),
                };
                error["message"] =
                    format!("{}; {outcome}", error["message"].as_str().unwrap_or_default()).into();
                return Ok(Err(error.to_string()));
            }
        }
        unreachable!("the second attempt returns")
    }

    /// Calls one JSON-face function with `request` as it is.
    async fn json_call(
        &mut self,
        function: JsonFunction,
        request: &serde_json::Value,
    ) -> CallResult<String, String> {
        let face = self.json_face()?;
        let request = request.to_string();
        let request = request.as_str();
        let answer = match function {
            JsonFunction::Check => guarded_call!(self, face, call_check_json(request)),
            JsonFunction::CheckWithCloud => guarded_call!(self, face, call_check_with_cloud_json(request)),
            JsonFunction::Diff => guarded_call!(self, face, call_diff_json(request)),
            JsonFunction::Create => guarded_call!(self, face, call_create_json(request)),
            JsonFunction::Read => guarded_call!(self, face, call_read_json(request)),
            JsonFunction::Update => guarded_call!(self, face, call_update_json(request)),
            JsonFunction::Delete => guarded_call!(self, face, call_delete_json(request)),
            JsonFunction::Find => guarded_call!(self, face, call_find_json(request)),
            JsonFunction::CheckMembership => guarded_call!(self, face, call_check_membership_json(request)),
            JsonFunction::DiffMembership => guarded_call!(self, face, call_diff_membership_json(request)),
            JsonFunction::CreateMembership => guarded_call!(self, face, call_create_membership_json(request)),
            JsonFunction::ReadMembership => guarded_call!(self, face, call_read_membership_json(request)),
            JsonFunction::UpdateMembership => guarded_call!(self, face, call_update_membership_json(request)),
            JsonFunction::DeleteMembership => guarded_call!(self, face, call_delete_membership_json(request)),
        }?;
        match &answer {
            Ok(text) => within_size("the answer", text)?,
            Err(text) => within_size("the error", text)?,
        }
        Ok(answer)
    }

    fn json_face(&self) -> Result<JsonFace> {
        self.json_face
            .clone()
            .ok_or_else(|| anyhow!("the component does not export openstack:image/resource (the JSON face)"))
    }
}

/// The functions of the JSON face that take a request document (`schema`,
/// `resolve-cloud-json` and `authenticate-json` have calls of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFunction {
    /// `{"spec"}` -> `{"spec"}` with defaults filled in; no network calls.
    Check,
    /// `{"spec"}` -> `{"checked": true}`: the spec's properties against the cloud's own
    /// metadata definitions (needs the cloud).
    CheckWithCloud,
    /// `{"spec", "state"}` -> `{"action", "changes", "replaces", "delete_before_replace"}`.
    Diff,
    /// `{"spec"}` -> STATE.
    Create,
    /// `{"id", "state"?}` -> STATE or `null` when the image is gone.
    Read,
    /// `{"state", "spec"}` -> STATE.
    Update,
    /// `{"id", "region"?, "timeout_seconds"?}` -> `{"id", "deleted": true}`.
    Delete,
    /// `{"query"}` -> STATE of the one image the query finds.
    Find,
    /// The membership resource's: `{"spec"}` -> `{"spec"}`; no network calls.
    CheckMembership,
    /// `{"spec", "state"}` -> the plan, as [`JsonFunction::Diff`].
    DiffMembership,
    /// `{"spec"}` -> MSTATE.
    CreateMembership,
    /// `{"spec"}` or `{"id", "spec"?}` -> MSTATE or `null` when it is gone.
    ReadMembership,
    /// `{"state", "spec"}` -> MSTATE.
    UpdateMembership,
    /// `{"state"}` -> `{"id", "deleted": true}`.
    DeleteMembership,
}

impl JsonFunction {
    /// The function's name in the WIT, without the `-json` suffix.
    pub fn name(self) -> &'static str {
        match self {
            JsonFunction::Check => "check",
            JsonFunction::CheckWithCloud => "check-with-cloud",
            JsonFunction::Diff => "diff",
            JsonFunction::Create => "create",
            JsonFunction::Read => "read",
            JsonFunction::Update => "update",
            JsonFunction::Delete => "delete",
            JsonFunction::Find => "find",
            JsonFunction::CheckMembership => "check-membership",
            JsonFunction::DiffMembership => "diff-membership",
            JsonFunction::CreateMembership => "create-membership",
            JsonFunction::ReadMembership => "read-membership",
            JsonFunction::UpdateMembership => "update-membership",
            JsonFunction::DeleteMembership => "delete-membership",
        }
    }
}

/// `cloud` as a component gets it with `session`, as the JSON face's cloud document.
fn cloud_document(cloud: &Cloud, session: &SessionRecord) -> serde_json::Value {
    CloudDoc::of(&CloudRecord::from(Authenticator::for_component(cloud, session))).to_json()
}

/// Turns a component's answer that fails `check` into a host-side failure.
fn vet<T>(result: CallResult<T>, check: impl FnOnce(&T) -> Result<()>) -> CallResult<T> {
    if let Ok(Ok(value)) = &result {
        check(value).context("the component returned a malformed answer; nothing was recorded")?;
    }
    result
}

/// Statuses Glance gives images.
const IMAGE_STATUSES: &[&str] = &[
    "queued",
    "saving",
    "uploading",
    "importing",
    "active",
    "killed",
    "deleted",
    "pending_delete",
    "deactivated",
];

/// Largest answer (as JSON) the host accepts from a component; real ones are a few KiB.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Longest text of a component's error the host passes on.
const MAX_ERROR_TEXT: usize = 4096;

/// Most field errors of one `invalid-spec` the host passes on.
const MAX_FIELD_ERRORS: usize = 100;

/// Checks an image the component describes: the id asked for (or, for a create that fell
/// back to uploading, the one id derived from it), a status Glance knows, a sane size.
fn well_formed(image: &ImageState, id: Option<&str>) -> Result<()> {
    let fell_back = |id: &str| {
        image
            .import_result
            .as_ref()
            .is_some_and(|r| r.fallback.as_deref() == Some(FALLBACK_UPLOAD))
            && image.id.eq_ignore_ascii_case(&fallback_image_id(id))
    };
    if let Some(id) = id
        && !image.id.eq_ignore_ascii_case(id)
        && !fell_back(id)
    {
        anyhow::bail!("image {id} came back with the id {:?}", cut(&image.id));
    }
    if !IMAGE_STATUSES.contains(&image.status.as_str()) {
        anyhow::bail!(
            "image {} has the unknown status {:?}",
            image.id,
            cut(&image.status)
        );
    }
    within_size(&format!("image {}", image.id), image)
}

/// Checks a membership the component describes: the image (and member, when the spec names
/// one) asked for, ids fit for URL paths and the state file, a status Glance knows.
fn well_formed_membership(found: &MembershipState, spec: &MembershipSpec) -> Result<()> {
    use openstack_image_documents::spec::{MEMBER_STATUSES, is_project_id};
    let member = found.spec.member_id.as_deref().unwrap_or_default();
    if !found.spec.image_id.eq_ignore_ascii_case(&spec.image_id)
        || spec.member_id.as_deref().is_some_and(|m| m != member)
    {
        anyhow::bail!(
            "the membership of {:?} in image {} came back as {:?} in image {:?}",
            spec.member_id,
            spec.image_id,
            cut(member),
            cut(&found.spec.image_id)
        );
    }
    if uuid::Uuid::try_parse(&found.spec.image_id).is_err() || !is_project_id(member) {
        anyhow::bail!("the membership came back with the ids {:?}", cut(&found.id));
    }
    if !MEMBER_STATUSES.contains(&found.status.as_str()) {
        anyhow::bail!(
            "the membership {} has the unknown status {:?}",
            found.id,
            cut(&found.status)
        );
    }
    within_size(&format!("membership {}", found.id), found)
}

fn within_size(what: &str, answer: &impl serde::Serialize) -> Result<()> {
    let size = serde_json::to_vec(answer).map_or(usize::MAX, |json| json.len());
    if size > MAX_ANSWER_BYTES {
        anyhow::bail!("{what} is {size} bytes as JSON, more than the {MAX_ANSWER_BYTES} allowed");
    }
    Ok(())
}

/// `text`, cut to [`MAX_ERROR_TEXT`] bytes.
fn cut(text: &str) -> String {
    if text.len() <= MAX_ERROR_TEXT {
        return text.to_string();
    }
    let end = (0..=MAX_ERROR_TEXT)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}… ({} bytes cut)", &text[..end], text.len() - end)
}

/// A component's error with its texts cut short, so it cannot flood the terminal.
fn bounded(err: GuestError) -> GuestError {
    let short = |text: String| cut(&text);
    match err {
        GuestError::InvalidSpec(fields) => {
            let hidden = fields.len().saturating_sub(MAX_FIELD_ERRORS);
            let mut shown: Vec<FieldError> = fields
                .into_iter()
                .take(MAX_FIELD_ERRORS)
                .map(|f| FieldError {
                    field: short(f.field),
                    message: short(f.message),
                })
                .collect();
            if hidden > 0 {
                shown.push(FieldError {
                    field: "(more)".into(),
                    message: format!("{hidden} more problems not shown"),
                });
            }
            GuestError::InvalidSpec(shown)
        }
        GuestError::AuthFailed(m) => GuestError::AuthFailed(short(m)),
        GuestError::Unauthorized(u) => GuestError::Unauthorized(UnauthorizedInfo {
            message: short(u.message),
            image_id: u.image_id.map(short),
        }),
        GuestError::NotFound(m) => GuestError::NotFound(short(m)),
        GuestError::Forbidden(m) => GuestError::Forbidden(short(m)),
        GuestError::Conflict(m) => GuestError::Conflict(short(m)),
        GuestError::Quota(m) => GuestError::Quota(short(m)),
        GuestError::ImportFailed(m) => GuestError::ImportFailed(short(m)),
        GuestError::Transport(m) => GuestError::Transport(short(m)),
        GuestError::DeniedByHost(m) => GuestError::DeniedByHost(short(m)),
        GuestError::ChecksumMismatch(c) => GuestError::ChecksumMismatch(ChecksumMismatch {
            algorithm: short(c.algorithm),
            expected: short(c.expected),
            actual: short(c.actual),
        }),
        GuestError::Timeout(t) => GuestError::Timeout(TimeoutInfo {
            operation: short(t.operation),
            last_status: short(t.last_status),
            ..t
        }),
        GuestError::Api(a) => GuestError::Api(ApiError {
            method: short(a.method),
            url: short(a.url),
            message: short(a.message),
            ..a
        }),
    }
}

fn deadline_ticks(deadline: Duration) -> u64 {
    u64::try_from(deadline.as_millis() / EPOCH_TICK.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn explain_trap(trap: wasmtime::Error, store: &Store<GuestState>) -> anyhow::Error {
    let denied = store.data().network.denied();
    if let Some(wasmtime::Trap::Interrupt) = trap.downcast_ref::<wasmtime::Trap>() {
        return anyhow!("the component ran past its deadline and was stopped (raise --deadline-seconds)");
    }
    let memory = &store.data().memory;
    if memory.refused {
        return anyhow!(
            "the component ran out of memory: it asked for more than {} MiB and was stopped (raise --memory-limit-mib)",
            memory.bytes / (1024 * 1024)
        );
    }
    let trap = anyhow::Error::from(trap);
    if denied.is_empty() {
        trap.context("the component failed (trapped)")
    } else {
        trap.context(format!(
            "the component failed after being denied {}",
            denied.join(", ")
        ))
    }
}

/// Loads the compiled form of `wasm` from the cache, compiling and storing it on a miss.
fn load_cached(engine: &Engine, wasm: &[u8], id: &str, cache: Option<&Path>) -> Result<Component> {
    let Some(path) = cache.map(|dir| cache_path(dir, engine, id)) else {
        return Ok(Component::new(engine, wasm)?);
    };
    if path.exists() {
        // SAFETY: the file is one this program wrote with `Component::serialize` for an
        // engine with the same compatibility hash (both are in its name); a damaged file
        // fails to deserialize and is rebuilt below.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            // Removed meanwhile (another build's run trims the cache): compiled again below.
            Err(_) if !path.exists() => {}
            Err(e) => tracing::warn!("ignoring unusable compiled component {}: {e}", path.display()),
        }
    }
    // Phase by phase, for `-vv` and the bench's cold-start case.
    let started = std::time::Instant::now();
    let component = Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .context("compiling the component")?;
    let compiled = started.elapsed();
    if let Err(e) = store_cached(&path, &component) {
        tracing::warn!(
            "could not cache the compiled component at {}: {e:#}",
            path.display()
        );
    }
    tracing::debug!(
        "cold start: validated and compiled {} KiB of component in {} ms, serialized and stored it in {} ms",
        wasm.len() / 1024,
        compiled.as_millis(),
        (started.elapsed() - compiled).as_millis()
    );
    Ok(component)
}

fn store_cached(path: &Path, component: &Component) -> Result<()> {
    let dir = path.parent().expect("cache paths have a directory");
    std::fs::create_dir_all(dir)?;
    let mut file = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut file, &component.serialize()?)?;
    file.persist(path)?;
    Ok(())
}

/// The compiled form's file: keyed by the component's identity and the engine's compatibility.
fn cache_path(dir: &Path, engine: &Engine, id: &str) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    dir.join(format!("{id}-{:016x}.cwasm", engine_hash.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most the shipped component may weigh: every runtime loads it, and the host binary,
    /// the Node package, the Python adapter and the Ansible collection carry it.
    const COMPONENT_BUDGET_BYTES: usize = 3_000_000;

    /// Custom sections of a component and the core modules inside it, with their sizes.
    fn custom_sections(wasm: &[u8]) -> Vec<(String, usize)> {
        let mut found = Vec::new();
        for payload in wasmparser::Parser::new(0).parse_all(wasm) {
            if let Ok(wasmparser::Payload::CustomSection(section)) = payload {
                found.push((section.name().to_string(), section.data().len()));
            }
        }
        found
    }

    #[test]
    fn the_shipped_component_carries_no_dwarf_and_fits_its_budget() {
        let profile = env!("OPENSTACK_IMAGE_COMPONENT_BUILT_WITH");
        if profile != "component" {
            eprintln!("skipped: the embedded component was built with the profile {profile} (a debug build)");
            return;
        }
        let sections = custom_sections(EMBEDDED_COMPONENT);
        let dwarf: Vec<_> = sections
            .iter()
            .filter(|(name, _)| name.starts_with(".debug"))
            .collect();
        assert!(
            dwarf.is_empty(),
            "the shipped component carries DWARF {dwarf:?}: it is built with the `component` \
             profile (strip = \"debuginfo\"), see Cargo.toml"
        );
        assert!(
            sections.iter().any(|(name, _)| name == "name"),
            "the `name` section must stay, so traps name functions"
        );
        let size = EMBEDDED_COMPONENT.len();
        assert!(
            size <= COMPONENT_BUDGET_BYTES,
            "the shipped component is {size} bytes, over its budget of {COMPONENT_BUDGET_BYTES}: \
             find what grew (custom sections: {sections:?}) before raising the budget"
        );
    }
}
