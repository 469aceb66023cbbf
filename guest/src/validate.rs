//! Spec validation and defaults: every rule that needs no I/O.

use openstack_image_documents::spec::{
    CONTAINER_FORMATS, DEFAULT_CACHE_SUBDIR, DISK_FORMATS, FALLBACK_UPLOAD, IMPORT_FALLBACKS, ImportMethod,
    NO_CACHE, UrlData, VISIBILITIES, defaults, is_project_id,
};

use crate::glance_fields::{is_core_attribute, is_read_only};
use crate::placement;
use crate::source::{DigestAlgorithm, parse_checksum};
use crate::types::{FieldError, ImageSpec};

/// Glance stores min_disk and min_ram as 32-bit signed integers.
const GLANCE_INT_MAX: u64 = i32::MAX as u64;
/// Glance's limit on names, tags and property keys.
const MAX_SHORT_TEXT: usize = 255;
/// Glance's limit on a property value.
const MAX_PROPERTY_VALUE: usize = 65_535;
/// Kernel pseudo-filesystems: their files are devices or generated text, never image data
/// (and /proc/self would be the host's own process).
const PSEUDO_FILESYSTEMS: &[&str] = &["/proc", "/sys", "/dev"];
/// No operation may be given more than a week.
const MAX_TIMEOUT_SECONDS: u64 = 7 * 24 * 3600;

/// Validates `spec` and returns it normalised (defaults filled, tags and properties sorted).
pub fn check(spec: ImageSpec) -> Result<ImageSpec, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.to_string(),
            message,
        })
    };

    check_enum(
        &mut err,
        "container_format",
        &spec.container_format,
        CONTAINER_FORMATS,
    );
    check_enum(&mut err, "disk_format", &spec.disk_format, DISK_FORMATS);
    if let Some(visibility) = &spec.visibility {
        check_enum(&mut err, "visibility", visibility, VISIBILITIES);
    }
    if let Some(name) = &spec.name
        && name.chars().count() > MAX_SHORT_TEXT
    {
        err(
            "name",
            format!(
                "is {} characters long; Glance allows at most {MAX_SHORT_TEXT}",
                name.chars().count()
            ),
        );
    }

    check_source(&mut err, &spec);
    placement::check(&mut err, &spec);

    for (field, value) in [("min_disk_gb", spec.min_disk_gb), ("min_ram_mb", spec.min_ram_mb)] {
        if let Some(v) = value
            && v > GLANCE_INT_MAX
        {
            err(
                field,
                format!("{v} is too large; Glance allows at most {GLANCE_INT_MAX}"),
            );
        }
    }

    if let Some(id) = &spec.image_id
        && uuid::Uuid::try_parse(id).is_err()
    {
        err(
            "image_id",
            format!(
                "'{id}' is not a UUID; give one like 3fa85f64-5717-4562-b3fc-2c963f66afa6 or leave image_id out"
            ),
        );
    }
    if let Some(region) = &spec.region
        && region.trim().is_empty()
    {
        err(
            "region",
            "is empty; name a region or leave region out".to_string(),
        );
    }

    check_tags(&mut err, &spec.tags);
    check_properties(&mut err, &spec.properties);
    if let Some(members) = &spec.members {
        check_members(&mut err, members, spec.visibility.as_deref());
    }

    for (field, value) in [
        ("timeouts.create", spec.timeouts.create),
        ("timeouts.update", spec.timeouts.update),
        ("timeouts.delete", spec.timeouts.delete),
    ] {
        match value {
            Some(0) => err(field, "must be longer than zero".to_string()),
            Some(v) if v > MAX_TIMEOUT_SECONDS => err(
                field,
                format!("{v} seconds is more than a week; give at most {MAX_TIMEOUT_SECONDS}"),
            ),
            _ => {}
        }
    }

    if errors.is_empty() {
        Ok(with_defaults(spec))
    } else {
        Err(errors)
    }
}

fn check_enum(err: &mut impl FnMut(&str, String), field: &str, value: &str, allowed: &[&str]) {
    if value.is_empty() {
        err(field, format!("is required; use one of {}", allowed.join(", ")));
    } else if !allowed.contains(&value) {
        err(
            field,
            format!("'{value}' is not allowed; use one of {}", allowed.join(", ")),
        );
    }
}

