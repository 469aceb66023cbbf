//! A small HTTP/1.1 server on 127.0.0.1 that serves image files the way real download sites
//! do (content types, attachment names, Basic auth, validators, redirects, broken transfers),
//! for tests that make the tool or Glance fetch an image by URL.
//!
//! One request per connection (`Connection: close` on every response), each connection on
//! its own thread; GET and HEAD only.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Largest request head accepted (request line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Bodies are written in chunks of this size.
const CHUNK: usize = 64 * 1024;

/// A file the server hands out, with the headers a real download site would send.
#[derive(Clone)]
pub struct Served {
    /// The file's bytes.
    pub body: Vec<u8>,
    /// `Content-Type`, when set.
    pub content_type: Option<String>,
    /// `Content-Disposition`, when set.
    pub content_disposition: Option<String>,
    /// Required Basic credentials `(user, password)`, when set.
    pub basic_auth: Option<(String, String)>,
    /// `ETag` (always a quoted entity tag), when set.
    pub etag: Option<String>,
    /// `Last-Modified` (an HTTP date), when set.
    pub last_modified: Option<String>,
    /// How long the server waits before it answers a GET, when set (a slow origin).
    pub delay: Option<std::time::Duration>,
    /// Sends this many bytes of the body, then holds the connection open without sending
    /// for this long before closing it (a source that stops moving mid-body), when set.
    pub stall_after: Option<(usize, std::time::Duration)>,
    /// Sends this many bytes of the body, pauses this long, then sends the rest (a slow
    /// source that still delivers), when set.
    pub pause_after: Option<(usize, std::time::Duration)>,
}

impl Served {
    /// A file with just a body: no extra headers, no authentication.
    pub fn new(body: Vec<u8>) -> Served {
        Served {
            body,
            content_type: None,
            content_disposition: None,
            basic_auth: None,
            etag: None,
            last_modified: None,
            delay: None,
            stall_after: None,
            pause_after: None,
        }
    }

    /// Sends `bytes` of the body, then nothing for `hold` before closing the connection.
    pub fn stall_after(mut self, bytes: usize, hold: std::time::Duration) -> Self {
        self.stall_after = Some((bytes, hold));
        self
    }

    /// Sends `bytes` of the body, then nothing for `pause`, then the rest.
    pub fn pause_after(mut self, bytes: usize, pause: std::time::Duration) -> Self {
        self.pause_after = Some((bytes, pause));
        self
    }

    /// Answers each GET only after `delay`.
    pub fn delay(mut self, delay: std::time::Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sends `Content-Type: v`.
    pub fn content_type(mut self, v: &str) -> Self {
        self.content_type = Some(v.to_string());
        self
    }

    /// Sends `Content-Disposition: v` (e.g. `attachment; filename="disk.qcow2"`).
    pub fn content_disposition(mut self, v: &str) -> Self {
        self.content_disposition = Some(v.to_string());
        self
    }

    /// Requires Basic authentication with these credentials (401 otherwise).
    pub fn basic_auth(mut self, user: &str, password: &str) -> Self {
        self.basic_auth = Some((user.to_string(), password.to_string()));
        self
    }

    /// Sends `ETag: v`; an unquoted `v` is quoted (`abc` → `"abc"`), `W/"…"` is kept.
    pub fn etag(mut self, v: &str) -> Self {
        let quoted = v.starts_with('"') || v.starts_with("W/\"");
        self.etag = Some(if quoted { v.to_string() } else { format!("\"{v}\"") });
        self
    }

    /// Sends `Last-Modified: v` (e.g. `Wed, 21 Oct 2015 07:28:00 GMT`).
    pub fn last_modified(mut self, v: &str) -> Self {
        self.last_modified = Some(v.to_string());
        self
    }
}

/// What a path answers with.
enum Route {
    File(Arc<Served>),
    Redirect(String),
}

/// Everything the connection threads share with the test.
#[derive(Default)]
struct State {
    routes: HashMap<String, Route>,
    truncations: HashMap<String, usize>,
    hits: HashMap<String, usize>,
    headers: HashMap<String, Vec<(String, String)>>,
}

/// A running file server on 127.0.0.1; stops accepting (and joins its accept thread) when dropped.
pub struct SourceServer {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl SourceServer {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start() -> SourceServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the source server");
        SourceServer::run(listener)
    }

