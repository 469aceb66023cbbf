//! The guest's one HTTP transport, over wasi:http/outgoing-handler.

use std::io::Read;
use std::time::Duration;

use openstack_image_documents::failure::Unanswered;
use wasi::clocks::monotonic_clock;
use wasi::io::poll;

use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::{InputStream, OutputStream, StreamError};

use crate::http::{Body, MAX_RESPONSE_BYTES, Request, Response, StreamedResponse, Transport, TransportError};

/// Largest single write into a request body of known length (the host's per-write limit).
const MAX_WRITE: u64 = 1024 * 1024;
/// Largest single write into a body of unknown length. Each write goes out as one chunk of
/// `Transfer-Encoding: chunked`, and servers cap chunk sizes: uwsgi's default
/// `chunked-input-limit` refuses chunks of about 1 MB and more (Glance answers 500).
const MAX_CHUNK: u64 = 64 * 1024;
/// Read size for response bodies.
const READ_CHUNK: u64 = 64 * 1024;

/// Sends requests through the runtime's wasi:http implementation.
pub struct WasiHttp;

impl Transport for WasiHttp {
    fn send(&mut self, request: Request<'_>) -> Result<Response, TransportError> {
        let url = request.url.clone();
        let mut opened = self.open(request)?;
        let mut body = Vec::new();
        let limit = MAX_RESPONSE_BYTES as u64 + 1;
        opened
            .body
            .by_ref()
            .take(limit)
            .read_to_end(&mut body)
            .map_err(|e| TransportError::Broken {
                url: url.clone(),
                reason: format!("reading the answer failed: {e}"),
            })?;
        if body.len() > MAX_RESPONSE_BYTES {
            return Err(TransportError::Failed {
                url,
                reason: format!("the answer is larger than {MAX_RESPONSE_BYTES} bytes"),
            });
        }
        Ok(Response {
            status: opened.status,
            headers: opened.headers,
            body,
        })
    }

    fn open(&mut self, request: Request<'_>) -> Result<StreamedResponse, TransportError> {
        let url = request.url.clone();
        let failed = |reason: String| TransportError::Failed {
            url: url.clone(),
            reason,
        };
        let (https, authority, path) =
            crate::http::request_target(&url).ok_or_else(|| failed("not an http(s) URL".into()))?;
        let scheme = if https { Scheme::Https } else { Scheme::Http };

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
            // A method that may carry a body says it has none: without a length the runtime
            // would send an empty chunked body, which Glance's actions refuse ("A body is
            // not expected with this request").
            Body::Empty if matches!(request.method, "POST" | "PUT" | "PATCH") => {
                append("content-length", "0")?
            }
            Body::Empty => {}
            Body::Json(value) => {
                json_bytes = serde_json::to_vec(value).expect("JSON values serialise");
                append("content-length", &json_bytes.len().to_string())?;
            }
            // Without a length the runtime sends the body chunked.
            Body::Stream {
                length: Some(length), ..
            } => append("content-length", &length.to_string())?,
            Body::Stream { length: None, .. } => {}
        }

        let outgoing = OutgoingRequest::new(headers);
        outgoing
            .set_method(&method(request.method))
            .and_then(|()| outgoing.set_scheme(Some(&scheme)))
            .and_then(|()| outgoing.set_authority(Some(&authority)))
            .and_then(|()| outgoing.set_path_with_query(Some(&path)))
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
                Body::Json(_) => write_from(
                    &stream,
                    &mut &json_bytes[..],
                    Some(json_bytes.len() as u64),
                    deadline,
                ),
                Body::Stream { source, length } => write_from(&stream, source, length, deadline),
            };
            drop(stream);
            result
        };
        // Only a completely written body is finished; dropping an unfinished one aborts the
        // request, so a body cut short (e.g. a failed source check) never completes upstream.
        let finish = match &write_result {
            Ok(()) => OutgoingBody::finish(body, None),
            Err(_) => {
                drop(body);
                Ok(())
            }
        };

        let response = loop {
            if let Some(result) = future.get() {
                break result;
            }
            future.subscribe().block();
        };
        let response = match response {
            Ok(Ok(response)) => response,
            Ok(Err(code)) => {
                return Err(match write_result {
                    Ok(()) => error(&url, code),
                    Err(reason) => TransportError::Broken { url, reason },
                });
            }
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
        let stream = incoming
            .stream()
            .map_err(|()| failed("the response body stream was already taken".into()))?;
        Ok(StreamedResponse {
            status,
            headers,
            body: Box::new(BodyReader {
                stream,
                _body: incoming,
                url,
            }),
        })
    }
}

