//! Facts about the spec's fields that more than one side uses: the allowed formats, the
//! defaults `check` fills in (also the JSON Schema's `default`s), and how a URL source's data
//! reaches the component.

/// Glance's container formats.
pub const CONTAINER_FORMATS: &[&str] = &["bare", "ovf", "aki", "ari", "ami", "ova", "docker", "compressed"];
/// Glance's disk formats.
pub const DISK_FORMATS: &[&str] = &[
    "raw", "vhd", "vhdx", "vmdk", "vdi", "iso", "ploop", "qcow2", "aki", "ari", "ami",
];
/// How an image's data reaches Glance (`import_method`).
pub const IMPORT_METHODS: &[&str] = &["direct", "glance-direct", "web-download", "glance-download"];

/// Glance's visibilities.
pub const VISIBILITIES: &[&str] = &["public", "private", "shared", "community"];

/// A Keystone project id (Keystone makes them: 32 lowercase hexadecimal characters), what a
/// member of a shared image is.
pub const PROJECT_ID_PATTERN: &str = "^[0-9a-f]{32}$";

/// Whether `id` has the form of a Keystone project id ([`PROJECT_ID_PATTERN`]).
pub fn is_project_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A member's answer to a shared image, as Glance has it (`member_status`).
pub const MEMBER_STATUSES: &[&str] = &["pending", "accepted", "rejected"];

/// Who acts on a membership: the member project answers an offer, the image's owner makes it.
pub const MEMBERSHIP_SIDES: &[&str] = &["member", "owner"];

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
    pub const ALL_STORES_MUST_SUCCEED: bool = true;
    pub const DEACTIVATED: bool = false;
    pub const MEMBERSHIP_SIDE: &str = "member";
    /// The member side's answer when the spec gives none.
    pub const MEMBERSHIP_STATUS: &str = "accepted";
}

/// The `image_cache_path` that streams a download into Glance with no file in between.
pub const NO_CACHE: &str = "none";

/// Where the openstack-image host keeps downloads when a spec names no `image_cache_path`:
/// this directory below its cache directory (`~/.cache/openstack-image`).
pub const DEFAULT_CACHE_SUBDIR: &str = "images";

/// The download cache's file for a URL and decompress flag: `<md5(url + flag)>.img`, as the
/// peers name it, with its record beside it as `<name>.json`. The flag is part of the key, so
/// a decompressed and a raw copy of one URL never share a file; a change at the source (its
/// ETag or Last-Modified) replaces the file in place.
pub fn cache_entry_name(url: &str, decompress: bool) -> String {
    use md5::{Digest, Md5};
    let key = hex::encode(Md5::digest(format!("{url}{decompress}").as_bytes()));
    format!("{key}.img")
}

/// How an image's data reaches Glance: `import_method`, with `web_download: true` as the older
/// way of saying `web-download`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMethod {
    /// `PUT /v2/images/{id}/file`.
    Direct,
    /// `PUT /v2/images/{id}/stage`, then Glance's glance-direct import.
    GlanceDirect,
    /// Glance fetches `image_source_url` itself.
    WebDownload,
    /// Glance copies an image from another region's Glance.
    GlanceDownload,
}

impl ImportMethod {
    /// The method a spec's fields select; `None` for a name that is not one of
    /// [`IMPORT_METHODS`].
    pub fn of(import_method: Option<&str>, web_download: Option<bool>) -> Option<Self> {
        Some(match import_method {
            None if web_download == Some(true) => ImportMethod::WebDownload,
            None | Some("direct") => ImportMethod::Direct,
            Some("glance-direct") => ImportMethod::GlanceDirect,
            Some("web-download") => ImportMethod::WebDownload,
            Some("glance-download") => ImportMethod::GlanceDownload,
            Some(_) => return None,
        })
    }

    /// The spec's name of the method (one of [`IMPORT_METHODS`]).
    pub fn name(self) -> &'static str {
        match self {
            ImportMethod::Direct => "direct",
            ImportMethod::GlanceDirect => "glance-direct",
            ImportMethod::WebDownload => "web-download",
            ImportMethod::GlanceDownload => "glance-download",
        }
    }

    /// Whether Glance gets the data itself, so the component never reads it.
    pub fn glance_fetches(self) -> bool {
        matches!(self, ImportMethod::WebDownload | ImportMethod::GlanceDownload)
    }

    /// Whether the component never fetches the spec's URL: Glance fetches it, and no
    /// `import_fallback: upload` has the component fetch it when Glance's import fails.
    pub fn leaves_url_to_glance(self, import_fallback: Option<&str>) -> bool {
        self.glance_fetches() && import_fallback != Some(FALLBACK_UPLOAD)
    }
}

