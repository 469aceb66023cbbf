//! Facts about the spec's fields that more than one side uses: the allowed formats, the
//! defaults `check` fills in (also the JSON Schema's `default`s), and how a URL source's data
//! reaches the component.

/// Glance's container formats.
pub const CONTAINER_FORMATS: &[&str] = &["bare", "ovf", "aki", "ari", "ami", "ova", "docker", "compressed"];
/// Glance's disk formats.
pub const DISK_FORMATS: &[&str] = &[
    "raw", "vhd", "vhdx", "vmdk", "vdi", "iso", "ploop", "qcow2", "aki", "ari", "ami",
];
/// Glance's visibilities.
pub const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];

/// What `check` fills in for a field left out (the schema says so as each field's `default`).
pub mod defaults {
    pub const VISIBILITY: &str = "private";
    pub const MIN_DISK_GB: u64 = 0;
    pub const MIN_RAM_MB: u64 = 0;
    pub const PROTECTED: bool = false;
    pub const HIDDEN: bool = false;
    /// Not with `web_download`: then nothing is verified by the tool.
    pub const VERIFY_CHECKSUM: bool = true;
    pub const DECOMPRESS: bool = false;
    pub const WEB_DOWNLOAD: bool = false;
}

/// The `image_cache_path` that streams a download into Glance with no file in between.
pub const NO_CACHE: &str = "none";

/// Where the openstack-image host keeps downloads when a spec names no `image_cache_path`:
/// this directory below its cache directory (`~/.cache/openstack-image`).
pub const DEFAULT_CACHE_SUBDIR: &str = "images";

/// How the component gets an image's data from its `image_source_url`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlData<'a> {
    /// No URL, or Glance downloads it itself (`web_download`): the component never calls it.
    NotFetched,
    /// Downloaded straight into Glance (`image_cache_path: none`).
    Streamed(&'a str),
    /// Downloaded into the cache directory first; `None` until the runtime names one.
    Cached(&'a str, Option<&'a str>),
}

impl<'a> UrlData<'a> {
    /// The rule for a spec's source fields: a URL source needs a cache directory unless
    /// `web_download` is on or the cache is `none`.
    pub fn of(
        image_source_url: Option<&'a str>,
        web_download: Option<bool>,
        image_cache_path: Option<&'a str>,
    ) -> Self {
        match (image_source_url, web_download, image_cache_path) {
            (None, ..) | (Some(_), Some(true), _) => UrlData::NotFetched,
            (Some(url), _, Some(NO_CACHE)) => UrlData::Streamed(url),
            (Some(url), _, cache) => UrlData::Cached(url, cache),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_sources_need_a_cache_unless_streamed_or_downloaded_by_glance() {
        let (link, url) = ("https://example.org/x.img", Some("https://example.org/x.img"));
        assert_eq!(UrlData::of(None, None, Some("/c")), UrlData::NotFetched);
        assert_eq!(UrlData::of(url, Some(true), None), UrlData::NotFetched);
        assert_eq!(UrlData::of(url, None, Some("none")), UrlData::Streamed(link));
        assert_eq!(UrlData::of(url, Some(false), None), UrlData::Cached(link, None));
        assert_eq!(
            UrlData::of(url, None, Some("/c")),
            UrlData::Cached(link, Some("/c"))
        );
    }
}