fn check_source(err: &mut impl FnMut(&str, String), spec: &ImageSpec) {
    let method = placement::method(spec);
    match (&spec.local_file_path, &spec.image_source_url) {
        // Glance copies the data from another region: `placement` checks its fields.
        _ if method == ImportMethod::GlanceDownload => {}
        (Some(_), Some(_)) => err(
            "local_file_path",
            "conflicts with image_source_url; keep only one source".to_string(),
        ),
        (None, None) => err(
            "local_file_path",
            "an image needs data: set local_file_path or image_source_url".to_string(),
        ),
        (Some(path), None) => {
            if path.is_empty() {
                err(
                    "local_file_path",
                    "is empty; give the image file's path".to_string(),
                );
            } else if !path.starts_with('/') {
                err(
                    "local_file_path",
                    format!("'{path}' is not absolute; the runtime must pass an absolute path"),
                );
            } else if let Some(root) = PSEUDO_FILESYSTEMS.iter().find(|root| {
                path.strip_prefix(**root)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }) {
                err(
                    "local_file_path",
                    format!(
                        "'{path}' is under {root}, a kernel pseudo-filesystem, not an image file; point local_file_path at the image file"
                    ),
                );
            }
        }
        (None, Some(url)) => {
            let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("http" | "https")) || url::Url::parse(url).is_err() {
                err(
                    "image_source_url",
                    format!(
                        "'{url}' is not an http:// or https:// URL; give one, or download the data and use local_file_path"
                    ),
                );
            } else if let UrlData::Cached(_, None) = UrlData::of(
                Some(url),
                method.leaves_url_to_glance(spec.import_fallback.as_deref()),
                spec.image_cache_path.as_deref(),
            ) {
                // The component has no directory of its own: the runtime says where downloads go.
                err(
                    "image_cache_path",
                    format!(
                        "is not set, and a download needs a directory the runtime grants read-write; give one, or `{NO_CACHE}` to stream the download into Glance (the openstack-image host fills in ~/.cache/openstack-image/{DEFAULT_CACHE_SUBDIR})"
                    ),
                );
            }
        }
    }
    if let Some(cache) = &spec.image_cache_path
        && cache != NO_CACHE
        && !cache.starts_with('/')
    {
        err(
            "image_cache_path",
            format!("'{cache}' is not absolute; give a directory, or `{NO_CACHE}` to stream without a cache"),
        );
    }
    if let Some(checksum) = &spec.source_checksum
        && let Err(message) = parse_checksum(checksum)
    {
        err("source_checksum", message);
    }
    if method == ImportMethod::WebDownload {
        check_web_download(err, spec);
    }
    if let Some(fallback) = &spec.import_fallback {
        if !IMPORT_FALLBACKS.contains(&fallback.as_str()) {
            err(
                "import_fallback",
                format!(
                    "'{fallback}' is not a fallback; use {FALLBACK_UPLOAD}, or leave it out to fail when the import does"
                ),
            );
        } else if method != ImportMethod::WebDownload {
            err(
                "import_fallback",
                format!(
                    "applies only when Glance imports from image_source_url (import_method web-download, or web_download: true), not with import_method {}; remove it",
                    method.name()
                ),
            );
        }
    }
    if spec.decompress == Some(true) && spec.image_source_url.is_none() {
        err(
            "decompress",
            "applies only to image_source_url downloads; remove it".to_string(),
        );
    }
    if spec.image_source_username.is_some() != spec.image_source_password.is_some() {
        err(
            "image_source_username",
            "image_source_username and image_source_password go together; set both or neither".to_string(),
        );
    }
    if spec.image_source_username.is_some() && spec.image_source_url.is_none() {
        err(
            "image_source_username",
            "applies only to image_source_url downloads; remove it".to_string(),
        );
    }
}

