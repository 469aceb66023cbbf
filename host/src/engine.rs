//! The declarative engine: turns a spec file and a state file into steps, and carries them
//! out (independent images in parallel, each in its own sandbox), saving the state after
//! every change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use openstack_image_documents::spec::fallback_image_id;

use crate::bindings::{Action, Cloud, GuestError, ImageQuery, ImageSpec, ImageState, Plan};
use crate::exit::{CloudError, Outcome};
use crate::grants::DataSource;
use crate::plan::{Change, Step};
use crate::report::{self, Narrator};
use crate::runtime::{CallResult, Instance};
use crate::say;
use crate::state::{DeposedImage, Ledger, State, StateEntry};

/// How many images `plan` reads and `apply` works on at once, unless told otherwise.
pub const DEFAULT_PARALLEL: usize = 4;

/// The `lifecycle` calls the engine makes: a component [`Instance`]'s, or a test's fake cloud.
/// The futures are `Send` because `apply` and `plan` run each image's work in its own task.
pub trait Lifecycle: Send {
    /// `lifecycle.check`: the spec validated and normalised.
    fn check(&mut self, spec: &ImageSpec) -> impl Future<Output = CallResult<ImageSpec>> + Send;
    /// `lifecycle.check-with-cloud`: the spec's properties against the cloud's definitions.
    fn check_with_cloud(
        &mut self,
        cloud: &Cloud,
        spec: &ImageSpec,
    ) -> impl Future<Output = CallResult<()>> + Send;
    /// `lifecycle.diff`: what turning `prior` into `desired` takes.
    fn diff(
        &mut self,
        desired: &ImageSpec,
        prior: &ImageState,
    ) -> impl Future<Output = CallResult<Plan>> + Send;
    /// `lifecycle.create`: the new image, with the id `spec` names.
    fn create(
        &mut self,
        cloud: &Cloud,
        spec: &ImageSpec,
    ) -> impl Future<Output = CallResult<ImageState>> + Send;
    /// `lifecycle.read`: the image `id`, or `None` when the cloud no longer has it.
    fn read(
        &mut self,
        cloud: &Cloud,
        id: &str,
        prior: Option<&ImageState>,
    ) -> impl Future<Output = CallResult<Option<ImageState>>> + Send;
    /// `lifecycle.update`: `prior` changed in place to match `desired`.
    fn update(
        &mut self,
        cloud: &Cloud,
        prior: &ImageState,
        desired: &ImageSpec,
    ) -> impl Future<Output = CallResult<ImageState>> + Send;
    /// `lifecycle.delete`: an image already gone counts as deleted.
    fn delete(
        &mut self,
        cloud: &Cloud,
        id: &str,
        region: Option<&str>,
        timeout_seconds: Option<u64>,
    ) -> impl Future<Output = CallResult<()>> + Send;
    /// `lifecycle.find`: the one image `query` describes.
    fn find(
        &mut self,
        cloud: &Cloud,
        query: &ImageQuery,
    ) -> impl Future<Output = CallResult<ImageState>> + Send;
}

/// The component, through its instance (whose inherent methods check what it answers).
impl Lifecycle for Instance {
    fn check(&mut self, spec: &ImageSpec) -> impl Future<Output = CallResult<ImageSpec>> + Send {
        Instance::check(self, spec)
    }

    fn check_with_cloud(
        &mut self,
        cloud: &Cloud,
        spec: &ImageSpec,
    ) -> impl Future<Output = CallResult<()>> + Send {
        Instance::check_with_cloud(self, cloud, spec)
    }

    fn diff(
        &mut self,
        desired: &ImageSpec,
        prior: &ImageState,
    ) -> impl Future<Output = CallResult<Plan>> + Send {
        Instance::diff(self, desired, prior)
    }

    fn create(
        &mut self,
        cloud: &Cloud,
        spec: &ImageSpec,
    ) -> impl Future<Output = CallResult<ImageState>> + Send {
        Instance::create(self, cloud, spec)
    }

    fn read(
        &mut self,
        cloud: &Cloud,
        id: &str,
        prior: Option<&ImageState>,
    ) -> impl Future<Output = CallResult<Option<ImageState>>> + Send {
        Instance::read(self, cloud, id, prior)
    }

    fn update(
        &mut self,
        cloud: &Cloud,
        prior: &ImageState,
        desired: &ImageSpec,
    ) -> impl Future<Output = CallResult<ImageState>> + Send {
        Instance::update(self, cloud, prior, desired)
    }

    fn delete(
        &mut self,
        cloud: &Cloud,
        id: &str,
        region: Option<&str>,
        timeout_seconds: Option<u64>,
    ) -> impl Future<Output = CallResult<()>> + Send {
        Instance::delete(self, cloud, id, region, timeout_seconds)
    }

    fn find(
        &mut self,
        cloud: &Cloud,
        query: &ImageQuery,
    ) -> impl Future<Output = CallResult<ImageState>> + Send {
        Instance::find(self, cloud, query)
    }
}

/// True when `name` is one of `targets`, or no targets were given.
pub fn targeted(targets: &[String], name: &str) -> bool {
    targets.is_empty() || targets.iter().any(|t| t == name)
}

/// Turns a guest call's outcome into a message naming the image.
fn named<T>(image: &str, result: CallResult<T>) -> Result<T> {
    match result {
        Ok(Ok(value)) => Ok(value),
        // The spec, the image data or the sandbox's grants: the user's to fix, not the cloud's.
        Ok(Err(
            err
            @ (GuestError::InvalidSpec(_) | GuestError::ChecksumMismatch(_) | GuestError::DeniedByHost(_)),
        )) => Err(anyhow!(report::guest_error(image, &err))),
        Ok(Err(err)) => Err(anyhow::Error::new(CloudError(report::guest_error(image, &err)))),
        Err(err) => Err(anyhow!("image '{image}': {err:#}")),
    }
}

/// Validates every image of the spec; reports all problems at once, before any cloud call.
pub async fn check_all(
    instance: &mut impl Lifecycle,
    images: &BTreeMap<String, ImageSpec>,
) -> Result<BTreeMap<String, ImageSpec>> {
    check_each(images, named, async |spec| instance.check(spec).await).await
}

/// Validates every entry of a spec file's section with `check`, each problem `named` after
/// its entry; all problems at once, or the checked entries (defaults filled in).
pub async fn check_each<S>(
    entries: &BTreeMap<String, S>,
    named: fn(&str, CallResult<S>) -> Result<S>,
    mut check: impl AsyncFnMut(&S) -> CallResult<S>,
) -> Result<BTreeMap<String, S>> {
    let mut checked = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, spec) in entries {
        match named(name, check(spec).await) {
            Ok(spec) => {
                checked.insert(name.clone(), spec);
            }
            Err(err) => problems.push(format!("{err:#}")),
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(anyhow!("{}\nNothing was changed.", problems.join("\n")))
    }
}

