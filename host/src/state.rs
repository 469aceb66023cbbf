//! The state file: what this tool created, by logical name. Written atomically (temporary
//! file in the same directory, fsync, rename), so a crash leaves the old or the new file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};

use crate::bindings::ImageState;
use crate::spec::read_text_file;

/// The state format this build reads and writes.
pub const STATE_VERSION: u32 = 1;

/// The whole state file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    #[serde(default)]
    pub images: BTreeMap<String, StateEntry>,
    /// Creates in progress: the image id is recorded before Glance hears of it, so an
    /// apply that is killed midway leaves nothing the next run cannot find.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub creating: BTreeMap<String, DeposedImage>,
}

/// One managed image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateEntry {
    pub image: ImageState,
    /// Images this one replaced whose deletion has not succeeded yet; retried by the next
    /// `apply` and by `destroy`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposed: Vec<DeposedImage>,
}

/// An image known by id and region only: one replaced and still to delete, or one being created.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeposedImage {
    pub id: String,
    pub region: Option<String>,
}

impl State {
    /// An empty state.
    pub fn empty() -> State {
        State {
            version: STATE_VERSION,
            images: BTreeMap::new(),
            creating: BTreeMap::new(),
        }
    }

    /// Reads `path`; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<State> {
        if let Err(e) = std::fs::symlink_metadata(path)
            && e.kind() == std::io::ErrorKind::NotFound
        {
            return Ok(State::empty());
        }
        let text = read_text_file(path, "state file")?;
        let file = path.display();
        let restore = "restore it from a backup, or point --state at the right file";
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("the state file {file} is not valid JSON; {restore}"))?;
        let Some(object) = value.as_object() else {
            bail!(
                "the state file {file} is not a JSON object, so openstack-image did not write it; {restore}"
            );
        };
        match object.get("version") {
            Some(v) if v.as_u64() == Some(u64::from(STATE_VERSION)) => {}
            Some(v) if v.as_u64().is_some() => bail!(
                "the state file {file} has format version {v}, but this openstack-image reads version {STATE_VERSION}; use a matching release"
            ),
            Some(v) => {
                bail!("the state file {file} has version {v}, which is not a format number; {restore}")
            }
            None => bail!(
                "the state file {file} has no version field; it was not written by openstack-image ({restore})"
            ),
        }
        let state: State = serde_path_to_error::deserialize(value).map_err(|e| {
            anyhow!(
                "the state file {file} is damaged at {}: {}; {restore}, or remove that entry and adopt the image again with `openstack-image import NAME ID`",
                e.path(),
                e.inner()
            )
        })?;
        state.check_ids().map_err(|problem| {
            anyhow!(
                "the state file {file} is damaged: {problem}; {restore}, or remove that entry and adopt the image again with `openstack-image import NAME ID`"
            )
        })?;
        Ok(state)
    }

    /// Every recorded id must be a Glance image id (a UUID): ids become URL paths, so an
    /// edited state must not send requests elsewhere.
    fn check_ids(&self) -> Result<(), String> {
        let ids = self
            .images
            .iter()
            .flat_map(|(name, entry)| {
                std::iter::once((name, "id", &entry.image.id))
                    .chain(entry.deposed.iter().map(move |d| (name, "deposed id", &d.id)))
            })
            .chain(self.creating.iter().map(|(name, c)| (name, "creating id", &c.id)));
        for (name, what, id) in ids {
            if uuid::Uuid::try_parse(id).is_err() {
                return Err(format!(
                    "image '{name}' has {what} '{id}', which is not a Glance image id (a UUID)"
                ));
            }
        }
        Ok(())
    }

    /// Writes the state to `path` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("cannot write the state file in {}", dir.display()))?;
        serde_json::to_writer_pretty(&mut file, self)?;
        file.write_all(b"\n")?;
        file.as_file().sync_all()?;
        file.persist(path)
            .with_context(|| format!("cannot replace the state file {}", path.display()))?;
        if let Ok(d) = std::fs::File::open(&dir) {
            // Make the rename itself durable; not all filesystems support this.
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// The state of one run, shared by the images being worked on: every change goes through
/// here and is saved at once.
pub struct Ledger {
    state: std::sync::Mutex<State>,
    path: PathBuf,
}

impl Ledger {
    /// Keeps `state`, saving it to `path`.
    pub fn new(state: State, path: PathBuf) -> Ledger {
        Ledger {
            state: std::sync::Mutex::new(state),
            path,
        }
    }

    /// Reads from the state.
    pub fn read<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        f(&self.state.lock().expect("state lock"))
    }

    /// Changes the state and saves it.
    pub fn update(&self, f: impl FnOnce(&mut State)) -> Result<()> {
        let mut state = self.state.lock().expect("state lock");
        f(&mut state);
        state.save(&self.path)
    }

    /// Records `image` under `name`.
    pub fn record(&self, name: &str, image: ImageState, deposed: Vec<DeposedImage>) -> Result<()> {
        self.update(|state| {
            state
                .images
                .insert(name.to_string(), StateEntry { image, deposed });
        })
    }

    /// Removes `name` from the state.
    pub fn forget(&self, name: &str) -> Result<()> {
        self.update(|state| {
            state.images.remove(name);
        })
    }
}

