//! The command line's definition (clap): every command, option and help text. `src/main.rs`
//! runs it; the reference pages (`scripts/docs`) are generated from it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::image_cache::{self, MaxSize};
use crate::{bindings, engine, exit_help};

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
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// The closing sections of `openstack-image --help`.
pub const AFTER_HELP: &str = concat!(
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
  OPENSTACK_IMAGE_CACHE_MAX_SIZE  the download cache's limit (--cache-max-size)

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
pub struct GlobalArgs {
    /// The cloud to use from clouds.yaml (./, ~/.config/openstack/, /etc/openstack/);
    /// OS_* variables still override its settings.
    #[arg(long, global = true, value_name = "NAME", env = "OS_CLOUD")]
    pub cloud: Option<String>,
    /// More log output (-v: info, -vv: debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Quiet: print only errors and each command's closing line (`apply: done.`, the plan's
    /// `Plan: …` line); no plan details, per-image lines or progress.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Run this component file instead of the embedded one.
    #[arg(long, global = true, value_name = "PATH")]
    pub component: Option<PathBuf>,
    /// Also let the component reach HOST (any port) or HOST:PORT. Repeatable.
    #[arg(long = "allow-host", global = true, value_name = "HOST[:PORT]")]
    pub allow_host: Vec<String>,
    /// Memory limit for the component, in MiB.
    #[arg(long, global = true, value_name = "MIB", default_value_t = 512)]
    pub memory_limit_mib: usize,
    /// Wall-clock limit for one component call, in seconds.
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 7200)]
    pub deadline_seconds: u64,
    /// How often a request safe to repeat is retried after a broken connection or HTTP
    /// 429/502/503/504 (backoff with jitter, Retry-After honoured, within the image's
    /// timeouts), and how often an upload Glance put back to `queued` starts again. 0: never.
    #[arg(long, global = true, value_name = "N", default_value_t = 4)]
    pub retries: u32,
    /// Most output (stdout and stderr) accepted from one component instance, in KiB; the
    /// rest is dropped.
    #[arg(long, global = true, value_name = "KIB", default_value_t = 4096)]
    pub output_limit_kib: usize,
    /// Keep the Keystone token (mode 0600, in the cache directory's `tokens/`) and reuse it in
    /// later runs until it is 5 minutes from expiring, instead of authenticating every run.
    /// Also OPENSTACK_IMAGE_TOKEN_CACHE=1 or clouds.yaml `cache: {auth: true}`.
    #[arg(long, global = true)]
    pub token_cache: bool,
    /// How large each download cache may grow (512M, 20G, ...: binary units; none: no
    /// limit). After every plan and apply, the least recently used downloads beyond it are
    /// removed, except those another running process is using.
    #[arg(
        long,
        global = true,
        value_name = "SIZE",
        env = "OPENSTACK_IMAGE_CACHE_MAX_SIZE",
        default_value = image_cache::DEFAULT_MAX_SIZE
    )]
    pub cache_max_size: MaxSize,
}

#[derive(Subcommand)]
pub enum Command {
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
    /// List and trim the download cache.
    #[command(subcommand)]
    Cache(CacheCommand),
}

