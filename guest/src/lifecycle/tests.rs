//! The provider's decisions against a scripted cloud: a failed create cleans up, a broken
//! upload starts again once Glance is done with it, a 401 gets one re-authentication (or,
//! without credentials, goes back to the runtime naming what a create had made), a protected
//! image's delete names the fix, a failed copy to new stores is undone, and a converted
//! glance-direct import keeps the spec's disk format.

use std::collections::VecDeque;

use super::*;
use crate::http::{Body, StreamedResponse};
use crate::types::Timeouts;
use openstack_image_documents::fixtures;

const ID: &str = fixtures::IMAGE_ID;
/// The project of the `session_only` cloud's session.
const MEMBER: &str = "0123456789abcdef0123456789abcdef";

/// A cloud that answers from a script: per `METHOD path` (below the Glance endpoint, or
/// Keystone's `/auth/tokens`) a queue of answers whose last one repeats. Records every request.
#[derive(Default)]
struct ScriptedCloud {
    routes: Vec<(String, VecDeque<(u16, Value)>)>,
    log: Vec<String>,
    /// The token each request to Glance carried.
    tokens: Vec<String>,
    uploaded: usize,
}

impl ScriptedCloud {
    fn new() -> ScriptedCloud {
        let token = json!({"token": {"catalog": [{"type": "image", "endpoints": [
            {"interface": "public", "region_id": "RegionOne", "url": "http://glance"}]}]}});
        ScriptedCloud::default().on("POST /auth/tokens", &[(201, token)])
    }

    fn on(mut self, route: &str, answers: &[(u16, Value)]) -> ScriptedCloud {
        self.routes
            .push((route.to_string(), answers.iter().cloned().collect()));
        self
    }

    fn sent(&self, route: &str) -> usize {
        self.log.iter().filter(|r| *r == route).count()
    }
}

impl Transport for ScriptedCloud {
    fn send(&mut self, request: Request<'_>) -> Result<Response, TransportError> {
        let path = request
            .url
            .strip_prefix("http://glance/v2")
            .or_else(|| request.url.strip_prefix("http://keystone/v3"))
            .unwrap_or(&request.url);
        let route = format!("{} {path}", request.method);
        self.log.push(route.clone());
        if let Some((_, token)) = request.headers.iter().find(|(name, _)| *name == "x-auth-token") {
            self.tokens.push(token.clone());
        }
        if let Body::Stream { source, .. } = request.body {
            let mut data = Vec::new();
            source.read_to_end(&mut data).expect("the data reads");
            self.uploaded += data.len();
        }
        let answers = self
            .routes
            .iter_mut()
            .find(|(r, _)| *r == route)
            .map(|(_, answers)| answers)
            .unwrap_or_else(|| panic!("unscripted request {route}"));
        let (status, body) = if answers.len() > 1 {
            answers.pop_front().expect("an answer")
        } else {
            answers[0].clone()
        };
        Ok(Response {
            status,
            headers: vec![("x-subject-token".into(), "a-token".into())],
            body: body.to_string().into_bytes(),
        })
    }

    fn open(&mut self, request: Request<'_>) -> Result<StreamedResponse, TransportError> {
        panic!("no downloads in these scripts: {}", request.url)
    }
}

/// The fixture cloud at the scripted Keystone, with retries off.
fn cloud() -> Cloud {
    Cloud {
        retries: Some(0),
        ..fixtures::cloud("http://keystone/v3").into()
    }
}

/// A spec for the image `ID` whose data is a 3-byte raw file.
fn spec(file: &str) -> ImageSpec {
    spec_of(file, b"abc", "raw")
}

/// A spec for the image `ID` whose data is `data`, declared `disk_format`.
fn spec_of(file: &str, data: &[u8], disk_format: &str) -> ImageSpec {
    let path = std::env::temp_dir().join(file);
    std::fs::write(&path, data).unwrap();
    let mut spec = crate::validate::tests::spec();
    spec.disk_format = disk_format.into();
    spec.local_file_path = Some(path.to_string_lossy().into_owned());
    spec.image_id = Some(ID.into());
    spec.timeouts = Timeouts {
        create: Some(30),
        update: Some(30),
        delete: Some(30),
        import_stall: None,
    };
    spec
}

