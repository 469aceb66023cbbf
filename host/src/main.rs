//! `openstack-image`: manage OpenStack Glance images declaratively, through a sandboxed
//! WebAssembly component. The command line; the work is in the library (`src/lib.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};
use tracing_subscriber::EnvFilter;

use openstack_image::auth::TokenCache;
use openstack_image::bindings::{self, Cloud};
use openstack_image::cli::{
    CacheCommand, CacheDirArgs, Cli, CloudCommand, Command, ComponentCommand, GlobalArgs, SpecArgs,
    StateFileArgs,
};
use openstack_image::grants::{DataSource, SpecGrants};
use openstack_image::image_cache::{self, ImageCache, PruneRule, RunCaches};
use openstack_image::network::AllowedHost;
use openstack_image::report::Narrator;
use openstack_image::runtime::{EMBEDDED_COMPONENT, EMBEDDED_COMPONENT_ID, Instance, Limits};
use openstack_image::sandbox::{Sandbox, SandboxSettings, cache_base, default_image_cache, token_cache_dir};
use openstack_image::spec::SpecFile;
use openstack_image::state::{Ledger, State, StateFileExt, StateLock};
use openstack_image::transport::TlsSettings;
use openstack_image::{cloud, engine, exit, memberships, plan, progress, report};
use openstack_image_documents::cloud::{CloudDoc, Layer, Origin};

/// Default state file name, next to the spec file.
const STATE_FILE: &str = "openstack-image.state.json";

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // --help and --version are not errors; clap's own status for usage errors (2)
            // would read as "changes pending".
            return ExitCode::from(if err.use_stderr() { exit::USAGE } else { exit::OK });
        }
    };
    init_logging(&cli.global);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("start the async runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            exit::status_of(&err)
        }
    }
}

