//! The one HTTP abstraction the lifecycle uses; `wasi_http` implements it over wasi:http.

use std::io::Read;
use std::time::Duration;

use serde_json::Value;

use crate::types::{ApiError, Error};

/// Largest response body the guest buffers (Keystone catalogs and image JSON are far smaller).
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// What a request carries.
pub enum Body<'a> {
    Empty,
    Json(Value),
    /// Bytes read from `source` and sent as they are read: exactly `length` when known,
    /// otherwise (sent chunked) until `source` ends.
    Stream {
        source: &'a mut dyn Read,
        length: Option<u64>,
    },
}

/// One outgoing request.
pub struct Request<'a> {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body<'a>,
    /// Longest wait for the connection, the answer, and between answer bytes.
    pub timeout: Option<Duration>,
}

impl<'a> Request<'a> {
    /// A request with no body.
    pub fn new(method: &'static str, url: impl Into<String>) -> Self {
        Request {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Body::Empty,
            timeout: None,
        }
    }

    /// Bounds how long the request may wait.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sets a JSON body (and its content type unless one is set).
    pub fn json(mut self, body: Value) -> Self {
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
        {
            self.headers.push(("content-type", "application/json".into()));
        }
        self.body = Body::Json(body);
        self
    }

    /// Streams `source` as an octet-stream body (`length` bytes, when known).
    pub fn stream(mut self, source: &'a mut dyn Read, length: Option<u64>) -> Self {
        self.headers
            .push(("content-type", "application/octet-stream".into()));
        self.body = Body::Stream { source, length };
        self
    }
}

/// A complete response.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// True for 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value, String> {
        serde_json::from_slice(&self.body).map_err(|e| format!("the answer is not valid JSON ({e})"))
    }

    /// The error message in a Keystone or Glance error body, or its text.
    pub fn message(&self) -> String {
        if let Ok(json) = serde_json::from_slice::<Value>(&self.body) {
            let found = ["/error/message", "/message", "/title"]
                .iter()
                .find_map(|p| json.pointer(p).and_then(Value::as_str));
            if let Some(message) = found {
                return message.trim().to_string();
            }
        }
        let text = String::from_utf8_lossy(&self.body);
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        text.chars().take(500).collect()
    }
}

/// A response whose body is read as it arrives.
pub struct StreamedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn Read>,
}