/// Reads every image in the state, up to `parallel` at once, each reader in an instance of
/// its own, and decides what each image needs; `instance` (the one granted every image's
/// source) compares them with the spec.
pub async fn plan<L: Lifecycle + 'static>(
    instance: &mut L,
    instance_for: &InstanceFor<L>,
    parallel: usize,
    cloud: &Cloud,
    desired: &BTreeMap<String, ImageSpec>,
    state: &State,
    targets: &[String],
) -> Result<Vec<Step>> {
    let names: BTreeSet<&String> = desired
        .keys()
        .chain(state.images.keys())
        .filter(|n| targeted(targets, n))
        .collect();
    let recorded = names
        .iter()
        .filter_map(|&name| Some((name.clone(), state.images.get(name)?.image.clone())))
        .collect();
    let mut found = read_all(instance, instance_for, parallel, cloud, recorded).await?;
    let mut steps = Vec::new();
    for name in names {
        let entry = state.images.get(name);
        let spec = desired.get(name).cloned();
        let prior = found.remove(name).flatten();
        let change = match (&spec, &prior) {
            (Some(_), None) => Change::Create,
            (Some(spec), Some(prior)) => {
                let plan = named(name, instance.diff(spec, prior).await)?;
                match plan.action {
                    Action::NoOp => Change::NoOp,
                    Action::Update => Change::Update(plan),
                    Action::Replace => Change::Replace(plan),
                }
            }
            (None, Some(_)) => Change::Delete,
            // In the state, gone from both the spec and the cloud: only the state changes.
            (None, None) => Change::Delete,
        };
        // A recorded image that is gone from the cloud is still shown as the prior.
        let prior = prior.or_else(|| entry.map(|e| e.image.clone()));
        steps.push(Step {
            name: name.clone(),
            change,
            desired: spec,
            prior,
            deposed: entry.map(|e| e.deposed.clone()).unwrap_or_default(),
        });
    }
    check_with_cloud(instance, cloud, &steps).await?;
    Ok(steps)
}

