//! The download cache, from the host's side. The component downloads a URL source into its
//! cache directory (its own area `component-<id>/` below the directory the user names, see
//! [`crate::grants::component_area`]) as `<md5(url + decompress)>.img` with a JSON record
//! beside it; it cannot lock files or see other processes, so what needs either is here:
//!
//! - a lock per entry (`.locks/<area>/<entry>.lock` below the cache directory, out of every
//!   component's sight): a run holds a shared lock on each entry its images may use from
//!   before the component starts until the run ends, and an entry is removed only under an
//!   exclusive lock taken without waiting, so an entry another process is using is never
//!   removed;
//! - the clean-up of what a killed run left: partial downloads (`.<entry>.<uuid>.part`) and
//!   records without their data, removed when no process holds their entry;
//! - the size limit: after each run, the least recently used entries beyond it are removed;
//! - what `openstack-image cache list` and `cache prune` show and do.
//!
//! An entry's last use is its data file's modification time: the download sets it, and a run
//! that may reuse the entry sets it when it takes the entry's lock.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use openstack_image_documents::spec::cache_entry_name;

use crate::grants::DataSource;

/// The size limit when none is given: room for a handful of cloud images on a laptop.
pub const DEFAULT_MAX_SIZE: &str = "10G";

/// Where the entries' locks are kept, below the cache directory (no component sees it: each
/// one's preopened directory is its own `component-<id>/` area).
const LOCKS: &str = ".locks";

/// How large the cache may grow: a size in bytes (`512M`, `20G`, `1.5GiB`, `0`: binary
/// multiples, so `1G` is 1 GiB), or `none` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxSize(pub Option<u64>);

impl FromStr for MaxSize {
    type Err = String;

    fn from_str(text: &str) -> Result<MaxSize, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("none") {
            return Ok(MaxSize(None));
        }
        parse_size::Config::new()
            .with_binary()
            .parse_size(text)
            .map(|bytes| MaxSize(Some(bytes)))
            .map_err(|e| format!("'{text}' is not a size ({e}): write e.g. 512M, 20G, or none for no limit"))
    }
}

impl std::fmt::Display for MaxSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            None => f.write_str("none"),
            Some(bytes) => write!(f, "{}", indicatif::BinaryBytes(bytes)),
        }
    }
}

/// One cached download.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The data file.
    pub data: PathBuf,
    /// The directory below the cache directory that holds it (`component-<id>`, or empty for
    /// a runtime that gives the component the cache directory itself).
    area: String,
    /// Bytes on disk: the data and its record.
    pub size: u64,
    pub last_use: SystemTime,
    /// The source URL and whether it was decompressed, from the entry's record (`None` for
    /// data whose record a killed run never wrote).
    pub url: Option<String>,
    pub decompress: Option<bool>,
    /// True when a running process holds the entry.
    pub in_use: bool,
}

impl Entry {
    fn name(&self) -> String {
        file_name(&self.data)
    }

    fn record(&self) -> PathBuf {
        record_of(&self.data)
    }
}

/// What a prune did.
#[derive(Debug, Default)]
pub struct Pruned {
    pub removed: Vec<Entry>,
    /// Entries the rule would have removed but another process is using.
    pub kept_in_use: Vec<Entry>,
    /// Bytes the cache holds afterwards.
    pub remaining: u64,
}

/// Which entries a prune removes: beyond a total size (least recently used first) and those
/// last used longer ago than a duration.
#[derive(Debug, Clone, Copy, Default)]
pub struct PruneRule {
    pub max_size: Option<u64>,
    pub older_than: Option<Duration>,
}

/// Shared locks on the entries a run may use, released when dropped.
#[derive(Debug, Default)]
pub struct Holds(Vec<File>);

/// The download caches a run's images may use: before the component starts, what killed runs
/// left is removed and each entry the images may use is held; when the run ends the holds are
/// released and each cache is trimmed to the limit.
#[derive(Debug)]
pub struct RunCaches {
    caches: BTreeSet<ImageCache>,
    holds: Holds,
    limit: MaxSize,
}

impl RunCaches {
    pub fn begin(
        sources: impl IntoIterator<Item = DataSource>,
        component: &str,
        limit: MaxSize,
    ) -> Result<RunCaches> {
        let used: Vec<(ImageCache, String, bool)> = sources
            .into_iter()
            .filter_map(|source| {
                Some((
                    ImageCache::new(source.cache_dir()?),
                    source.downloaded_url()?.to_string(),
                    source.decompress(),
                ))
            })
            .collect();
        let caches: BTreeSet<ImageCache> = used.iter().map(|(cache, ..)| cache.clone()).collect();
        for cache in &caches {
            let removed = cache.remove_leftovers()?;
            if !removed.is_empty() {
                tracing::info!(
                    "removed {} partial file(s) a killed run left in {}",
                    removed.len(),
                    cache.root.display()
                );
            }
        }
        let mut holds = Holds::default();
        for (cache, url, decompress) in &used {
            cache.hold(&mut holds, component, url, *decompress)?;
        }
        Ok(RunCaches { caches, holds, limit })
    }

