//! wit-bindgen glue: the exported `lifecycle`, `membership` and `resource` interfaces, all backed by the
//! same [`Provider`] per instance (so a Keystone token is reused across calls of either face).

use std::cell::RefCell;

use crate::bindings::exports::openstack::image::lifecycle::Guest;
use crate::bindings::exports::openstack::image::membership::Guest as MembershipGuest;
use crate::bindings::exports::openstack::image::resource::Guest as JsonGuest;
use crate::json_face;
use crate::lifecycle::Provider;
use crate::types::{
    Cloud, Error, ImageQuery, ImageSpec, ImageState, MembershipSpec, MembershipState, Plan, Session,
};
use crate::wasi_http::WasiHttp;

struct Component;

thread_local! {
    static PROVIDER: RefCell<Provider<WasiHttp>> = RefCell::new(Provider::new(WasiHttp));
}

fn with<R>(f: impl FnOnce(&mut Provider<WasiHttp>) -> R) -> R {
    PROVIDER.with(|p| f(&mut p.borrow_mut()))
}

impl Guest for Component {
    fn authenticate(cloud: Cloud) -> Result<Session, Error> {
        with(|p| p.authenticate(&cloud))
    }

    fn check(spec: ImageSpec) -> Result<ImageSpec, Error> {
        with(|p| p.check(spec))
    }

    fn check_with_cloud(cloud: Cloud, spec: ImageSpec) -> Result<(), Error> {
        with(|p| p.check_with_cloud(&cloud, &spec))
    }

    fn diff(desired: ImageSpec, prior: ImageState) -> Result<Plan, Error> {
        with(|p| p.diff(desired, &prior))
    }

    fn create(cloud: Cloud, spec: ImageSpec) -> Result<ImageState, Error> {
        with(|p| p.create(&cloud, spec))
    }

    fn read(cloud: Cloud, id: String, prior: Option<ImageState>) -> Result<Option<ImageState>, Error> {
        with(|p| p.read(&cloud, &id, prior.as_ref()))
    }

    fn update(cloud: Cloud, prior: ImageState, desired: ImageSpec) -> Result<ImageState, Error> {
        with(|p| p.update(&cloud, &prior, desired))
    }

    fn delete(
        cloud: Cloud,
        id: String,
        region: Option<String>,
        timeout_seconds: Option<u64>,
    ) -> Result<(), Error> {
        with(|p| p.delete(&cloud, &id, region.as_deref(), timeout_seconds))
    }

    fn find(cloud: Cloud, query: ImageQuery) -> Result<ImageState, Error> {
        with(|p| p.find(&cloud, query))
    }
}

impl MembershipGuest for Component {
    fn check_membership(spec: MembershipSpec) -> Result<MembershipSpec, Error> {
        with(|p| p.check_membership(spec))
    }

    fn diff_membership(desired: MembershipSpec, prior: MembershipState) -> Result<Plan, Error> {
        with(|p| p.diff_membership(desired, &prior))
    }

    fn create_membership(cloud: Cloud, spec: MembershipSpec) -> Result<MembershipState, Error> {
        with(|p| p.create_membership(&cloud, spec))
    }

    fn read_membership(cloud: Cloud, spec: MembershipSpec) -> Result<Option<MembershipState>, Error> {
        with(|p| p.read_membership(&cloud, spec))
    }

    fn update_membership(
        cloud: Cloud,
        prior: MembershipState,
        desired: MembershipSpec,
    ) -> Result<MembershipState, Error> {
        with(|p| p.update_membership(&cloud, &prior, desired))
    }

    fn delete_membership(cloud: Cloud, prior: MembershipState) -> Result<(), Error> {
        with(|p| p.delete_membership(&cloud, &prior))
    }
}

impl JsonGuest for Component {
    fn schema() -> String {
        json_face::schema()
    }

    fn resolve_cloud_json(request: String) -> Result<String, String> {
        json_face::resolve_cloud(&request)
    }

    fn authenticate_json(request: String) -> Result<String, String> {
        with(|p| json_face::authenticate(p, &request))
    }

    fn check_json(request: String) -> Result<String, String> {
        with(|p| json_face::check(p, &request))
    }

    fn check_with_cloud_json(request: String) -> Result<String, String> {
        with(|p| json_face::check_with_cloud(p, &request))
    }

    fn diff_json(request: String) -> Result<String, String> {
        with(|p| json_face::diff(p, &request))
    }

    fn create_json(request: String) -> Result<String, String> {
        with(|p| json_face::create(p, &request))
    }

    fn read_json(request: String) -> Result<String, String> {
        with(|p| json_face::read(p, &request))
    }

    fn update_json(request: String) -> Result<String, String> {
        with(|p| json_face::update(p, &request))
    }

    fn delete_json(request: String) -> Result<String, String> {
        with(|p| json_face::delete(p, &request))
    }

    fn find_json(request: String) -> Result<String, String> {
        with(|p| json_face::find(p, &request))
    }

    fn check_membership_json(request: String) -> Result<String, String> {
        with(|p| json_face::check_membership(p, &request))
    }

    fn diff_membership_json(request: String) -> Result<String, String> {
        with(|p| json_face::diff_membership(p, &request))
    }

    fn create_membership_json(request: String) -> Result<String, String> {
        with(|p| json_face::create_membership(p, &request))
    }

    fn read_membership_json(request: String) -> Result<String, String> {
        with(|p| json_face::read_membership(p, &request))
    }

    fn update_membership_json(request: String) -> Result<String, String> {
        with(|p| json_face::update_membership(p, &request))
    }

    fn delete_membership_json(request: String) -> Result<String, String> {
        with(|p| json_face::delete_membership(p, &request))
    }
}

crate::bindings::export!(Component with_types_in crate::bindings);
