//! Where the data lives: discovering what the cloud offers before anything changes, the
//! source of a glance-download, and adding or removing an image's stores in place.

use super::*;

use crate::placement::{self, Offer, StoreChange};

impl<T: Transport> Provider<T> {
    /// Checks `spec` against the import methods and stores the cloud offers; `adding` are
    /// the stores a copy-image will add. Asks only what the spec needs.
    pub(super) fn discover(&mut self, op: &mut Op, spec: &ImageSpec, adding: &[String]) -> Result<(), Error> {
        let mut offer = Offer::default();
        if placement::needs_import_api(spec) || !adding.is_empty() {
            let url = op.url("/info/import");
            let response = self.call(op, "GET", &url, None)?;
            if response.status == 200 {
                let info = response.json().map_err(Error::Transport)?;
                offer.methods = info
                    .pointer("/import-methods/value")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
            }
        }
        if !spec.stores.is_empty() {
            let url = op.url("/info/stores");
            let response = self.call(op, "GET", &url, None)?;
            offer.stores = match response.status {
                200 => Some(placement::offered_stores(
                    &response.json().map_err(Error::Transport)?,
                )),
                // "Multi backend is not supported at this site."
                404 => None,
                _ => return Err(status_error("GET", &url, &response)),
            };
        }
        placement::check_offer(spec, &offer, adding).map_err(Error::InvalidSpec)
    }

    /// The image a glance-download copies, read from its region's Glance: it must exist, be
    /// active and have the spec's formats (Glance gives the copy the source's formats).
    pub(super) fn source_image(&mut self, cloud: &Cloud, spec: &ImageSpec, op: &Op) -> Result<Value, Error> {
        let (region, id) = placement::download_source(spec);
        let seconds = op.remaining()?.as_secs().max(1);
        let mut source_op = self.begin(cloud, Some(region), "create", seconds).map_err(|e| match e {
            Error::NotFound(message) => invalid(
                "source_region",
                format!("no Glance for region '{region}' in the cloud's catalog ({message}); name a region that has one"),
            ),
            other => other,
        })?;
        let url = source_op.url(&format!("/images/{id}"));
        let response = self.call(&mut source_op, "GET", &url, None)?;
        if response.status == 404 {
            return Err(invalid(
                "source_image_id",
                format!(
                    "region {region} has no image {id} (or this project cannot see it); give the id of an image there"
                ),
            ));
        }
        expect(&response, "GET", &url, &[200])?;
        let image = response.json().map_err(Error::Transport)?;
        let text = |key: &str| image.get(key).and_then(Value::as_str).unwrap_or("").to_string();
        if text("status") != "active" {
            return Err(invalid(
                "source_image_id",
                format!(
                    "image {id} in region {region} is '{}', not active: it has no data to copy",
                    text("status")
                ),
            ));
        }
        let mut errors = Vec::new();
        for (field, wanted) in [
            ("disk_format", &spec.disk_format),
            ("container_format", &spec.container_format),
        ] {
            if text(field) != *wanted {
                errors.push(FieldError {
                    field: field.into(),
                    message: format!(
                        "is '{wanted}', but the source image {id} is '{}' and Glance gives the copy the source's format; set {field}: {}",
                        text(field),
                        text(field)
                    ),
                });
            }
        }
        if errors.is_empty() {
            Ok(image)
        } else {
            Err(Error::InvalidSpec(errors))
        }
    }

    /// Moves image `id` (as Glance holds it: `current`) to the desired stores: copies to the
    /// new ones first, then deletes the data from the ones no longer wanted. A copy that
    /// fails is undone (the data is removed from the stores it reached), so the image stays
    /// as it was. Returns the image afterwards and the copy's result, if one ran; `None` when
    /// the stores were already as desired.
    pub(super) fn change_stores(
        &mut self,
        op: &mut Op,
        desired: &ImageSpec,
        id: &str,
        current: &Value,
    ) -> Result<Option<(Value, Option<ImportResult>)>, Error> {
        let before = glance::stores_of(current);
        let StoreChange { add, remove } = placement::store_change(&before, &desired.stores);
        if add.is_empty() && remove.is_empty() {
            return Ok(None);
        }
        self.discover(op, desired, &add)?;
        let mut result = None;
        if !add.is_empty() {
            let copied = self.copy_to_stores(op, desired, id, &add, current);
            match copied {
                Ok((_, copy)) => result = Some(copy),
                Err(err) => {
                    self.undo_copies(op, id, &before);
                    return Err(err);
                }
            }
        }
        for store in &remove {
            self.delete_from_store(op, id, store)?;
        }
        let url = op.url(&format!("/images/{id}"));
        let response = self.call(op, "GET", &url, None)?;
        expect(&response, "GET", &url, &[200])?;
        Ok(Some((response.json().map_err(Error::Transport)?, result)))
    }

    /// Copies the image's data to `stores` (copy-image) and checks the data is unchanged;
    /// returns the image as the copy left it and the copy's result.
    pub(super) fn copy_to_stores(
        &mut self,
        op: &mut Op,
        spec: &ImageSpec,
        id: &str,
        stores: &[String],
        current: &Value,
    ) -> Result<(Value, ImportResult), Error> {
        progress::info(format!("copying the data of image {id} to {}", stores.join(", ")));
        let import = import::Import::new(
            spec,
            "copy-image",
            json!({"name": "copy-image"}),
            stores.to_vec(),
            format!("the data into store(s) {}", stores.join(", ")),
        );
        let (image, result) = self.run_import(op, id, &import).map_err(|e| match e {
            Error::Forbidden(m) => Error::Forbidden(format!(
                "{m}; adding a store uses Glance's copy-image import, which the cloud's default policy allows only to admins"
            )),
            other => other,
        })?;
        for field in ["os_hash_value", "checksum"] {
            if let (Some(Value::String(before)), Some(Value::String(after))) =
                (current.get(field), image.get(field))
                && before != after
            {
                return Err(Error::ChecksumMismatch(ChecksumMismatch {
                    algorithm: format!("{field} after copy-image"),
                    expected: before.clone(),
                    actual: after.clone(),
                }));
            }
        }
        Ok((image, result))
    }

    /// Removes the data from the stores a failed copy reached (everything not in `before`).
    fn undo_copies(&mut self, op: &mut Op, id: &str, before: &[String]) {
        let url = op.url(&format!("/images/{id}"));
        let now = self
            .call(op, "GET", &url, None)
            .ok()
            .and_then(|r| r.json().ok())
            .map(|image| glance::stores_of(&image))
            .unwrap_or_default();
        for store in now.iter().filter(|s| !before.contains(s)) {
            if let Err(err) = self.delete_from_store(op, id, store) {
                progress::warn(format!(
                    "could not remove the partial copy of image {id} from store {store}: {}",
                    describe(&err)
                ));
            }
        }
    }

    /// Deletes the image's data from one store (gone already counts as done).
    fn delete_from_store(&mut self, op: &mut Op, id: &str, store: &str) -> Result<(), Error> {
        progress::info(format!("deleting the data of image {id} from store {store}"));
        let url = op.url(&format!("/stores/{store}/{id}"));
        let response = self.call(op, "DELETE", &url, None)?;
        match response.status {
            204 | 404 => Ok(()),
            403 => Err(Error::Forbidden(format!(
                "Glance refused to delete the data of image {id} from store {store}: {}; removing a store needs the right to delete image locations (admins only by the cloud's default policy)",
                response.message()
            ))),
            _ => Err(status_error("DELETE", &url, &response)),
        }
    }
}