/// Glance downloads a web-download source itself: what only the tool can do is excluded.
fn check_web_download(err: &mut impl FnMut(&str, String), spec: &ImageSpec) {
    let not_with = "cannot be used with web_download (Glance downloads the data itself); remove it";
    if spec.image_source_url.is_none() {
        err(
            placement::method_field(spec),
            "needs image_source_url: the URL Glance downloads".to_string(),
        );
    }
    if spec.verify_checksum.is_some() {
        err("verify_checksum", not_with.to_string());
    }
    if spec.decompress == Some(true) {
        err("decompress", not_with.to_string());
    }
    if spec.image_source_username.is_some() {
        err("image_source_username", not_with.to_string());
    }
    if spec.image_cache_path.is_some() && spec.import_fallback.as_deref() != Some(FALLBACK_UPLOAD) {
        err(
            "image_cache_path",
            format!("{not_with} (or add import_fallback: {FALLBACK_UPLOAD}, whose download it is for)"),
        );
    }
    if let Some(checksum) = &spec.source_checksum
        && let Ok(parsed) = parse_checksum(checksum)
        && parsed.algorithm == DigestAlgorithm::Sha256
    {
        err(
            "source_checksum",
            "with web_download only md5 or sha512 can be checked (the digests Glance computes)".to_string(),
        );
    }
}

fn check_tags(err: &mut impl FnMut(&str, String), tags: &[String]) {
    let mut seen = std::collections::BTreeSet::new();
    for tag in tags {
        if tag.is_empty() {
            err("tags", "contains an empty tag; remove it".to_string());
        } else if tag.chars().count() > MAX_SHORT_TEXT {
            err(
                "tags",
                format!("tag '{tag}' is longer than {MAX_SHORT_TEXT} characters"),
            );
        } else if !seen.insert(tag.as_str()) {
            err("tags", format!("tag '{tag}' appears twice; tags are a set"));
        }
    }
}

/// Members are Keystone project ids, a set, and only a shared image has them (Glance refuses
/// memberships of any other image).
fn check_members(err: &mut impl FnMut(&str, String), members: &[String], visibility: Option<&str>) {
    let mut seen = std::collections::BTreeSet::new();
    for member in members {
        if !is_project_id(member) {
            err(
                "members",
                format!(
                    "'{member}' is not a project id: Keystone's project ids are 32 lowercase \
                     hexadecimal characters (`openstack project show NAME -f value -c id` prints one)"
                ),
            );
        } else if !seen.insert(member.as_str()) {
            err(
                "members",
                format!("project '{member}' appears twice; members are a set"),
            );
        }
    }
    let visibility = visibility.unwrap_or(defaults::VISIBILITY);
    if !members.is_empty() && visibility != "shared" {
        err(
            "members",
            format!(
                "only a shared image has members, and visibility is '{visibility}': set \
                 `visibility: shared` or remove members"
            ),
        );
    }
}

fn check_properties(err: &mut impl FnMut(&str, String), properties: &[(String, String)]) {
    let mut seen = std::collections::BTreeSet::new();
    for (key, value) in properties {
        let field = format!("properties.{key}");
        if key.is_empty() {
            err("properties", "contains an empty key; remove it".to_string());
        } else if key.chars().count() > MAX_SHORT_TEXT {
            err(&field, format!("key is longer than {MAX_SHORT_TEXT} characters"));
        } else if !seen.insert(key.as_str()) {
            err(&field, "appears twice".to_string());
        } else if is_read_only(key) {
            err(
                &field,
                format!("'{key}' is set by Glance and cannot be managed; remove it from properties"),
            );
        } else if is_core_attribute(key) {
            err(
                &field,
                format!("'{key}' is an image attribute, not a property; use the spec field for it"),
            );
        }
        if value.len() > MAX_PROPERTY_VALUE {
            err(&field, format!("value is longer than {MAX_PROPERTY_VALUE} bytes"));
        }
    }
}

