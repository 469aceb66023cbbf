//! Driving the real Terraform against a provider executable, for the fake-cloud scenario here
//! and for real-cloud tests with the real backend: a working directory with its own HOME, a
//! CLI configuration that installs `openstack-image/openstackimage` only from a local
//! filesystem mirror (offline), and helpers that run Terraform commands.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The provider's source address.
pub const SOURCE: &str = "openstack-image/openstackimage";
/// The version the mirror offers.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The Terraform binary: `$TERRAFORM`, or 1.0.3 installed by `test-setup.sh`.
pub fn terraform() -> PathBuf {
    if let Some(path) = std::env::var_os("TERRAFORM") {
        return PathBuf::from(path);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("test-setup.sh");
    PathBuf::from(openstack_image_tests::setup_script(&script))
}

/// The version `terraform version -json` reports for `binary` (none when it cannot run), asked
/// without the developer's TF_* settings (this machine's TF_CLI_CONFIG_FILE names a file that
/// does not exist) and without a version check over the network.
pub fn version_of(binary: &Path) -> Option<String> {
    let mut command = Command::new(binary);
    command.args(["version", "-json"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("TF_") {
            command.env_remove(key);
        }
    }
    let output = command.env("CHECKPOINT_DISABLE", "1").output().ok()?;
    let shown: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    shown["terraform_version"].as_str().map(str::to_string)
}

/// `major.minor.patch` of a version such as `1.11.4` or `1.12.0-beta1`.
fn numbers(version: &str) -> Vec<u64> {
    version
        .split(['-', '+'])
        .next()
        .unwrap_or_default()
        .split('.')
        .map(|n| n.parse().unwrap_or(0))
        .collect()
}

/// The first Terraform with write-only attributes (plugin protocol 6.8).
pub const WRITE_ONLY_TERRAFORM: &str = "1.11.0";

/// The machine's newer Terraform, for what 1.0.3 cannot do (write-only attributes): the first of
/// `$TERRAFORM` and the `terraform`s on PATH whose `terraform version -json` reports 1.11 or
/// later. `Err`
/// says why there is none, for the test to print as it skips.
#[allow(
    dead_code,
    reason = "each test binary compiles this module; not all of them use every helper"
)]
pub fn newer_terraform() -> Result<(PathBuf, String), String> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("TERRAFORM")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    if let Some(paths) = std::env::var_os("PATH") {
        candidates.extend(
            std::env::split_paths(&paths)
                .map(|dir| dir.join("terraform"))
                .filter(|p| p.is_file()),
        );
    }
    let mut seen = Vec::new();
    for binary in candidates {
        match version_of(&binary) {
            Some(version) if numbers(&version) >= numbers(WRITE_ONLY_TERRAFORM) => {
                return Ok((binary, version));
            }
            Some(version) => seen.push(format!("{} is {version}", binary.display())),
            None => seen.push(format!("{} does not report a version", binary.display())),
        }
    }
    Err(if seen.is_empty() {
        "no terraform on PATH (nor $TERRAFORM)".to_string()
    } else {
        format!("none at {WRITE_ONLY_TERRAFORM} or later: {}", seen.join(", "))
    })
}

/// What one Terraform command did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for assertions and failure messages.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// A Terraform working directory with the provider installed from a local mirror.
pub struct Workspace {
    root: tempfile::TempDir,
    terraform: PathBuf,
    env: Vec<(String, String)>,
}

impl Workspace {
    /// A workspace whose mirror offers `provider` (the executable Terraform will start, with
    /// `env` added to Terraform's, and so the provider's, environment).
    pub fn new(terraform: PathBuf, provider: &Path, env: &[(&str, &str)]) -> Workspace {
        // Which Terraform ran, in the test's output (`--nocapture` shows it, a failure too).
        eprintln!(
            "terraform: {} ({})",
            version_of(&terraform).as_deref().unwrap_or("version unknown"),
            terraform.display()
        );
        let root = tempfile::tempdir().expect("temp dir");
        let mirror = root.path().join("mirror");
        let platform = mirror
            .join("registry.terraform.io")
            .join(SOURCE)
            .join(VERSION)
            .join("linux_amd64");
        std::fs::create_dir_all(&platform).expect("mirror dir");
        std::os::unix::fs::symlink(
            provider,
            platform.join(format!("terraform-provider-openstackimage_v{VERSION}")),
        )
        .expect("link the provider into the mirror");
        let cli_config = root.path().join("terraformrc");
        // Only the mirror: `terraform init` never goes to a registry.
        std::fs::write(
            &cli_config,
            format!(
                "provider_installation {{\n  filesystem_mirror {{\n    path    = \"{}\"\n    include = [\"{SOURCE}\"]\n  }}\n}}\n",
                mirror.display()
            ),
        )
        .expect("CLI config");
        std::fs::create_dir_all(root.path().join("home")).expect("home");
        // `run_with` drops every TF_* variable of the caller's (TF_CLI_CONFIG_FILE included,
        // which may name a file that does not exist) and sets this one instead.
        std::fs::create_dir_all(root.path().join("work")).expect("work dir");
        let mut all_env = vec![
            ("HOME".to_string(), root.path().join("home").display().to_string()),
            ("TF_CLI_CONFIG_FILE".to_string(), cli_config.display().to_string()),
            ("TF_IN_AUTOMATION".to_string(), "1".to_string()),
            ("TF_INPUT".to_string(), "0".to_string()),
            ("CHECKPOINT_DISABLE".to_string(), "1".to_string()),
        ];
        all_env.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Workspace {
            root,
            terraform,
            env: all_env,
        }
    }

    /// The directory holding the configuration and the state.
    pub fn dir(&self) -> PathBuf {
        self.root.path().join("work")
    }

    /// A scratch path beside the working directory.
    #[allow(
        dead_code,
        reason = "each test binary compiles this module; not all of them use every helper"
    )]
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// Writes `main.tf`.
    pub fn configure(&self, main_tf: &str) {
        std::fs::write(self.dir().join("main.tf"), main_tf).expect("main.tf");
    }

    /// Runs `terraform ARGS` with `extra` environment variables.
    pub fn run_with(&self, args: &[&str], extra: &[(&str, &str)]) -> Run {
        let mut command = Command::new(&self.terraform);
        command.args(args).current_dir(self.dir());
        // Nothing of the developer's own cloud or logging reaches the test.
        for (key, _) in std::env::vars() {
            if key.starts_with("OS_") || key.starts_with("TF_") {
                command.env_remove(key);
            }
        }
        command.envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command.envs(extra.iter().copied());
        let output = command.output().expect("run terraform");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, &[])
    }

    /// Runs a command that must succeed.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            0,
            "terraform {} failed:\n{}",
            args.join(" "),
            run.output()
        );
        run
    }

    pub fn init(&self) -> Run {
        self.ok(&["init", "-no-color"])
    }

    pub fn apply(&self) -> Run {
        self.ok(&["apply", "-auto-approve", "-no-color"])
    }

    pub fn destroy(&self) -> Run {
        self.ok(&["destroy", "-auto-approve", "-no-color"])
    }

    /// `terraform plan -detailed-exitcode`: 0 no changes, 1 error, 2 changes.
    pub fn plan(&self) -> Run {
        self.run(&["plan", "-detailed-exitcode", "-no-color"])
    }

    /// `terraform output -raw NAME`.
    pub fn output(&self, name: &str) -> String {
        self.ok(&["output", "-raw", name]).stdout
    }
}
