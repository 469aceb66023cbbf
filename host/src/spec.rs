//! The spec file (YAML or JSON): named images with the resource's snake_case inputs.
//! Unknown keys are errors; relative `local_file_path`s resolve against the file's directory.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use openstack_image_documents::spec::NO_CACHE;
use openstack_image_documents::{MembershipSpecDoc, SpecDoc};
use serde::Deserialize;

use crate::bindings::{ImageSpec, MembershipSpec};

/// A parsed spec file: images and memberships by logical name.
#[derive(Debug)]
pub struct SpecFile {
    pub images: BTreeMap<String, ImageSpec>,
    /// Memberships of shared images (another project's image accepted here, or an offer).
    pub memberships: BTreeMap<String, MembershipSpec>,
    /// False when the file has memberships and no `images:` key: it manages no images, and
    /// a state that holds some is refused rather than emptied.
    pub images_given: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpecFile {
    /// None when the key is missing or left empty (`images:`), which is refused unless the
    /// file has `memberships`: applied, "no images" deletes every image in the state, so it
    /// must be written out (`images: {}`).
    images: Option<BTreeMap<String, SpecDoc>>,
    #[serde(default)]
    memberships: Option<BTreeMap<String, MembershipSpecDoc>>,
}

impl SpecFile {
    /// Reads and parses `path`; JSON when it ends in `.json`, YAML otherwise.
    pub fn load(path: &Path) -> Result<SpecFile> {
        let text = read_text_file(path, "spec file")?;
        let base = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."));
        let base = std::path::absolute(base)?;
        Self::parse(&text, path.extension().is_some_and(|e| e == "json"), &base)
            .with_context(|| format!("invalid spec file {}", path.display()))
    }

    /// Parses spec text (the images are spec documents); relative paths resolve against `base`.
    pub fn parse(text: &str, json: bool, base: &Path) -> Result<SpecFile> {
        if text.trim().is_empty() {
            bail!("the file is empty; a spec file holds `images:` with one entry per image");
        }
        let raw: RawSpecFile = if json {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| located(e.path().to_string(), e.inner()))?
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| located(e.path().to_string(), e.inner()))?
        };
        // serde also fills a struct from a list (`[{...}]` would become images named
        // after the first entry's keys): only a mapping is a spec.
        let is_mapping = if json {
            serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| v.is_object())
        } else {
            serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text).is_ok_and(|v| v.is_mapping())
        };
        if !is_mapping {
            bail!("the file is a list, not a mapping; a spec file holds `images:` with one entry per image");
        }
        let memberships: BTreeMap<String, MembershipSpec> = raw
            .memberships
            .unwrap_or_default()
            .into_iter()
            .map(|(name, doc)| (name, doc.into()))
            .collect();
        if memberships.keys().any(String::is_empty) {
            bail!("memberships: a membership has an empty name; give each membership a logical name");
        }
        let images_given = raw.images.is_some();
        let Some(raw_images) = raw
            .images
            .or_else(|| (!memberships.is_empty()).then(BTreeMap::new))
        else {
            bail!(
                "`images:` is missing or empty; list the images to manage under it, or write \
                 `images: {{}}` to manage none (apply then deletes every image in the state)"
            );
        };
        let mut images = BTreeMap::new();
        for (key, image) in raw_images {
            if key.is_empty() {
                bail!("images: an image has an empty name; give each image a logical name");
            }
            images.insert(key, into_spec(image, base));
        }
        Ok(SpecFile {
            images,
            memberships,
            images_given,
        })
    }
}

fn located(path: String, err: &impl std::fmt::Display) -> anyhow::Error {
    // serde_yaml_ng puts the path in front of its message too; say it once.
    let message = err.to_string();
    let err = message.strip_prefix(&format!("{path}: ")).unwrap_or(&message);
    // `images.web.disk_fromat` → "image 'web', field disk_fromat: …"
    let mut parts = path.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("images"), Some(image), Some(field)) => anyhow!("image '{image}', field {field}: {err}"),
        (Some("images"), Some(image), None) => anyhow!("image '{image}': {err}"),
        (Some("images"), None, None) => anyhow!("images: {err}"),
        _ => anyhow!("{err} (a spec file holds `images:` with one entry per image)"),
    }
}

