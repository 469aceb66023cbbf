//! Where an image's data lives and how it gets there: the rules for `import_method`,
//! `source_region`, `source_image_id`, `stores` and `all_stores_must_succeed` that need no
//! I/O, the check of a spec against what a cloud offers (`/v2/info/import`,
//! `/v2/info/stores`), and which stores an update adds and removes.

use openstack_image_documents::spec::{IMPORT_METHODS, ImportMethod};

use crate::types::{FieldError, ImageSpec};

/// Glance's own stores (staging, tasks): listed in some answers, never a place for data.
const RESERVED_STORE_PREFIX: &str = "os_glance_";

/// The import method of a checked spec.
pub fn method(spec: &ImageSpec) -> ImportMethod {
    ImportMethod::of(spec.import_method.as_deref(), spec.web_download).unwrap_or(ImportMethod::Direct)
}

/// The region and id of the image a checked glance-download spec copies.
pub fn download_source(spec: &ImageSpec) -> (&str, &str) {
    (
        spec.source_region
            .as_deref()
            .expect("check requires source_region"),
        spec.source_image_id
            .as_deref()
            .expect("check requires source_image_id"),
    )
}

/// The field that chose the method, for messages.
pub fn method_field(spec: &ImageSpec) -> &'static str {
    if spec.import_method.is_none() && spec.web_download == Some(true) {
        "web_download"
    } else {
        "import_method"
    }
}