fn image(extra: Value) -> Value {
    let mut image = json!({"id": ID, "status": "active", "container_format": "bare",
                           "disk_format": "qcow2", "tags": [], "protected": false});
    for (key, value) in extra.as_object().unwrap() {
        image[key] = value.clone();
    }
    image
}

#[test]
fn a_refused_upload_deletes_the_half_made_image() {
    let script = ScriptedCloud::new()
        .on("POST /images", &[(201, json!({}))])
        .on(
            &format!("PUT /images/{ID}/file"),
            &[(500, json!({"message": "boom"}))],
        )
        .on(&format!("DELETE /images/{ID}"), &[(204, json!({}))]);
    let mut provider = Provider::new(script);
    let err = provider.create(&cloud(), spec("refused.img")).unwrap_err();
    assert!(matches!(&err, Error::Api(a) if a.status == 500), "{err:?}");
    assert_eq!(provider.transport.inner.sent(&format!("DELETE /images/{ID}")), 1);
}

#[test]
fn a_restarted_upload_waits_until_glance_is_done_with_the_broken_one() {
    let abc = image(json!({
        "checksum": "900150983cd24fb0d6963f7d28e17f72",
        "os_hash_algo": "sha512",
        "os_hash_value": "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
    }));
    let status = |s: &str| (200, image(json!({"status": s})));
    let script = ScriptedCloud::new()
        .on("POST /images", &[(201, json!({}))])
        .on(
            &format!("PUT /images/{ID}/file"),
            &[
                (503, json!({"message": "the upload broke off"})),
                (
                    409,
                    json!({"message": "Image status transition from saving to saving is not allowed"}),
                ),
                (204, json!({})),
            ],
        )
        .on(
            &format!("GET /images/{ID}"),
            &[
                // After the 503: back to queued, so the upload starts again…
                status("queued"),
                // …but meets the first one, which a busy worker only now reads: wait for it.
                status("saving"),
                status("saving"),
                status("queued"),
                (200, abc),
            ],
        );
    let mut provider = Provider::new(script);
    let mut cloud = cloud();
    cloud.retries = Some(3);
    let state = provider.create(&cloud, spec("restarted.img")).unwrap();
    assert_eq!(state.id, ID);
    let cloud_log = &provider.transport.inner;
    assert_eq!(cloud_log.sent(&format!("PUT /images/{ID}/file")), 3);
    assert_eq!(cloud_log.uploaded, 9, "the data went three times, whole");
    assert_eq!(cloud_log.sent(&format!("DELETE /images/{ID}")), 0);
}

#[test]
fn authenticate_logs_in_with_the_credentials() {
    let mut provider = Provider::new(ScriptedCloud::new());
    let session = provider.authenticate(&cloud()).unwrap();
    assert_eq!(session.token, "a-token");
    assert_eq!(session.image_endpoints[0].url, "http://glance");
    assert_eq!(provider.transport.inner.log, ["POST /auth/tokens"]);
}

/// The fixture cloud with `session-only` credentials and the session `token`.
fn session_only(token: &str) -> Cloud {
    Cloud {
        credentials: crate::types::Credentials::SessionOnly,
        session: Some(crate::types::Session {
            token: token.into(),
            expires_at: None,
            image_endpoints: vec![crate::types::Endpoint {
                url: "http://glance".into(),
                region: Some("RegionOne".into()),
                interface: "public".into(),
            }],
            project_id: Some(MEMBER.into()),
        }),
        ..cloud()
    }
}