    /// Starts a server on the first free port of 127.0.0.1 in `ports` (for Glance
    /// web-download, which only fetches from allowed ports); panics if none is free.
    pub fn start_in_ports(ports: RangeInclusive<u16>) -> SourceServer {
        let (first, last) = (*ports.start(), *ports.end());
        for port in ports {
            if let Ok(listener) = TcpListener::bind(("127.0.0.1", port)) {
                return SourceServer::run(listener);
            }
        }
        panic!(
            "source server: no free port on 127.0.0.1 in {first}..={last} (all in use, or the range is empty)"
        );
    }

    fn run(listener: TcpListener) -> SourceServer {
        let addr = listener.local_addr().expect("source server address");
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stop_flag) = (state.clone(), stop.clone());
        let accept = std::thread::Builder::new()
            .name(format!("source-server-{}", addr.port()))
            .spawn(move || {
                for client in listener.incoming() {
                    if stop_flag.load(Ordering::SeqCst) {
                        break;
                    }
                    let client = match client {
                        Ok(client) => client,
                        Err(_) => {
                            // E.g. out of descriptors: don't spin.
                            std::thread::sleep(Duration::from_millis(10));
                            continue;
                        }
                    };
                    let shared = shared.clone();
                    std::thread::spawn(move || handle(client, &shared));
                }
            })
            .expect("spawn the source server's accept thread");
        SourceServer {
            addr,
            state,
            stop,
            accept: Some(accept),
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// `http://127.0.0.1:PORT/path` (a missing leading `/` is added).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port(), normalize(path))
    }

    /// Serves `served` at `path` from now on, replacing whatever was there (and clearing a
    /// `truncate` of that path). `path` may include a query string to serve only that URL.
    pub fn serve(&self, path: &str, served: Served) {
        let path = normalize(path);
        let mut state = lock(&self.state);
        state.truncations.remove(&path);
        state.routes.insert(path, Route::File(Arc::new(served)));
    }

    /// Answers `path` with `302 Found` and `Location: to` (an absolute URL or a path),
    /// replacing whatever was there; two redirects pointing at each other make a loop.
    pub fn redirect(&self, path: &str, to: &str) {
        lock(&self.state)
            .routes
            .insert(normalize(path), Route::Redirect(to.to_string()));
    }

    /// From now on (until `serve` replaces the file), full responses for `path` announce the
    /// whole `Content-Length` but the connection closes after `send_bytes` body bytes.
    pub fn truncate(&self, path: &str, send_bytes: usize) {
        lock(&self.state).truncations.insert(normalize(path), send_bytes);
    }

    /// How many GET requests reached `path` (whatever the answer: 200, 304, 401, 404, 302…).
    pub fn hits(&self, path: &str) -> usize {
        lock(&self.state).hits.get(&normalize(path)).copied().unwrap_or(0)
    }

    /// The headers (names as sent, in order) of the most recent request to `path`, or none.
    pub fn last_request_headers(&self, path: &str) -> Vec<(String, String)> {
        lock(&self.state)
            .headers
            .get(&normalize(path))
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for SourceServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocked accept(); only wait for the thread if the wake-up got through.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5)).is_ok();
        if let Some(accept) = self.accept.take()
            && woke
        {
            let _ = accept.join();
        }
    }
}

