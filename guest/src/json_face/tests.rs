//! The JSON face against the typed one: documents map to records and back, bad documents
//! name their field, and the schema's `x-force-new` agrees with the diff rule.

use super::*;
use crate::diff;
use crate::types::{Credentials, SourceFingerprint};
use openstack_image_documents::fixtures;

fn spec_json() -> Value {
    json!({
        "name": "cirros",
        "container_format": "bare",
        "disk_format": "qcow2",
        "image_source_url": "https://example.org/cirros.img",
        "image_source_password": "hunter2",
        "properties": { "os_distro": "cirros", "hw_cpu_cores": 2, "secure": true },
        "tags": ["b", "a"],
        "timeouts": { "create": 600 },
    })
}

/// The fixture image holding `spec`, with the fingerprint of a local file's upload.
fn state_of(spec: ImageSpec) -> ImageState {
    ImageState {
        source_fingerprint: Some(SourceFingerprint {
            size: 3,
            sha512: "s".into(),
            mtime_ns: Some(1_764_259_200_123_456_789),
            etag: Some("\"e\"".into()),
            last_modified: None,
        }),
        ..fixtures::image(spec.into()).into()
    }
}

fn spec_of(value: Value) -> ImageSpec {
    let mut request = Request::parse(&json!({ "spec": value }).to_string())
        .ok()
        .unwrap();
    request.spec().ok().unwrap()
}

fn field_error(result: Result<ImageSpec, Failure>) -> (String, String) {
    match result {
        Err(Failure::Typed(Error::InvalidSpec(f))) => (f[0].field.clone(), f[0].message.clone()),
        Err(Failure::Typed(e)) => panic!("unexpected error {e:?}"),
        Err(Failure::Request(m)) => panic!("unexpected request error {m}"),
        Ok(s) => panic!("accepted {s:?}"),
    }
}

#[test]
fn spec_documents_map_to_the_typed_spec() {
    let spec = spec_of(spec_json());
    assert_eq!(spec.disk_format, "qcow2");
    assert_eq!(spec.image_source_password.as_deref(), Some("hunter2"));
    assert_eq!(spec.timeouts.create, Some(600));
    assert!(spec.properties.contains(&("hw_cpu_cores".into(), "2".into())));
    assert!(spec.properties.contains(&("secure".into(), "true".into())));
    assert_eq!(spec.tags, vec!["b", "a"]);
}

#[test]
fn bad_spec_documents_name_the_field() {
    let parse = |value: Value| {
        let mut request = Request::parse(&json!({ "spec": value }).to_string())
            .ok()
            .unwrap();
        field_error(request.spec())
    };
    let (field, message) = parse(json!({ "disk_formt": "raw" }));
    assert_eq!(field, "disk_formt");
    assert!(message.contains("unknown field"), "{message}");
    let (field, _) = parse(json!({ "min_ram_mb": "lots" }));
    assert_eq!(field, "min_ram_mb");
    let (field, message) = parse(json!({ "properties": { "k": [1] } }));
    assert_eq!(field, "properties.k");
    assert!(message.contains("text, a number or true/false"), "{message}");
    let (field, _) = parse(json!({ "timeouts": { "create": "soon" } }));
    assert_eq!(field, "timeouts.create");
}

