//! The guest's one HTTP transport, over wasi:http/outgoing-handler.

use std::io::Read;
use std::time::Duration;

use wasi::clocks::monotonic_clock;
use wasi::io::poll;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::{OutputStream, StreamError};

use crate::http::{Body, MAX_RESPONSE_BYTES, Request, Response, Transport, TransportError};

/// Largest single write into a request body (the host's per-write limit).
const MAX_WRITE: u64 = 1024 * 1024;
/// Read size for response bodies.
const READ_CHUNK: u64 = 64 * 1024;

/// Sends requests through the runtime's wasi:http implementation.
pub struct WasiHttp;

impl Transport for WasiHttp {
    fn send(&mut self, request: Request<'_>) -> Result<Response, TransportError> {
        let url = request.url.clone();
        let failed = |reason: String| TransportError::Failed {
            url: url.clone(),
            reason,
        };
        let (scheme, authority, path) = split_url(&url).ok_or_else(|| failed("not an http(s) URL".into()))?;

        let headers = Fields::new();
        let append = |name: &str, value: &str| {
            headers
                .append(name, value.as_bytes())
                .map_err(|e| failed(format!("header {name}: {e:?}")))
        };
        for (name, value) in &request.headers {
            append(name, value)?;
        }
        let mut json_bytes = Vec::new();
        match &request.body {
            Body::Empty => {}
            Body::Json(value) => {
                json_bytes = serde_json::to_vec(value).expect("JSON values serialise");
                append("content-length", &json_bytes.len().to_string())?;
            }
            Body::Stream { length, .. } => append("content-length", &length.to_string())?,
        }

        let outgoing = OutgoingRequest::new(headers);
        outgoing
            .set_method(&method(request.method))
            .and_then(|()| outgoing.set_scheme(Some(&scheme)))
            .and_then(|()| outgoing.set_authority(Some(authority)))
            .and_then(|()| outgoing.set_path_with_query(Some(path)))
            .map_err(|()| failed("the runtime rejected the request line".into()))?;
        let body = outgoing.body().expect("a new request's body is available once");

        // Hand the request over first, then stream the body into it.
        let options = request.timeout.map(|timeout| {
            let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
            let options = RequestOptions::new();
            // A runtime that cannot enforce a timeout leaves it unset; the operation's own
            // deadline still applies between requests.
            let _ = options.set_connect_timeout(Some(nanos));
            let _ = options.set_first_byte_timeout(Some(nanos));
            let _ = options.set_between_bytes_timeout(Some(nanos));
            options
        });
        let future = outgoing_handler::handle(outgoing, options).map_err(|code| error(&url, code))?;
        let write_result = {
            let stream = body.write().expect("a new body's stream is available once");
            let deadline = request.timeout;
            let result = match request.body {
                Body::Empty => Ok(()),
                Body::Json(_) => write_from(&stream, &mut &json_bytes[..], json_bytes.len() as u64, deadline),
                Body::Stream { source, length } => write_from(&stream, source, length, deadline),
            };
            drop(stream);
            result
        };
        let finish = OutgoingBody::finish(body, None);

        let response = loop {
            if let Some(result) = future.get() {
                break result;
            }
            future.subscribe().block();
        };
        let response = match response {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => return Err(error(&url, code)),
            Err(()) => return Err(failed("the response was already taken".into())),
        };
        // A server may answer early (e.g. 413) and stop reading: its answer says more than
        // our write error, so only report the write error with a success status.
        let status = response.status();
        if (200..300).contains(&status) {
            write_result.map_err(failed)?;
            finish.map_err(|code| error(&url, code))?;
        }
        let headers = response
            .headers()
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect();
        let incoming = response
            .consume()
            .map_err(|()| failed("the response body was already taken".into()))?;
        let body = read_body(&incoming).map_err(failed)?;
        drop(IncomingBody::finish(incoming));
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// Copies `length` bytes from `source` in chunks as large as the stream accepts. A server
/// that stops reading for longer than `stall_limit` fails the write.
fn write_from(
    stream: &OutputStream,
    source: &mut dyn Read,
    length: u64,
    stall_limit: Option<Duration>,
) -> Result<(), String> {
    let mut buffer = vec![0u8; MAX_WRITE.min(length.max(1)) as usize];
    let mut remaining = length;
    while remaining > 0 {
        let permit = stream.check_write().map_err(stream_error)?;
        if permit == 0 {
            let ready = stream.subscribe();
            match stall_limit {
                Some(limit) => {
                    let nanos = u64::try_from(limit.as_nanos()).unwrap_or(u64::MAX);
                    let timer = monotonic_clock::subscribe_duration(nanos);
                    if poll::poll(&[&ready, &timer]) == [1] {
                        return Err(format!(
                            "the server stopped reading the body for {}s",
                            limit.as_secs()
                        ));
                    }
                }
                None => ready.block(),
            }
            continue;
        }
        let want = permit.min(MAX_WRITE).min(remaining) as usize;
        let read = source
            .read(&mut buffer[..want])
            .map_err(|e| format!("reading the image data failed: {e}"))?;
        if read == 0 {
            return Err(format!("the data ended {remaining} bytes early"));
        }
        stream.write(&buffer[..read]).map_err(stream_error)?;
        remaining -= read as u64;
    }
    // Once the last byte is handed over the runtime may close the stream (the body is
    // complete by its Content-Length): a close here is not a failure.
    match stream.blocking_flush() {
        Ok(()) | Err(StreamError::Closed) => Ok(()),
        Err(err) => Err(stream_error(err)),
    }
}

fn read_body(incoming: &IncomingBody) -> Result<Vec<u8>, String> {
    let stream = incoming
        .stream()
        .map_err(|()| "the response body stream was already taken".to_string())?;
    let mut body = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => {
                body.extend_from_slice(&chunk);
                if body.len() > MAX_RESPONSE_BYTES {
                    return Err(format!("the response is larger than {MAX_RESPONSE_BYTES} bytes"));
                }
            }
            Err(StreamError::Closed) => return Ok(body),
            Err(err) => return Err(stream_error(err)),
        }
    }
}

fn stream_error(err: StreamError) -> String {
    match err {
        StreamError::Closed => "the connection closed".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

fn error(url: &str, code: ErrorCode) -> TransportError {
    let reason = match code {
        ErrorCode::HttpRequestDenied => return TransportError::Denied { url: url.to_string() },
        ErrorCode::ConnectionRefused => {
            "connection refused: is the service running and the URL right?".into()
        }
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            return TransportError::TimedOut { url: url.to_string() };
        }
        ErrorCode::ConnectionTerminated
        | ErrorCode::HttpProtocolError
        | ErrorCode::HttpResponseIncomplete => "the connection broke before a complete answer arrived".into(),
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => "the host name does not resolve".into(),
        ErrorCode::TlsCertificateError => "the server's TLS certificate is not trusted".into(),
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => "the TLS handshake failed".into(),
        other => format!("{other:?}"),
    };
    TransportError::Failed {
        url: url.to_string(),
        reason,
    }
}

fn method(name: &str) -> Method {
    match name {
        "GET" => Method::Get,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "PATCH" => Method::Patch,
        "DELETE" => Method::Delete,
        "HEAD" => Method::Head,
        other => Method::Other(other.to_string()),
    }
}

fn split_url(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    Some((scheme, authority, path))
}