#[test]
fn a_refused_session_without_credentials_goes_back_to_the_runtime() {
    let script = ScriptedCloud::new().on(
        &format!("GET /images/{ID}"),
        &[
            (
                401,
                json!({"error": {"message": "The request you have made requires authentication."}}),
            ),
            (200, image(json!({}))),
        ],
    );
    let mut provider = Provider::new(script);
    let err = provider.read(&session_only("old"), ID, None).unwrap_err();
    let Error::Unauthorized(info) = &err else {
        panic!("{err:?}");
    };
    assert!(
        info.message.contains("requires authentication"),
        "{}",
        info.message
    );
    assert_eq!(info.image_id, None, "a read made nothing");
    // The runtime's new session is used by the same instance, not the refused one it holds.
    let state = provider
        .read(&session_only("new"), ID, None)
        .unwrap()
        .expect("the image");
    assert_eq!(state.id, ID);
    let cloud_log = &provider.transport.inner;
    assert_eq!(cloud_log.sent("POST /auth/tokens"), 0, "nothing to log in with");
    assert_eq!(cloud_log.tokens, ["old", "new"]);
}

#[test]
fn a_session_refused_during_a_create_names_the_half_made_image() {
    let script = ScriptedCloud::new()
        .on("POST /images", &[(201, json!({}))])
        .on(&format!("PUT /images/{ID}/file"), &[(401, json!({}))]);
    let mut provider = Provider::new(script);
    let err = provider
        .create(&session_only("expiring"), spec("refused-token.img"))
        .unwrap_err();
    assert!(
        matches!(&err, Error::Unauthorized(info) if info.image_id.as_deref() == Some(ID)),
        "{err:?}"
    );
    let cloud_log = &provider.transport.inner;
    assert_eq!(
        cloud_log.sent(&format!("DELETE /images/{ID}")),
        0,
        "a delete needs a token too"
    );
    assert_eq!(cloud_log.sent("POST /auth/tokens"), 0);
}

#[test]
fn a_session_handed_in_is_used_without_asking_keystone() {
    let script = ScriptedCloud::new().on(&format!("GET /images/{ID}"), &[(200, image(json!({})))]);
    let mut provider = Provider::new(script);
    let mut cloud = cloud();
    cloud.session = Some(crate::types::Session {
        token: "handed".into(),
        expires_at: None,
        image_endpoints: vec![crate::types::Endpoint {
            url: "http://glance/".into(),
            region: Some("RegionOne".into()),
            interface: "public".into(),
        }],
        project_id: None,
    });
    let state = provider.read(&cloud, ID, None).unwrap().expect("the image");
    assert_eq!(state.id, ID);
    let log = &provider.transport.inner.log;
    assert_eq!(log, &[format!("GET /images/{ID}")], "no Keystone call");
}

#[test]
fn a_401_authenticates_once_more() {
    let script = ScriptedCloud::new().on(
        &format!("GET /images/{ID}"),
        &[(401, json!({})), (200, image(json!({}))), (401, json!({}))],
    );
    let mut provider = Provider::new(script);
    let state = provider.read(&cloud(), ID, None).unwrap().expect("the image");
    assert_eq!(state.id, ID);
    assert_eq!(provider.transport.inner.sent("POST /auth/tokens"), 2);
    // A 401 that comes again after the new token is the answer: authentication failed.
    let err = provider.read(&cloud(), ID, None).unwrap_err();
    assert!(matches!(&err, Error::AuthFailed(_)), "{err:?}");
    assert_eq!(provider.transport.inner.sent("POST /auth/tokens"), 3);
}

#[test]
fn deleting_a_protected_image_names_the_fix() {
    let script = ScriptedCloud::new()
        .on(
            &format!("DELETE /images/{ID}"),
            &[(403, json!({"message": "protected"}))],
        )
        .on(
            &format!("GET /images/{ID}"),
            &[(200, image(json!({"protected": true})))],
        );
    let mut provider = Provider::new(script);
    let err = provider.delete(&cloud(), ID, None, None).unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(m) if m.contains("protected: false")),
        "{err:?}"
    );
}