#[test]
fn requests_without_their_documents_say_what_to_send() {
    for text in ["[]", "nope", "{}"] {
        let mut request = match Request::parse(text) {
            Ok(r) => r,
            Err(Failure::Request(m)) => {
                assert!(m.contains("JSON"), "{m}");
                continue;
            }
            Err(_) => panic!(),
        };
        assert!(matches!(request.spec(), Err(Failure::Request(m)) if m.contains("`spec`")));
        assert!(matches!(request.cloud(), Err(Failure::Request(m)) if m.contains("`cloud`")));
    }
    let mut request = Request::parse(r#"{"id": "../../etc"}"#).ok().unwrap();
    assert!(matches!(request.id(), Err(Failure::Request(m)) if m.contains("not a Glance image id")));
}

#[test]
fn state_documents_round_trip_without_secrets() {
    let state = state_of(spec_of(spec_json()));
    let doc = state_doc(state_of(spec_of(spec_json())));
    let text = doc.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(doc["id"], state.id);
    assert_eq!(doc["properties"]["os_distro"], "cirros");
    assert_eq!(doc["metadata"]["os_distro"], "cirros");
    assert_eq!(doc["source_fingerprint"]["etag"], "\"e\"");
    assert_eq!(doc["source_fingerprint"]["mtime_ns"], "1764259200123456789");
    let mut with_bookkeeping = doc.clone();
    with_bookkeeping["__provider"] = json!("serialised engine data");
    let back = parse_state(with_bookkeeping).ok().unwrap();
    let mut expected = state;
    expected.spec.image_source_password = None;
    expected.spec.properties.sort();
    assert_eq!(back, expected);
    // Every key the document has is described by the schema, and the other way round.
    let schema: Value = serde_json::from_str(&schema()).unwrap();
    let described: Vec<&String> = schema["$defs"]["state"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    let mut keys: Vec<&String> = doc.as_object().unwrap().keys().collect();
    keys.sort();
    let mut described_sorted = described.clone();
    described_sorted.sort();
    assert_eq!(keys, described_sorted);
}

#[test]
fn unknown_state_keys_are_named() {
    let mut doc = state_doc(state_of(spec_of(spec_json())));
    doc["colour"] = json!("blue");
    match parse_state(doc) {
        Err(Failure::Typed(Error::InvalidSpec(f))) => assert_eq!(f[0].field, "state.colour"),
        _ => panic!("accepted an unknown key"),
    }
}

#[test]
fn schema_force_new_agrees_with_diff() {
    let base = validate_spec(json!({
        "container_format": "bare",
        "disk_format": "qcow2",
        "image_source_url": "https://example.org/a.img",
        "image_cache_path": "none",
    }));
    let prior = state_of(base.clone());
    let changed: &[(&str, Value)] = &[
        ("name", json!("other")),
        ("container_format", json!("ovf")),
        ("disk_format", json!("raw")),
        ("image_source_url", json!("https://example.org/b.img")),
        ("image_source_username", json!("u")),
        ("image_cache_path", json!("/cache")),
        ("source_checksum", json!("md5:00112233445566778899aabbccddeeff")),
        ("decompress", json!(true)),
        ("web_download", json!(true)),
        ("image_id", json!("0c7a3f5e-1b2d-4c3e-8f9a-0b1c2d3e4f5a")),
        ("min_disk_gb", json!(3)),
        ("min_ram_mb", json!(512)),
        ("properties", json!({ "k": "v" })),
        ("protected", json!(true)),
        ("hidden", json!(true)),
        ("region", json!("RegionTwo")),
        ("tags", json!(["t"])),
        ("verify_checksum", json!(false)),
        ("visibility", json!("public")),
        ("timeouts", json!({ "update": 60 })),
        ("import_method", json!("glance-direct")),
        ("source_region", json!("RegionThree")),
        ("source_image_id", json!("0c7a3f5e-1b2d-4c3e-8f9a-0b1c2d3e4f5b")),
        ("stores", json!(["fast"])),
        ("all_stores_must_succeed", json!(false)),
        ("members", json!([])),
        ("deactivated", json!(true)),
        ("import_fallback", json!("upload")),
    ];
    let glance_download = json!({
        "container_format": "bare",
        "disk_format": "qcow2",
        "import_method": "glance-download",
        "source_region": "RegionOne",
        "source_image_id": "0c7a3f5e-1b2d-4c3e-8f9a-0b1c2d3e4f5a",
    });
    let copied = state_of(validate_spec(glance_download.clone()));
    let web_download = json!({
        "container_format": "bare",
        "disk_format": "qcow2",
        "image_source_url": "https://example.org/a.img",
        "web_download": true,
    });
    let imported = state_of(validate_spec(web_download.clone()));
    let schema: Value = serde_json::from_str(&schema()).unwrap();
    let fields = schema["$defs"]["spec"]["properties"].as_object().unwrap();
    for (name, field) in fields
        .iter()
        .filter(|(name, f)| f["x-secret"] != true && *name != "local_file_path")
    {
        let name = name.as_str();
        let force_new = field["x-force-new"] == true;
        let (_, value) = changed
            .iter()
            .find(|(changed, _)| *changed == name)
            .unwrap_or_else(|| panic!("no test value for {name}"));
        let mut desired = json!({
            "container_format": "bare",
            "disk_format": "qcow2",
            "image_source_url": "https://example.org/a.img",
            "image_cache_path": "none",
        });
        desired[name] = value.clone();
        if name == "web_download" {
            desired["image_cache_path"] = Value::Null;
        }
        if name == "image_source_username" {
            desired["image_source_password"] = json!("p");
        }
        let mut prior = &prior;
        if name.starts_with("source_") && name != "source_checksum" {
            desired = glance_download.clone();
            desired[name] = value.clone();
            prior = &copied;
        }
        if name == "import_fallback" {
            desired = web_download.clone();
            desired[name] = value.clone();
            desired["image_cache_path"] = json!("/cache");
            prior = &imported;
        }
        let plan = diff::diff(&validate_spec(desired), prior);
        let replaced = plan.action == Action::Replace;
        assert_eq!(replaced, force_new, "{name}: {plan:?}");
    }
}

fn validate_spec(value: Value) -> ImageSpec {
    crate::validate::check(spec_of(value)).expect("valid")
}

#[test]
fn errors_become_documents() {
    let doc = error_doc(&Error::InvalidSpec(vec![FieldError {
        field: "disk_format".into(),
        message: "must be one of ...".into(),
    }]));
    assert_eq!(doc["kind"], "invalid-spec");
    assert_eq!(doc["fields"][0]["field"], "disk_format");
    assert_eq!(error_doc(&Error::NotFound("gone".into()))["message"], "gone");
}

#[test]
fn clouds_yaml_entries_become_clouds() {
    let cloud = |value: Value| -> Result<Cloud, String> {
        let mut request = Request::parse(&json!({ "cloud": value }).to_string())
            .ok()
            .unwrap();
        request.cloud().map_err(|e| match e {
            Failure::Request(m) => m,
            Failure::Typed(e) => panic!("{e:?}"),
        })
    };
    let c = cloud(json!({
        "auth": { "auth_url": "http://k/v3", "username": "u", "password": "p", "project_name": "demo", "user_domain_name": "Default" },
        "region_name": "RegionOne", "interface": "public", "identity_api_version": 3,
    }))
    .unwrap();
    assert!(matches!(&c.credentials, Credentials::Password(p) if p.password == "p"));
    assert_eq!(c.scope.project_name.as_deref(), Some("demo"));
    assert_eq!(c.region.as_deref(), Some("RegionOne"));
    let c = cloud(json!({ "auth": { "auth_url": "u", "application_credential_id": "i", "application_credential_secret": "s" } })).unwrap();
    assert!(matches!(c.credentials, Credentials::ApplicationCredential(_)));
    let c = cloud(json!({ "auth": { "auth_url": "u", "token": "t" } })).unwrap();
    assert!(matches!(c.credentials, Credentials::Token(_)));
    let err = cloud(json!({ "auth": { "auth_url": "u", "username": "x" } })).unwrap_err();
    assert!(err.contains("cloud.auth.password"), "{err}");
    let err = cloud(json!({ "auth": { "auth_url": "u" }, "auth_type": "saml" })).unwrap_err();
    assert!(err.contains("not supported"), "{err}");
    let err = cloud(json!({ "auth": { "auth_url": "u" }, "cacert": "/x" })).unwrap_err();
    assert!(err.contains("TLS trust is the runtime's"), "{err}");
    let err = cloud(json!({ "auth": { "auth_url": "u" }, "colour": "blue" })).unwrap_err();
    assert!(err.contains("unknown field `colour`"), "{err}");
}
