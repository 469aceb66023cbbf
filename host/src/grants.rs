//! The file-system capability: which directories an instance sees. A spec's images need the
//! directories of their local files (read-only) and their download caches (read-write); the
//! hosts of their source URLs go to the network capability. Nothing else of the machine is
//! visible.
//!
//! No component writes where another reads: a writable directory is never shared as it is.
//! Each component build gets its own area below it (`component-<digest>`), mapped at the
//! directory's own path inside the guest, so a component sees the cache it asked for, but a
//! third party's component run once with `--component` cannot plant an entry (and a sidecar
//! vouching for it) that the shipped component would later upload.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use openstack_image_documents::SpecDoc;
use openstack_image_documents::spec::{ImportMethod, UrlData};

pub use openstack_image_component_build::component_id;

use crate::bindings::ImageSpec;
use crate::network::AllowedHost;

/// What a spec's images need beyond the cloud: the directories of local files (read-only),
/// download caches (read-write, created if missing), and the hosts of source URLs.
#[derive(Default)]
pub struct SpecGrants {
    pub read_only_dirs: Vec<PathBuf>,
    pub read_write_dirs: Vec<PathBuf>,
    pub hosts: Vec<AllowedHost>,
}

/// One directory an instance sees: `host` on this machine, at `guest` inside the component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    pub host: PathBuf,
    pub guest: String,
}

/// Where an image's data comes from: all the grants and the download cache depend on. Read
/// through the spec document, from a typed spec or from a JSON spec document.
#[derive(Debug, Default, Clone)]
pub struct DataSource(SpecDoc);

impl DataSource {
    /// The data source of a typed spec.
    pub fn of(spec: &ImageSpec) -> DataSource {
        DataSource(SpecDoc::from(spec.clone()))
    }

    /// The data source of a JSON spec document; one that is not a spec document has none
    /// (the component names what is wrong with it).
    pub fn from_json(spec: &Value) -> DataSource {
        serde_json::from_value(spec.clone())
            .map(DataSource)
            .unwrap_or_default()
    }

    /// Whether a downloaded URL is decompressed (part of its cache entry's name).
    pub fn decompress(&self) -> bool {
        self.0.decompress == Some(true)
    }

    /// The image file to read, if any.
    pub fn local_file_path(&self) -> Option<&str> {
        self.0.local_file_path.as_deref()
    }

    /// How the component gets the data of this source's URL (the one rule, shared with the
    /// component).
    pub fn url_data(&self) -> UrlData<'_> {
        let spec = &self.0;
        let method = ImportMethod::of(spec.import_method.as_deref(), spec.web_download);
        UrlData::of(
            spec.image_source_url.as_deref(),
            method.is_some_and(|m| m.leaves_url_to_glance(spec.import_fallback.as_deref())),
            spec.image_cache_path.as_deref(),
        )
    }

    /// The URL the component downloads itself (Glance downloads web-download sources).
    pub fn downloaded_url(&self) -> Option<&str> {
        match self.url_data() {
            UrlData::Streamed(url) | UrlData::Cached(url, _) => Some(url),
            UrlData::NotFetched => None,
        }
    }

    /// True when a download needs a cache directory and the spec names none.
    pub fn needs_default_cache(&self) -> bool {
        matches!(self.url_data(), UrlData::Cached(_, None))
    }

    /// The cache directory a download uses, if any.
    pub fn cache_dir(&self) -> Option<&str> {
        match self.url_data() {
            UrlData::Cached(_, cache) => cache,
            _ => None,
        }
    }
}

impl SpecGrants {
    /// The grants for `images` (paths already absolute).
    pub fn for_images<'a>(images: impl Iterator<Item = &'a ImageSpec>) -> Result<SpecGrants> {
        Self::for_sources(images.map(DataSource::of))
    }

    /// The grants for images with these data sources (paths already absolute).
    pub fn for_sources(sources: impl Iterator<Item = DataSource>) -> Result<SpecGrants> {
        let (mut read_only, mut read_write, mut hosts) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
        for source in sources {
            if let Some(dir) = source.local_file_path().and_then(|f| Path::new(f).parent())
                && dir.is_dir()
            {
                read_only.insert(dir.to_path_buf());
            }
            if let Some(url) = source.downloaded_url()
                && let Ok(host) = AllowedHost::parse(url)
            {
                hosts.insert(host);
            }
            if let Some(cache) = source.cache_dir() {
                std::fs::create_dir_all(cache)
                    .with_context(|| format!("image_cache_path: cannot create {cache}"))?;
                read_write.insert(PathBuf::from(cache));
            }
        }
        Ok(SpecGrants {
            read_only_dirs: read_only.into_iter().collect(),
            read_write_dirs: read_write.into_iter().collect(),
            hosts: hosts.into_iter().collect(),
        })
    }

    /// The directories an instance of the component `component` (its [`component_id`])
    /// sees: the read-only ones as they are, each writable one as that component's own area
    /// below it (created here), both at the directory's own path inside the guest.
    pub fn preopens(&self, component: &str) -> Result<(Vec<Preopen>, Vec<Preopen>)> {
        let guest = |dir: &Path| {
            dir.to_str()
                .map(str::to_string)
                .with_context(|| format!("{} is not UTF-8", dir.display()))
        };
        let read_only = self
            .read_only_dirs
            .iter()
            .map(|dir| {
                Ok(Preopen {
                    host: dir.clone(),
                    guest: guest(dir)?,
                })
            })
            .collect::<Result<_>>()?;
        let read_write = self
            .read_write_dirs
            .iter()
            .map(|dir| {
                let area = component_area(dir, component);
                std::fs::create_dir_all(&area)
                    .with_context(|| format!("image_cache_path: cannot create {}", area.display()))?;
                Ok(Preopen {
                    host: area,
                    guest: guest(dir)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok((read_only, read_write))
    }
}

/// Where the component `component` really writes when it writes into `dir`.
pub fn component_area(dir: &Path, component: &str) -> PathBuf {
    dir.join(format!("component-{component}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_component_writes_in_an_area_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let images = dir.path().join("images");
        std::fs::create_dir(&images).unwrap();
        let cached = |url: &str| {
            DataSource(SpecDoc {
                image_source_url: Some(url.into()),
                image_cache_path: Some(cache.to_string_lossy().into_owned()),
                ..SpecDoc::default()
            })
        };
        let file = DataSource(SpecDoc {
            local_file_path: Some(images.join("a.raw").to_string_lossy().into_owned()),
            ..SpecDoc::default()
        });
        let grants =
            SpecGrants::for_sources([file, cached("https://images.example.org/b.img")].into_iter()).unwrap();
        assert_eq!(grants.read_only_dirs, std::slice::from_ref(&images));
        assert_eq!(
            grants.hosts,
            [AllowedHost::parse("https://images.example.org").unwrap()]
        );

        let shipped = component_id(b"the shipped component");
        let other = component_id(b"a third party's component");
        assert_ne!(shipped, other);
        let (read_only, read_write) = grants.preopens(&shipped).unwrap();
        assert_eq!(read_only[0].host, images);
        assert_eq!(read_write.len(), 1);
        assert_eq!(
            read_write[0].guest,
            cache.to_string_lossy(),
            "the path the spec names"
        );
        assert_eq!(read_write[0].host, cache.join(format!("component-{shipped}")));
        assert!(read_write[0].host.is_dir());
        let (_, theirs) = grants.preopens(&other).unwrap();
        assert_ne!(theirs[0].host, read_write[0].host);
        assert_eq!(theirs[0].guest, read_write[0].guest);
    }
}