#[test]
fn a_failed_copy_to_new_stores_is_undone() {
    let fast = image(json!({"stores": "fast"}));
    let partial = image(json!({"stores": "fast,cheap", "os_glance_failed_import": "edge"}));
    let script = ScriptedCloud::new()
        .on(
            &format!("GET /images/{ID}"),
            &[(200, fast.clone()), (200, partial)],
        )
        .on(
            "GET /info/import",
            &[(
                200,
                json!({"import-methods": {"value": ["glance-direct", "copy-image"]}}),
            )],
        )
        .on(
            "GET /info/stores",
            &[(
                200,
                json!({"stores": [{"id": "fast"}, {"id": "cheap"}, {"id": "edge"}]}),
            )],
        )
        .on(
            &format!("GET /images/{ID}/tasks"),
            &[
                (200, json!({"tasks": []})),
                (
                    200,
                    json!({"tasks": [{"id": "t1", "status": "failure", "message": "Task failed"}]}),
                ),
            ],
        )
        .on(&format!("POST /images/{ID}/import"), &[(202, json!({}))])
        .on(&format!("DELETE /stores/cheap/{ID}"), &[(204, json!({}))]);
    let mut provider = Provider::new(script);
    let mut prior_spec = spec("copy.img");
    prior_spec.stores = vec!["fast".into()];
    let prior = glance::state_from_image(&fast, Some(&prior_spec)).unwrap();
    let mut desired = prior_spec.clone();
    desired.stores = vec!["cheap".into(), "edge".into(), "fast".into()];
    let err = provider.update(&cloud(), &prior, desired).unwrap_err();
    assert!(
        matches!(&err, Error::ImportFailed(m) if m.contains("failed stores: edge") && m.contains("copy-image")),
        "{err:?}"
    );
    let cloud_log = &provider.transport.inner;
    assert_eq!(cloud_log.sent(&format!("DELETE /stores/cheap/{ID}")), 1);
    assert_eq!(
        cloud_log.sent(&format!("PATCH /images/{ID}")),
        0,
        "nothing else changed"
    );
}

#[test]
fn a_converted_glance_direct_import_keeps_the_spec_format() {
    let staged = image(json!({"status": "uploading", "size": 104}));
    let converted = image(json!({"disk_format": "raw", "size": 64, "stores": "fast"}));
    let script = ScriptedCloud::new()
        .on(
            "GET /info/import",
            &[(200, json!({"import-methods": {"value": ["glance-direct"]}}))],
        )
        .on("POST /images", &[(201, json!({}))])
        .on(&format!("PUT /images/{ID}/stage"), &[(204, json!({}))])
        .on(&format!("GET /images/{ID}"), &[(200, staged), (200, converted)])
        .on(
            &format!("GET /images/{ID}/tasks"),
            &[
                (200, json!({"tasks": []})),
                (
                    200,
                    json!({"tasks": [{"id": "t1", "status": "success", "message": "Copied"}]}),
                ),
            ],
        )
        .on(&format!("POST /images/{ID}/import"), &[(202, json!({}))]);
    let mut provider = Provider::new(script);
    // A qcow2 header alone (version 3, no backing file): 104 bytes.
    let mut qcow2 = b"QFI\xfb\0\0\0\x03".to_vec();
    qcow2.resize(104, 0);
    let mut spec = spec_of("convert.img", &qcow2, "qcow2");
    spec.import_method = Some("glance-direct".into());
    let state = provider.create(&cloud(), spec).unwrap();
    assert_eq!(state.spec.disk_format, "qcow2");
    let import = state.import_result.expect("an import result");
    assert_eq!(
        (import.method.as_str(), import.converted_to.as_deref()),
        ("glance-direct", Some("raw"))
    );
    assert_eq!(import.task_id.as_deref(), Some("t1"));
    assert_eq!(provider.transport.inner.uploaded, 104);
    assert_eq!(
        provider.transport.inner.sent(&format!("PUT /images/{ID}/file")),
        0
    );
}

fn member_answer(status: &str) -> Value {
    json!({"image_id": ID, "member_id": MEMBER, "status": status, "created_at": "2026-12-03T00:00:00Z",
        "updated_at": "2026-12-03T00:00:01Z", "schema": "/v2/schemas/member"})
}