fn init_logging(global: &GlobalArgs) {
    let default = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug,cranelift_codegen=info,wasmtime_cranelift=info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let global = cli.global;
    let narrator = Narrator { quiet: global.quiet };
    match cli.command {
        Command::Component(ComponentCommand::Export { out }) => {
            std::fs::write(&out, EMBEDDED_COMPONENT)
                .with_context(|| format!("cannot write {}", out.display()))?;
            eprintln!(
                "wrote the component ({} bytes) to {}",
                EMBEDDED_COMPONENT.len(),
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Show(args) => {
            let state = State::load(&state_path(args.state, args.file.as_deref()))?;
            let images: serde_json::Map<String, serde_json::Value> = state
                .images
                .iter()
                .map(|(name, entry)| (name.clone(), report::image_json(&entry.image)))
                .collect();
            let mut shown = serde_json::json!({ "images": images });
            if !state.memberships.is_empty() {
                let memberships: serde_json::Map<String, serde_json::Value> = state
                    .memberships
                    .iter()
                    .map(|(name, doc)| (name.clone(), doc.to_flat()))
                    .collect();
                shown["memberships"] = memberships.into();
            }
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { spec: args, json } => {
            let Prepared {
                sandbox,
                mut instance,
                cloud,
                desired,
                memberships,
                state,
                caches,
                ..
            } = prepare(&global, &args).await?;
            let steps = engine::plan(
                &mut instance,
                &instance_for(sandbox),
                engine::DEFAULT_PARALLEL,
                &cloud,
                &desired,
                &state,
                &args.targets,
            )
            .await?;
            let membership_steps =
                memberships::plan(&mut instance, &cloud, &memberships, &state, &args.targets).await?;
            caches.finish();
            if !global.quiet {
                for (name, intent) in &state.creating {
                    eprintln!(
                        "note: {name}: an interrupted apply was creating {}; the next apply adopts or deletes it",
                        intent.id
                    );
                }
            }
            if json {
                let mut planned = report::plan_json(&steps);
                if !membership_steps.is_empty() {
                    planned["memberships"] = report::membership_plan_json(&membership_steps);
                    if membership_steps
                        .iter()
                        .any(plan::MembershipStep::changes_anything)
                    {
                        planned["changes_pending"] = true.into();
                    }
                }
                println!("{}", serde_json::to_string_pretty(&planned)?);
            } else if global.quiet {
                print!("{}", report::plan_summary_with(&steps, &membership_steps));
            } else {
                print!("{}", report::plan_text_with(&steps, &membership_steps));
            }
            Ok(
                if steps.iter().any(plan::Step::changes_anything)
                    || membership_steps
                        .iter()
                        .any(plan::MembershipStep::changes_anything)
                    || !state.creating.is_empty()
                {
                    ExitCode::from(exit::CHANGES)
                } else {
                    ExitCode::SUCCESS
                },
            )
        }
        Command::Apply { spec: args, parallel } => {
            let path = state_path(args.state.clone(), Some(&args.file));
            let _lock = StateLock::acquire(&path, "apply")?;
            let Prepared {
                sandbox,
                mut instance,
                cloud,
                desired,
                memberships,
                state,
                path,
                caches,
            } = prepare(&global, &args).await?;
            let ledger = Arc::new(Ledger::new(state, path));
            engine::finish_interrupted(&mut instance, &cloud, &ledger, narrator).await?;
            let state = ledger.read(State::clone);
            let instance_for = instance_for(sandbox);
            let steps = engine::plan(
                &mut instance,
                &instance_for,
                parallel,
                &cloud,
                &desired,
                &state,
                &args.targets,
            )
            .await?;
            let membership_steps =
                memberships::plan(&mut instance, &cloud, &memberships, &state, &args.targets).await?;
            if !global.quiet {
                print!("{}", report::plan_text_with(&steps, &membership_steps));
            }
            let mut outcome =
                engine::apply(instance_for, &cloud, steps, ledger.clone(), parallel, narrator).await;
            memberships::apply(
                &mut instance,
                &cloud,
                membership_steps,
                &ledger,
                narrator,
                &mut outcome,
            )
            .await;
            caches.finish();
            Ok(finish(&outcome, "apply"))
        }
        Command::Destroy { state: args, force } => {
            let (mut instance, cloud, ledger, _lock) =
                open_state(&global, &args.files, &args.targets, "destroy").await?;
            engine::finish_interrupted(&mut instance, &cloud, &ledger, narrator).await?;
            // Memberships first: an offer ends before its image does.
            let mut outcome = exit::Outcome::default();
            memberships::destroy(
                &mut instance,
                &cloud,
                &ledger,
                &args.targets,
                narrator,
                &mut outcome,
            )
            .await;
            let images =
                engine::destroy(&mut instance, &cloud, &ledger, &args.targets, force, narrator).await;
            outcome.done += images.done;
            outcome.failed.extend(images.failed);
            Ok(finish(&outcome, "destroy"))
        }
        Command::Import {
            name,
            image_id,
            state: args,
        } => {
            // The spec's entry for the image, when the spec file has one, says which of its
            // properties (and whether its members) the state manages from now on.
            let named = match &args.file {
                Some(file) => SpecFile::load(file)?.images.remove(&name),
                None => None,
            };
            let (mut instance, cloud, ledger, _lock) = open_state(&global, &args, &[], "import").await?;
            engine::import(&mut instance, &cloud, &ledger, &name, &image_id, named.as_ref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Refresh(args) => {
            let (mut instance, cloud, ledger, _lock) =
                open_state(&global, &args.files, &args.targets, "refresh").await?;
            engine::refresh(&mut instance, &cloud, &ledger, &args.targets, narrator).await?;
            memberships::refresh(&mut instance, &cloud, &ledger, &args.targets, narrator).await?;
            println!("refresh: done.");
            Ok(ExitCode::SUCCESS)
        }
        Command::Find(args) => {
            let (cloud, tls, token_cache) = load_cloud(&global)?;
            let sandbox = sandbox(&global, &cloud, &tls, token_cache)?;
            let cloud = sandbox.cloud().expect("the sandbox has a cloud");
            let mut instance = sandbox.instance(SpecGrants::default(), "find").await?;
            let image = engine::find(&mut instance, &cloud, &args.into_query()).await?;
            println!("{}", serde_json::to_string_pretty(&report::image_json(&image))?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Cloud(CloudCommand::Show) => {
            let mut resolved = cloud_config(&global)?.resolved();
            resolved.token_cache |= global.token_cache;
            println!("{}", serde_json::to_string_pretty(&resolved.masked())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Cache(command) => cache_command(&global, command),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "openstack-image",
                &mut std::io::stdout(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The cloud and its TLS settings, from layers of settings: `--retries`, then the `OS_*`
/// variables, then `--cloud`/`OS_CLOUD`'s entry of clouds.yaml.
fn load_cloud(global: &GlobalArgs) -> Result<(Cloud, TlsSettings, Option<TokenCache>)> {
    let config = cloud_config(global)?;
    let token_cache = if global.token_cache || config.token_cache {
        TokenCache::for_cloud(&token_cache_dir()?, &config.cloud)
    } else {
        None
    };
    Ok((config.cloud, config.tls, token_cache))
}

/// The cloud settings resolved: `--retries` over the `OS_*` variables over `--cloud`/
/// `OS_CLOUD`'s entry of clouds.yaml.
fn cloud_config(global: &GlobalArgs) -> Result<cloud::CloudConfig> {
    let retries = Layer {
        origin: Origin::Explicit("--retries".to_string()),
        doc: CloudDoc {
            retries: Some(global.retries),
            ..CloudDoc::default()
        },
    };
    cloud::resolve(vec![retries], global.cloud.as_deref())
}

/// Locks and loads the state for a command that changes it (only `targets`' images, when
/// given), and starts the component.
async fn open_state(
    global: &GlobalArgs,
    args: &StateFileArgs,
    targets: &[String],
    command: &str,
) -> Result<(Instance, Cloud, Ledger, StateLock)> {
    let path = state_path(args.state.clone(), args.file.as_deref());
    let lock = StateLock::acquire(&path, command)?;
    let state = State::load(&path)?;
    for target in targets {
        if !state.images.contains_key(target) && !state.memberships.contains_key(target) {
            anyhow::bail!(
                "--target {target}: the state {} has no image or membership of that name",
                path.display()
            );
        }
    }
    let (cloud, tls, token_cache) = load_cloud(global)?;
    let sandbox = sandbox(global, &cloud, &tls, token_cache)?;
    let cloud = sandbox.cloud().expect("the sandbox has a cloud");
    let instance = sandbox.instance(SpecGrants::default(), command).await?;
    Ok((instance, cloud, Ledger::new(state, path), lock))
}

fn finish(outcome: &exit::Outcome, command: &str) -> ExitCode {
    let status = outcome.status();
    if status == exit::OK {
        println!("{command}: done.");
    } else {
        eprintln!(
            "{command}: failed for {} ({} other image(s) done); the state file records everything that was done.",
            outcome.failed_names().join(", "),
            outcome.done
        );
    }
    ExitCode::from(status)
}

/// What `plan` and `apply` start from.
struct Prepared {
    sandbox: Arc<Sandbox>,
    instance: Instance,
    cloud: Cloud,
    desired: std::collections::BTreeMap<String, bindings::ImageSpec>,
    /// The spec file's memberships, checked.
    memberships: std::collections::BTreeMap<String, bindings::MembershipSpec>,
    state: State,
    path: PathBuf,
    /// The download caches the images may use, held until the run ends.
    caches: RunCaches,
}

/// Loads spec and state, validates every image (no cloud needed), then loads the cloud and
/// starts the component for it.
async fn prepare(global: &GlobalArgs, args: &SpecArgs) -> Result<Prepared> {
    let mut spec = SpecFile::load(&args.file)?;
    let path = state_path(args.state.clone(), Some(&args.file));
    let state = State::load(&path)?;
    if !spec.images_given && !state.images.is_empty() {
        anyhow::bail!(
            "{} has no `images:` but the state {} holds images ({}); add them to the spec file, or write `images: {{}}` to delete them",
            args.file.display(),
            path.display(),
            state.images.keys().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    for target in &args.targets {
        let known = |name: &String| {
            spec.images.contains_key(name)
                || state.images.contains_key(name)
                || spec.memberships.contains_key(name)
                || state.memberships.contains_key(name)
        };
        if !known(target) {
            anyhow::bail!("--target {target}: no image or membership of that name in the spec or the state");
        }
    }
    spec.images
        .retain(|name, _| engine::targeted(&args.targets, name));
    spec.memberships
        .retain(|name, _| engine::targeted(&args.targets, name));
    for image in spec.images.values_mut() {
        if DataSource::of(image).needs_default_cache() {
            image.image_cache_path = Some(default_image_cache()?.to_string_lossy().into_owned());
        }
    }
    // The spec is checked before the cloud is looked at (a spec error needs no cloud); then
    // the same instance gets the cloud.
    let grants = SpecGrants::for_images(spec.images.values())?;
    let source_hosts = grants.hosts.clone();
    let offline = Sandbox::new(&sandbox_settings(global)?)?;
    let caches = RunCaches::begin(
        spec.images.values().map(DataSource::of),
        offline.component_id(),
        global.cache_max_size,
    )?;
    let mut instance = offline.instance(grants, "check").await?;
    let desired = engine::check_all(&mut instance, &spec.images)
        .await
        .with_context(|| format!("invalid spec file {}", args.file.display()))?;
    let memberships = memberships::check_all(&mut instance, &spec.memberships)
        .await
        .with_context(|| format!("invalid spec file {}", args.file.display()))?;
    let (cloud, tls, token_cache) = load_cloud(global)?;
    let sandbox = Arc::new(offline.for_cloud(&cloud, &tls, token_cache)?);
    sandbox.connect(&mut instance, &source_hosts)?;
    let cloud = sandbox.cloud().expect("the sandbox has a cloud");
    Ok(Prepared {
        sandbox,
        instance,
        cloud,
        desired,
        memberships,
        state,
        path,
        caches,
    })
}

/// `cache list` and `cache prune`.
fn cache_command(global: &GlobalArgs, command: CacheCommand) -> Result<ExitCode> {
    let dir = |args: CacheDirArgs| match args.dir {
        Some(dir) => Ok(dir),
        None => default_image_cache(),
    };
    match command {
        CacheCommand::List { dir: args, json } => {
            let cache = ImageCache::new(dir(args)?);
            let entries = cache.entries()?;
            let compiled = match cache_base() {
                Some(base) => image_cache::compiled_components(&base)?,
                None => Vec::new(),
            };
            if json {
                let mut listed = image_cache::list_json(&cache, &entries, global.cache_max_size);
                listed["compiled"] = compiled
                    .iter()
                    .map(|(path, size)| serde_json::json!({ "path": path, "size": size }))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&listed)?);
            } else {
                print!(
                    "{}",
                    image_cache::list_text(&cache, &entries, global.cache_max_size)
                );
                if let Some((first, _)) = compiled.first() {
                    let size: u64 = compiled.iter().map(|(_, size)| size).sum();
                    println!(
                        "{} compiled component(s), {} in {}",
                        compiled.len(),
                        indicatif::BinaryBytes(size),
                        first.parent().unwrap_or(first).display()
                    );
                }
            }
        }
        CacheCommand::Prune {
            dir: args,
            max_size,
            older_than,
        } => {
            let cache = ImageCache::new(dir(args)?);
            let leftovers = cache.remove_leftovers()?;
            let rule = PruneRule {
                max_size: max_size.unwrap_or(global.cache_max_size).0,
                older_than,
            };
            let pruned = cache.prune(rule)?;
            print!("{}", image_cache::pruned_text(&cache, &pruned, leftovers.len()));
            if let Some(base) = cache_base() {
                let removed = image_cache::prune_compiled(&base, EMBEDDED_COMPONENT_ID)?;
                if !removed.is_empty() {
                    println!(
                        "removed {} compiled component(s) of other builds from {}",
                        removed.len(),
                        base.display()
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Opens each image's instance in `sandbox`, with only that image's grants.
fn instance_for(sandbox: Arc<Sandbox>) -> engine::InstanceFor<Instance> {
    Arc::new(move |name, spec| {
        let sandbox = sandbox.clone();
        Box::pin(async move {
            let grants = SpecGrants::for_images(spec.iter())?;
            sandbox.instance(grants, &name).await
        })
    })
}

/// The sandbox settings the global options give.
fn sandbox_settings(global: &GlobalArgs) -> Result<SandboxSettings> {
    Ok(SandboxSettings {
        component: global.component.clone(),
        allow_hosts: global
            .allow_host
            .iter()
            .map(|h| AllowedHost::parse(h).map_err(|e| anyhow::anyhow!("--allow-host: {e}")))
            .collect::<Result<_>>()?,
        limits: Limits {
            memory_bytes: global.memory_limit_mib.saturating_mul(1024 * 1024),
            call_deadline: Duration::from_secs(global.deadline_seconds),
            output_bytes: global.output_limit_kib.saturating_mul(1024),
        },
        display: progress::Display::for_stderr(global.quiet),
    })
}

/// The run's sandbox for `cloud`.
fn sandbox(
    global: &GlobalArgs,
    cloud: &Cloud,
    tls: &TlsSettings,
    token_cache: Option<TokenCache>,
) -> Result<Sandbox> {
    Sandbox::new(&sandbox_settings(global)?)?.for_cloud(cloud, tls, token_cache)
}

fn state_path(explicit: Option<PathBuf>, spec: Option<&Path>) -> PathBuf {
    explicit.unwrap_or_else(|| match spec.and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join(STATE_FILE),
        _ => PathBuf::from(STATE_FILE),
    })
}
