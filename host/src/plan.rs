//! What `plan` decided for each image and membership: the steps `apply` carries out and
//! `report` prints.

use crate::bindings::{ImageSpec, ImageState, MembershipSpec, MembershipState, Plan};
use crate::state::DeposedImage;

/// What happens to one image.
pub enum Change {
    NoOp,
    Create,
    Update(Plan),
    Replace(Plan),
    Delete,
}

/// One image's planned change.
pub struct Step {
    pub name: String,
    pub change: Change,
    /// The validated spec (absent for deletions).
    pub desired: Option<ImageSpec>,
    /// The image as it is now (absent for new images).
    pub prior: Option<ImageState>,
    /// Replaced images still to delete.
    pub deposed: Vec<DeposedImage>,
}

impl Step {
    /// True when applying this step changes the cloud.
    pub fn changes_anything(&self) -> bool {
        !matches!(self.change, Change::NoOp) || !self.deposed.is_empty()
    }
}

/// One membership's planned change (no deposed memberships: a replaced one is gone first).
pub struct MembershipStep {
    pub name: String,
    pub change: Change,
    /// The validated spec (absent for deletions).
    pub desired: Option<MembershipSpec>,
    /// The membership as it is now (absent for new ones).
    pub prior: Option<MembershipState>,
}

impl MembershipStep {
    /// True when applying this step changes the cloud.
    pub fn changes_anything(&self) -> bool {
        !matches!(self.change, Change::NoOp)
    }
}
