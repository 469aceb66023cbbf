//! The declarative engine: turns a spec file and a state file into steps, and carries them
//! out one image at a time, saving the state after every change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{Result, anyhow};

use crate::bindings::{Action, Cloud, ImageSpec, ImageState, Plan};
use crate::report;
use crate::runtime::{CallResult, Instance};
use crate::state::{DeposedImage, State, StateEntry};

/// What happens to one image.
pub enum Change {
    NoOp,
    Create,
    Update(Plan),
    Replace(Plan),
    Delete,
}

/// One image's planned change.
pub struct Step {
    pub name: String,
    pub change: Change,
    /// The validated spec (absent for deletions).
    pub desired: Option<ImageSpec>,
    /// The image as it is now (absent for new images).
    pub prior: Option<ImageState>,
    /// Replaced images still to delete.
    pub deposed: Vec<DeposedImage>,
}

impl Step {
    /// True when applying this step changes the cloud.
    pub fn changes_anything(&self) -> bool {
        !matches!(self.change, Change::NoOp) || !self.deposed.is_empty()
    }
}

/// Turns a guest call's outcome into a message naming the image.
fn named<T>(image: &str, result: CallResult<T>) -> Result<T> {
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(anyhow!(report::guest_error(image, &err))),
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
        .filter(|n| targets.is_empty() || targets.contains(n))
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

/// Carries out `steps`, saving the state after each change. Returns the failures; one
/// image's failure does not stop the others.
pub async fn apply(
    instance: &mut Instance,
    cloud: &Cloud,
    steps: Vec<Step>,
    state: &mut State,
    state_path: &Path,
) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    for step in steps {
        let name = step.name.clone();
        if let Err(err) = apply_step(instance, cloud, step, state, state_path).await {
            eprintln!("error: {err:#}");
            failures.push(name);
        }
    }
    Ok(failures)
}

async fn apply_step(
    instance: &mut Instance,
    cloud: &Cloud,
    step: Step,
    state: &mut State,
    state_path: &Path,
) -> Result<()> {
    let name = step.name.as_str();
    delete_deposed(instance, cloud, name, state, state_path).await?;
    match step.change {
        Change::NoOp => {}
        Change::Create => {
            let spec = step.desired.expect("creates have a spec");
            println!("{name}: creating…");
            let image = create_recorded(instance, cloud, state, state_path, name, &spec).await?;
            println!("{name}: created {} ({})", image.id, image.status);
            record(state, state_path, name, image, Vec::new())?;
        }
        Change::Update(_) => {
            let (prior, spec) = (
                step.prior.expect("updates have a prior"),
                step.desired.expect("updates have a spec"),
            );
            println!("{name}: updating {}…", prior.id);
            let image = named(name, instance.update(cloud, &prior, &spec).await)?;
            println!("{name}: updated {}", image.id);
            record(state, state_path, name, image, Vec::new())?;
        }
        Change::Replace(_) => {
            let (prior, spec) = (
                step.prior.expect("replacements have a prior"),
                step.desired.expect("replacements have a spec"),
            );
            // Create first: if that fails, the old image is untouched.
            println!("{name}: replacing {}: creating the new image…", prior.id);
            let image = create_recorded(instance, cloud, state, state_path, name, &spec).await?;
            println!("{name}: created {}; deleting {}…", image.id, prior.id);
            let old = DeposedImage {
                id: prior.id.clone(),
                region: prior.spec.region.clone(),
            };
            record(state, state_path, name, image, vec![old])?;
            delete_deposed(instance, cloud, name, state, state_path).await?;
        }
        Change::Delete => {
            let prior = step.prior.expect("deletions have a prior");
            println!("{name}: deleting {}…", prior.id);
            named(
                name,
                instance
                    .delete(
                        cloud,
                        &prior.id,
                        prior.spec.region.as_deref(),
                        prior.spec.timeouts.delete,
                    )
                    .await,
            )?;
            state.images.remove(name);
            state.save(state_path)?;
            println!("{name}: deleted {}", prior.id);
        }
    }
    Ok(())
}

/// Creates the image for `name` with an id chosen here and written to the state first.
async fn create_recorded(
    instance: &mut Instance,
    cloud: &Cloud,
    state: &mut State,
    state_path: &Path,
    name: &str,
    spec: &ImageSpec,
) -> Result<ImageState> {
    let id = spec
        .image_id
        .clone()
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let intent = DeposedImage {
        id: id.clone(),
        region: spec.region.clone(),
    };
    state.creating.insert(name.to_string(), intent.clone());
    state.save(state_path)?;
    let mut spec = spec.clone();
    spec.image_id = Some(id.clone());
    let created = named(name, instance.create(cloud, &spec).await);
    // A failed create deletes its image; keep the intent only if that did not work out.
    let leftover = created.is_err()
        && !matches!(
            instance.read(&in_region(cloud, &intent), &id, None).await,
            Ok(Ok(None))
        );
    if !leftover {
        state.creating.remove(name);
        state.save(state_path)?;
    }
    created
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
    state: &mut State,
    state_path: &Path,
) -> Result<()> {
    for (name, intent) in state.creating.clone() {
        let cloud = in_region(cloud, &intent);
        match named(&name, instance.read(&cloud, &intent.id, None).await)? {
            None => println!(
                "{name}: an interrupted create of {} left nothing behind",
                intent.id
            ),
            Some(image) if image.status == "active" && !state.images.contains_key(&name) => {
                println!(
                    "{name}: adopting {}, which an interrupted apply had finished uploading",
                    image.id
                );
                state.images.insert(
                    name.clone(),
                    StateEntry {
                        image,
                        deposed: Vec::new(),
                    },
                );
            }
            Some(image) => {
                println!(
                    "{name}: deleting {} ({}), left by an interrupted apply",
                    image.id, image.status
                );
                named(&name, instance.delete(&cloud, &image.id, None, None).await)?;
            }
        }
        state.creating.remove(&name);
        state.save(state_path)?;
    }
    Ok(())
}