/// `import_fallback: upload`: when Glance's web-download fails or stalls, the component
/// fetches the data itself (through the cache, verified) and uploads it into the same stores.
pub const FALLBACK_UPLOAD: &str = "upload";

/// The values `import_fallback` takes.
pub const IMPORT_FALLBACKS: &[&str] = &[FALLBACK_UPLOAD];

/// The id of the image an upload fallback creates in place of the import's image `id`
/// (Glance never reuses a deleted image's id): derived from it, so a run that finds an
/// interrupted create's intent for `id` also finds its fallback. A name-based UUID (version
/// 3: the MD5 of the id, as RFC 9562 lays it out).
pub fn fallback_image_id(id: &str) -> String {
    use md5::{Digest, Md5};
    let mut bytes: [u8; 16] = Md5::digest(format!("openstack-image fallback of {id}").as_bytes()).into();
    bytes[6] = (bytes[6] & 0x0f) | 0x30;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

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
    /// Glance fetches the data itself ([`ImportMethod::glance_fetches`]) or the cache is `none`.
    pub fn of(
        image_source_url: Option<&'a str>,
        glance_fetches: bool,
        image_cache_path: Option<&'a str>,
    ) -> Self {
        match (image_source_url, image_cache_path) {
            (None, _) => UrlData::NotFetched,
            (Some(_), _) if glance_fetches => UrlData::NotFetched,
            (Some(url), Some(NO_CACHE)) => UrlData::Streamed(url),
            (Some(url), cache) => UrlData::Cached(url, cache),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fallback_id_is_a_stable_version_3_uuid_of_its_import() {
        let id = "0b8f4c52-4f8e-4f53-9a59-7d5f8c1e2a10";
        let fallback = fallback_image_id(id);
        assert_eq!(fallback, fallback_image_id(id));
        assert_ne!(
            fallback,
            fallback_image_id("0b8f4c52-4f8e-4f53-9a59-7d5f8c1e2a11")
        );
        let groups: Vec<&str> = fallback.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(groups[2].starts_with('3'), "{fallback}");
        assert!(
            matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{fallback}"
        );
    }

    #[test]
    fn only_an_upload_fallback_has_the_component_fetch_a_web_download() {
        assert!(ImportMethod::WebDownload.leaves_url_to_glance(None));
        assert!(!ImportMethod::WebDownload.leaves_url_to_glance(Some(FALLBACK_UPLOAD)));
        assert!(!ImportMethod::Direct.leaves_url_to_glance(None));
    }

    #[test]
    fn web_download_is_the_older_name_of_an_import_method() {
        assert_eq!(ImportMethod::of(None, None), Some(ImportMethod::Direct));
        assert_eq!(
            ImportMethod::of(None, Some(true)),
            Some(ImportMethod::WebDownload)
        );
        assert_eq!(
            ImportMethod::of(Some("glance-direct"), Some(false)),
            Some(ImportMethod::GlanceDirect)
        );
        assert_eq!(ImportMethod::of(Some("ftp"), None), None);
        for name in IMPORT_METHODS {
            assert_eq!(
                ImportMethod::of(Some(name), None).map(ImportMethod::name),
                Some(*name)
            );
        }
    }

    #[test]
    fn url_sources_need_a_cache_unless_streamed_or_downloaded_by_glance() {
        let (link, url) = ("https://example.org/x.img", Some("https://example.org/x.img"));
        assert_eq!(UrlData::of(None, false, Some("/c")), UrlData::NotFetched);
        assert_eq!(UrlData::of(url, true, None), UrlData::NotFetched);
        assert_eq!(UrlData::of(url, false, Some("none")), UrlData::Streamed(link));
        assert_eq!(UrlData::of(url, false, None), UrlData::Cached(link, None));
        assert_eq!(
            UrlData::of(url, false, Some("/c")),
            UrlData::Cached(link, Some("/c"))
        );
    }
}