/// Compressed copies of `raw` beside it: returns (format name, path) for gzip (.gz), bzip2 (.bz2), xz (.xz) and zstd (.zst).
pub fn compressed_variants(raw: &Path) -> Vec<(&'static str, PathBuf)> {
    // (format, extension, program, arguments before the file, Debian package)
    let tools: [(&'static str, &str, &str, &[&str], &str); 4] = [
        ("gzip", "gz", "gzip", &["-c"], "gzip"),
        ("bzip2", "bz2", "bzip2", &["-c"], "bzip2"),
        ("xz", "xz", "xz", &["-c"], "xz-utils"),
        ("zstd", "zst", "zstd", &["-q", "-c"], "zstd"),
    ];
    tools
        .iter()
        .map(|&(format, ext, program, args, package)| {
            let mut name = raw.as_os_str().to_os_string();
            name.push(".");
            name.push(ext);
            let out = PathBuf::from(name);
            let file =
                std::fs::File::create(&out).unwrap_or_else(|e| panic!("create {}: {e}", out.display()));
            let status = Command::new(program)
                .args(args)
                .arg(raw)
                .stdin(Stdio::null())
                .stdout(file)
                .status()
                .unwrap_or_else(|e| {
                    if e.kind() == std::io::ErrorKind::NotFound {
                        panic!(
                            "`{program}` is not installed: it makes the {format} test files \
                             (install the Debian package `{package}`: apt-get install -y {package})"
                        )
                    }
                    panic!("run {program}: {e}")
                });
            assert!(
                status.success(),
                "`{program} {} {}` failed: {status}",
                args.join(" "),
                raw.display()
            );
            (format, out)
        })
        .collect()
}

/// `path` with a leading `/`.
fn normalize(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// The state, even if a panicking thread poisoned the lock.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

/// A parsed request head.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Request {
    /// The first header named `name` (case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the request head (up to the empty line); `None` on a closed, stalled or garbled connection.
fn read_head(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream).take(MAX_HEAD as u64);
    let mut line = String::new();
    // Tolerate empty lines before the request line (RFC 9112 §2.2).
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if !line.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None; // EOF (or the size cap) before the end of the head
        }
        let text = line.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        let (name, value) = text.split_once(':')?;
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    Some(Request {
        method,
        target,
        headers,
    })
}

/// Serves one connection: one request, one response, then close.
fn handle(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
    if let Some(request) = read_head(&stream) {
        let _ = answer(&stream, &request, state);
    }
    let _ = stream.shutdown(Shutdown::Both);
}

/// Decides and writes the response to `request`.
fn answer(mut stream: &TcpStream, request: &Request, state: &Mutex<State>) -> std::io::Result<()> {
    // Origin-form path; an absolute-form target (`http://host/path`) is reduced to its path.
    let mut target = request.target.as_str();
    if let Some(rest) = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))
    {
        target = rest.find('/').map_or("/", |i| &rest[i..]);
    }
    let head = request.method == "HEAD";
    let (route, truncation) = {
        let mut state = lock(state);
        // A path served with its query string wins; otherwise the query is ignored.
        let key = if state.routes.contains_key(target) {
            target.to_string()
        } else {
            normalize(target.split('?').next().unwrap_or("/"))
        };
        if request.method == "GET" {
            *state.hits.entry(key.clone()).or_default() += 1;
        }
        state.headers.insert(key.clone(), request.headers.clone());
        let route = match state.routes.get(&key) {
            Some(Route::File(served)) => Some(Route::File(served.clone())),
            Some(Route::Redirect(to)) => Some(Route::Redirect(to.clone())),
            None => None,
        };
        (route, state.truncations.get(&key).copied())
    };

    let has_body = request.header("Content-Length").is_some_and(|v| v.trim() != "0")
        || request.header("Transfer-Encoding").is_some();
    if !matches!(request.method.as_str(), "GET" | "HEAD") || has_body {
        return respond(
            stream,
            "405 Method Not Allowed",
            &[("Allow", "GET, HEAD"), ("Content-Type", "text/plain")],
            Some(b"only GET and HEAD without a body\n"),
            head,
            None,
        );
    }
    let served = match route {
        None => {
            return respond(
                stream,
                "404 Not Found",
                &[("Content-Type", "text/plain")],
                Some(b"not found\n"),
                head,
                None,
            );
        }
        Some(Route::Redirect(to)) => {
            return respond(
                stream,
                "302 Found",
                &[("Location", &to), ("Content-Type", "text/plain")],
                Some(format!("moved to {to}\n").as_bytes()),
                head,
                None,
            );
        }
        Some(Route::File(served)) => served,
    };

    if let Some((user, password)) = &served.basic_auth {
        let given = request.header("Authorization").and_then(basic_credentials);
        if given.as_ref() != Some(&(user.clone(), password.clone())) {
            return respond(
                stream,
                "401 Unauthorized",
                &[
                    ("WWW-Authenticate", "Basic realm=\"test\""),
                    ("Content-Type", "text/plain"),
                ],
                Some(b"authentication required\n"),
                head,
                None,
            );
        }
    }

    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(v) = &served.content_type {
        headers.push(("Content-Type", v));
    }
    if let Some(v) = &served.content_disposition {
        headers.push(("Content-Disposition", v));
    }
    if let Some(v) = &served.etag {
        headers.push(("ETag", v));
    }
    if let Some(v) = &served.last_modified {
        headers.push(("Last-Modified", v));
    }

    if not_modified(request, &served) {
        // Validators only, no body and no Content-Length.
        headers.retain(|(n, _)| matches!(*n, "ETag" | "Last-Modified"));
        return respond(stream, "304 Not Modified", &headers, None, head, None);
    }
    if let Some(delay) = served.delay.filter(|_| !head) {
        std::thread::sleep(delay);
    }
    if let (false, Some((bytes, hold))) = (head, served.stall_after) {
        return respond_then_stall(stream, &headers, &served.body, bytes, hold);
    }
    if let (false, Some((bytes, pause))) = (head, served.pause_after) {
        let bytes = bytes.min(served.body.len());
        respond(stream, "200 OK", &headers, Some(&served.body), false, Some(bytes))?;
        std::thread::sleep(pause);
        let mut stream = stream;
        for chunk in served.body[bytes..].chunks(CHUNK) {
            stream.write_all(chunk)?;
        }
        return stream.flush();
    }
    respond(stream, "200 OK", &headers, Some(&served.body), head, truncation)?;
    stream.flush()
}