/// A response body as a reader. Field order matters: the stream must drop before its body.
struct BodyReader {
    stream: InputStream,
    _body: IncomingBody,
    url: String,
}

impl Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = (buf.len() as u64).min(READ_CHUNK);
        match self.stream.blocking_read(want) {
            Ok(chunk) => {
                buf[..chunk.len()].copy_from_slice(&chunk);
                Ok(chunk.len())
            }
            Err(StreamError::Closed) => Ok(0),
            Err(err) => Err(std::io::Error::other(format!(
                "reading from {} failed: {}",
                self.url,
                stream_error(err)
            ))),
        }
    }
}

/// Copies `source` (exactly `length` bytes when known, else to its end) in chunks as large
/// as the stream accepts. A server that stops reading for longer than `stall_limit` fails
/// the write.
fn write_from(
    stream: &OutputStream,
    source: &mut dyn Read,
    length: Option<u64>,
    stall_limit: Option<Duration>,
) -> Result<(), String> {
    let most = match length {
        Some(length) => MAX_WRITE.min(length.max(1)),
        None => MAX_CHUNK,
    };
    let mut buffer = vec![0u8; most as usize];
    let mut remaining = length;
    while remaining != Some(0) {
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
        let want = permit.min(most).min(remaining.unwrap_or(u64::MAX)) as usize;
        let read = source.read(&mut buffer[..want]).map_err(|e| e.to_string())?;
        if read == 0 {
            match remaining {
                Some(left) => return Err(format!("the data ended {left} bytes early")),
                None => break,
            }
        }
        stream.write(&buffer[..read]).map_err(stream_error)?;
        remaining = remaining.map(|left| left - read as u64);
    }
    // Once the last byte is handed over the runtime may close the stream (the body is
    // complete by its Content-Length): a close here is not a failure.
    match stream.blocking_flush() {
        Ok(()) | Err(StreamError::Closed) => Ok(()),
        Err(err) => Err(stream_error(err)),
    }
}

fn stream_error(err: StreamError) -> String {
    match err {
        StreamError::Closed => "the connection broke while sending the data".to_string(),
        StreamError::LastOperationFailed(e) => e.to_debug_string(),
    }
}

fn error(url: &str, code: ErrorCode) -> TransportError {
    let broken = |failure: Unanswered| TransportError::Broken {
        url: url.to_string(),
        reason: failure.reason().into(),
    };
    let reason = match code {
        ErrorCode::HttpRequestDenied => return TransportError::Denied { url: url.to_string() },
        ErrorCode::ConnectionRefused => return broken(Unanswered::Refused),
        ErrorCode::ConnectionTimeout | ErrorCode::ConnectionReadTimeout | ErrorCode::HttpResponseTimeout => {
            return TransportError::TimedOut { url: url.to_string() };
        }
        ErrorCode::ConnectionTerminated
        | ErrorCode::HttpProtocolError
        | ErrorCode::HttpResponseIncomplete
        | ErrorCode::DestinationUnavailable
        | ErrorCode::ConnectionLimitReached => return broken(Unanswered::Broken),
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => Unanswered::NotResolved.reason().into(),
        ErrorCode::TlsCertificateError => Unanswered::CertificateNotTrusted.reason().into(),
        ErrorCode::DestinationIpProhibited => Unanswered::BlockedAddress.reason().into(),
        ErrorCode::TlsProtocolError | ErrorCode::TlsAlertReceived(_) => {
            Unanswered::TlsHandshake.reason().into()
        }
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