/// The properties each step would send, checked against the cloud's own definitions (by
/// `instance`, which reads them once): a new image's all, an updated image's changed ones
/// (a value applied before is not held against an unrelated change). Every problem is
/// reported at once, before anything changes.
async fn check_with_cloud(instance: &mut impl Lifecycle, cloud: &Cloud, steps: &[Step]) -> Result<()> {
    let mut problems = Vec::new();
    for step in steps {
        let Some(spec) = &step.desired else { continue };
        let sent: Option<BTreeSet<&str>> = match &step.change {
            Change::Create | Change::Replace(_) => None,
            Change::Update(plan) => Some(
                plan.changes
                    .iter()
                    .filter(|c| c.new.is_some())
                    .filter_map(|c| c.field.strip_prefix("properties."))
                    .collect(),
            ),
            Change::NoOp | Change::Delete => continue,
        };
        let mut checked = spec.clone();
        if let Some(sent) = &sent {
            checked.properties.retain(|(key, _)| sent.contains(key.as_str()));
        }
        if checked.properties.is_empty() {
            continue;
        }
        if let Err(err) = named(&step.name, instance.check_with_cloud(cloud, &checked).await) {
            problems.push(format!("{err:#}"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(anyhow!("{}\nNothing was changed.", problems.join("\n")))
    }
}

/// Reads the recorded `images` (by name) as the cloud holds them now, with up to `parallel`
/// instances side by side — `instance` and as many more as there are images to share them
/// (reads change nothing). When reads fail, the answer is the first failure in name order,
/// whichever reader met it first.
async fn read_all<L: Lifecycle + 'static>(
    instance: &mut L,
    instance_for: &InstanceFor<L>,
    parallel: usize,
    cloud: &Cloud,
    images: Vec<(String, ImageState)>,
) -> Result<BTreeMap<String, Option<ImageState>>> {
    let readers = parallel.clamp(1, images.len().max(1));
    // Popped from the back, so taken in name order.
    let queue = Arc::new(std::sync::Mutex::new(
        images.into_iter().rev().collect::<Vec<_>>(),
    ));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 1..readers {
        let (queue, cloud, instance_for) = (queue.clone(), cloud.clone(), instance_for.clone());
        tasks.spawn(async move {
            if queue.lock().expect("queue lock").is_empty() {
                return Ok(Vec::new());
            }
            let mut instance = instance_for("read".to_string(), None)
                .await
                .context("cannot start a component instance to read the state's images")?;
            anyhow::Ok(read_queue(&mut instance, &queue, &cloud).await)
        });
    }
    let others = async {
        let mut found = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            found.extend(joined.map_err(|panic| anyhow!("reading the images failed: {panic}"))??);
        }
        anyhow::Ok(found)
    };
    let (own, others) = tokio::join!(read_queue(instance, &queue, cloud), others);
    own.into_iter()
        .chain(others?)
        .collect::<BTreeMap<_, _>>()
        .into_iter()
        .map(|(name, image)| Ok((name, image?)))
        .collect()
}

/// Reads images from `queue` with `instance` until the queue is empty, or until a read
/// fails (a failed call may have stopped the instance for good: the others read on).
async fn read_queue<L: Lifecycle>(
    instance: &mut L,
    queue: &std::sync::Mutex<Vec<(String, ImageState)>>,
    cloud: &Cloud,
) -> Vec<(String, Result<Option<ImageState>>)> {
    let mut found = Vec::new();
    loop {
        let next = queue.lock().expect("queue lock").pop();
        let Some((name, prior)) = next else { break };
        let image = named(&name, instance.read(cloud, &prior.id, Some(&prior)).await);
        let failed = image.is_err();
        found.push((name, image));
        if failed {
            break;
        }
    }
    found
}

/// Opens a sandboxed component instance for one image's work (named; only its grants; no
/// spec: only the cloud's).
pub type InstanceFor<L> = Arc<dyn Fn(String, Option<ImageSpec>) -> BoxFuture<Result<L>> + Send + Sync>;

/// A boxed future that may move between threads.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Carries out `steps`, up to `parallel` images at once, each in its own instance; the
/// ledger saves the state after every change. One image's failure does not stop the others.
pub async fn apply<L: Lifecycle + 'static>(
    instance_for: InstanceFor<L>,
    cloud: &Cloud,
    steps: Vec<Step>,
    ledger: Arc<Ledger>,
    parallel: usize,
    narrator: Narrator,
) -> Outcome {
    let slots = Arc::new(tokio::sync::Semaphore::new(parallel.max(1)));
    // Images downloading the same URL into the same cache take turns, so the first one
    // downloads and the others reuse its cache entry.
    let mut downloads: BTreeMap<(String, String), Arc<tokio::sync::Mutex<()>>> = BTreeMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    let mut outcome = Outcome::default();
    for step in &steps {
        if let Some(image) = with_named_properties(step) {
            let recorded = ledger.record(&step.name, image, step.deposed.clone());
            if recorded.is_err() {
                outcome.record(step.name.clone(), &recorded);
            }
        }
    }
    for step in steps.into_iter().filter(Step::changes_anything) {
        let download = step
            .desired
            .as_ref()
            .and_then(cached_download)
            .map(|key| downloads.entry(key).or_default().clone());
        let (slots, ledger, cloud, instance_for) =
            (slots.clone(), ledger.clone(), cloud.clone(), instance_for.clone());
        tasks.spawn(async move {
            let _download = match &download {
                Some(turn) => Some(turn.lock().await),
                None => None,
            };
            let _slot = slots
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let name = step.name.clone();
            let result = async {
                let mut instance = instance_for(name.clone(), step.desired.clone()).await?;
                apply_step(&mut instance, &cloud, step, &ledger, narrator).await
            }
            .await;
            (name, result)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((name, result)) => outcome.record(name, &result),
            Err(panic) => outcome.record(
                "(unknown)".to_string(),
                &Err(anyhow!("an image's task failed: {panic}")),
            ),
        }
    }
    outcome
}

/// A no-op step's image with the properties the spec names recorded as managed, when some
/// were not yet (an adopted image whose spec now names properties it already has), so that
/// removing one from the spec later removes it from the image.
fn with_named_properties(step: &Step) -> Option<ImageState> {
    let (Change::NoOp, Some(desired), Some(prior)) = (&step.change, &step.desired, &step.prior) else {
        return None;
    };
    let managed: BTreeSet<&str> = prior.spec.properties.iter().map(|(k, _)| k.as_str()).collect();
    let named: Vec<_> = desired
        .properties
        .iter()
        .filter(|(key, _)| !managed.contains(key.as_str()))
        .cloned()
        .collect();
    if named.is_empty() {
        return None;
    }
    let mut image = prior.clone();
    image.spec.properties.extend(named);
    image.spec.properties.sort();
    Some(image)
}

/// The cache entry a spec's create downloads into (URL, cache directory), if any.
fn cached_download(spec: &ImageSpec) -> Option<(String, String)> {
    let source = DataSource::of(spec);
    Some((
        source.downloaded_url()?.to_string(),
        source.cache_dir()?.to_string(),
    ))
}

async fn apply_step(
    instance: &mut impl Lifecycle,
    cloud: &Cloud,
    step: Step,
    ledger: &Ledger,
    narrator: Narrator,
) -> Result<()> {
    let name = step.name.as_str();
    delete_deposed(instance, cloud, name, ledger, narrator).await?;
    match step.change {
        Change::NoOp => {}
        Change::Create => {
            let spec = step.desired.expect("creates have a spec");
            say!(narrator, "{name}: creating…");
            let image = create_recorded(instance, cloud, ledger, name, &spec).await?;
            say!(narrator, "{name}: created {} ({})", image.id, image.status);
            ledger.record_created(name, image, Vec::new())?;
        }
        Change::Update(_) => {
            let (prior, spec) = (
                step.prior.expect("updates have a prior"),
                step.desired.expect("updates have a spec"),
            );
            say!(narrator, "{name}: updating {}…", prior.id);
            let image = named(name, instance.update(cloud, &prior, &spec).await)?;
            say!(narrator, "{name}: updated {}", image.id);
            ledger.record(name, image, Vec::new())?;
        }
        Change::Replace(_) => {
            let (prior, spec) = (
                step.prior.expect("replacements have a prior"),
                step.desired.expect("replacements have a spec"),
            );
            // Create first: if that fails, the old image is untouched.
            say!(
                narrator,
                "{name}: replacing {}: creating the new image…",
                prior.id
            );
            let image = create_recorded(instance, cloud, ledger, name, &spec).await?;
            say!(narrator, "{name}: created {}; deleting {}…", image.id, prior.id);
            let old = DeposedImage {
                id: prior.id.clone(),
                region: prior.spec.region.clone(),
            };
            ledger.record_created(name, image, vec![old])?;
            delete_deposed(instance, cloud, name, ledger, narrator).await?;
        }
        Change::Delete => {
            let prior = step.prior.expect("deletions have a prior");
            say!(narrator, "{name}: deleting {}…", prior.id);
            let (region, timeout) = (prior.spec.region.as_deref(), prior.spec.timeouts.delete);
            named(name, instance.delete(cloud, &prior.id, region, timeout).await)?;
            ledger.forget(name)?;
            say!(narrator, "{name}: deleted {}", prior.id);
        }
    }
    Ok(())
}

/// Creates the image for `name` with an id chosen here and written to the state first; the
/// intent stays until the caller records the image (`Ledger::record_created`). A
/// create the cloud's refusal of the session cut short after the image record was made (a
/// token that expired during a long upload; the instance deleted the half-made image with a
/// new session) starts once more with a new id, as Glance never reuses one.
async fn create_recorded(
    instance: &mut impl Lifecycle,
    cloud: &Cloud,
    ledger: &Ledger,
    name: &str,
    spec: &ImageSpec,
) -> Result<ImageState> {
    for attempt in 0..2 {
        let id = spec
            .image_id
            .clone()
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let intent = DeposedImage {
            id: id.clone(),
            region: spec.region.clone(),
        };
        ledger.update(|state| {
            state.creating.insert(name.to_string(), intent.clone());
        })?;
        let with_id = ImageSpec {
            image_id: Some(id.clone()),
            ..spec.clone()
        };
        let result = instance.create(cloud, &with_id).await;
        let cut_short = matches!(&result, Ok(Err(GuestError::Unauthorized(info))) if info.image_id.is_some());
        let created = named(name, result);
        if created.is_ok() {
            return created;
        }
        // A failed create deletes its image (and an upload fallback's); keep the intent only
        // if that did not work out.
        let mut leftover = false;
        for made in made_for(&id) {
            leftover |= !matches!(
                instance.read(&in_region(cloud, &intent), &made, None).await,
                Ok(Ok(None))
            );
        }
        if !leftover {
            ledger.update(|state| {
                state.creating.remove(name);
            })?;
        }
        if cut_short && !leftover && attempt == 0 && spec.image_id.is_none() {
            continue;
        }
        return created;
    }
    unreachable!("the second attempt returns")
}

/// The images a create with the id `id` may have made: its own, and the one an upload
/// fallback (`import_fallback: upload`) makes in its place when Glance's import fails.
fn made_for(id: &str) -> [String; 2] {
    [id.to_string(), fallback_image_id(id)]
}

/// `cloud` with `image`'s region as the default region.
fn in_region(cloud: &Cloud, image: &DeposedImage) -> Cloud {
    let mut cloud = cloud.clone();
    if image.region.is_some() {
        cloud.region = image.region.clone();
    }
    cloud
}

/// Settles creates an earlier run did not finish (it was killed, or its cleanup failed):
/// an active image is adopted when its name has none yet, anything else is deleted.
pub async fn finish_interrupted(
    instance: &mut impl Lifecycle,
    cloud: &Cloud,
    ledger: &Ledger,
    narrator: Narrator,
) -> Result<()> {
    for (name, intent) in ledger.read(|state| state.creating.clone()) {
        let recorded = ledger.read(|s| {
            s.images
                .get(&name)
                .is_some_and(|e| made_for(&intent.id).contains(&e.image.id))
        });
        if recorded {
            // Recorded already (a state an earlier release wrote between its two writes): the
            // image is the state's own, only the intent is left over.
            ledger.update(|state| {
                state.creating.remove(&name);
            })?;
            continue;
        }
        let cloud = in_region(cloud, &intent);
        let mut found = false;
        let mut adopted = false;
        for id in made_for(&intent.id) {
            match named(&name, instance.read(&cloud, &id, None).await)? {
                None => {}
                Some(image)
                    if image.status == "active"
                        && !adopted
                        && !ledger.read(|s| s.images.contains_key(&name)) =>
                {
                    say!(
                        narrator,
                        "{name}: adopting {}, which an interrupted apply had finished uploading",
                        image.id
                    );
                    // Recorded and the intent dropped in one write, as apply does.
                    ledger.record_created(&name, image, Vec::new())?;
                    (found, adopted) = (true, true);
                }
                Some(image) => {
                    say!(
                        narrator,
                        "{name}: deleting {} ({}), left by an interrupted apply",
                        image.id,
                        image.status
                    );
                    named(&name, instance.delete(&cloud, &image.id, None, None).await)?;
                    found = true;
                }
            }
        }
        if !found {
            say!(
                narrator,
                "{name}: an interrupted create of {} left nothing behind",
                intent.id
            );
        }
        if !adopted {
            ledger.update(|state| {
                state.creating.remove(&name);
            })?;
        }
    }
    Ok(())
}

/// Deletes the images `name` replaced, dropping each from the state once it is gone.
async fn delete_deposed(
    instance: &mut impl Lifecycle,
    cloud: &Cloud,
    name: &str,
    ledger: &Ledger,
    narrator: Narrator,
) -> Result<()> {
    let deposed = ledger.read(|state| {
        state
            .images
            .get(name)
            .map(|e| e.deposed.clone())
            .unwrap_or_default()
    });
    for old in deposed {
        named(
            name,
            instance.delete(cloud, &old.id, old.region.as_deref(), None).await,
        )
        .map_err(|e| {
            e.context(format!(
                "image '{name}': the replaced image {} is still there; the next apply retries",
                old.id
            ))
        })?;
        ledger.update(|state| {
            if let Some(entry) = state.images.get_mut(name) {
                entry.deposed.retain(|d| d.id != old.id);
            }
        })?;
        say!(narrator, "{name}: deleted replaced image {}", old.id);
    }
    Ok(())
}

/// Deletes the state's images named in `targets` (all when empty) and every image they
/// replaced. With `force`, protected images are unprotected first.
pub async fn destroy(
    instance: &mut impl Lifecycle,
    cloud: &Cloud,
    ledger: &Ledger,
    targets: &[String],
    force: bool,
    narrator: Narrator,
) -> Outcome {
    let mut outcome = Outcome::default();
    let names: Vec<String> = ledger.read(|state| {
        state
            .images
            .keys()
            .filter(|n| targeted(targets, n))
            .cloned()
            .collect()
    });
    for name in names {
        let result = async {
            delete_deposed(instance, cloud, &name, ledger, narrator).await?;
            let Some(entry) = ledger.read(|state| state.images.get(&name).cloned()) else {
                return Ok(());
            };
            let image = &entry.image;
            if image.spec.protected == Some(true) && !force {
                // Known from the state, so refused before any request (Glance would answer 403).
                anyhow::bail!(
                    "image '{name}': {} is protected, so it was not deleted; run `destroy --force` \
                     to remove the protection and delete it, or set `protected: false` in the spec \
                     and apply first",
                    image.id
                );
            }
            if force && image.spec.protected == Some(true) {
                say!(narrator, "{name}: removing the protection of {}…", image.id);
                let mut unprotected = image.spec.clone();
                unprotected.protected = Some(false);
                let updated = named(&name, instance.update(cloud, image, &unprotected).await)?;
                ledger.record(&name, updated, entry.deposed.clone())?;
            }
            say!(narrator, "{name}: deleting {}…", image.id);
            let (region, timeout) = (image.spec.region.as_deref(), image.spec.timeouts.delete);
            named(&name, instance.delete(cloud, &image.id, region, timeout).await)?;
            ledger.forget(&name)?;
            say!(narrator, "{name}: deleted {}", image.id);
            anyhow::Ok(())
        }
        .await;
        outcome.record(name, &result);
    }
    outcome
}

/// Adopts the existing image `id` under `name`: from now on the state manages it. Its
/// properties are left alone until the spec names them (as properties other tools set are);
/// its source is unknown until the spec names one.
pub async fn import(
    instance: &mut impl Lifecycle,
    cloud: &Cloud,
    ledger: &Ledger,
    name: &str,
    id: &str,
    spec: Option<&ImageSpec>,
) -> Result<()> {
    if let Some(existing) = ledger.read(|state| state.images.get(name).map(|e| e.image.id.clone())) {
        anyhow::bail!(
            "image '{name}' is already in the state (id {existing}); pick another name, or `destroy --target {name}` first"
        );
    }
    let mut image = named(name, instance.read(cloud, id, None).await)?.ok_or_else(|| {
        anyhow!("image '{name}': the cloud has no image {id} (check the id and OS_REGION_NAME)")
    })?;
    // Managed from now on: the properties the spec's entry names, and the members when it
    // names them; the rest of what the image holds is left alone.
    match spec {
        Some(spec) => {
            let named = |key: &str| spec.properties.iter().any(|(k, _)| k == key);
            image.spec.properties.retain(|(key, _)| named(key));
            if spec.members.is_none() {
                image.spec.members = None;
            }
        }
        None => {
            image.spec.properties.clear();
            image.spec.members = None;
        }
    }
    println!(
        "{name}: adopted {} ({}, {})",
        image.id,
        image.spec.name.as_deref().unwrap_or("unnamed"),
        image.status
    );
    ledger.record(name, image, Vec::new())
}

/// Finds the one image `query` describes (see `lifecycle.find`).
pub async fn find(instance: &mut impl Lifecycle, cloud: &Cloud, query: &ImageQuery) -> Result<ImageState> {
    named("find", instance.find(cloud, query).await)
}

/// Re-reads every image of the state (those in `targets`, when given) and records what the
/// cloud holds now; images gone from the cloud leave the state.
pub async fn refresh(
    instance: &mut impl Lifecycle,
    cloud: &Cloud,
    ledger: &Ledger,
    targets: &[String],
    narrator: Narrator,
) -> Result<()> {
    let entries: Vec<(String, StateEntry)> = ledger.read(|state| {
        state
            .images
            .iter()
            .filter(|(n, _)| targeted(targets, n))
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect()
    });
    for (name, entry) in entries {
        match named(
            &name,
            instance.read(cloud, &entry.image.id, Some(&entry.image)).await,
        )? {
            Some(image) => {
                say!(narrator, "{name}: {} is {}", image.id, image.status);
                ledger.record(&name, image, entry.deposed)?;
            }
            None => {
                say!(
                    narrator,
                    "{name}: {} is gone from the cloud; removed from the state",
                    entry.image.id
                );
                ledger.forget(&name)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use openstack_image_documents::fixtures;

    use super::*;
    use crate::bindings::openstack::image::types::{FieldError, UnauthorizedInfo};
    use crate::exit::{CLOUD, OK, PARTIAL, status_of};
    use crate::state::StateFileExt;

    const QUIET: Narrator = Narrator { quiet: true };

    /// A call the fake cloud received, by image id.
    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        Read(String),
        /// Whether the state file held the id as a create's intent when the create began.
        Create {
            id: String,
            intent_saved: bool,
        },
        Update(String),
        Delete(String),
    }

    /// A call that fails once, for the image of that Glance name or id.
    struct Fault {
        call: &'static str,
        image: String,
        /// The error, given the id of the image the call was about.
        error: fn(&str) -> GuestError,
        /// `create` only: the status of the image the failed create leaves behind.
        leaves: Option<&'static str>,
    }

    /// An in-memory cloud shared by the fake instances a test opens: its images by id, the
    /// calls it received, the faults still to come.
    #[derive(Default)]
    struct FakeCloud {
        images: Mutex<BTreeMap<String, ImageState>>,
        calls: Mutex<Vec<Call>>,
        faults: Mutex<Vec<Fault>>,
        /// Instances opened through [`FakeCloud::instance_for`].
        opened: AtomicUsize,
        /// The state file whose intents `create` looks at.
        state_file: Option<PathBuf>,
        /// Each read waits here until as many reads are under way as the barrier counts.
        read_barrier: Option<tokio::sync::Barrier>,
    }

    impl FakeCloud {
        fn holding(images: &[&ImageState]) -> FakeCloud {
            let images = images.iter().map(|i| (i.id.clone(), (*i).clone())).collect();
            FakeCloud {
                images: Mutex::new(images),
                ..FakeCloud::default()
            }
        }

        fn fail(&self, call: &'static str, image: &str, error: fn(&str) -> GuestError) {
            self.fail_leaving(call, image, error, None);
        }

        fn fail_leaving(
            &self,
            call: &'static str,
            image: &str,
            error: fn(&str) -> GuestError,
            leaves: Option<&'static str>,
        ) {
            self.faults.lock().unwrap().push(Fault {
                call,
                image: image.to_string(),
                error,
                leaves,
            });
        }

        /// The first fault for `call` on one of `images`, used up.
        fn fault(&self, call: &str, images: &[&str]) -> Option<Fault> {
            let mut faults = self.faults.lock().unwrap();
            let at = faults
                .iter()
                .position(|f| f.call == call && images.contains(&f.image.as_str()))?;
            Some(faults.remove(at))
        }

        fn called(&self, call: Call) {
            self.calls.lock().unwrap().push(call);
        }

        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }

        fn image(&self, id: &str) -> Option<ImageState> {
            self.images.lock().unwrap().get(id).cloned()
        }

        fn instance(self: &Arc<Self>) -> FakeInstance {
            FakeInstance(self.clone())
        }

        fn instance_for(self: &Arc<Self>) -> InstanceFor<FakeInstance> {
            let cloud = self.clone();
            Arc::new(move |_, _| {
                cloud.opened.fetch_add(1, Ordering::SeqCst);
                let instance = cloud.instance();
                Box::pin(async move { Ok(instance) })
            })
        }
    }

    struct FakeInstance(Arc<FakeCloud>);

    impl Lifecycle for FakeInstance {
        async fn check(&mut self, spec: &ImageSpec) -> CallResult<ImageSpec> {
            Ok(if spec.disk_format.is_empty() {
                Err(GuestError::InvalidSpec(vec![FieldError {
                    field: "disk_format".into(),
                    message: "is required".into(),
                }]))
            } else {
                Ok(spec.clone())
            })
        }

        /// The fake cloud defines one property: `hw_disk_bus`, `virtio` or `scsi`.
        async fn check_with_cloud(&mut self, _cloud: &Cloud, spec: &ImageSpec) -> CallResult<()> {
            Ok(
                match spec
                    .properties
                    .iter()
                    .find(|(k, v)| k == "hw_disk_bus" && v != "virtio" && v != "scsi")
                {
                    Some((key, value)) => Err(GuestError::InvalidSpec(vec![FieldError {
                        field: format!("properties.{key}"),
                        message: format!("'{value}' is not allowed: use one of virtio, scsi"),
                    }])),
                    None => Ok(()),
                },
            )
        }

        /// A new disk format replaces the image; other tags or protection update it.
        async fn diff(&mut self, desired: &ImageSpec, prior: &ImageState) -> CallResult<Plan> {
            let action = if desired.disk_format != prior.spec.disk_format {
                Action::Replace
            } else if desired.tags != prior.spec.tags || desired.protected != prior.spec.protected {
                Action::Update
            } else {
                Action::NoOp
            };
            Ok(Ok(Plan {
                action,
                changes: Vec::new(),
            }))
        }

        async fn create(&mut self, _: &Cloud, spec: &ImageSpec) -> CallResult<ImageState> {
            let id = spec.image_id.clone().expect("the engine chooses the id");
            let intent_saved = self.0.state_file.as_deref().is_some_and(|path| {
                let state = State::load(path).unwrap();
                state.creating.values().any(|intent| intent.id == id)
            });
            self.0.called(Call::Create {
                id: id.clone(),
                intent_saved,
            });
            let name = spec.name.clone().unwrap_or_default();
            let mut images = self.0.images.lock().unwrap();
            if let Some(fault) = self.0.fault("create", &[&name, &id]) {
                if let Some(status) = fault.leaves {
                    images.insert(id.clone(), image(&id, spec, status));
                }
                return Ok(Err((fault.error)(&id)));
            }
            let created = image(&id, spec, "active");
            images.insert(id, created.clone());
            Ok(Ok(created))
        }

        async fn read(
            &mut self,
            _: &Cloud,
            id: &str,
            _: Option<&ImageState>,
        ) -> CallResult<Option<ImageState>> {
            self.0.called(Call::Read(id.to_string()));
            if let Some(barrier) = &self.0.read_barrier {
                barrier.wait().await;
            }
            if let Some(fault) = self.0.fault("read", &[id]) {
                return Ok(Err((fault.error)(id)));
            }
            Ok(Ok(self.0.image(id)))
        }

        async fn update(
            &mut self,
            _: &Cloud,
            prior: &ImageState,
            desired: &ImageSpec,
        ) -> CallResult<ImageState> {
            self.0.called(Call::Update(prior.id.clone()));
            if let Some(fault) = self.0.fault("update", &[&prior.id]) {
                return Ok(Err((fault.error)(&prior.id)));
            }
            let mut images = self.0.images.lock().unwrap();
            let Some(image) = images.get_mut(&prior.id) else {
                return Ok(Err(GuestError::NotFound(prior.id.clone())));
            };
            image.spec = desired.clone();
            Ok(Ok(image.clone()))
        }

        /// As Glance: a protected image is refused, one already gone counts as deleted.
        async fn delete(&mut self, _: &Cloud, id: &str, _: Option<&str>, _: Option<u64>) -> CallResult<()> {
            self.0.called(Call::Delete(id.to_string()));
            if let Some(fault) = self.0.fault("delete", &[id]) {
                return Ok(Err((fault.error)(id)));
            }
            let mut images = self.0.images.lock().unwrap();
            if images.get(id).is_some_and(|i| i.spec.protected == Some(true)) {
                return Ok(Err(GuestError::Forbidden(format!("image {id} is protected"))));
            }
            images.remove(id);
            Ok(Ok(()))
        }

        async fn find(&mut self, _: &Cloud, query: &ImageQuery) -> CallResult<ImageState> {
            let images = self.0.images.lock().unwrap();
            Ok(images
                .values()
                .find(|i| i.spec.name == query.name)
                .cloned()
                .ok_or_else(|| GuestError::NotFound("no image matches".into())))
        }
    }

    /// A fake cloud, and a ledger whose state file the fake's creates look at.
    struct World {
        fake: Arc<FakeCloud>,
        ledger: Arc<Ledger>,
        path: PathBuf,
        _dir: tempfile::TempDir,
    }

    impl World {
        /// A cloud holding `images`, and `state` in a fresh state file.
        fn new(images: &[&ImageState], state: State) -> World {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("openstack-image.state.json");
            state.save(&path).unwrap();
            World {
                fake: Arc::new(FakeCloud {
                    state_file: Some(path.clone()),
                    ..FakeCloud::holding(images)
                }),
                ledger: Arc::new(Ledger::new(state, path.clone())),
                path,
                _dir: dir,
            }
        }

        /// The state file as saved.
        fn saved(&self) -> State {
            State::load(&self.path).unwrap()
        }

        /// Plans `desired` against the ledger's state and applies it, as `apply` does.
        async fn apply(&self, desired: &[ImageSpec]) -> Outcome {
            let state = self.ledger.read(State::clone);
            let steps = plan_with(&self.fake, DEFAULT_PARALLEL, desired, &state, &[])
                .await
                .unwrap();
            apply(
                self.fake.instance_for(),
                &cloud(),
                steps,
                self.ledger.clone(),
                DEFAULT_PARALLEL,
                QUIET,
            )
            .await
        }

        /// The id the saved state records for `name`.
        fn id_of(&self, name: &str) -> String {
            self.saved().images[name].image.id.clone()
        }

        /// The ids of the images the fake was asked to create, in order.
        fn created(&self) -> Vec<String> {
            let creates = self.fake.calls().into_iter().filter_map(|call| match call {
                Call::Create { id, intent_saved } => {
                    assert!(intent_saved, "the intent for {id} was saved before its create");
                    Some(id)
                }
                _ => None,
            });
            creates.collect()
        }
    }

    /// `plan` with the fake's instances, up to `parallel` reading at once.
    async fn plan_with(
        fake: &Arc<FakeCloud>,
        parallel: usize,
        desired: &[ImageSpec],
        state: &State,
        targets: &[String],
    ) -> Result<Vec<Step>> {
        let (desired, cloud) = (by_name(desired), cloud());
        plan(
            &mut fake.instance(),
            &fake.instance_for(),
            parallel,
            &cloud,
            &desired,
            state,
            targets,
        )
        .await
    }

    fn cloud() -> Cloud {
        fixtures::cloud("http://keystone.test:5000/v3").into()
    }

    /// The fixture spec named `name` (its Glance name too).
    fn spec(name: &str) -> ImageSpec {
        ImageSpec {
            name: Some(name.into()),
            ..fixtures::spec().into()
        }
    }

    fn image(id: &str, spec: &ImageSpec, status: &str) -> ImageState {
        ImageState {
            id: id.into(),
            status: status.into(),
            spec: spec.clone(),
            ..fixtures::image(fixtures::spec()).into()
        }
    }

    /// An active image holding `spec`, with a fresh id.
    fn active(spec: &ImageSpec) -> ImageState {
        image(&uuid::Uuid::new_v4().to_string(), spec, "active")
    }

    fn by_name(specs: &[ImageSpec]) -> BTreeMap<String, ImageSpec> {
        specs
            .iter()
            .map(|s| (s.name.clone().unwrap(), s.clone()))
            .collect()
    }

    /// A state recording each image under its Glance name.
    fn state_of(images: &[&ImageState]) -> State {
        let mut state = State::empty();
        for image in images {
            let entry = StateEntry {
                image: (*image).clone(),
                deposed: Vec::new(),
            };
            state.images.insert(image.spec.name.clone().unwrap(), entry);
        }
        state
    }

    fn intent(id: &str) -> DeposedImage {
        DeposedImage {
            id: id.into(),
            region: None,
        }
    }

    fn kind(change: &Change) -> &'static str {
        match change {
            Change::NoOp => "no-op",
            Change::Create => "create",
            Change::Update(_) => "update",
            Change::Replace(_) => "replace",
            Change::Delete => "delete",
        }
    }

    fn transport(_: &str) -> GuestError {
        GuestError::Transport("connection reset by peer".into())
    }

    #[tokio::test]
    async fn plan_decides_each_change_from_the_spec_the_state_and_the_cloud() {
        let kept = spec("kept");
        let tagged = ImageSpec {
            tags: vec!["lts".into()],
            ..spec("tagged")
        };
        let raw = ImageSpec {
            disk_format: "raw".into(),
            ..spec("reformatted")
        };
        let (kept_image, tagged_image, qcow2_image) = (
            active(&kept),
            active(&spec("tagged")),
            active(&spec("reformatted")),
        );
        let (dropped, vanished, forgotten) = (
            active(&spec("dropped")),
            active(&spec("vanished")),
            active(&spec("forgotten")),
        );
        let state = state_of(&[
            &kept_image,
            &tagged_image,
            &qcow2_image,
            &dropped,
            &vanished,
            &forgotten,
        ]);
        // `vanished` and `forgotten` were deleted behind the tool's back.
        let fake = Arc::new(FakeCloud::holding(&[
            &kept_image,
            &tagged_image,
            &qcow2_image,
            &dropped,
        ]));
        let desired = [kept, tagged, raw, spec("vanished"), spec("new")];

        let steps = plan_with(&fake, 2, &desired, &state, &[]).await.unwrap();

        let decided: Vec<(&str, &str)> = steps.iter().map(|s| (s.name.as_str(), kind(&s.change))).collect();
        assert_eq!(
            decided,
            [
                ("dropped", "delete"),
                ("forgotten", "delete"),
                ("kept", "no-op"),
                ("new", "create"),
                ("reformatted", "replace"),
                ("tagged", "update"),
                ("vanished", "create"),
            ]
        );
        let vanished_step = &steps[6];
        assert_eq!(
            vanished_step.prior.as_ref().unwrap().id,
            vanished.id,
            "shown as it was recorded"
        );
        assert!(steps[3].prior.is_none());

        let only = plan_with(&fake, 2, &desired, &state, &["tagged".into()])
            .await
            .unwrap();
        assert_eq!(only.len(), 1);
        assert_eq!(kind(&only[0].change), "update");
    }

    #[tokio::test]
    async fn plan_checks_the_properties_it_would_send_against_the_clouds_definitions() {
        let bus = |name: &str, value: &str| ImageSpec {
            properties: vec![("hw_disk_bus".into(), value.into())],
            ..spec(name)
        };
        // Applied before the cloud defined the property; now only its tags change.
        let old = bus("old", "virtoi");
        let old_image = active(&old);
        let state = state_of(&[&old_image]);
        let fake = Arc::new(FakeCloud::holding(&[&old_image]));
        let retagged = ImageSpec {
            tags: vec!["lts".into()],
            ..old.clone()
        };

        let steps = plan_with(&fake, 1, &[retagged.clone(), bus("new", "virtio")], &state, &[]).await;
        assert_eq!(steps.unwrap().len(), 2, "unchanged and valid properties pass");

        let Err(err) = plan_with(
            &fake,
            1,
            &[retagged, bus("new", "virtoi"), bus("other", "ide")],
            &state,
            &[],
        )
        .await
        else {
            panic!("the plan passed");
        };
        let message = format!("{err:#}");
        assert!(message.contains("image 'new'"), "{message}");
        assert!(
            message.contains("image 'other'"),
            "every problem at once: {message}"
        );
        assert!(!message.contains("image 'old'"), "{message}");
        assert!(message.contains("properties.hw_disk_bus"), "{message}");
        assert!(message.ends_with("Nothing was changed."), "{message}");
    }

    #[tokio::test]
    async fn plan_reads_the_images_side_by_side_each_reader_with_an_instance_of_its_own() {
        let names = ["f", "b", "e", "a", "d", "c"];
        let images: Vec<ImageState> = names.iter().map(|n| active(&spec(n))).collect();
        let images: Vec<&ImageState> = images.iter().collect();
        // Three readers: every read waits until three are under way, so this finishes only
        // when they run side by side.
        let fake = Arc::new(FakeCloud {
            read_barrier: Some(tokio::sync::Barrier::new(3)),
            ..FakeCloud::holding(&images)
        });
        let (desired, state) = (names.map(spec), state_of(&images));
        let planned = plan_with(&fake, 3, &desired, &state, &[]);

        let steps = tokio::time::timeout(Duration::from_secs(10), planned)
            .await
            .expect("three reads were under way at once")
            .unwrap();

        let order: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(order, ["a", "b", "c", "d", "e", "f"]);
        assert!(steps.iter().all(|s| kind(&s.change) == "no-op"));
        assert_eq!(
            fake.opened.load(Ordering::SeqCst),
            2,
            "the plan's own instance reads too"
        );
        let mut read: Vec<String> = fake
            .calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Read(id) => Some(id),
                _ => None,
            })
            .collect();
        read.sort();
        let mut recorded: Vec<String> = images.iter().map(|i| i.id.clone()).collect();
        recorded.sort();
        assert_eq!(read, recorded, "each image read once");
    }

    #[tokio::test]
    async fn a_failed_read_fails_the_plan_naming_the_image() {
        let images: Vec<ImageState> = ["a", "b", "c"].map(|n| active(&spec(n))).into();
        let images: Vec<&ImageState> = images.iter().collect();
        let fake = Arc::new(FakeCloud::holding(&images));
        fake.fail("read", &images[1].id, transport);
        let desired = ["a", "b", "c"].map(spec);

        let err = plan_with(&fake, 4, &desired, &state_of(&images), &[])
            .await
            .err()
            .expect("the plan fails");

        assert_eq!(
            format!("{err:#}"),
            "image 'b': cannot reach the cloud: connection reset by peer"
        );
        assert_eq!(status_of(&err), std::process::ExitCode::from(CLOUD));
    }

    #[tokio::test]
    async fn check_all_reports_every_invalid_image_at_once() {
        let fake = Arc::new(FakeCloud::default());
        let broken = |name| ImageSpec {
            disk_format: String::new(),
            ..spec(name)
        };
        let err = check_all(
            &mut fake.instance(),
            &by_name(&[broken("a"), spec("b"), broken("c")]),
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "image 'a', field disk_format: is required\nimage 'c', field disk_format: is required\nNothing was changed."
        );
    }

    #[tokio::test]
    async fn apply_records_the_id_before_the_create_and_drops_the_intent_after() {
        let world = World::new(&[], State::empty());

        let outcome = world.apply(&[spec("web")]).await;

        assert_eq!(outcome.status(), OK);
        let created = world.created();
        assert_eq!(created, [world.id_of("web")]);
        assert!(world.saved().creating.is_empty());
        assert_eq!(world.fake.image(&created[0]).unwrap().status, "active");
        let query: ImageQuery = openstack_image_documents::QueryDoc {
            name: Some("web".into()),
            ..Default::default()
        }
        .into();
        let found = find(&mut world.fake.instance(), &cloud(), &query).await.unwrap();
        assert_eq!(found.id, created[0]);
    }

    #[tokio::test]
    async fn a_failed_create_keeps_its_intent_only_while_its_image_is_there() {
        let world = World::new(&[], State::empty());
        world.fake.fail("create", "clean", transport);
        world
            .fake
            .fail_leaving("create", "stuck", transport, Some("queued"));

        let outcome = world.apply(&[spec("clean"), spec("stuck")]).await;

        assert_eq!(outcome.failed_names(), ["clean", "stuck"]);
        let saved = world.saved();
        assert!(saved.images.is_empty());
        assert_eq!(saved.creating.keys().collect::<Vec<_>>(), ["stuck"]);
        let leftover = &saved.creating["stuck"].id;
        assert_eq!(world.fake.image(leftover).unwrap().status, "queued");
        assert!(world.created().contains(leftover));
    }

    #[tokio::test]
    async fn finish_interrupted_adopts_an_active_leftover_and_deletes_any_other() {
        let taken = active(&spec("taken"));
        let finished = active(&spec("finished"));
        let half = image(&uuid::Uuid::new_v4().to_string(), &spec("half"), "saving");
        let second = active(&spec("taken"));
        let mut state = state_of(&[&taken]);
        state.creating.insert("finished".into(), intent(&finished.id));
        state.creating.insert("half".into(), intent(&half.id));
        state
            .creating
            .insert("nothing".into(), intent(&uuid::Uuid::new_v4().to_string()));
        // An active image under a name the state already has is a leftover too.
        state.creating.insert("taken".into(), intent(&second.id));
        let world = World::new(&[&taken, &finished, &half, &second], state);

        finish_interrupted(&mut world.fake.instance(), &cloud(), &world.ledger, QUIET)
            .await
            .unwrap();

        let saved = world.saved();
        assert!(saved.creating.is_empty());
        assert_eq!(world.id_of("finished"), finished.id);
        assert_eq!(world.id_of("taken"), taken.id);
        assert!(!saved.images.contains_key("half") && !saved.images.contains_key("nothing"));
        assert!(world.fake.image(&half.id).is_none());
        assert!(world.fake.image(&second.id).is_none());
        assert!(world.fake.image(&finished.id).is_some());
    }

    #[tokio::test]
    async fn finish_interrupted_keeps_an_image_the_state_already_records() {
        let web = active(&spec("web"));
        let mut state = state_of(&[&web]);
        state.creating.insert("web".into(), intent(&web.id));
        let world = World::new(&[&web], state);

        finish_interrupted(&mut world.fake.instance(), &cloud(), &world.ledger, QUIET)
            .await
            .unwrap();

        let saved = world.saved();
        assert!(saved.creating.is_empty());
        assert_eq!(world.id_of("web"), web.id);
        assert!(world.fake.image(&web.id).is_some(), "the recorded image is kept");
        assert!(!world.fake.calls().contains(&Call::Delete(web.id.clone())));
    }

    #[tokio::test]
    async fn replace_creates_first_and_retries_a_failed_delete_of_the_deposed_image_next_run() {
        let old = active(&spec("web"));
        let world = World::new(&[&old], state_of(&[&old]));
        world.fake.fail("delete", &old.id, transport);
        let raw = ImageSpec {
            disk_format: "raw".into(),
            ..spec("web")
        };

        let outcome = world.apply(std::slice::from_ref(&raw)).await;

        assert_eq!(outcome.failed_names(), ["web"]);
        let new = world.id_of("web");
        let calls = world.fake.calls();
        let create_at = calls
            .iter()
            .position(|c| matches!(c, Call::Create { id, .. } if *id == new));
        let delete_at = calls.iter().position(|c| *c == Call::Delete(old.id.clone()));
        assert!(create_at < delete_at && create_at.is_some(), "{calls:?}");
        assert_eq!(world.saved().images["web"].deposed, [intent(&old.id)]);
        assert!(world.fake.image(&old.id).is_some());
        assert!(world.saved().creating.is_empty());

        let again = world.apply(&[raw]).await;

        assert_eq!(again.status(), OK);
        assert!(world.saved().images["web"].deposed.is_empty());
        assert_eq!(world.id_of("web"), new);
        assert!(world.fake.image(&old.id).is_none());
        assert_eq!(world.created(), [new], "nothing else was created");
    }

    #[tokio::test]
    async fn destroy_refuses_a_protected_image_unless_forced_then_unprotects_it_first() {
        let locked = active(&ImageSpec {
            protected: Some(true),
            ..spec("locked")
        });
        let plain = active(&spec("plain"));
        let world = World::new(&[&locked, &plain], state_of(&[&locked, &plain]));

        let refused = destroy(
            &mut world.fake.instance(),
            &cloud(),
            &world.ledger,
            &[],
            false,
            QUIET,
        )
        .await;

        assert_eq!((refused.done, refused.failed_names()), (1, vec!["locked"]));
        assert_eq!(
            world.fake.calls(),
            [Call::Delete(plain.id.clone())],
            "no request for the protected one"
        );
        assert!(world.fake.image(&locked.id).is_some());
        assert_eq!(world.saved().images.keys().collect::<Vec<_>>(), ["locked"]);

        let forced = destroy(
            &mut world.fake.instance(),
            &cloud(),
            &world.ledger,
            &[],
            true,
            QUIET,
        )
        .await;

        assert_eq!(forced.status(), OK);
        assert_eq!(
            world.fake.calls()[1..],
            [Call::Update(locked.id.clone()), Call::Delete(locked.id.clone())]
        );
        assert!(world.fake.image(&locked.id).is_none());
        assert!(world.saved().images.is_empty());
    }

    #[tokio::test]
    async fn one_images_failure_does_not_stop_the_others() {
        let world = World::new(&[], State::empty());
        world.fake.fail("create", "b", transport);

        let outcome = world.apply(&[spec("a"), spec("b"), spec("c")]).await;

        assert_eq!((outcome.done, outcome.failed_names()), (2, vec!["b"]));
        assert_eq!(outcome.status(), PARTIAL);
        assert_eq!(world.saved().images.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert!(world.saved().creating.is_empty());
    }

    #[tokio::test]
    async fn a_create_cut_short_by_an_expired_session_starts_once_more_with_a_new_id() {
        // The instance already deleted the half-made image with a new session.
        fn expired(id: &str) -> GuestError {
            GuestError::Unauthorized(UnauthorizedInfo {
                message: "the token expired during the upload".into(),
                image_id: Some(id.into()),
            })
        }
        let world = World::new(&[], State::empty());
        world.fake.fail("create", "web", expired);

        let outcome = world.apply(&[spec("web")]).await;

        assert_eq!(outcome.status(), OK);
        let created = world.created();
        assert_eq!(created.len(), 2);
        assert_ne!(created[0], created[1], "Glance never reuses an id");
        assert_eq!(world.id_of("web"), created[1]);
        assert!(world.saved().creating.is_empty());

        // An id the spec names cannot be used again: no second start.
        let named_id = uuid::Uuid::new_v4().to_string();
        world.fake.fail("create", "pinned", expired);
        let pinned = ImageSpec {
            image_id: Some(named_id.clone()),
            ..spec("pinned")
        };

        let outcome = world.apply(&[spec("web"), pinned]).await;

        assert_eq!(outcome.failed_names(), ["pinned"]);
        assert_eq!(world.created()[2..], [named_id]);
        assert!(!world.saved().images.contains_key("pinned"));
        assert!(world.saved().creating.is_empty());
    }

    #[tokio::test]
    async fn refresh_records_the_cloud_and_forgets_vanished_images() {
        let kept = active(&spec("kept"));
        let vanished = active(&spec("vanished"));
        let world = World::new(&[&kept], state_of(&[&kept, &vanished]));
        world
            .fake
            .images
            .lock()
            .unwrap()
            .get_mut(&kept.id)
            .unwrap()
            .status = "deactivated".into();

        refresh(&mut world.fake.instance(), &cloud(), &world.ledger, &[], QUIET)
            .await
            .unwrap();

        let saved = world.saved();
        assert_eq!(saved.images.keys().collect::<Vec<_>>(), ["kept"]);
        assert_eq!(saved.images["kept"].image.status, "deactivated");
    }
}