/// A 200 whose body stops after `bytes`: the connection is held open, silent, for `hold`.
fn respond_then_stall(
    stream: &TcpStream,
    headers: &[(&str, &str)],
    body: &[u8],
    bytes: usize,
    hold: std::time::Duration,
) -> std::io::Result<()> {
    respond(stream, "200 OK", headers, Some(body), false, Some(bytes))?;
    std::thread::sleep(hold);
    Ok(())
}

/// Whether the request's validators match the file (RFC 9110 §13.1): `If-None-Match` when
/// present (weak comparison, `*` matches), else `If-Modified-Since` against `Last-Modified`.
fn not_modified(request: &Request, served: &Served) -> bool {
    if let Some(list) = request.header("If-None-Match") {
        let Some(etag) = &served.etag else {
            return false;
        };
        let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_string();
        return list
            .split(',')
            .any(|tag| tag.trim() == "*" || opaque(tag) == opaque(etag));
    }
    match (request.header("If-Modified-Since"), &served.last_modified) {
        (Some(since), Some(modified)) => match (http_date(since), http_date(modified)) {
            (Some(since), Some(modified)) => modified <= since,
            _ => since.trim() == modified.trim(),
        },
        _ => false,
    }
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as a comparable (Y, M, D, h, m, s).
fn http_date(text: &str) -> Option<(u32, u32, u32, u32, u32, u32)> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = fields.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == month)? as u32 + 1;
    let mut hms = time.split(':').map(|n| n.parse::<u32>().ok());
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    Some((year.parse().ok()?, month, day.parse().ok()?, h, m, s))
}

