//! The sandbox: one engine, the compiled component (cached on disk), and instances that get
//! exactly the grants the policy names: WASI with no environment, arguments or sockets,
//! outgoing HTTP through [`NetworkPolicy`], read-only preopens, a memory cap and a deadline.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, InstancePre, Linker, ResourceTable};
use wasmtime::{Config, Engine, ResourceLimiter, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use openstack_image_documents::SessionRecord;

use crate::bindings::openstack::image::types::{ApiError, ChecksumMismatch, FieldError, TimeoutInfo};
use crate::bindings::{
    Cloud, GuestError, ImageQuery, ImageSpec, ImageState, JsonFace, JsonFaceIndices, Lifecycle,
    LifecycleIndices, Plan, Session,
};
use crate::guest_log::GuestLog;
use crate::policy::NetworkPolicy;
use crate::progress::ImageProgress;
use crate::session::Claim;

/// The component built from `guest/`, embedded at build time.
pub static EMBEDDED_COMPONENT: &[u8] = include_bytes!(env!("OPENSTACK_IMAGE_COMPONENT"));

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
    /// Host directories mapped read-only at the same absolute path in the guest.
    pub read_only_dirs: Vec<PathBuf>,
    /// Host directories mapped read-write at the same absolute path in the guest.
    pub read_write_dirs: Vec<PathBuf>,
}

/// A compiled component ready to instantiate (cheap to clone: clones share the compiled code).
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    pre: InstancePre<GuestState>,
    lifecycle: LifecycleIndices,
    /// The JSON face, when the component exports it (the shipped one does).
    json_face: Option<JsonFaceIndices>,
    limits: Limits,
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
    /// miss) and links WASI.
    pub fn new(wasm: &[u8], limits: Limits, compiled_cache: Option<&Path>) -> Result<Runtime> {
        let mut config = Config::new();
        config.wasm_component_model(true).epoch_interruption(true);
        let engine = Engine::new(&config)?;
        let component = load_cached(&engine, wasm, compiled_cache)?;
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
            limits,
        })
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
        let read_only = grants.read_only_dirs.iter().map(|d| (d, FsPerms::ReadOnly));
        let read_write = grants.read_write_dirs.iter().map(|d| (d, FsPerms::ReadWrite));
        for (dir, perms) in read_only.chain(read_write) {
            let guest_path = dir
                .to_str()
                .ok_or_else(|| anyhow!("{} is not UTF-8", dir.display()))?;
            wasi.preopened_dir(dir, guest_path, perms)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot open {} for the component", dir.display()))?;
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
        Ok(Instance {
            store,
            lifecycle,
            json_face,
            limits: self.limits,
            stopped: false,
        })
    }
}

/// One running component instance (its Keystone token is reused across calls).
pub struct Instance {
    store: Store<GuestState>,
    lifecycle: Lifecycle,
    json_face: Option<JsonFace>,
    limits: Limits,
    /// Set once a call trapped or ran out of time: the instance cannot be entered again.
    stopped: bool,
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

/// `cloud` with the run's session and the claim held while getting it ([`Instance::with_session`]);
/// a failed `authenticate` is returned as the call's answer.
macro_rules! session_or_return {
    ($self:ident, $cloud:expr) => {
        match $self.with_session($cloud).await? {
            Ok(with_session) => with_session,
            Err(e) => return Ok(Err(e)),
        }
    };
}

// What a component returns is checked before the host prints or records it: a component
// is untrusted code, and its answers end up in the state file.
impl Instance {
    /// Replaces the instance's network policy (see `Sandbox::connect`).
    pub(crate) fn set_network(&mut self, network: NetworkPolicy) {
        self.store.data_mut().network = network;
    }

    /// `lifecycle.authenticate`: the session to pass in `cloud.session` to later calls.
    pub async fn authenticate(&mut self, cloud: &Cloud) -> CallResult<Session> {
        vet(lifecycle_call!(self, call_authenticate(cloud)), |session| {
            within_size("the session", session)
        })
    }

