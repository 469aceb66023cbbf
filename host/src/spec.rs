//! The spec file (YAML or JSON): named images with the resource's snake_case inputs.
//! Unknown keys are errors; relative `local_file_path`s resolve against the file's directory.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use serde::Deserialize;

use crate::bindings::{ImageSpec, Timeouts};

/// A parsed spec file: images by logical name.
#[derive(Debug)]
pub struct SpecFile {
    pub images: BTreeMap<String, ImageSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpecFile {
    images: BTreeMap<String, RawImage>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImage {
    name: Option<String>,
    container_format: Option<String>,
    disk_format: Option<String>,
    local_file_path: Option<String>,
    image_source_url: Option<String>,
    image_source_username: Option<String>,
    image_source_password: Option<String>,
    image_cache_path: Option<String>,
    source_checksum: Option<String>,
    decompress: Option<bool>,
    web_download: Option<bool>,
    image_id: Option<String>,
    min_disk_gb: Option<u64>,
    min_ram_mb: Option<u64>,
    #[serde(default)]
    properties: BTreeMap<String, Scalar>,
    protected: Option<bool>,
    hidden: Option<bool>,
    region: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    verify_checksum: Option<bool>,
    visibility: Option<String>,
    #[serde(default)]
    timeouts: RawTimeouts,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTimeouts {
    create: Option<Duration>,
    update: Option<Duration>,
    delete: Option<Duration>,
}

/// A property value: Glance stores strings, so numbers and booleans are written as text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(s) => s,
            Scalar::Integer(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// A duration: whole seconds, or text such as `90s`, `30m`, `2h`, `1h30m`.
struct Duration(u64);

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Seconds(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration(s)),
            Raw::Text(t) => parse_duration(&t).map(Duration).map_err(serde::de::Error::custom),
        }
    }
}

fn parse_duration(text: &str) -> Result<u64, String> {
    let invalid = || format!("'{text}' is not a duration; write e.g. 90s, 30m, 2h or 1h30m");
    let mut total: u64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return Err(invalid()),
        };
        let n: u64 = number.parse().map_err(|_| invalid())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(invalid)?;
        number.clear();
    }
    if !number.is_empty() {
        total = number
            .parse::<u64>()
            .ok()
            .and_then(|n| total.checked_add(n))
            .ok_or_else(invalid)?;
    }
    if text.trim().is_empty() {
        Err(invalid())
    } else {
        Ok(total)
    }
}

impl SpecFile {
    /// Reads and parses `path`; JSON when it ends in `.json`, YAML otherwise.
    pub fn load(path: &Path) -> Result<SpecFile> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the spec file {}", path.display()))?;
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

    /// Parses spec text; relative paths resolve against `base`.
    pub fn parse(text: &str, json: bool, base: &Path) -> Result<SpecFile> {
        let raw: RawSpecFile = if json {
            let mut de = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut de).map_err(|e| located(e.path().to_string(), e.inner()))?
        } else {
            let de = serde_yaml_ng::Deserializer::from_str(text);
            serde_path_to_error::deserialize(de).map_err(|e| located(e.path().to_string(), e.inner()))?
        };
        let mut images = BTreeMap::new();
        for (key, image) in raw.images {
            if key.is_empty() {
                bail!("images: an image has an empty name; give each image a logical name");
            }
            images.insert(key, image.into_spec(base));
        }
        Ok(SpecFile { images })
    }
}

fn located(path: String, err: &impl std::fmt::Display) -> anyhow::Error {
    // `images.web.disk_fromat` → "image 'web', field disk_fromat: …"
    let mut parts = path.splitn(3, '.');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("images"), Some(image), Some(field)) => anyhow!("image '{image}', field {field}: {err}"),
        (Some("images"), Some(image), None) => anyhow!("image '{image}': {err}"),
        _ if path == "." => anyhow!("{err} (a spec file holds `images:` with one entry per image)"),
        _ => anyhow!("{path}: {err}"),
    }
}

impl RawImage {
    fn into_spec(self, base: &Path) -> ImageSpec {
        ImageSpec {
            name: self.name,
            container_format: self.container_format.unwrap_or_default(),
            disk_format: self.disk_format.unwrap_or_default(),
            local_file_path: self.local_file_path.map(|p| resolve(base, &p)),
            image_source_url: self.image_source_url,
            image_source_username: self.image_source_username,
            image_source_password: self.image_source_password,
            // `none` streams the download instead of caching it.
            image_cache_path: self
                .image_cache_path
                .map(|p| if p == "none" { p } else { resolve(base, &p) }),
            source_checksum: self.source_checksum,
            decompress: self.decompress,
            web_download: self.web_download,
            image_id: self.image_id,
            min_disk_gb: self.min_disk_gb,
            min_ram_mb: self.min_ram_mb,
            properties: self
                .properties
                .into_iter()
                .map(|(k, v)| (k, v.into_text()))
                .collect(),
            protected: self.protected,
            hidden: self.hidden,
            region: self.region,
            tags: self.tags,
            verify_checksum: self.verify_checksum,
            visibility: self.visibility,
            timeouts: Timeouts {
                create: self.timeouts.create.map(|d| d.0),
                update: self.timeouts.update.map(|d| d.0),
                delete: self.timeouts.delete.map(|d| d.0),
            },
        }
    }
}

/// `path` made absolute against `base` and cleaned of `.` and `..` (lexically: the
/// component sees the same path the user meant, whatever symlinks lie on it).
fn resolve(base: &Path, path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let joined = base.join(path);
    let mut clean = PathBuf::new();
    for part in joined.components() {
        match part {
            Component::ParentDir => {
                clean.pop();
            }
            Component::CurDir => {}
            other => clean.push(other),
        }
    }
    clean.to_string_lossy().into_owned()
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
        assert_eq!(image.local_file_path.as_deref(), Some("/img/r.qcow2"));
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
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("45"), Ok(45));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }
}