/// `(user, password)` from an `Authorization: Basic …` value.
fn basic_credentials(value: &str) -> Option<(String, String)> {
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(base64_decode(token.trim())?).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Standard base64 (padding optional); `None` on any other character.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Writes a response: status line, `headers`, `Content-Length` when there is a `body`,
/// `Connection: close`; then the body (not for HEAD) in chunks, stopping after `limit` bytes.
fn respond(
    mut stream: &TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    head: bool,
    limit: Option<usize>,
) -> std::io::Result<()> {
    let mut text = format!("HTTP/1.1 {status}\r\nServer: openstack-image-tests\r\n");
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = body {
        text.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    text.push_str("Connection: close\r\n\r\n");
    stream.write_all(text.as_bytes())?;
    if let (Some(body), false) = (body, head) {
        let sent = &body[..limit.unwrap_or(usize::MAX).min(body.len())];
        for chunk in sent.chunks(CHUNK) {
            stream.write_all(chunk)?;
        }
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    /// A response as the tiny test client saw it.
    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn content_length(&self) -> usize {
            self.header("Content-Length")
                .expect("Content-Length")
                .parse()
                .expect("a number")
        }
    }

    /// Sends a raw request and reads the whole response, up to the server's close.
    fn send(port: u16, raw: &str) -> Reply {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream.write_all(raw.as_bytes()).expect("send the request");
        let mut all = Vec::new();
        stream.read_to_end(&mut all).expect("read the response");
        let end = all
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        let head = String::from_utf8(all[..end].to_vec()).expect("an ASCII head");
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .expect("a status line");
        let headers = lines
            .map(|l| {
                let (n, v) = l.split_once(':').expect("a header line");
                (n.trim().to_string(), v.trim().to_string())
            })
            .collect();
        Reply {
            status,
            headers,
            body: all[end + 4..].to_vec(),
        }
    }

    /// `METHOD path` with extra header lines.
    fn request(port: u16, method: &str, path: &str, extra: &[(&str, &str)]) -> Reply {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
        for (n, v) in extra {
            raw.push_str(&format!("{n}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        send(port, &raw)
    }

    fn get(port: u16, path: &str, extra: &[(&str, &str)]) -> Reply {
        request(port, "GET", path, extra)
    }

    fn base64_encode(data: &[u8]) -> String {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for group in data.chunks(3) {
            let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= group.len() {
                    out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    fn basic(user: &str, password: &str) -> String {
        format!("Basic {}", base64_encode(format!("{user}:{password}").as_bytes()))
    }

    #[test]
    fn serves_a_file_with_its_headers() {
        let server = SourceServer::start();
        server.serve(
            "/images/disk.qcow2",
            Served::new(b"QFI\xfb image bytes".to_vec())
                .content_type("application/octet-stream")
                .content_disposition("attachment; filename=\"disk.qcow2\"")
                .etag("v1")
                .last_modified("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(
            server.url("images/disk.qcow2"),
            format!("http://127.0.0.1:{}/images/disk.qcow2", server.port())
        );
        let reply = get(server.port(), "/images/disk.qcow2", &[]);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"QFI\xfb image bytes");
        assert_eq!(reply.content_length(), reply.body.len());
        assert_eq!(reply.header("Content-Type"), Some("application/octet-stream"));
        assert_eq!(
            reply.header("Content-Disposition"),
            Some("attachment; filename=\"disk.qcow2\"")
        );
        assert_eq!(reply.header("ETag"), Some("\"v1\""));
        assert_eq!(
            reply.header("Last-Modified"),
            Some("Wed, 21 Oct 2015 07:28:00 GMT")
        );
        assert_eq!(reply.header("Connection"), Some("close"));
        // A query string is ignored unless one was served with it.
        assert_eq!(get(server.port(), "/images/disk.qcow2?x=1", &[]).status, 200);
    }

    #[test]
    fn unknown_path_is_404() {
        let server = SourceServer::start();
        let reply = get(server.port(), "/nothing-here.img", &[]);
        assert_eq!(reply.status, 404);
        assert!(!reply.body.is_empty());
        assert_eq!(reply.content_length(), reply.body.len());
        assert_eq!(server.hits("/nothing-here.img"), 1);
    }

    #[test]
    fn basic_auth_is_enforced() {
        let server = SourceServer::start();
        server.serve(
            "/secret.img",
            Served::new(b"secret".to_vec()).basic_auth("alice", "s3cr:et"),
        );
        let port = server.port();
        let none = get(port, "/secret.img", &[]);
        assert_eq!(none.status, 401);
        assert_eq!(none.header("WWW-Authenticate"), Some("Basic realm=\"test\""));
        assert_ne!(none.body, b"secret");
        let wrong = get(port, "/secret.img", &[("Authorization", &basic("alice", "nope"))]);
        assert_eq!(wrong.status, 401);
        assert_eq!(wrong.header("WWW-Authenticate"), Some("Basic realm=\"test\""));
        let garbage = get(port, "/secret.img", &[("Authorization", "Basic !!!")]);
        assert_eq!(garbage.status, 401);
        let right = get(
            port,
            "/secret.img",
            &[("Authorization", &basic("alice", "s3cr:et"))],
        );
        assert_eq!(right.status, 200);
        assert_eq!(right.body, b"secret");
        assert_eq!(server.hits("/secret.img"), 4);
        let sent = server.last_request_headers("/secret.img");
        assert!(
            sent.iter()
                .any(|(n, v)| n == "Authorization" && *v == basic("alice", "s3cr:et")),
            "{sent:?}"
        );
    }

    #[test]
    fn if_none_match_gives_304() {
        let server = SourceServer::start();
        server.serve(
            "/disk.raw",
            Served::new(vec![7; 1000])
                .etag("\"abc\"")
                .last_modified("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        let port = server.port();
        let same = get(port, "/disk.raw", &[("If-None-Match", "\"abc\"")]);
        assert_eq!(same.status, 304);
        assert!(same.body.is_empty());
        assert_eq!(same.header("ETag"), Some("\"abc\""));
        let listed = get(port, "/disk.raw", &[("If-None-Match", "\"x\", W/\"abc\"")]);
        assert_eq!(listed.status, 304);
        let other = get(port, "/disk.raw", &[("If-None-Match", "\"other\"")]);
        assert_eq!(other.status, 200);
        assert_eq!(other.body, vec![7; 1000]);
        let since = get(
            port,
            "/disk.raw",
            &[("If-Modified-Since", "Thu, 22 Oct 2015 00:00:00 GMT")],
        );
        assert_eq!(since.status, 304);
        let older = get(
            port,
            "/disk.raw",
            &[("If-Modified-Since", "Tue, 20 Oct 2015 00:00:00 GMT")],
        );
        assert_eq!(older.status, 200);
        assert_eq!(server.hits("/disk.raw"), 5);
    }

    #[test]
    fn redirects() {
        let server = SourceServer::start();
        server.serve("/new.img", Served::new(b"moved".to_vec()));
        server.redirect("/old.img", "/new.img");
        server.redirect("/abs.img", &server.url("/new.img"));
        server.redirect("/loop-a", "/loop-b");
        server.redirect("/loop-b", "/loop-a");
        let port = server.port();
        let old = get(port, "/old.img", &[]);
        assert_eq!(old.status, 302);
        assert_eq!(old.header("Location"), Some("/new.img"));
        let abs = get(port, "/abs.img", &[]);
        assert_eq!(abs.status, 302);
        assert_eq!(abs.header("Location"), Some(server.url("/new.img").as_str()));
        assert_eq!(get(port, "/loop-a", &[]).header("Location"), Some("/loop-b"));
        assert_eq!(get(port, "/loop-b", &[]).header("Location"), Some("/loop-a"));
        assert_eq!(get(port, "/new.img", &[]).body, b"moved");
        assert_eq!(server.hits("/old.img"), 1);
        assert_eq!(server.hits("/new.img"), 1);
        // Replacing a redirect with a file.
        server.serve("/old.img", Served::new(b"back".to_vec()));
        assert_eq!(get(port, "/old.img", &[]).body, b"back");
    }

    #[test]
    fn truncated_transfer_closes_early() {
        let server = SourceServer::start();
        let body: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        server.serve("/big.img", Served::new(body.clone()));
        server.truncate("/big.img", 100_000);
        for _ in 0..2 {
            let reply = get(server.port(), "/big.img", &[]);
            assert_eq!(reply.status, 200);
            assert_eq!(reply.content_length(), 300_000);
            assert_eq!(reply.body.len(), 100_000);
            assert_eq!(reply.body, body[..100_000]);
        }
        // Serving the file again clears the truncation.
        server.serve("/big.img", Served::new(body.clone()));
        assert_eq!(get(server.port(), "/big.img", &[]).body, body);
    }

    #[test]
    fn counts_hits_per_path() {
        let server = SourceServer::start();
        server.serve("a.img", Served::new(b"a".to_vec()));
        assert_eq!(server.hits("/a.img"), 0);
        for _ in 0..3 {
            assert_eq!(get(server.port(), "/a.img", &[("X-Try", "yes")]).status, 200);
        }
        // HEAD is not a download.
        request(server.port(), "HEAD", "/a.img", &[]);
        assert_eq!(server.hits("a.img"), 3);
        assert_eq!(server.hits("/b.img"), 0);
        let headers = server.last_request_headers("/a.img");
        assert!(
            headers
                .iter()
                .any(|(n, v)| n == "Host" && v.starts_with("127.0.0.1:"))
        );
        assert!(server.last_request_headers("/b.img").is_empty());
    }

    #[test]
    fn five_mib_body_arrives_intact() {
        let server = SourceServer::start();
        let mut body = vec![0u8; 5 * 1024 * 1024];
        rand::rng().fill_bytes(&mut body);
        server.serve("/5mib.raw", Served::new(body.clone()));
        let reply = get(server.port(), "/5mib.raw", &[]);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_length(), body.len());
        assert!(reply.body == body, "the 5 MiB body differs");
    }

    #[test]
    fn start_in_ports_picks_a_free_port_in_the_range() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        let first = busy.min(u16::MAX - 100);
        let server = SourceServer::start_in_ports(first..=first + 100);
        assert!((first..=first + 100).contains(&server.port()));
        assert_ne!(server.port(), busy);
        server.serve("/x", Served::new(b"x".to_vec()));
        assert_eq!(get(server.port(), "/x", &[]).body, b"x");
    }

    #[test]
    #[should_panic(expected = "no free port")]
    fn start_in_ports_panics_when_all_are_taken() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = taken.local_addr().unwrap().port();
        SourceServer::start_in_ports(busy..=busy);
    }

    #[test]
    fn head_has_headers_but_no_body() {
        let server = SourceServer::start();
        server.serve(
            "/disk.img",
            Served::new(vec![1; 4096]).content_type("application/x-raw-disk-image"),
        );
        let reply = request(server.port(), "HEAD", "/disk.img", &[]);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.content_length(), 4096);
        assert_eq!(reply.header("Content-Type"), Some("application/x-raw-disk-image"));
        assert!(reply.body.is_empty());
        assert_eq!(request(server.port(), "HEAD", "/missing", &[]).body, b"");
    }

    #[test]
    fn other_methods_and_bodies_are_405() {
        let server = SourceServer::start();
        server.serve("/f", Served::new(b"f".to_vec()));
        let post = send(
            server.port(),
            "POST /f HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi",
        );
        assert_eq!(post.status, 405);
        assert_eq!(post.header("Allow"), Some("GET, HEAD"));
    }

    #[test]
    fn dropping_stops_the_server() {
        let server = SourceServer::start();
        let marker = uuid::Uuid::new_v4().to_string();
        server.serve("/marker", Served::new(marker.clone().into_bytes()));
        let port = server.port();
        drop(server);
        // Tests run in parallel: another test's server may get the freed port at once, so
        // "stopped" means this server no longer answers there, not that nothing does.
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = stream.write_all(b"GET /marker HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            assert!(
                !answer.contains(&marker),
                "the dropped server still serves: {answer}"
            );
        }
    }

    #[test]
    fn compressed_variants_decompress_to_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("disk.raw");
        let mut data = vec![0u8; 256 * 1024];
        rand::rng().fill_bytes(&mut data[..64 * 1024]);
        std::fs::write(&raw, &data).unwrap();
        let variants = compressed_variants(&raw);
        let formats: Vec<&str> = variants.iter().map(|(f, _)| *f).collect();
        assert_eq!(formats, ["gzip", "bzip2", "xz", "zstd"]);
        for (format, path) in &variants {
            let ext = path.extension().unwrap().to_str().unwrap();
            let (tool, expected_ext) = match *format {
                "gzip" => ("gzip", "gz"),
                "bzip2" => ("bzip2", "bz2"),
                "xz" => ("xz", "xz"),
                _ => ("zstd", "zst"),
            };
            assert_eq!(ext, expected_ext);
            assert_eq!(path.parent(), raw.parent());
            let packed = std::fs::read(path).unwrap();
            assert!(!packed.is_empty() && packed != data, "{format} file looks wrong");
            let out = Command::new(tool)
                .args(["-d", "-c"])
                .arg(path)
                .output()
                .unwrap_or_else(|e| panic!("run {tool}: {e}"));
            assert!(out.status.success(), "{tool} -dc {}", path.display());
            assert!(out.stdout == data, "{format} does not round-trip");
        }
    }
}