    /// `cloud` with the run's session: the one this run already has, or — when there is none
    /// yet — the one this instance's `authenticate` returns (it checks the session an
    /// earlier run kept first), recorded for the rest of the run. While this instance
    /// authenticates, the returned claim makes other instances wait for its session. A
    /// session the caller passed is used as it is.
    async fn with_session(&mut self, cloud: &Cloud) -> CallResult<(Cloud, Option<Claim>)> {
        let network = self.store.data().network.clone();
        let mut cloud = cloud.clone();
        if let Some(given) = &cloud.session {
            network.admit(given);
            return Ok(Ok((cloud, None)));
        }
        let (session, claim) = network.acquire_session().await;
        let session = match session {
            Some(session) => session,
            None => {
                let first = Cloud {
                    session: network.kept_session(),
                    ..cloud.clone()
                };
                match self.authenticate(&first).await? {
                    Ok(session) => {
                        network.authenticated(&session);
                        session
                    }
                    Err(e) => return Ok(Err(e)),
                }
            }
        };
        cloud.session = Some(session);
        Ok(Ok((cloud, claim)))
    }

    /// `lifecycle.check`.
    pub async fn check(&mut self, spec: &ImageSpec) -> CallResult<ImageSpec> {
        vet(lifecycle_call!(self, call_check(spec)), |checked| {
            within_size("the checked spec", checked)
        })
    }

    /// `lifecycle.diff`.
    pub async fn diff(&mut self, desired: &ImageSpec, prior: &ImageState) -> CallResult<Plan> {
        vet(lifecycle_call!(self, call_diff(desired, prior)), |plan| {
            within_size("the plan", plan)
        })
    }

    /// `lifecycle.create`; the new image must have the id the spec asks for.
    pub async fn create(&mut self, cloud: &Cloud, spec: &ImageSpec) -> CallResult<ImageState> {
        let (cloud, _claim) = session_or_return!(self, cloud);
        let cloud = &cloud;
        vet(lifecycle_call!(self, call_create(cloud, spec)), |image| {
            well_formed(image, spec.image_id.as_deref())
        })
    }

    /// `lifecycle.read`; the image found must be the one asked for.
    pub async fn read(
        &mut self,
        cloud: &Cloud,
        id: &str,
        prior: Option<&ImageState>,
    ) -> CallResult<Option<ImageState>> {
        let (cloud, _claim) = session_or_return!(self, cloud);
        let cloud = &cloud;
        vet(lifecycle_call!(self, call_read(cloud, id, prior)), |found| {
            found
                .as_ref()
                .map_or(Ok(()), |image| well_formed(image, Some(id)))
        })
    }

    /// `lifecycle.update`; the image must keep its id.
    pub async fn update(
        &mut self,
        cloud: &Cloud,
        prior: &ImageState,
        desired: &ImageSpec,
    ) -> CallResult<ImageState> {
        let (cloud, _claim) = session_or_return!(self, cloud);
        let cloud = &cloud;
        vet(
            lifecycle_call!(self, call_update(cloud, prior, desired)),
            |image| well_formed(image, Some(&prior.id)),
        )
    }

    /// `lifecycle.delete`.
    pub async fn delete(
        &mut self,
        cloud: &Cloud,
        id: &str,
        region: Option<&str>,
        timeout_seconds: Option<u64>,
    ) -> CallResult<()> {
        let (cloud, _claim) = session_or_return!(self, cloud);
        let cloud = &cloud;
        lifecycle_call!(self, call_delete(cloud, id, region, timeout_seconds))
    }