/// An exclusive hold on a state file for one command; released when dropped (also when the
/// process dies, since the operating system drops the lock with the file).
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// Locks `state` (through `<state>.lock`) for `command`, or explains who holds it.
    pub fn acquire(state: &Path, command: &str) -> Result<StateLock> {
        let mut lock_path = state.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock_path = PathBuf::from(lock_path);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot create the lock file {}", lock_path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&lock_path).unwrap_or_default();
                bail!(
                    "the state file {} is in use by another openstack-image ({}); wait for it to finish",
                    state.display(),
                    describe_holder(holder.trim())
                );
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        file.set_len(0)?;
        write!(file, "pid {} running `{command}` since {now}", std::process::id())?;
        Ok(StateLock { _file: file })
    }
}

/// `pid N running `apply` since T` → `pid N running `apply` for Ns`.
fn describe_holder(holder: &str) -> String {
    let Some((head, since)) = holder.rsplit_once(" since ") else {
        return if holder.is_empty() {
            "holder unknown".to_string()
        } else {
            holder.to_string()
        };
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    match since.parse::<u64>() {
        Ok(t) => format!("{head} for {}s", now.saturating_sub(t)),
        Err(_) => holder.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_empty_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let state = State::load(&path).unwrap();
        assert!(state.images.is_empty());
        state.save(&path).unwrap();
        assert_eq!(State::load(&path).unwrap().version, STATE_VERSION);
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let held = StateLock::acquire(&path, "apply").unwrap();
        let err = StateLock::acquire(&path, "destroy").err().unwrap().to_string();
        assert!(
            err.contains(&format!("pid {} running `apply` for", std::process::id())),
            "{err}"
        );
        drop(held);
        StateLock::acquire(&path, "destroy").unwrap();
    }

    #[test]
    fn refuses_future_versions_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, r#"{"version": 99, "images": {}}"#).unwrap();
        assert!(State::load(&path).unwrap_err().to_string().contains("version 99"));
        std::fs::write(&path, "{truncated").unwrap();
        assert!(
            State::load(&path)
                .unwrap_err()
                .to_string()
                .contains("not valid JSON")
        );
    }

    #[test]
    fn damaged_states_name_the_image_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let err = |text: &str| {
            std::fs::write(&path, text).unwrap();
            State::load(&path).unwrap_err().to_string()
        };
        assert!(err("[]").contains("not a JSON object"));
        assert!(err(r#"{"version": "1"}"#).contains("not a format number"));
        let missing = err(r#"{"version": 1, "images": {"web": {"image": {}}}}"#);
        assert!(
            missing.contains("images.web.image")
                && missing.contains("missing field")
                && missing.contains("import"),
            "{missing}"
        );
        let creating = err(r#"{"version": 1, "creating": {"web": {"id": "../x", "region": null}}}"#);
        assert!(
            creating.contains("image 'web'") && creating.contains("not a Glance image id"),
            "{creating}"
        );
        std::fs::write(&path, r#"{"version": 1, "creating": {"web": {"id": "7d3c58a1-4c1e-4b7a-9a61-0b5b1d9e2f10", "region": null}}}"#).unwrap();
        assert_eq!(State::load(&path).unwrap().creating.len(), 1);
    }
}