/// Fills in the spec document's defaults (which its schema states as `default`s).
fn with_defaults(mut spec: ImageSpec) -> ImageSpec {
    spec.min_disk_gb.get_or_insert(defaults::MIN_DISK_GB);
    spec.min_ram_mb.get_or_insert(defaults::MIN_RAM_MB);
    spec.protected.get_or_insert(defaults::PROTECTED);
    spec.hidden.get_or_insert(defaults::HIDDEN);
    // With web_download nothing is verified by the tool, and setting it is an error.
    let method = placement::method(&spec);
    if method != ImportMethod::WebDownload {
        spec.verify_checksum.get_or_insert(defaults::VERIFY_CHECKSUM);
    }
    spec.decompress.get_or_insert(defaults::DECOMPRESS);
    spec.web_download
        .get_or_insert(method == ImportMethod::WebDownload || defaults::WEB_DOWNLOAD);
    spec.all_stores_must_succeed
        .get_or_insert(defaults::ALL_STORES_MUST_SUCCEED);
    spec.stores.sort();
    spec.visibility
        .get_or_insert_with(|| defaults::VISIBILITY.to_string());
    spec.tags.sort();
    spec.properties.sort();
    if let Some(members) = &mut spec.members {
        members.sort();
    }
    spec.deactivated.get_or_insert(defaults::DEACTIVATED);
    spec
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use openstack_image_documents::fixtures;

    /// A minimal valid spec for tests across the crate.
    pub(crate) fn spec() -> ImageSpec {
        fixtures::spec().into()
    }

    fn fields(result: Result<ImageSpec, Vec<FieldError>>) -> Vec<String> {
        result.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn fills_defaults_and_sorts() {
        let mut s = spec();
        s.tags = vec!["b".into(), "a".into()];
        s.properties = vec![("z".into(), "1".into()), ("a".into(), "2".into())];
        let s = check(s).unwrap();
        assert_eq!(s.visibility.as_deref(), Some("private"));
        assert_eq!(s.min_disk_gb, Some(0));
        assert_eq!(s.verify_checksum, Some(true));
        assert_eq!(s.protected, Some(false));
        assert_eq!(s.tags, vec!["a", "b"]);
        assert_eq!(s.properties[0].0, "a");
    }

    #[test]
    fn rejects_bad_enums_with_allowed_values() {
        let mut s = spec();
        s.disk_format = "qcow3".into();
        s.visibility = Some("everyone".into());
        let errors = check(s).unwrap_err();
        assert_eq!(errors[0].field, "disk_format");
        assert!(errors[0].message.contains("qcow2"), "{}", errors[0].message);
        assert_eq!(errors[1].field, "visibility");
    }

    #[test]
    fn requires_formats() {
        let mut s = spec();
        s.container_format = String::new();
        assert_eq!(fields(check(s)), vec!["container_format"]);
    }

    #[test]
    fn url_sources_are_checked() {
        let mut s = spec();
        s.local_file_path = None;
        s.image_source_url = Some("https://example.org/x.img.xz".into());
        s.decompress = Some(true);
        s.image_cache_path = Some("none".into());
        s.source_checksum = Some(format!("sha256:{}", "a".repeat(64)));
        assert!(check(s.clone()).is_ok());
        s.image_source_url = Some("ftp://example.org/x.img".into());
        s.image_cache_path = Some("cache".into());
        s.source_checksum = Some("sha1:00".into());
        assert_eq!(
            fields(check(s)),
            vec!["image_source_url", "image_cache_path", "source_checksum"]
        );
    }

    #[test]
    fn web_download_excludes_what_only_the_tool_does() {
        let mut s = spec();
        s.local_file_path = None;
        s.image_source_url = Some("https://example.org/x.img".into());
        s.web_download = Some(true);
        let checked = check(s.clone()).unwrap();
        assert_eq!(checked.verify_checksum, None);
        assert!(check(checked).is_ok(), "checking twice is stable");
        s.verify_checksum = Some(true);
        s.decompress = Some(true);
        s.image_cache_path = Some("/cache".into());
        s.source_checksum = Some(format!("sha256:{}", "a".repeat(64)));
        assert_eq!(
            fields(check(s)),
            vec![
                "verify_checksum",
                "decompress",
                "image_cache_path",
                "source_checksum"
            ]
        );
    }

    #[test]
    fn an_upload_fallback_is_for_web_download_and_brings_its_cache() {
        let mut s = spec();
        s.local_file_path = None;
        s.image_source_url = Some("https://example.org/x.img".into());
        s.web_download = Some(true);
        s.import_fallback = Some("upload".into());
        // The fallback downloads here: it needs the cache the runtime fills in, and may name one.
        let errors = check(s.clone()).unwrap_err();
        assert_eq!(errors[0].field, "image_cache_path");
        assert!(errors[0].message.contains("is not set"), "{}", errors[0].message);
        s.image_cache_path = Some("/cache".into());
        assert!(check(s.clone()).is_ok());

        s.import_fallback = Some("retry".into());
        let errors = check(s.clone()).unwrap_err();
        assert_eq!(
            fields(Err(errors.clone())),
            vec!["image_cache_path", "import_fallback"]
        );
        assert!(
            errors[0].message.contains("or add import_fallback: upload"),
            "{}",
            errors[0].message
        );
        assert!(
            errors[1]
                .message
                .contains("'retry' is not a fallback; use upload"),
            "{}",
            errors[1].message
        );

        let mut direct = spec();
        direct.import_fallback = Some("upload".into());
        let errors = check(direct).unwrap_err();
        assert_eq!(errors[0].field, "import_fallback");
        assert!(
            errors[0].message.contains("not with import_method direct"),
            "{}",
            errors[0].message
        );
    }

    #[test]
    fn sources_conflict_and_are_required() {
        let mut s = spec();
        s.image_source_url = Some("https://example.org/x.img".into());
        assert_eq!(fields(check(s)), vec!["local_file_path"]);
        let mut s = spec();
        s.local_file_path = None;
        assert_eq!(fields(check(s)), vec!["local_file_path"]);
        let mut s = spec();
        s.local_file_path = Some("relative.qcow2".into());
        assert_eq!(fields(check(s)), vec!["local_file_path"]);
    }

    #[test]
    fn rejects_pseudo_files_and_other_schemes() {
        for path in ["/dev/zero", "/proc/self/environ", "/sys", "/proc"] {
            let mut s = spec();
            s.local_file_path = Some(path.into());
            let errors = check(s).unwrap_err();
            assert!(
                errors[0].message.contains("pseudo-filesystem"),
                "{path}: {}",
                errors[0].message
            );
        }
        let mut s = spec();
        s.local_file_path = Some("/devices/disk.qcow2".into());
        assert!(check(s).is_ok());
        for url in [
            "file:///etc/passwd",
            "ftp://h/x",
            "javascript:alert(1)",
            "data:,x",
        ] {
            let mut s = spec();
            s.local_file_path = None;
            s.image_source_url = Some(url.into());
            assert_eq!(fields(check(s)), vec!["image_source_url"], "{url}");
        }
    }

    #[test]
    fn rejects_read_only_and_core_properties() {
        let mut s = spec();
        s.properties = vec![
            ("os_hash_value".into(), "x".into()),
            ("disk_format".into(), "raw".into()),
            ("os_distro".into(), "cirros".into()),
        ];
        assert_eq!(
            fields(check(s)),
            vec!["properties.os_hash_value", "properties.disk_format"]
        );
    }

    #[test]
    fn rejects_duplicate_tags_bad_uuid_and_zero_timeout() {
        let mut s = spec();
        s.tags = vec!["a".into(), "a".into()];
        s.image_id = Some("not-a-uuid".into());
        s.timeouts.create = Some(0);
        assert_eq!(fields(check(s)), vec!["image_id", "tags", "timeouts.create"]);
    }

    #[test]
    fn rejects_huge_minimums() {
        let mut s = spec();
        s.min_ram_mb = Some(u64::MAX);
        assert_eq!(fields(check(s)), vec!["min_ram_mb"]);
    }

    #[test]
    fn members_are_project_ids_of_a_shared_image() {
        const B: &str = "0123456789abcdef0123456789abcdef";
        let mut s = spec();
        s.visibility = Some("shared".into());
        s.members = Some(vec![B.into()]);
        assert_eq!(check(s.clone()).unwrap().members, Some(vec![B.to_string()]));

        s.members = Some(vec!["demo".into(), B.into(), B.into()]);
        let errors = check(s.clone()).unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].message.contains("'demo' is not a project id"),
            "{errors:?}"
        );
        assert!(errors[1].message.contains("appears twice"), "{errors:?}");

        // Members name both fields' fix on any other visibility; an empty list is fine.
        s.visibility = Some("private".into());
        s.members = Some(vec![B.into()]);
        let errors = check(s.clone()).unwrap_err();
        assert_eq!(errors[0].field, "members");
        assert!(
            errors[0].message.contains("visibility is 'private'"),
            "{errors:?}"
        );
        assert!(errors[0].message.contains("visibility: shared"), "{errors:?}");
        s.members = Some(Vec::new());
        assert!(check(s).is_ok());
    }
}