    /// `lifecycle.find`.
    pub async fn find(&mut self, cloud: &Cloud, query: &ImageQuery) -> CallResult<ImageState> {
        let (cloud, _claim) = session_or_return!(self, cloud);
        let cloud = &cloud;
        vet(lifecycle_call!(self, call_find(cloud, query)), |image| {
            well_formed(image, None)
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
    /// the answer or error document out. The run's session (from `authenticate-json`, as for
    /// the typed calls) goes into the request's `cloud` document as its `session`.
    pub async fn call_json(&mut self, function: JsonFunction, request: &str) -> CallResult<String, String> {
        let face = self.json_face()?;
        let mut request: serde_json::Value =
            serde_json::from_str(request).context("the request is not a JSON document")?;
        let mut _claim = None;
        let network = self.store.data().network.clone();
        if let Some(given) = request.pointer("/cloud/session")
            && let Ok(session) = serde_json::from_value::<SessionRecord>(given.clone())
        {
            network.admit(&Session::from(session));
        }
        if let Some(cloud) = request.get("cloud").filter(|c| c.is_object()).cloned()
            && cloud.get("session").is_none()
        {
            let (session, claim) = network.acquire_session().await;
            _claim = claim;
            let session = match session {
                Some(session) => session,
                None => {
                    let mut first = cloud.clone();
                    if let (Some(kept), Some(doc)) = (network.kept_session(), first.as_object_mut()) {
                        doc.insert("session".into(), session_doc(kept));
                    }
                    let asked = serde_json::json!({ "cloud": first }).to_string();
                    let answer = guarded_call!(self, face, call_authenticate_json(&asked))?;
                    let text = match answer {
                        Ok(text) => text,
                        Err(error) => {
                            within_size("the error", &error)?;
                            return Ok(Err(error));
                        }
                    };
                    within_size("the session", &text)?;
                    let session: SessionRecord = serde_json::from_str(&text)
                        .context("the component's authenticate-json answer is not a session document")?;
                    let session = Session::from(session);
                    network.authenticated(&session);
                    session
                }
            };
            request["cloud"]["session"] = session_doc(session);
        }
        let request = request.to_string();
        let request = request.as_str();
        let answer = match function {
            JsonFunction::Check => guarded_call!(self, face, call_check_json(request)),
            JsonFunction::Diff => guarded_call!(self, face, call_diff_json(request)),
            JsonFunction::Create => guarded_call!(self, face, call_create_json(request)),
            JsonFunction::Read => guarded_call!(self, face, call_read_json(request)),
            JsonFunction::Update => guarded_call!(self, face, call_update_json(request)),
            JsonFunction::Delete => guarded_call!(self, face, call_delete_json(request)),
            JsonFunction::Find => guarded_call!(self, face, call_find_json(request)),
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

/// The functions of the JSON face.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonFunction {
    Check,
    Diff,
    Create,
    Read,
    Update,
    Delete,
    Find,
}

/// A session as the `session` of a cloud document.
fn session_doc(session: Session) -> serde_json::Value {
    serde_json::to_value(SessionRecord::from(session)).expect("a session serializes")
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

/// Checks an image the component describes: the id asked for, a status Glance knows, a sane size.
fn well_formed(image: &ImageState, id: Option<&str>) -> Result<()> {
    if let Some(id) = id
        && !image.id.eq_ignore_ascii_case(id)
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
fn load_cached(engine: &Engine, wasm: &[u8], cache: Option<&Path>) -> Result<Component> {
    let Some(path) = cache.map(|dir| cache_path(dir, engine, wasm)) else {
        return Ok(Component::new(engine, wasm)?);
    };
    if path.exists() {
        // SAFETY: the file is one this program wrote with `Component::serialize` for an
        // engine with the same compatibility hash (both are in its name); a damaged file
        // fails to deserialize and is rebuilt below.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => return Ok(component),
            Err(e) => tracing::warn!("ignoring unusable compiled component {}: {e}", path.display()),
        }
    }
    let component = Component::new(engine, wasm)
        .map_err(anyhow::Error::from)
        .context("compiling the component")?;
    if let Err(e) = store_cached(&path, &component) {
        tracing::warn!(
            "could not cache the compiled component at {}: {e:#}",
            path.display()
        );
    }
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

/// The compiled form's file: keyed by the component's hash and the engine's compatibility.
fn cache_path(dir: &Path, engine: &Engine, wasm: &[u8]) -> PathBuf {
    let mut engine_hash = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut engine_hash);
    let component_hash = hex::encode(&Sha256::digest(wasm)[..16]);
    dir.join(format!("{component_hash}-{:016x}.cwasm", engine_hash.finish()))
}