impl StreamedResponse {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Why a request got no response.
#[derive(Debug, Clone, PartialEq)]
pub enum TransportError {
    /// The runtime refused to let the request out.
    Denied { url: String },
    /// No connection or no answer within the request's timeout.
    TimedOut { url: String },
    /// The connection broke (refused, reset, cut short): worth another attempt.
    Broken { url: String, reason: String },
    /// TLS, name resolution or protocol failure: another attempt would fail the same way.
    Failed { url: String, reason: String },
}

impl From<TransportError> for Error {
    fn from(err: TransportError) -> Error {
        match err {
            TransportError::Denied { url } => Error::DeniedByHost(format!(
                "the runtime does not allow outgoing HTTP to {}; allow the host (for the \
                 openstack-image CLI: --allow-host {})",
                host_of(&url),
                host_of(&url)
            )),
            TransportError::TimedOut { url } => Error::Transport(format!("request to {url} timed out")),
            TransportError::Broken { url, reason } | TransportError::Failed { url, reason } => {
                Error::Transport(format!("request to {url} failed: {reason}"))
            }
        }
    }
}

fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Sends requests. Implemented over wasi:http in the component.
pub trait Transport {
    /// Sends `request` and reads the whole (bounded) answer.
    fn send(&mut self, request: Request<'_>) -> Result<Response, TransportError>;
    /// Sends `request` and returns as soon as the answer's head arrives.
    fn open(&mut self, request: Request<'_>) -> Result<StreamedResponse, TransportError>;
}

/// `host:port` (or `host` on the scheme's default port) of a URL, for messages; the text
/// itself when it is not a URL with a host.
pub fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => match (parsed.host_str(), parsed.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => url.to_string(),
        },
        Err(_) => url.to_string(),
    }
}

/// Whether two URLs share scheme, host and port, so credentials meant for one may go to
/// the other (a redirect to another host, or from https to http, gets none).
pub fn same_origin(a: &str, b: &str) -> bool {
    match (url::Url::parse(a), url::Url::parse(b)) {
        (Ok(a), Ok(b)) => a.origin().is_tuple() && a.origin() == b.origin(),
        _ => false,
    }
}

/// The parts of an http(s) URL a request line needs: whether it is https, the authority
/// (`host[:port]`, no user info) and the path with its query. Parsed as browsers do (the
/// WHATWG URL standard), so the request goes where `host_of` and `same_origin` say.
pub fn request_target(url: &str) -> Option<(bool, String, String)> {
    let parsed = url::Url::parse(url).ok()?;
    let https = match parsed.scheme() {
        "http" => false,
        "https" => true,
        _ => return None,
    };
    let host = parsed.host_str()?;
    let authority = match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let mut path = parsed.path().to_string();
    if let Some(query) = parsed.query() {
        path.push('?');
        path.push_str(query);
    }
    Some((https, authority, path))
}

/// Maps an unexpected HTTP answer to the contract's error, naming the call.
pub fn status_error(method: &str, url: &str, response: &Response) -> Error {
    let what = format!("{method} {url}: {}", response.message());
    match response.status {
        401 => Error::AuthFailed(what),
        403 => Error::Forbidden(what),
        404 => Error::NotFound(what),
        409 => Error::Conflict(what),
        413 => Error::Quota(what),
        status => Error::Api(ApiError {
            method: method.to_string(),
            url: url.to_string(),
            status,
            message: response.message(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: vec![("X-Subject-Token".into(), "t".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn finds_messages_in_keystone_glance_and_text_bodies() {
        assert_eq!(
            response(401, r#"{"error":{"message":"bad creds","code":401}}"#).message(),
            "bad creds"
        );
        assert_eq!(
            response(403, "403 Forbidden\n\n  Attribute 'x' is read-only.\n").message(),
            "403 Forbidden Attribute 'x' is read-only."
        );
        assert_eq!(response(201, "").header("x-subject-token"), Some("t"));
    }

    #[test]
    fn host_of_strips_scheme_path_and_userinfo() {
        assert_eq!(host_of("http://127.0.0.1:5000/v3/auth"), "127.0.0.1:5000");
        assert_eq!(host_of("https://u:p@example.org?x"), "example.org");
        assert_eq!(host_of("https://[::1]:8443/x"), "[::1]:8443");
        // A backslash ends the host, as in browsers: the host is evil.example.
        assert_eq!(host_of("https://evil.example\\@good.example/"), "evil.example");
        assert_eq!(host_of("not a url"), "not a url");
    }

    #[test]
    fn credentials_stay_with_their_origin() {
        assert!(same_origin(
            "https://h.example/a.img",
            "https://h.example:443/b.img?x"
        ));
        assert!(
            !same_origin("https://h.example/a.img", "http://h.example/a.img"),
            "no downgrade"
        );
        assert!(!same_origin(
            "https://h.example/a.img",
            "https://h.example:8443/a.img"
        ));
        assert!(!same_origin(
            "https://h.example/a",
            "https://evil.example\\@h.example/a"
        ));
        assert!(!same_origin("https://h.example/a", "https://h.example.evil/a"));
        assert!(!same_origin("nonsense", "nonsense"));
    }

    #[test]
    fn request_targets_drop_user_info_and_fragments() {
        assert_eq!(
            request_target("http://127.0.0.1:9292/v2/images/x/file?a=1#frag"),
            Some((false, "127.0.0.1:9292".into(), "/v2/images/x/file?a=1".into()))
        );
        assert_eq!(
            request_target("https://u:p@example.org"),
            Some((true, "example.org".into(), "/".into()))
        );
        assert_eq!(
            request_target("https://example.org/disk image.qcow2"),
            Some((true, "example.org".into(), "/disk%20image.qcow2".into()))
        );
        assert_eq!(request_target("ftp://example.org/x"), None);
        assert_eq!(request_target("/relative"), None);
    }

    #[test]
    fn maps_statuses_to_errors() {
        assert!(matches!(
            status_error("DELETE", "u", &response(403, "")),
            Error::Forbidden(_)
        ));
        assert!(matches!(
            status_error("GET", "u", &response(500, "boom")),
            Error::Api(ApiError { status: 500, .. })
        ));
    }
}