/// Records `image` under `name` and saves the state at once.
fn record(
    state: &mut State,
    path: &Path,
    name: &str,
    image: ImageState,
    deposed: Vec<DeposedImage>,
) -> Result<()> {
    state
        .images
        .insert(name.to_string(), StateEntry { image, deposed });
    state.save(path)
}

/// Deletes the images `name` replaced, dropping each from the state once it is gone.
async fn delete_deposed(
    instance: &mut Instance,
    cloud: &Cloud,
    name: &str,
    state: &mut State,
    state_path: &Path,
) -> Result<()> {
    let deposed = state
        .images
        .get(name)
        .map(|e| e.deposed.clone())
        .unwrap_or_default();
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
        if let Some(entry) = state.images.get_mut(name) {
            entry.deposed.retain(|d| d.id != old.id);
        }
        state.save(state_path)?;
        println!("{name}: deleted replaced image {}", old.id);
    }
    Ok(())
}

/// Deletes the state's images named in `targets` (all when empty) and every image they
/// replaced, saving after each. With `force`, protected images are unprotected first.
pub async fn destroy(
    instance: &mut Instance,
    cloud: &Cloud,
    state: &mut State,
    state_path: &Path,
    targets: &[String],
    force: bool,
) -> Result<Vec<String>> {
    let mut failures = Vec::new();
    let names: Vec<String> = state
        .images
        .keys()
        .filter(|n| targets.is_empty() || targets.contains(n))
        .cloned()
        .collect();
    for name in names {
        let result = async {
            delete_deposed(instance, cloud, &name, state, state_path).await?;
            let entry = state.images[&name].clone();
            let image = &entry.image;
            if force && image.spec.protected == Some(true) {
                println!("{name}: removing the protection of {}…", image.id);
                let mut unprotected = image.spec.clone();
                unprotected.protected = Some(false);
                let updated = named(&name, instance.update(cloud, image, &unprotected).await)?;
                record(state, state_path, &name, updated, entry.deposed.clone())?;
            }
            println!("{name}: deleting {}…", image.id);
            let (region, timeout) = (image.spec.region.as_deref(), image.spec.timeouts.delete);
            named(&name, instance.delete(cloud, &image.id, region, timeout).await).map_err(|e| {
                if image.spec.protected == Some(true) && !force {
                    e.context("use `destroy --force` to remove the protection and delete it")
                } else {
                    e
                }
            })?;
            state.images.remove(&name);
            state.save(state_path)?;
            println!("{name}: deleted {}", image.id);
            anyhow::Ok(())
        }
        .await;
        if let Err(err) = result {
            eprintln!("error: {err:#}");
            failures.push(name);
        }
    }
    Ok(failures)
}

/// Adopts the existing image `id` under `name`: from now on the state manages it. Its
/// user properties become managed; its source is unknown until the spec names one.
pub async fn import(
    instance: &mut Instance,
    cloud: &Cloud,
    state: &mut State,
    state_path: &Path,
    name: &str,
    id: &str,
) -> Result<()> {
    if let Some(existing) = state.images.get(name) {
        anyhow::bail!(
            "image '{name}' is already in the state (id {}); pick another name, or `destroy --target {name}` first",
            existing.image.id
        );
    }
    let image = named(name, instance.read(cloud, id, None).await)?.ok_or_else(|| {
        anyhow!("image '{name}': the cloud has no image {id} (check the id and OS_REGION_NAME)")
    })?;
    println!(
        "{name}: adopted {} ({}, {})",
        image.id,
        image.spec.name.as_deref().unwrap_or("unnamed"),
        image.status
    );
    record(state, state_path, name, image, Vec::new())
}

/// Re-reads every image of the state (those in `targets`, when given) and records what the
/// cloud holds now; images gone from the cloud leave the state.
pub async fn refresh(
    instance: &mut Instance,
    cloud: &Cloud,
    state: &mut State,
    state_path: &Path,
    targets: &[String],
) -> Result<()> {
    let names: Vec<String> = state
        .images
        .keys()
        .filter(|n| targets.is_empty() || targets.contains(n))
        .cloned()
        .collect();
    for name in names {
        let entry = state.images[&name].clone();
        match named(
            &name,
            instance.read(cloud, &entry.image.id, Some(&entry.image)).await,
        )? {
            Some(image) => {
                println!("{name}: {} is {}", image.id, image.status);
                record(state, state_path, &name, image, entry.deposed)?;
            }
            None => {
                println!(
                    "{name}: {} is gone from the cloud; removed from the state",
                    entry.image.id
                );
                state.images.remove(&name);
                state.save(state_path)?;
            }
        }
    }
    Ok(())
}
