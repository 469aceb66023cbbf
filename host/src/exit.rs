//! Exit statuses: one per kind of outcome, so scripts and CI jobs can tell a bad command
//! line from a bad spec, an unreachable cloud or a run that did only part of its work.

use std::fmt;
use std::process::ExitCode;

/// Success (for `plan`: no changes).
pub const OK: u8 = 0;
/// An error on this side: the spec, the state, clouds.yaml, the image data (a missing
/// file, a checksum that does not match), the sandbox. Nothing was changed.
pub const ERROR: u8 = 1;
/// `plan` only: changes are pending.
pub const CHANGES: u8 = 2;
/// `apply`/`destroy`: some images were done, others failed (the state records which).
pub const PARTIAL: u8 = 3;
/// The cloud (or an image source) failed or refused: authentication, an API error, a
/// timeout, unreachable.
pub const CLOUD: u8 = 4;
/// The command line itself is wrong (unknown option, missing argument).
pub const USAGE: u8 = 64;

/// The table every `--help` prints (a macro, so `concat!` can use it in attributes).
#[macro_export]
#[doc(hidden)]
macro_rules! exit_help {
    () => {
        "\
Exit status:
  0   success; for `plan`: no changes
  1   error on this side (spec, state, clouds.yaml, image data, sandbox); nothing changed
  2   `plan`: changes pending
  3   `apply`/`destroy`: partial failure: some images were done, others failed
  4   remote error: the cloud or an image source failed or refused (authentication,
      an API error, a timeout, unreachable)
  64  usage error: the command line is wrong"
    };
}

/// An error the cloud caused (exit status 4); its message already names the image.
#[derive(Debug)]
pub struct CloudError(pub String);

impl fmt::Display for CloudError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CloudError {}

/// True when the cloud (or an image source) caused `err`.
fn caused_by_cloud(err: &anyhow::Error) -> bool {
    err.chain().any(|e| e.is::<CloudError>())
}

/// The status for a command that failed with `err`.
pub fn status_of(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(if caused_by_cloud(err) { CLOUD } else { ERROR })
}

/// How an `apply` or `destroy` went, image by image.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Images whose work was done.
    pub done: usize,
    /// Images that failed, by name, and whether the cloud caused it.
    pub failed: Vec<(String, bool)>,
}

impl Outcome {
    pub fn record(&mut self, name: String, result: &anyhow::Result<()>) {
        match result {
            Ok(()) => self.done += 1,
            Err(err) => {
                eprintln!("error: {err:#}");
                self.failed.push((name, caused_by_cloud(err)));
            }
        }
    }

    /// 0 when nothing failed, 3 when some images were done and others failed, otherwise 4
    /// when the cloud caused any failure, else 1.
    pub fn status(&self) -> u8 {
        if self.failed.is_empty() {
            OK
        } else if self.done > 0 {
            PARTIAL
        } else if self.failed.iter().any(|(_, cloud)| *cloud) {
            CLOUD
        } else {
            ERROR
        }
    }

    pub fn failed_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.failed.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(cloud: bool) -> anyhow::Result<()> {
        if cloud {
            Err(anyhow::Error::new(CloudError("image 'a': HTTP 503".into())).context("while creating"))
        } else {
            Err(anyhow::anyhow!("image 'a': no such file"))
        }
    }

    #[test]
    fn statuses_tell_partial_cloud_and_local_failures_apart() {
        let mut all_ok = Outcome::default();
        all_ok.record("a".into(), &Ok(()));
        assert_eq!(all_ok.status(), OK);

        let mut partial = Outcome::default();
        partial.record("a".into(), &Ok(()));
        partial.record("b".into(), &failure(true));
        assert_eq!(partial.status(), PARTIAL);

        let mut cloud = Outcome::default();
        cloud.record("b".into(), &failure(true));
        assert_eq!(cloud.status(), CLOUD);

        let mut local = Outcome::default();
        local.record("b".into(), &failure(false));
        assert_eq!(local.status(), ERROR);
        assert_eq!(status_of(&failure(true).unwrap_err()), ExitCode::from(CLOUD));
    }
}