    /// Releases the run's entries and trims each cache to the limit; a cache that cannot be
    /// trimmed is a warning (the run's own work is done).
    pub fn finish(self) {
        let RunCaches { caches, holds, limit } = self;
        drop(holds);
        let Some(max_size) = limit.0 else { return };
        for cache in caches {
            let rule = PruneRule {
                max_size: Some(max_size),
                older_than: None,
            };
            match cache.prune(rule) {
                Ok(pruned) if !pruned.removed.is_empty() => tracing::info!(
                    "removed {} least recently used download(s) from {} to keep it under {limit}",
                    pruned.removed.len(),
                    cache.root.display()
                ),
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    "could not trim the download cache {}: {e:#}",
                    cache.root.display()
                ),
            }
        }
    }
}

/// A download cache directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageCache {
    root: PathBuf,
}

impl ImageCache {
    pub fn new(root: impl Into<PathBuf>) -> ImageCache {
        ImageCache { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes a shared lock on the entry the component `component` uses for `url` (waiting
    /// while a prune removes it) and marks it used now.
    pub fn hold(&self, holds: &mut Holds, component: &str, url: &str, decompress: bool) -> Result<()> {
        let area = crate::grants::component_area(Path::new(""), component);
        let area = area.to_string_lossy();
        let name = cache_entry_name(url, decompress);
        let lock = lock(&self.lock_path(&area, &name), Lock::SharedWaiting)?
            .expect("a waiting lock is always taken");
        let data = self.root.join(&*area).join(&name);
        if let Ok(file) = OpenOptions::new().write(true).open(&data) {
            let _ = file.set_modified(SystemTime::now());
        }
        holds.0.push(lock);
        Ok(())
    }

    /// Every entry, least recently used first.
    pub fn entries(&self) -> Result<Vec<Entry>> {
        let mut entries = Vec::new();
        for area in self.areas()? {
            for file in read_dir(&self.root.join(&area))? {
                let name = file_name(&file);
                if name.starts_with('.') || !name.ends_with(".img") {
                    continue;
                }
                let Ok(meta) = fs::metadata(&file) else { continue };
                if !meta.is_file() {
                    continue;
                }
                let record_path = record_of(&file);
                let record: Option<serde_json::Value> = fs::read(&record_path)
                    .ok()
                    .and_then(|text| serde_json::from_slice(&text).ok());
                let record_size = fs::metadata(&record_path).map_or(0, |m| m.len());
                let in_use = self.in_use(&area, &name)?;
                entries.push(Entry {
                    data: file,
                    area: area.clone(),
                    size: meta.len() + record_size,
                    last_use: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    url: record
                        .as_ref()
                        .and_then(|r| r["url"].as_str().map(str::to_string)),
                    decompress: record.as_ref().and_then(|r| r["decompress"].as_bool()),
                    in_use,
                });
            }
        }
        entries.sort_by_key(|e| e.last_use);
        Ok(entries)
    }

    /// Removes what killed runs left: partial downloads and records whose data is gone, of
    /// entries no process holds. Returns the files removed.
    pub fn remove_leftovers(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for area in self.areas()? {
            let files = read_dir(&self.root.join(&area))?;
            let present: BTreeSet<String> = files.iter().map(|f| file_name(f)).collect();
            for file in files {
                let name = file_name(&file);
                let entry = if let Some(partial) = name.strip_prefix('.').filter(|_| name.ends_with(".part"))
                {
                    // `.<entry>.<uuid>.part` or `.<entry>.json.<uuid>.part`
                    match partial.find(".img") {
                        Some(end) => partial[..end + 4].to_string(),
                        None => continue,
                    }
                } else if let Some(data) = name.strip_suffix(".json").filter(|d| d.ends_with(".img")) {
                    if present.contains(data) {
                        continue;
                    }
                    data.to_string()
                } else {
                    continue;
                };
                let Some(_lock) = lock(&self.lock_path(&area, &entry), Lock::ExclusiveIfFree)? else {
                    continue;
                };
                if remove_if_present(&file)? {
                    removed.push(file);
                }
            }
        }
        Ok(removed)
    }

    /// Removes the entries `rule` rules out that no process holds: first those last used
    /// before `older_than`, then, least recently used first, until the cache fits `max_size`.
    pub fn prune(&self, rule: PruneRule) -> Result<Pruned> {
        let entries = self.entries()?;
        let mut remaining: u64 = entries.iter().map(|e| e.size).sum();
        let cutoff = rule.older_than.and_then(|age| SystemTime::now().checked_sub(age));
        let mut pruned = Pruned::default();
        for entry in entries {
            let too_old = cutoff.is_some_and(|cutoff| entry.last_use < cutoff);
            let too_big = rule.max_size.is_some_and(|max| remaining > max);
            if !too_old && !too_big {
                continue;
            }
            if self.remove(&entry)? {
                remaining -= entry.size;
                pruned.removed.push(entry);
            } else {
                pruned.kept_in_use.push(entry);
            }
        }
        pruned.remaining = remaining;
        Ok(pruned)
    }

    /// Removes an entry unless a process holds it; true when removed.
    fn remove(&self, entry: &Entry) -> Result<bool> {
        let lock_path = self.lock_path(&entry.area, &entry.name());
        let Some(_lock) = lock(&lock_path, Lock::ExclusiveIfFree)? else {
            return Ok(false);
        };
        for file in [entry.data.clone(), entry.record()] {
            remove_if_present(&file)?;
        }
        // Unlinked while locked: a process that opened it meanwhile sees, once it has the
        // lock, that the path is no longer its file, and locks the new one.
        let _ = fs::remove_file(&lock_path);
        Ok(true)
    }

    fn in_use(&self, area: &str, name: &str) -> Result<bool> {
        let path = self.lock_path(area, name);
        if !path.exists() {
            return Ok(false);
        }
        Ok(lock(&path, Lock::ExclusiveIfFree)?.is_none())
    }

    /// The directories entries live in: every component's area, and the directory itself
    /// (where runtimes that give the component the cache directory directly keep them).
    fn areas(&self) -> Result<Vec<String>> {
        let mut areas = vec![String::new()];
        for dir in read_dir(&self.root)? {
            let name = file_name(&dir);
            if name.starts_with("component-") && dir.is_dir() {
                areas.push(name);
            }
        }
        Ok(areas)
    }

    fn lock_path(&self, area: &str, name: &str) -> PathBuf {
        let area = if area.is_empty() { "_" } else { area };
        self.root.join(LOCKS).join(area).join(format!("{name}.lock"))
    }
}

/// `cache list`: the entries as a table, least recently used first, and the total.
pub fn list_text(cache: &ImageCache, entries: &[Entry], limit: MaxSize) -> String {
    let mut text = String::new();
    if !entries.is_empty() {
        text.push_str(&format!("{:>11}  {:<20}  SOURCE\n", "SIZE", "LAST USE"));
    }
    for entry in entries {
        let source = match (&entry.url, entry.decompress) {
            (Some(url), Some(true)) => format!("{url} (decompressed)"),
            (Some(url), _) => url.clone(),
            (None, _) => format!("{} (no record)", entry.data.display()),
        };
        text.push_str(&format!(
            "{:>11}  {:<20}  {source}{}\n",
            indicatif::BinaryBytes(entry.size).to_string(),
            humantime::format_rfc3339_seconds(entry.last_use).to_string(),
            if entry.in_use { "  [in use]" } else { "" }
        ));
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    text.push_str(&format!(
        "{} download(s), {} in {} (limit: {limit})\n",
        entries.len(),
        indicatif::BinaryBytes(total),
        cache.root.display()
    ));
    text
}

/// `cache list --json`.
pub fn list_json(cache: &ImageCache, entries: &[Entry], limit: MaxSize) -> serde_json::Value {
    let listed: Vec<_> = entries
        .iter()
        .map(|entry| {
            serde_json::json!({
                "path": entry.data,
                "url": entry.url,
                "decompress": entry.decompress,
                "size": entry.size,
                "last_use": humantime::format_rfc3339_seconds(entry.last_use).to_string(),
                "in_use": entry.in_use,
            })
        })
        .collect();
    serde_json::json!({
        "dir": cache.root,
        "entries": listed,
        "size": entries.iter().map(|e| e.size).sum::<u64>(),
        "max_size": limit.0,
    })
}

/// What `cache prune` reports.
pub fn pruned_text(cache: &ImageCache, pruned: &Pruned, leftovers: usize) -> String {
    let mut text = String::new();
    for entry in &pruned.removed {
        let source = entry
            .url
            .clone()
            .unwrap_or_else(|| entry.data.display().to_string());
        text.push_str(&format!(
            "removed {source} ({})\n",
            indicatif::BinaryBytes(entry.size)
        ));
    }
    for entry in &pruned.kept_in_use {
        let source = entry
            .url
            .clone()
            .unwrap_or_else(|| entry.data.display().to_string());
        text.push_str(&format!("kept {source}: another process is using it\n"));
    }
    if leftovers > 0 {
        text.push_str(&format!(
            "removed {leftovers} partial file(s) of interrupted downloads\n"
        ));
    }
    text.push_str(&format!(
        "cache prune: {} download(s) removed, {} left in {}.\n",
        pruned.removed.len(),
        indicatif::BinaryBytes(pruned.remaining),
        cache.root.display()
    ));
    text
}

/// The compiled components kept in `dir` (`<component id>-<engine hash>.cwasm`, see
/// `runtime::load_cached`): each file and its size.
pub fn compiled_components(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    Ok(read_dir(dir)?
        .into_iter()
        .filter(|file| file.extension().is_some_and(|e| e == "cwasm"))
        .filter_map(|file| {
            let size = fs::metadata(&file).ok()?.len();
            Some((file, size))
        })
        .collect())
}

/// Removes the compiled components in `dir` that are not of the component `keep` (other
/// builds: older releases, other components run with --component), and temporary files a
/// killed compile left; returns what was removed. A process still running one of them keeps
/// its mapping (the file goes when it is unmapped).
pub fn prune_compiled(dir: &Path, keep: &str) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let keep = format!("{keep}-");
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for file in read_dir(dir)? {
        let name = file_name(&file);
        let stale_temporary = name.starts_with(".tmp")
            && fs::metadata(&file)
                .and_then(|m| m.modified())
                .is_ok_and(|at| at < an_hour_ago);
        let other_build = name.ends_with(".cwasm") && !name.starts_with(&keep);
        if !(stale_temporary || other_build) || !file.is_file() {
            continue;
        }
        if remove_if_present(&file)? {
            removed.push(file);
        }
    }
    Ok(removed)
}

/// Removes `file`; false when it was gone already (another process removed it first).
fn remove_if_present(file: &Path) -> Result<bool> {
    match fs::remove_file(file) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", file.display())),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Lock {
    SharedWaiting,
    ExclusiveIfFree,
}

/// Locks the file at `path` (created if missing); `None` when `ExclusiveIfFree` finds it held.
/// A lock file removed between opening and locking it is opened again, so the lock taken is
/// always on the file the path names.
fn lock(path: &Path, how: Lock) -> Result<Option<File>> {
    let dir = path.parent().expect("lock files are in a directory");
    loop {
        fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("cannot open the cache lock {}", path.display()))?;
        match how {
            Lock::SharedWaiting => file.lock_shared(),
            Lock::ExclusiveIfFree => match file.try_lock() {
                Ok(()) => Ok(()),
                Err(TryLockError::WouldBlock) => return Ok(None),
                Err(TryLockError::Error(e)) => Err(e),
            },
        }
        .with_context(|| format!("cannot lock {}", path.display()))?;
        let same = fs::metadata(path).is_ok_and(|now| {
            file.metadata()
                .is_ok_and(|held| held.ino() == now.ino() && held.dev() == now.dev())
        });
        if same {
            return Ok(Some(file));
        }
    }
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(entries) => Ok(entries.filter_map(|e| e.ok().map(|e| e.path())).collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("cannot read the cache directory {}", dir.display())),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn record_of(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COMPONENT: &str = "abc123";

    fn entry(cache: &ImageCache, url: &str, bytes: usize, age: Duration) -> PathBuf {
        let area = cache.root().join(format!("component-{COMPONENT}"));
        fs::create_dir_all(&area).unwrap();
        let data = area.join(cache_entry_name(url, false));
        fs::write(&data, vec![0u8; bytes]).unwrap();
        let record = serde_json::json!({"url": url, "decompress": false});
        fs::write(record_of(&data), record.to_string()).unwrap();
        File::options()
            .write(true)
            .open(&data)
            .unwrap()
            .set_modified(SystemTime::now() - age)
            .unwrap();
        data
    }

    fn hour(n: u64) -> Duration {
        Duration::from_secs(3600 * n)
    }

    #[test]
    fn sizes_parse_in_binary_units_or_none() {
        assert_eq!("512M".parse::<MaxSize>().unwrap(), MaxSize(Some(512 << 20)));
        assert_eq!("20G".parse::<MaxSize>().unwrap(), MaxSize(Some(20 << 30)));
        assert_eq!("1.5GiB".parse::<MaxSize>().unwrap(), MaxSize(Some(3 << 29)));
        assert_eq!("0".parse::<MaxSize>().unwrap(), MaxSize(Some(0)));
        assert_eq!("none".parse::<MaxSize>().unwrap(), MaxSize(None));
        let err = "lots".parse::<MaxSize>().unwrap_err();
        assert!(err.contains("'lots'") && err.contains("20G"), "{err}");
        assert_eq!(MaxSize(Some(20 << 30)).to_string(), "20.00 GiB");
    }

    #[test]
    fn prune_removes_the_least_recently_used_beyond_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path());
        let old = entry(&cache, "http://h/old", 1000, hour(3));
        let mid = entry(&cache, "http://h/mid", 1000, hour(2));
        let new = entry(&cache, "http://h/new", 1000, hour(1));
        let listed = cache.entries().unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|e| e.url.as_deref().unwrap())
                .collect::<Vec<_>>(),
            ["http://h/old", "http://h/mid", "http://h/new"]
        );
        let record = listed[0].size - 1000;
        let pruned = cache
            .prune(PruneRule {
                max_size: Some(2 * (1000 + record)),
                older_than: None,
            })
            .unwrap();
        assert_eq!(pruned.removed.len(), 1);
        assert!(!old.exists() && !record_of(&old).exists());
        assert!(mid.exists() && new.exists());
        assert_eq!(pruned.remaining, 2 * (1000 + record));

