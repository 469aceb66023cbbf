//! The declarative engine: turns a spec file and a state file into steps, and carries them
//! out (independent images in parallel, each in its own sandbox), saving the state after
//! every change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Result, anyhow};

use crate::bindings::{Action, Cloud, GuestError, ImageQuery, ImageSpec, ImageState};
use crate::exit::{CloudError, Outcome};
use crate::grants::DataSource;
use crate::plan::{Change, Step};
use crate::report::{self, Narrator};
use crate::runtime::{CallResult, Instance};
use crate::say;
use crate::state::{DeposedImage, Ledger, State, StateEntry};

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
    instance: &mut Instance,
    images: &BTreeMap<String, ImageSpec>,
) -> Result<BTreeMap<String, ImageSpec>> {
    let mut checked = BTreeMap::new();
    let mut problems = Vec::new();
    for (name, spec) in images {
        match named(name, instance.check(spec).await) {
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

/// Reads every image in the state and decides what each needs.
pub async fn plan(
    instance: &mut Instance,
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
    let mut steps = Vec::new();
    for name in names {
        let entry = state.images.get(name);
        let spec = desired.get(name).cloned();
        let prior = match entry {
            Some(entry) => named(
                name,
                instance.read(cloud, &entry.image.id, Some(&entry.image)).await,
            )?,
            None => None,
        };
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
    Ok(steps)
}

/// Opens a sandboxed component instance for one image's work (named; only its grants).
pub type InstanceFor = Arc<dyn Fn(String, Option<ImageSpec>) -> BoxFuture<Result<Instance>> + Send + Sync>;

/// A boxed future that may move between threads.
pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

/// Carries out `steps`, up to `parallel` images at once, each in its own instance; the
/// ledger saves the state after every change. One image's failure does not stop the others.
pub async fn apply(
    instance_for: InstanceFor,
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
    instance: &mut Instance,
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
            ledger.record(name, image, Vec::new())?;
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
            ledger.record(name, image, vec![old])?;
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

/// Creates the image for `name` with an id chosen here and written to the state first. A
/// create the cloud's refusal of the session cut short after the image record was made (a
/// token that expired during a long upload; the instance deleted the half-made image with a
/// new session) starts once more with a new id, as Glance never reuses one.
async fn create_recorded(
    instance: &mut Instance,
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
        // A failed create deletes its image; keep the intent only if that did not work out.
        let leftover = created.is_err()
            && !matches!(
                instance.read(&in_region(cloud, &intent), &id, None).await,
                Ok(Ok(None))
            );
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
    instance: &mut Instance,
    cloud: &Cloud,
    ledger: &Ledger,
    narrator: Narrator,
) -> Result<()> {
    for (name, intent) in ledger.read(|state| state.creating.clone()) {
        let cloud = in_region(cloud, &intent);
        match named(&name, instance.read(&cloud, &intent.id, None).await)? {
            None => say!(
                narrator,
                "{name}: an interrupted create of {} left nothing behind",
                intent.id
            ),
            Some(image) if image.status == "active" && !ledger.read(|s| s.images.contains_key(&name)) => {
                say!(
                    narrator,
                    "{name}: adopting {}, which an interrupted apply had finished uploading",
                    image.id
                );
                ledger.record(&name, image, Vec::new())?;
            }
            Some(image) => {
                say!(
                    narrator,
                    "{name}: deleting {} ({}), left by an interrupted apply",
                    image.id,
                    image.status
                );
                named(&name, instance.delete(&cloud, &image.id, None, None).await)?;
            }
        }
        ledger.update(|state| {
            state.creating.remove(&name);
        })?;
    }
    Ok(())
}

/// Deletes the images `name` replaced, dropping each from the state once it is gone.
async fn delete_deposed(
    instance: &mut Instance,
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
    instance: &mut Instance,
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
    instance: &mut Instance,
    cloud: &Cloud,
    ledger: &Ledger,
    name: &str,
    id: &str,
) -> Result<()> {
    if let Some(existing) = ledger.read(|state| state.images.get(name).map(|e| e.image.id.clone())) {
        anyhow::bail!(
            "image '{name}' is already in the state (id {existing}); pick another name, or `destroy --target {name}` first"
        );
    }
    let mut image = named(name, instance.read(cloud, id, None).await)?.ok_or_else(|| {
        anyhow!("image '{name}': the cloud has no image {id} (check the id and OS_REGION_NAME)")
    })?;
    image.spec.properties.clear();
    println!(
        "{name}: adopted {} ({}, {})",
        image.id,
        image.spec.name.as_deref().unwrap_or("unnamed"),
        image.status
    );
    ledger.record(name, image, Vec::new())
}

/// Finds the one image `query` describes (see `lifecycle.find`).
pub async fn find(instance: &mut Instance, cloud: &Cloud, query: &ImageQuery) -> Result<ImageState> {
    named("find", instance.find(cloud, query).await)
}

/// Re-reads every image of the state (those in `targets`, when given) and records what the
/// cloud holds now; images gone from the cloud leave the state.
pub async fn refresh(
    instance: &mut Instance,
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