/// The most a spec, state or clouds.yaml file may hold: far more than any real one, and a
/// bound on what a wrong path (a disk image, /dev/zero) makes this tool read.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// The text of a spec, state or clouds.yaml file (`what` names it in errors): at most
/// [`MAX_FILE_BYTES`], UTF-8. The `std::io::Error` of a failed open stays in the chain.
pub fn read_text_file(path: &Path, what: &str) -> Result<String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot read the {what} {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        bail!(
            "the {what} {} is larger than {} MiB; is it the right file?",
            path.display(),
            MAX_FILE_BYTES / (1024 * 1024)
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow!(
            "the {what} {} is not UTF-8 text (invalid byte at offset {}); is it the right file? Save it as UTF-8",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// The spec document as the component takes it, relative paths resolved against `base`.
fn into_spec(doc: SpecDoc, base: &Path) -> ImageSpec {
    let mut spec = ImageSpec::from(doc);
    spec.local_file_path = spec.local_file_path.map(|p| resolve(base, &p));
    // `none` streams the download instead of caching it.
    spec.image_cache_path = spec
        .image_cache_path
        .map(|p| if p == NO_CACHE { p } else { resolve(base, &p) });
    spec
}

/// `path` against `base`, resolved as the operating system resolves it when the file is
/// opened: symlinks followed and `..` taken after them, so the component is given (and granted)
/// the file that `open` would read. A file that does not exist yet keeps its name below its
/// resolved directory; a path whose directory does not resolve either (`/missing/../x`) is
/// kept as written, made absolute, and fails as "does not exist" when it is used.
pub fn resolve(base: &Path, path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let joined = base.join(path);
    let resolved = std::fs::canonicalize(&joined).ok().or_else(|| {
        let name = joined.file_name()?;
        let dir = std::fs::canonicalize(joined.parent()?).ok()?;
        Some(dir.join(name))
    });
    resolved.unwrap_or(joined).to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SpecFile> {
        SpecFile::parse(text, false, Path::new("/specs"))
    }

    #[test]
    fn parses_the_design_example() {
        let spec = parse(
            "images:\n  rancheros:\n    name: rancheros\n    container_format: bare\n    disk_format: qcow2\n    local_file_path: ../img/r.qcow2\n    properties:\n      key: value\n      cores: 2\n    timeouts:\n      create: 1h30m\n",
        )
        .unwrap();
        let image = &spec.images["rancheros"];
        // /specs does not exist, so `..` cannot be taken: the path stays as written.
        assert_eq!(image.local_file_path.as_deref(), Some("/specs/../img/r.qcow2"));
        assert_eq!(
            image.properties,
            vec![
                ("cores".to_string(), "2".to_string()),
                ("key".to_string(), "value".to_string())
            ]
        );
        assert_eq!(image.timeouts.create, Some(5400));
    }

    #[test]
    fn paths_resolve_as_the_operating_system_opens_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("real/images")).unwrap();
        std::fs::write(root.join("real/images/a.qcow2"), b"x").unwrap();
        std::os::unix::fs::symlink(root.join("real/images"), root.join("link")).unwrap();
        let resolved = |path: &str| resolve(&root, path);
        let under = |rel: &str| root.join(rel).to_string_lossy().into_owned();
        // A symlinked directory, then `..`: `..` leaves the symlink's target, as open(2) does.
        assert_eq!(resolved("link/a.qcow2"), under("real/images/a.qcow2"));
        assert_eq!(resolved("link/../images/a.qcow2"), under("real/images/a.qcow2"));
        // A file not there yet keeps its name below its resolved directory.
        assert_eq!(resolved("link/new.qcow2"), under("real/images/new.qcow2"));
        // A missing directory cannot be passed through with `..`.
        assert_eq!(
            resolved("/nonexistent/../../etc/shadow"),
            "/nonexistent/../../etc/shadow"
        );
        assert_eq!(
            resolved("gone/../real/images/a.qcow2"),
            under("gone/../real/images/a.qcow2")
        );
    }

    #[test]
    fn unknown_keys_name_image_and_field() {
        let err = parse("images:\n  web:\n    disk_fromat: qcow2\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("image 'web'"), "{err}");
        assert!(err.contains("disk_fromat"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = parse("images:\n  web:\n    min_ram_mb: lots\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("field min_ram_mb"), "{err}");
    }

    #[test]
    fn json_specs_work_too() {
        let spec = SpecFile::parse(
            r#"{"images": {"a": {"disk_format": "raw", "local_file_path": "/x"}}}"#,
            true,
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(spec.images["a"].disk_format, "raw");
    }

    #[test]
    fn lists_and_empty_files_are_not_specs() {
        let err = SpecFile::parse(r#"[{"images": {}}]"#, true, Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a mapping"), "{err}");
        assert!(parse("- images: {}\n").is_err());
        assert!(parse(" \n").unwrap_err().to_string().contains("empty"));
        let err = parse("imgs: {}\n").unwrap_err().to_string();
        assert!(err.contains("`images:`"), "{err}");
    }

    #[test]
    fn images_must_be_written_out_even_when_there_are_none() {
        for text in ["images:\n", "images: ~\n", "{}\n"] {
            let err = parse(text).unwrap_err().to_string();
            assert!(
                err.contains("missing or empty") && err.contains("images: {}"),
                "{text}: {err}"
            );
        }
        assert!(parse("images: {}\n").unwrap().images.is_empty());
    }

    #[test]
    fn numbers_say_what_is_wrong_with_them() {
        let err = |field: &str, value: &str| {
            parse(&format!("images:\n  web:\n    {field}: {value}\n"))
                .unwrap_err()
                .to_string()
        };
        assert!(err("min_disk_gb", "-1").contains("-1 is negative"));
        assert!(err("min_ram_mb", "1180591620717411303424").contains("too large"));
        assert!(err("min_ram_mb", "1.5").contains("whole number"));
        assert!(err("timeouts", "{create: -5}").contains("-5 is negative"));
        assert!(err("timeouts", "{create: 1.5}").contains("a duration such as"));
        assert!(err("properties", "{a: [1]}").contains("text, a number or true/false"));
        let err = err("min_disk_gb", "-1");
        assert_eq!(
            err.matches("min_disk_gb").count(),
            1,
            "the path is said once: {err}"
        );
    }

    #[test]
    fn reading_is_capped_and_needs_utf8() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let err = read_text_file(&path, "spec file").unwrap_err().to_string();
        assert!(
            err.contains("larger than 16 MiB") && err.contains("big.yaml"),
            "{err}"
        );
        std::fs::write(&path, b"ok\xff").unwrap();
        let err = read_text_file(&path, "spec file").unwrap_err().to_string();
        assert!(err.contains("not UTF-8") && err.contains("offset 2"), "{err}");
        let err = read_text_file(Path::new("/dev/zero"), "spec file")
            .unwrap_err()
            .to_string();
        assert!(err.contains("larger than"), "{err}");
    }
}
