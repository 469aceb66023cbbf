//! The state file: what this tool created, by logical name. Written atomically (temporary
//! file in the same directory, fsync, rename), so a crash leaves the old or the new file.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use openstack_image_documents::ImageDoc;
use openstack_image_documents::state_file::{self, Entry, OLDEST_STATE_VERSION, StateFile, VersionProblem};

use crate::bindings::ImageState;
use crate::spec::read_text_file;

pub use openstack_image_documents::state_file::{DeposedImage, STATE_VERSION};

/// The state of a run: the state file's contents with the component's typed images (the file
/// itself holds documents, [`openstack_image_documents::state_file`], never WIT records).
pub type State = StateFile<ImageState>;

/// One managed image.
pub type StateEntry = Entry<ImageState>;

/// Reading, checking and writing the state file.
pub trait StateFileExt: Sized {
    /// Reads `path`; a missing file is an empty state. Older formats are upgraded.
    fn load(path: &Path) -> Result<Self>;
    /// Writes the state to `path` atomically, in the current format.
    fn save(&self, path: &Path) -> Result<()>;
}

impl StateFileExt for State {
    fn load(path: &Path) -> Result<State> {
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
        let serde_json::Value::Object(mut object) = value else {
            bail!(
                "the state file {file} is not a JSON object, so openstack-image did not write it; {restore}"
            );
        };
        match state_file::upgrade(&mut object) {
            Ok(()) => {}
            Err(VersionProblem::Unknown(v)) => bail!(
                "the state file {file} has format version {v}, but this openstack-image reads version {OLDEST_STATE_VERSION} to {STATE_VERSION}; use a matching release"
            ),
            Err(VersionProblem::NotANumber(v)) => {
                bail!("the state file {file} has version {v}, which is not a format number; {restore}")
            }
            Err(VersionProblem::Missing) => bail!(
                "the state file {file} has no version field; it was not written by openstack-image ({restore})"
            ),
        }
        let stored: StateFile<ImageDoc> = serde_path_to_error::deserialize(serde_json::Value::Object(object)).map_err(|e| {
            anyhow!(
                "the state file {file} is damaged at {}: {}; {restore}, or remove that entry and adopt the image again with `openstack-image import NAME ID`",
                e.path(),
                e.inner()
            )
        })?;
        check_ids(&stored).map_err(|problem| {
            anyhow!(
                "the state file {file} is damaged: {problem}; {restore}, or remove that entry and adopt the image again with `openstack-image import NAME ID`"
            )
        })?;
        Ok(stored.map(ImageState::from))
    }

    fn save(&self, path: &Path) -> Result<()> {
        let mut stored = self.clone().map(ImageDoc::from);
        stored.version = STATE_VERSION;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut file = tempfile::NamedTempFile::new_in(&dir)
            .with_context(|| format!("cannot write the state file in {}", dir.display()))?;
        serde_json::to_writer_pretty(&mut file, &stored)?;
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

/// Every recorded id must be a Glance image id (a UUID): ids become URL paths, so an edited
/// state must not send requests elsewhere.
fn check_ids(state: &StateFile<ImageDoc>) -> Result<(), String> {
    let ids = state
        .images
        .iter()
        .flat_map(|(name, entry)| {
            std::iter::once((name, "id", &entry.image.id))
                .chain(entry.deposed.iter().map(move |d| (name, "deposed id", &d.id)))
        })
        .chain(
            state
                .creating
                .iter()
                .map(|(name, c)| (name, "creating id", &c.id)),
        );
    for (name, what, id) in ids {
        if uuid::Uuid::try_parse(id).is_err() {
            return Err(format!(
                "image '{name}' has {what} '{id}', which is not a Glance image id (a UUID)"
            ));
        }
    }
    Ok(())
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

    /// Records the image a create made for `name` and drops that create's intent in the
    /// same write: a kill between two writes would leave an image neither recorded nor
    /// intended, which no later run would find.
    pub fn record_created(&self, name: &str, image: ImageState, deposed: Vec<DeposedImage>) -> Result<()> {
        self.update(|state| {
            state.creating.remove(name);
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
    fn todays_release_files_load_and_are_written_in_the_current_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::copy(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/state-v1.json"),
            &path,
        )
        .unwrap();
        let state = State::load(&path).unwrap();
        let local = &state.images["local"].image;
        assert_eq!(local.spec.protected, Some(true));
        assert!(local.spec.properties.contains(&("cores".into(), "2".into())));
        state.save(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("\"version\": {STATE_VERSION}")), "{text}");
        let again = State::load(&path).unwrap();
        let doc = |image: &ImageState| ImageDoc::from(image.clone());
        assert_eq!(doc(&again.images["local"].image), doc(local));
    }

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
        assert!(err(r#"{"version": 4}"#).contains("reads version 1 to 3"));
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