/// Checks the placement fields of a spec (no I/O).
pub fn check(err: &mut impl FnMut(&str, String), spec: &ImageSpec) {
    let Some(method) = ImportMethod::of(spec.import_method.as_deref(), spec.web_download) else {
        err(
            "import_method",
            format!(
                "'{}' is not an import method; use one of {}",
                spec.import_method.as_deref().unwrap_or_default(),
                IMPORT_METHODS.join(", ")
            ),
        );
        return;
    };
    if spec.web_download == Some(true) && method != ImportMethod::WebDownload {
        err(
            "web_download",
            format!(
                "web_download: true means import_method web-download, but import_method is {}; remove web_download",
                method.name()
            ),
        );
    }
    if method == ImportMethod::GlanceDownload {
        check_glance_download(err, spec);
    } else {
        for (field, set) in [
            ("source_region", spec.source_region.is_some()),
            ("source_image_id", spec.source_image_id.is_some()),
        ] {
            if set {
                err(
                    field,
                    format!(
                        "applies only to import_method glance-download (this spec's method is {}); remove it or set import_method: glance-download",
                        method.name()
                    ),
                );
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for store in &spec.stores {
        if store.trim().is_empty() {
            err("stores", "contains an empty store id; remove it".to_string());
        } else if store.contains(',') || store.trim() != store {
            err(
                "stores",
                format!("'{store}' is not a store id (no commas or spaces); list each store separately"),
            );
        } else if store.starts_with(RESERVED_STORE_PREFIX) {
            err(
                "stores",
                format!("'{store}' is one of Glance's internal stores and cannot hold image data; remove it"),
            );
        } else if !seen.insert(store.as_str()) {
            err(
                "stores",
                format!("store '{store}' appears twice; stores are a set"),
            );
        }
    }
}

fn check_glance_download(err: &mut impl FnMut(&str, String), spec: &ImageSpec) {
    match &spec.source_image_id {
        None => err(
            "source_image_id",
            "is required with import_method glance-download: the id of the image to copy from source_region"
                .to_string(),
        ),
        Some(id) if uuid::Uuid::try_parse(id).is_err() => err(
            "source_image_id",
            format!("'{id}' is not an image id (a UUID); give the id of the image to copy"),
        ),
        Some(_) => {}
    }
    match &spec.source_region {
        None => err(
            "source_region",
            "is required with import_method glance-download: the region whose Glance holds source_image_id"
                .to_string(),
        ),
        Some(region) if region.trim().is_empty() => err(
            "source_region",
            "is empty; name the region whose Glance holds source_image_id".to_string(),
        ),
        Some(_) => {}
    }
    let not_with = "cannot be used with import_method glance-download (Glance copies the data from source_region); remove it";
    for (field, set) in [
        ("local_file_path", spec.local_file_path.is_some()),
        ("image_source_url", spec.image_source_url.is_some()),
        ("image_source_username", spec.image_source_username.is_some()),
        ("image_cache_path", spec.image_cache_path.is_some()),
        ("decompress", spec.decompress == Some(true)),
    ] {
        if set {
            err(field, not_with.to_string());
        }
    }
}

/// What a cloud's Glance offers, as discovered before anything is created.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Offer {
    /// `/v2/info/import`'s methods (empty when the cloud has no import API).
    pub methods: Vec<String>,
    /// `/v2/info/stores`' ids, reserved ones left out; `None` on a single-store Glance.
    pub stores: Option<Vec<String>>,
}

impl Offer {
    fn offers(&self, method: &str) -> bool {
        self.methods.iter().any(|m| m == method)
    }

    fn methods_text(&self) -> String {
        if self.methods.is_empty() {
            "no import methods".to_string()
        } else {
            format!("import methods {}", self.methods.join(", "))
        }
    }
}

/// Whether creating `spec` needs Glance's import API (discovery of the methods).
pub fn needs_import_api(spec: &ImageSpec) -> bool {
    method(spec) != ImportMethod::Direct || spec.stores.len() > 1
}

/// Checks a spec against what the cloud offers; `adding` are the stores a copy-image must
/// add (at create: every store after the first of a direct upload; at update: the new ones).
pub fn check_offer(spec: &ImageSpec, offer: &Offer, adding: &[String]) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| {
        errors.push(FieldError {
            field: field.into(),
            message,
        })
    };
    let method = method(spec);
    if method != ImportMethod::Direct && !offer.offers(method.name()) {
        err(
            method_field(spec),
            format!(
                "this cloud's Glance does not offer the {} import (it offers {}); choose one it offers{}",
                method.name(),
                offer.methods_text(),
                if method == ImportMethod::WebDownload {
                    ", or remove web_download to have openstack-image download and upload the data itself"
                } else {
                    ""
                }
            ),
        );
    }
    if !spec.stores.is_empty() {
        match &offer.stores {
            None => err(
                "stores",
                "this cloud's Glance has a single store (no multi-store support: /v2/info/stores answers 404); remove stores".to_string(),
            ),
            Some(offered) => {
                for store in spec.stores.iter().filter(|s| !offered.contains(s)) {
                    err(
                        "stores",
                        format!(
                            "store '{store}' does not exist in this cloud (it has {}); use one of those",
                            offered.join(", ")
                        ),
                    );
                }
            }
        }
    }
    if !adding.is_empty() && !offer.offers("copy-image") {
        err(
            "stores",
            format!(
                "putting the data in {} needs Glance's copy-image import, which this cloud does not offer (it offers {}){}",
                adding.join(", "),
                offer.methods_text(),
                if method == ImportMethod::Direct {
                    "; with import_method glance-direct the data goes to every store in one import"
                } else {
                    ""
                }
            ),
        );
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// The stores listed in `/v2/info/stores` (reserved ones left out).
pub fn offered_stores(info: &serde_json::Value) -> Vec<String> {
    info.get("stores")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|s| s.get("id").and_then(serde_json::Value::as_str))
        .filter(|id| !id.starts_with(RESERVED_STORE_PREFIX))
        .map(str::to_string)
        .collect()
}

/// The stores an update adds (with copy-image) and removes (deleting the data there).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreChange {
    pub add: Vec<String>,
    pub remove: Vec<String>,
}

/// How to get from the stores holding the data to the desired ones; an empty desired set
/// leaves the stores alone.
pub fn store_change(current: &[String], desired: &[String]) -> StoreChange {
    if desired.is_empty() {
        return StoreChange::default();
    }
    StoreChange {
        add: desired.iter().filter(|s| !current.contains(s)).cloned().collect(),
        remove: current.iter().filter(|s| !desired.contains(s)).cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::{check as validate, tests::spec};

    fn fields(spec: ImageSpec) -> Vec<String> {
        validate(spec)
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    fn glance_download() -> ImageSpec {
        let mut s = spec();
        s.local_file_path = None;
        s.import_method = Some("glance-download".into());
        s.source_region = Some("RegionOne".into());
        s.source_image_id = Some("6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69".into());
        s
    }

    #[test]
    fn glance_download_needs_its_source_and_nothing_else() {
        assert!(validate(glance_download()).is_ok());
        let mut s = glance_download();
        s.source_image_id = None;
        s.source_region = None;
        s.image_source_url = Some("https://example.org/x.img".into());
        assert_eq!(
            fields(s),
            ["source_image_id", "source_region", "image_source_url"]
        );
        let mut s = spec();
        s.source_image_id = Some("x".into());
        assert_eq!(fields(s), ["source_image_id"]);
    }

    #[test]
    fn methods_and_stores_are_checked() {
        let mut s = spec();
        s.import_method = Some("ftp".into());
        assert_eq!(fields(s), ["import_method"]);
        let mut s = spec();
        s.import_method = Some("glance-direct".into());
        s.web_download = Some(true);
        assert_eq!(fields(s), ["web_download"]);
        let mut s = spec();
        s.stores = vec![
            "fast".into(),
            "fast".into(),
            "os_glance_staging_store".into(),
            "a,b".into(),
        ];
        assert_eq!(fields(s), ["stores", "stores", "stores"]);
        let mut s = spec();
        s.image_source_url = None;
        s.local_file_path = None;
        s.import_method = Some("web-download".into());
        assert_eq!(fields(s), ["local_file_path", "import_method"]);
    }

    #[test]
    fn offers_name_what_the_cloud_has() {
        let offer = Offer {
            methods: vec!["glance-direct".into(), "web-download".into()],
            stores: Some(vec!["fast".into(), "cheap".into()]),
        };
        let mut s = glance_download();
        s.stores = vec!["fast".into(), "edge".into()];
        let errors = check_offer(&s, &offer, &[]).unwrap_err();
        assert_eq!(errors.len(), 2);
        assert!(
            errors[0].message.contains("glance-direct, web-download"),
            "{}",
            errors[0].message
        );
        assert!(errors[1].message.contains("'edge'") && errors[1].message.contains("fast, cheap"));
        let mut s = spec();
        s.stores = vec!["fast".into(), "cheap".into()];
        let errors = check_offer(&s, &offer, &["cheap".into()]).unwrap_err();
        assert!(errors[0].message.contains("copy-image"), "{}", errors[0].message);
        let single = Offer::default();
        assert_eq!(check_offer(&s, &single, &[]).unwrap_err()[0].field, "stores");
        assert!(check_offer(&spec(), &single, &[]).is_ok());
    }

    #[test]
    fn store_changes_add_before_they_remove() {
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            store_change(&v(&["fast", "cheap"]), &v(&["cheap", "edge"])),
            StoreChange {
                add: v(&["edge"]),
                remove: v(&["fast"])
            }
        );
        assert_eq!(store_change(&v(&["fast"]), &[]), StoreChange::default());
        let info = serde_json::json!({"stores": [{"id": "fast", "default": "true"}, {"id": "os_glance_staging_store"}]});
        assert_eq!(offered_stores(&info), ["fast"]);
    }
}