fn membership(side: &str, member: Option<&str>) -> crate::types::MembershipSpec {
    crate::types::MembershipSpec {
        image_id: ID.into(),
        member_id: member.map(str::to_string),
        status: None,
        side: Some(side.into()),
        region: None,
    }
}

#[test]
fn the_member_side_answers_for_the_sessions_project() {
    let route = format!("/images/{ID}/members/{MEMBER}");
    let script = ScriptedCloud::new()
        .on(&format!("PUT {route}"), &[(200, member_answer("accepted"))])
        .on(&format!("GET {route}"), &[(200, member_answer("accepted"))]);
    let mut provider = Provider::new(script);
    let state = provider
        .create_membership(&session_only("t"), membership("member", None))
        .unwrap();
    assert_eq!(state.id, format!("{ID}/{MEMBER}"));
    assert_eq!(state.status, "accepted");
    assert_eq!(state.spec.member_id.as_deref(), Some(MEMBER));
    let log = &provider.transport.inner.log;
    assert_eq!(log, &[format!("PUT {route}"), format!("GET {route}")]);
}

#[test]
fn glances_403_says_which_side_must_act() {
    let route = format!("/images/{ID}/members/{MEMBER}");
    let refused = json!({"message": "You are not permitted to modify 'status' on this image member."});
    let script = ScriptedCloud::new().on(&format!("PUT {route}"), &[(403, refused)]);
    let mut provider = Provider::new(script);
    let err = provider
        .create_membership(&session_only("t"), membership("member", None))
        .unwrap_err();
    let Error::Forbidden(message) = err else {
        panic!("{err:?}")
    };
    assert!(message.contains("only the member project answers"), "{message}");
    assert!(
        message.contains(&format!("Log in to project {MEMBER}")),
        "{message}"
    );

    let script = ScriptedCloud::new().on(
        &format!("POST /images/{ID}/members"),
        &[(403, json!({"message": "Only shared images have members."}))],
    );
    let mut provider = Provider::new(script);
    let err = provider
        .create_membership(&session_only("t"), membership("owner", Some(MEMBER)))
        .unwrap_err();
    let Error::Forbidden(message) = err else {
        panic!("{err:?}")
    };
    assert!(
        message.contains("only the project that owns the image offers it"),
        "{message}"
    );
    assert!(message.contains("Only shared images have members."), "{message}");
}

#[test]
fn a_member_rejects_when_deleted_and_the_owner_withdraws() {
    let route = format!("/images/{ID}/members/{MEMBER}");
    let state = |side: &str| crate::types::MembershipState {
        id: format!("{ID}/{MEMBER}"),
        spec: membership(side, Some(MEMBER)),
        status: "accepted".into(),
        created_at: String::new(),
        updated_at: String::new(),
        schema: String::new(),
    };
    let script = ScriptedCloud::new()
        .on(&format!("PUT {route}"), &[(200, member_answer("rejected"))])
        .on(&format!("DELETE {route}"), &[(404, json!({}))]);
    let mut provider = Provider::new(script);
    provider
        .delete_membership(&session_only("t"), &state("member"))
        .unwrap();
    provider
        .delete_membership(&session_only("t"), &state("owner"))
        .unwrap();
    let log = &provider.transport.inner.log;
    assert_eq!(
        log,
        &[format!("PUT {route}"), format!("DELETE {route}")],
        "gone counts as done"
    );
}

