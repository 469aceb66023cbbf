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

/// `host:port` (or `host`) of a URL, for messages.
pub fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    authority.rsplit_once('@').map_or(authority, |(_, host)| host)
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