#[derive(Subcommand)]
pub enum CacheCommand {
    /// List the cached downloads: size, last use, source URL, least recently used first.
    ///
    /// Every component build keeps its downloads in its own directory below the cache
    /// directory; all of them are listed. An entry marked `in use` is held by a running
    /// process and is never removed while it is.
    #[command(after_long_help = concat!("Examples:\n  openstack-image cache list\n  openstack-image cache list --dir ./cache --json | jq '.entries[].url'\n\n", exit_help!()))]
    List {
        #[command(flatten)]
        dir: CacheDirArgs,
        /// Print the entries as JSON (for machines) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Remove cached downloads: the least recently used beyond a size, those unused for a
    /// while, and partial files killed runs left.
    ///
    /// Without options the cache is trimmed to --cache-max-size, as after every run. Entries
    /// another running process is using are kept (and named).
    #[command(after_long_help = concat!("Examples:\n  openstack-image cache prune --max-size 5G\n  openstack-image cache prune --older-than 30d\n  openstack-image cache prune --max-size 0     # everything not in use\n\n", exit_help!()))]
    Prune {
        #[command(flatten)]
        dir: CacheDirArgs,
        /// Trim to this size (least recently used first) [default: --cache-max-size].
        #[arg(long, value_name = "SIZE")]
        max_size: Option<MaxSize>,
        /// Remove entries not used for this long (30d, 12h, 1w).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

#[derive(Args)]
pub struct CacheDirArgs {
    /// The cache directory (a spec's image_cache_path) [default: the default download cache,
    /// images/ below OPENSTACK_IMAGE_CACHE_DIR or ~/.cache/openstack-image].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum CloudCommand {
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
pub struct SpecArgs {
    /// The spec file (YAML, or JSON when it ends in .json).
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    pub file: PathBuf,
    /// The state file [default: openstack-image.state.json beside SPEC].
    #[arg(long, value_name = "STATE")]
    pub state: Option<PathBuf>,
    /// Only these images (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
}

#[derive(Args)]
pub struct StateFileArgs {
    /// The state file [default: openstack-image.state.json beside SPEC, or here].
    #[arg(long, value_name = "STATE")]
    pub state: Option<PathBuf>,
    /// The spec file: locates the default state file; `import` also manages the properties
    /// and members its entry for the image names.
    #[arg(short = 'f', long = "file", value_name = "SPEC")]
    pub file: Option<PathBuf>,
}

#[derive(Args)]
pub struct StateArgs {
    #[command(flatten)]
    pub files: StateFileArgs,
    /// Only these images (repeatable).
    #[arg(long = "target", value_name = "NAME")]
    pub targets: Vec<String>,
}

#[derive(Args)]
pub struct FindArgs {
    /// The exact image name.
    #[arg(long)]
    pub name: Option<String>,
    /// A regular expression the name must match (unanchored; ^ and $ anchor it).
    #[arg(long, value_name = "REGEX")]
    pub name_regex: Option<String>,
    /// public, private, shared, community or all.
    #[arg(long)]
    pub visibility: Option<String>,
    /// The project id that owns the image.
    #[arg(long, value_name = "PROJECT_ID")]
    pub owner: Option<String>,
    /// A tag the image must have (repeatable: all of them).
    #[arg(long = "tag", value_name = "TAG")]
    pub tags: Vec<String>,
    /// A property the image must have with this value (repeatable).
    #[arg(long = "property", value_name = "KEY=VALUE", value_parser = key_value)]
    pub properties: Vec<(String, String)>,
    /// The smallest size in bytes.
    #[arg(long, value_name = "BYTES")]
    pub size_min: Option<u64>,
    /// The largest size in bytes.
    #[arg(long, value_name = "BYTES")]
    pub size_max: Option<u64>,
    /// Glance's sort: comma-separated KEY[:asc|:desc] [default: created_at:desc].
    #[arg(long)]
    pub sort: Option<String>,
    /// With several matches, take the most recently created one instead of failing.
    #[arg(long)]
    pub most_recent: bool,
    /// For images shared with the project: accepted, pending, rejected or all.
    #[arg(long)]
    pub member_status: Option<String>,
    /// Only hidden images (true) or only visible ones (false).
    #[arg(long, value_name = "BOOL")]
    pub hidden: Option<bool>,
    /// The container format.
    #[arg(long)]
    pub container_format: Option<String>,
    /// The disk format.
    #[arg(long)]
    pub disk_format: Option<String>,
    /// The region to search [default: OS_REGION_NAME].
    #[arg(long)]
    pub region: Option<String>,
}

impl FindArgs {
    pub fn into_query(self) -> bindings::ImageQuery {
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

pub fn key_value(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("'{text}' is not KEY=VALUE"))
}

#[derive(Subcommand)]
pub enum ComponentCommand {
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