/// An import whose image and task stop changing: stalled after `timeouts.import_stall`, the
/// error names the import, the time and the stores still being written, and the half-made
/// image is deleted. The same import with a task heartbeat that keeps moving is waited for.
#[test]
fn an_import_that_stops_moving_is_stalled_and_one_that_moves_is_not() {
    let importing = image(json!({"status": "importing", "os_glance_importing_to_stores": "fast"}));
    let task = |message: &str| {
        json!({"tasks": [{"id": "t1", "status": "processing", "message": message,
                          "updated_at": "2026-12-03T08:00:00Z"}]})
    };
    let script = |tasks: &[(u16, Value)], images: &[(u16, Value)]| {
        ScriptedCloud::new()
            .on(
                "GET /info/import",
                &[(200, json!({"import-methods": {"value": ["web-download"]}}))],
            )
            .on("POST /images", &[(201, json!({}))])
            .on(&format!("POST /images/{ID}/import"), &[(202, json!({}))])
            .on(&format!("GET /images/{ID}"), images)
            .on(&format!("GET /images/{ID}/tasks"), tasks)
            .on(&format!("DELETE /images/{ID}"), &[(204, json!({}))])
    };
    let mut spec = spec("stall.img");
    spec.local_file_path = None;
    spec.image_source_url = Some("https://images.example.org/disk.img".into());
    spec.web_download = Some(true);
    spec.timeouts.import_stall = Some(1);

    let stuck = script(
        &[(200, json!({"tasks": []})), (200, task("Copied 16 MiB"))],
        &[(200, importing.clone())],
    );
    let mut provider = Provider::new(stuck);
    let started = std::time::Instant::now();
    let err = provider.create(&cloud(), spec.clone()).unwrap_err();
    assert!(
        matches!(&err, Error::ImportFailed(m) if m.contains("web-download import of https://images.example.org/disk.img")
            && m.contains("stalled: no progress for 1 s")
            && m.contains("still importing to fast")
            && m.contains("task: Copied 16 MiB")
            && m.contains("timeouts.import_stall is 1 s")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "ended by the stall limit, not the create timeout"
    );
    assert_eq!(provider.transport.inner.sent(&format!("DELETE /images/{ID}")), 1);

    // A heartbeat per poll (Glance's "Copied N MiB"), then active: no stall.
    let mut beats: Vec<(u16, Value)> = vec![(200, json!({"tasks": []}))];
    beats.extend((1..=4).map(|mib| (200, task(&format!("Copied {} MiB", mib * 16)))));
    let done = json!({"tasks": [{"id": "t1", "status": "success", "message": "done",
                                  "updated_at": "2026-12-03T08:01:00Z"}]});
    beats.push((200, done));
    let mut images: Vec<(u16, Value)> = vec![(200, importing.clone()); 5];
    images.push((200, image(json!({"status": "active"}))));
    let mut provider = Provider::new(script(&beats, &images));
    let state = provider.create(&cloud(), spec).unwrap();
    assert_eq!(state.status, "active");
    assert_eq!(provider.transport.inner.sent(&format!("DELETE /images/{ID}")), 0);
}

/// Glance's 409 to the import request while the image is already `importing` (a retried
/// request whose first answer was lost) is followed like a 202, not a failure.
#[test]
fn a_409_from_an_import_already_running_is_followed() {
    let importing = image(json!({"status": "importing"}));
    let script = ScriptedCloud::new()
        .on(
            "GET /info/import",
            &[(200, json!({"import-methods": {"value": ["web-download"]}}))],
        )
        .on("POST /images", &[(201, json!({}))])
        .on(
            &format!("POST /images/{ID}/import"),
            &[(
                409,
                json!({"message": "Image status transition from importing to importing is not allowed"}),
            )],
        )
        .on(
            &format!("GET /images/{ID}"),
            &[
                (200, importing.clone()),
                (200, importing),
                (200, image(json!({"status": "active"}))),
            ],
        )
        .on(
            &format!("GET /images/{ID}/tasks"),
            &[
                (200, json!({"tasks": []})),
                (
                    200,
                    json!({"tasks": [{"id": "t1", "status": "success", "message": ""}]}),
                ),
            ],
        );
    let mut spec = spec("conflict.img");
    spec.local_file_path = None;
    spec.image_source_url = Some("https://images.example.org/disk.img".into());
    spec.web_download = Some(true);
    let mut provider = Provider::new(script);
    let state = provider.create(&cloud(), spec).unwrap();
    assert_eq!(state.status, "active");
    assert_eq!(
        provider
            .transport
            .inner
            .sent(&format!("POST /images/{ID}/import")),
        1
    );
}
