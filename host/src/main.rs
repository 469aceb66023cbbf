//! `openstack-image`: manage OpenStack Glance images declaratively, through a sandboxed
//! WebAssembly component. The command line; the work is in the library (`src/lib.rs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use openstack_image::auth::TokenCache;
use openstack_image::bindings::{self, Cloud};
use openstack_image::exit_help;
use openstack_image::grants::{DataSource, SpecGrants};
use openstack_image::network::AllowedHost;
use openstack_image::report::Narrator;
use openstack_image::runtime::{EMBEDDED_COMPONENT, Instance, Limits};
use openstack_image::sandbox::{Sandbox, SandboxSettings, default_image_cache, token_cache_dir};
use openstack_image::spec::SpecFile;
use openstack_image::state::{Ledger, State, StateFileExt, StateLock};
use openstack_image::transport::TlsSettings;
use openstack_image::{cloud, engine, exit, memberships, plan, progress, report};
use openstack_image_documents::cloud::{CloudDoc, Layer, Origin};

/// Default state file name, next to the spec file.
const STATE_FILE: &str = "openstack-image.state.json";

/// Manage OpenStack Glance images declaratively, through a sandboxed WebAssembly component.
///
/// openstack-image keeps the images a spec file describes in shape on an OpenStack cloud:
/// `plan` shows what would change, `apply` creates, updates, replaces and deletes images until
/// the cloud matches the spec, `destroy` deletes them. What it manages is recorded in a state
/// file (openstack-image.state.json beside the spec), which `show` prints, `refresh` re-reads
/// and `import` adds existing images to.
///
/// All cloud work runs inside a WebAssembly component that may only call the Keystone auth
/// URL's host, the image endpoints Keystone's catalog names, the hosts of the spec's
/// image_source_url sources and hosts given with --allow-host; it may only read the
/// directories holding the spec's local image files and write its download caches.
#[derive(Parser)]
#[command(
    name = "openstack-image",
    version,
    max_term_width = 100,
    after_long_help = AFTER_HELP
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// The closing sections of `openstack-image --help`.
const AFTER_HELP: &str = concat!(
    "\
Cloud:
  --cloud NAME (or OS_CLOUD) picks a cloud from clouds.yaml, searched in ./, then
  ~/.config/openstack/, then /etc/openstack/ (or the file OS_CLIENT_CONFIG_FILE names), with
  secure.yaml beside it merged in. Auth types: password, v3applicationcredential, v3token.
  Keys: auth.*, region_name, interface, cacert (a private CA's PEM file), verify: false.
  Standard OS_* variables override it or stand alone: OS_AUTH_URL, OS_USERNAME / OS_USER_ID,
  OS_PASSWORD, OS_PROJECT_NAME / OS_PROJECT_ID, OS_USER_DOMAIN_NAME, OS_PROJECT_DOMAIN_NAME,
  OS_APPLICATION_CREDENTIAL_ID / _NAME / _SECRET, OS_TOKEN, OS_REGION_NAME, OS_INTERFACE,
  OS_CACERT, OS_INSECURE.

Environment:
  RUST_LOG                   log filter (overrides -v/-q), e.g. RUST_LOG=debug
  OPENSTACK_IMAGE_CACHE_DIR  where downloads and the compiled component are cached
                             [default: ~/.cache/openstack-image]

Examples:
  eval \"$(scripts/dev-cloud env)\"            # or: export OS_CLOUD=mycloud
  openstack-image plan -f images.yaml
  openstack-image apply -f images.yaml --parallel 8
  openstack-image apply -f images.yaml --target ubuntu
  openstack-image destroy -f images.yaml --force

",
    exit_help!()
);

#[derive(Args)]
struct GlobalArgs {
    /// The cloud to use from clouds.yaml (./, ~/.config/openstack/, /etc/openstack/);
    /// OS_* variables still override its settings.
    #[arg(long, global = true, value_name = "NAME", env = "OS_CLOUD")]
    cloud: Option<String>,
    /// More log output (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Quiet: print only errors and each command's closing line (`apply: done.`, the plan's
    /// `Plan: …` line); no plan details, per-image lines or progress.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Run this component file instead of the embedded one.
    #[arg(long, global = true, value_name = "PATH")]
    component: Option<PathBuf>,
    /// Also let the component reach HOST (any port) or HOST:PORT. Repeatable.
    #[arg(long = "allow-host", global = true, value_name = "HOST[:PORT]")]
    allow_host: Vec<String>,
    /// Memory limit for the component, in MiB.
    #[arg(long, global = true, value_name = "MIB", default_value_t = 512)]
    memory_limit_mib: usize,
    /// Wall-clock limit for one component call, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 7200)]
    deadline_seconds: u64,
    /// How often a request safe to repeat is retried after a broken connection or HTTP
    /// 429/502/503/504 (backoff with jitter, Retry-After honoured, within the image's
    /// timeouts), and how often an upload Glance put back to `queued` starts again. 0: never.
    #[arg(long, global = true, value_name = "N", default_value_t = 4)]
    retries: u32,
    /// Most output (stdout and stderr) accepted from one component instance, in KiB; the
    /// rest is dropped.
    #[arg(long, global = true, value_name = "KIB", default_value_t = 4096)]
    output_limit_kib: usize,
    /// Keep the Keystone token (mode 0600, in the cache directory's `tokens/`) and reuse it in
    /// later runs until it is 5 minutes from expiring, instead of authenticating every run.
    /// Also OPENSTACK_IMAGE_TOKEN_CACHE=1 or clouds.yaml `cache: {auth: true}`.
    #[arg(long, global = true)]
    token_cache: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Show what `apply` would do.
    ///
    /// Validates the spec (every problem at once, before any cloud call), reads each image the
    /// state records, and prints per image whether it would be created, updated in place,
    /// replaced (a new image, then the old one deleted) or deleted (in the state, gone from the
    /// spec), with each changed field as `old → new` (secrets masked). Changes nothing.
    ///
    /// Exit status 0: no changes; 2: changes pending; otherwise an error (see below).
    #[command(after_long_help = concat!("Examples:\n  openstack-image plan -f images.yaml\n  openstack-image plan -f images.yaml --json | jq '.images[] | select(.action != \"no-op\")'\n\n", exit_help!()))]
    Plan {
        #[command(flatten)]
        spec: SpecArgs,
        /// Print the plan as JSON (for machines) instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create, update, replace and delete images until the cloud matches the spec.
    ///
    /// Prints the plan, then carries it out without prompting: up to --parallel images at
    /// once, each in its own sandboxed component instance with only its own grants. One
    /// image's failure does not stop the others. The state file is saved after every change
    /// and records the id of an image before it is created, so a run killed at any moment
    /// leaves nothing the next apply cannot find: it adopts a finished image or deletes a
    /// half-uploaded one. A second apply on the same state file refuses to start.
    #[command(after_long_help = concat!("Examples:\n  openstack-image apply -f images.yaml\n  openstack-image apply -f images.yaml --parallel 8 --target ubuntu --target debian\n\n", exit_help!()))]
    Apply {
        #[command(flatten)]
        spec: SpecArgs,
        /// Work on up to N images at once, each in its own sandboxed instance (the plan's
        /// reads too).
        #[arg(long, value_name = "N", default_value_t = engine::DEFAULT_PARALLEL)]
        parallel: usize,
    },
    /// Delete the images recorded in the state file (all, or those named with --target).
    ///
    /// A protected image (as the state records it) is refused before any request is made,
    /// with exit status 1 (others are still deleted: then 3), unless --force is given, which
    /// removes the protection first; or set `protected: false` in the spec and apply. An image
    /// already gone from the cloud counts as deleted. Each deleted image leaves the state file
    /// at once.
    #[command(after_long_help = concat!("Examples:\n  openstack-image destroy -f images.yaml\n  openstack-image destroy --state prod.state.json --target old-ubuntu --force\n\n", exit_help!()))]
    Destroy {
        #[command(flatten)]
        state: StateArgs,
        /// Remove the protection of protected images first instead of refusing them.
        #[arg(long)]
        force: bool,
    },
    /// Print the state's images with all their inputs and outputs, as JSON.
    ///
    /// Reads only the state file (no cloud calls). Source passwords are never stored, so
    /// never shown.
    #[command(after_long_help = concat!("Example:\n  openstack-image show -f images.yaml | jq '.images.ubuntu.id'\n\n", exit_help!()))]
    Show(StateFileArgs),
    /// Adopt an existing image: record IMAGE_ID in the state under NAME.
    ///
    /// From then on the image is managed like one the tool created: add an entry NAME to
    /// the spec describing it (its local file or URL, if you want content changes detected)
    /// and `plan` shows what differs. Its properties are left alone until the spec names
    /// them, like properties other tools set: a property the spec names is compared with the
    /// image's value (no change when they agree) and is managed from then on, so removing it
    /// from the spec later removes it from the image; properties the spec never names are
    /// never changed or removed.
    #[command(after_long_help = concat!("Example:\n  openstack-image import ubuntu 3f2c0d1e-8f7b-4c2a-9d61-2b7f5a0c9e11 -f images.yaml\n\n", exit_help!()))]
    Import {
        /// The logical name (the key in the spec and the state).
        name: String,
        /// The Glance image id.
        image_id: String,
        #[command(flatten)]
        state: StateFileArgs,
    },
    /// Re-read every image in the state from the cloud and record what it holds now.
    ///
    /// Records out-of-band changes (which the next `plan` then shows against the spec) and
    /// forgets images deleted outside this tool.
    #[command(after_long_help = concat!("Example:\n  openstack-image refresh -f images.yaml\n\n", exit_help!()))]
    Refresh(StateArgs),
    /// Find one image in the cloud and print it as JSON (as Terraform's image data source does).
    ///
    /// Every option narrows the search: Glance filters by name, visibility, owner, tags, size,
    /// member status, hidden and formats; --name-regex and --property are checked here. No
    /// match fails; several fail too unless --most-recent takes the newest. The image is
    /// printed like `show` prints one (every property Glance reports is in `metadata`).
    /// Reads only; nothing is recorded in any state.
    #[command(after_long_help = concat!("Examples:\n  openstack-image find --name cirros-0.6\n  openstack-image find --name-regex '^ubuntu-24' --tag lts --property os_distro=ubuntu --most-recent | jq -r .id\n\n", exit_help!()))]
    Find(Box<FindArgs>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// For bash: `openstack-image completions bash > ~/.local/share/bash-completion/completions/openstack-image`;
    /// zsh: write it as `_openstack-image` into a directory on $fpath; fish:
    /// `openstack-image completions fish > ~/.config/fish/completions/openstack-image.fish`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Work with the embedded WebAssembly component.
    #[command(subcommand)]
    Component(ComponentCommand),
    /// Show the cloud the settings resolve to.
    #[command(subcommand)]
    Cloud(CloudCommand),
}

#[derive(Subcommand)]
enum CloudCommand {
    /// Print the cloud this run would use, as JSON, secrets masked; talks to no cloud.
    ///
    /// The settings resolve as for every command (and as in every runtime of the component:
    /// Terraform, Node.js, Python): --retries over the OS_* variables over the --cloud
    /// (OS_CLOUD) entry of clouds.yaml with secure.yaml; without auth_type, an application
    /// credential secret selects application credentials, else a password, else a token.
    /// Prints {"cloud": <the clouds.yaml entry it resolves to>, "cacert", "verify",
    /// "token_cache"}.
    #[command(after_long_help = concat!("Example:\n  OS_CLOUD=mycloud openstack-image cloud show | jq .cloud.auth_type\n\n", exit_help!()))]
    Show,
}

#[derive(Args)]
struct SpecArgs {
    /// The spec file (YAML, or JSON when it ends in .json).
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    file: PathBuf,
    /// The state file [default: openstack-image.state.json beside SPEC].
    #[arg(long, value_name = "STATE")]
    state: Option<PathBuf>,
    /// Only these images (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
}

#[derive(Args)]
struct StateFileArgs {
    /// The state file [default: openstack-image.state.json beside SPEC, or here].
    #[arg(long, value_name = "STATE")]
    state: Option<PathBuf>,
    /// The spec file: locates the default state file; `import` also manages the properties
    /// and members its entry for the image names.
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    file: Option<PathBuf>,
}

#[derive(Args)]
struct StateArgs {
    #[command(flatten)]
    files: StateFileArgs,
    /// Only these images (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    targets: Vec<String>,
}

#[derive(Args)]
struct FindArgs {
    /// The exact image name.
    #[arg(long)]
    name: Option<String>,
    /// A regular expression the name must match (unanchored; ^ and $ anchor it).
    #[arg(long, value_name = "REGEX")]
    name_regex: Option<String>,
    /// public, private, shared, community or all.
    #[arg(long)]
    visibility: Option<String>,
    /// The project id that owns the image.
    #[arg(long, value_name = "PROJECT_ID")]
    owner: Option<String>,
    /// A tag the image must have (repeatable: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// A property the image must have with this value (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = key_value)]
    properties: Vec<(String, String)>,
    /// The smallest size in bytes.
    #[arg(long, value_name = "BYTES")]
    size_min: Option<u64>,
    /// The largest size in bytes.
    #[arg(long, value_name = "BYTES")]
    size_max: Option<u64>,
    /// Glance's sort: comma-separated KEY[:asc|:desc] [default: created_at:desc].
    #[arg(long)]
    sort: Option<String>,
    /// With several matches, take the most recently created one instead of failing.
    #[arg(long)]
    most_recent: bool,
    /// For images shared with the project: accepted, pending, rejected or all.
    #[arg(long)]
    member_status: Option<String>,
    /// Only hidden images (true) or only visible ones (false).
    #[arg(long, value_name = "BOOL")]
    hidden: Option<bool>,
    /// The container format.
    #[arg(long)]
    container_format: Option<String>,
    /// The disk format.
    #[arg(long)]
    disk_format: Option<String>,
    /// The region to search [default: OS_REGION_NAME].
    #[arg(long)]
    region: Option<String>,
}

impl FindArgs {
    fn into_query(self) -> bindings::ImageQuery {
        bindings::ImageQuery {
            name: self.name,
            name_regex: self.name_regex,
            visibility: self.visibility,
            owner: self.owner,
            tags: self.tags,
            tag: None,
            properties: self.properties,
            size_min: self.size_min,
            size_max: self.size_max,
            sort: self.sort,
            most_recent: self.most_recent,
            member_status: self.member_status,
            hidden: self.hidden,
            container_format: self.container_format,
            disk_format: self.disk_format,
            region: self.region,
        }
    }
}

fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))
}

#[derive(Subcommand)]
enum ComponentCommand {
    /// Write the embedded component to OUT (a .wasm file any component runtime can load).
    ///
    /// The file is the very component this binary runs; run it with --component, or load it
    /// into another component-model runtime (it exports openstack:image/lifecycle and imports
    /// only standard WASI 0.2).
    Export {
        /// Where to write the component.
        out: PathBuf,
    },
}

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
    })
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