        let pruned = cache
            .prune(PruneRule {
                max_size: None,
                older_than: Some(hour(1) + Duration::from_secs(1800)),
            })
            .unwrap();
        assert_eq!(pruned.removed.len(), 1);
        assert!(!mid.exists() && new.exists());
    }

    #[test]
    fn a_held_entry_is_never_removed_and_used_entries_count_as_recent() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path());
        let held = entry(&cache, "http://h/held", 1000, hour(5));
        let free = entry(&cache, "http://h/free", 1000, hour(1));
        let mut holds = Holds::default();
        cache.hold(&mut holds, COMPONENT, "http://h/held", false).unwrap();
        let listed = cache.entries().unwrap();
        assert_eq!(listed[1].data, held, "holding it marked it used now");
        assert!(listed[1].in_use && !listed[0].in_use);

        let pruned = cache
            .prune(PruneRule {
                max_size: Some(0),
                older_than: None,
            })
            .unwrap();
        assert!(held.exists() && !free.exists());
        assert_eq!(pruned.kept_in_use.len(), 1);

        drop(holds);
        cache
            .prune(PruneRule {
                max_size: Some(0),
                older_than: None,
            })
            .unwrap();
        assert!(!held.exists());
        assert!(cache.entries().unwrap().is_empty());
    }

    #[test]
    fn only_this_builds_compiled_components_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "aaa-1.cwasm",
            "aaa-2.cwasm",
            "bbb-1.cwasm",
            "ccc-1.cwasm",
            "keep.txt",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        let mut removed = prune_compiled(dir.path(), "aaa").unwrap();
        removed.sort();
        assert_eq!(
            removed,
            [dir.path().join("bbb-1.cwasm"), dir.path().join("ccc-1.cwasm")]
        );
        let mut left: Vec<_> = compiled_components(dir.path())
            .unwrap()
            .into_iter()
            .map(|(f, _)| f)
            .collect();
        left.sort();
        assert_eq!(
            left,
            [dir.path().join("aaa-1.cwasm"), dir.path().join("aaa-2.cwasm")]
        );
    }

    #[test]
    fn leftovers_of_killed_runs_go_unless_their_entry_is_held() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ImageCache::new(dir.path());
        let area = dir.path().join(format!("component-{COMPONENT}"));
        fs::create_dir_all(&area).unwrap();
        let name = |url| cache_entry_name(url, false);
        let killed = area.join(format!(".{}.0123.part", name("http://h/killed")));
        let killed_record = area.join(format!(".{}.json.4567.part", name("http://h/killed")));
        let orphan_record = area.join(format!("{}.json", name("http://h/orphan")));
        let running = area.join(format!(".{}.89ab.part", name("http://h/running")));
        let kept = entry(&cache, "http://h/kept", 10, hour(1));
        for file in [&killed, &killed_record, &orphan_record, &running] {
            fs::write(file, b"partial").unwrap();
        }
        let mut holds = Holds::default();
        cache
            .hold(&mut holds, COMPONENT, "http://h/running", false)
            .unwrap();

        let mut removed = cache.remove_leftovers().unwrap();
        removed.sort();
        let mut expected = vec![killed, killed_record, orphan_record];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(running.exists(), "a download in progress elsewhere is left alone");
        assert!(kept.exists() && record_of(&kept).exists());
    }
}
