//! Retries for requests that are safe to repeat: the body is empty or JSON (so it can be sent
//! again) and the failure is transient — a broken connection, 429, 502, 503 or 504. Waits grow
//! exponentially with full jitter, honour `Retry-After`, and stay within the request's own
//! time limit. Streamed bodies (uploads) are never repeated here: the lifecycle decides
//! whether an upload may start again.

use std::time::{Duration, Instant};

use crate::http::{Body, Request, Response, StreamedResponse, Transport, TransportError};
use crate::progress;

/// Retries after the first attempt unless the cloud says otherwise.
pub const DEFAULT_RETRIES: u32 = 4;
/// The first wait; each retry doubles it, up to `MAX_DELAY`.
const BASE_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(20);
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

/// HTTP statuses worth another attempt.
pub fn transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// A transport that repeats replayable requests after transient failures.
pub struct Retrying<T> {
    pub inner: T,
    /// Retries after the first attempt.
    pub retries: u32,
    /// Whether the last request needed more than one attempt (a POST answered 409 after a
    /// retry may be the first attempt's success).
    retried: bool,
}

impl<T> Retrying<T> {
    pub fn new(inner: T) -> Self {
        Retrying {
            inner,
            retries: DEFAULT_RETRIES,
            retried: false,
        }
    }

    /// True when the last request was sent more than once.
    pub fn retried(&self) -> bool {
        self.retried
    }
}

/// Why an attempt is worth repeating (and the server's `Retry-After`), or None when its
/// result is final.
type Transient = Option<(String, Option<Duration>)>;

impl<T: Transport> Retrying<T> {
    /// Runs `attempt` with copies of `request` until it succeeds, fails for good, or the
    /// retries or the request's time run out.
    fn repeat<R>(
        &mut self,
        request: Request<'_>,
        mut attempt: impl for<'x> FnMut(&mut T, Request<'x>) -> Result<R, TransportError>,
        transient: impl Fn(&Result<R, TransportError>) -> Transient,
    ) -> Result<R, TransportError> {
        self.retried = false;
        let Some(template) = replayable(&request) else {
            return attempt(&mut self.inner, request);
        };
        let deadline = request.timeout.map(|t| Instant::now() + t);
        let mut tries = 0u32;
        loop {
            let mut copy = replayable(&template).expect("a replayable request copies");
            if let Some(deadline) = deadline {
                copy.timeout = Some(deadline.saturating_duration_since(Instant::now()));
            }
            let result = attempt(&mut self.inner, copy);
            let Some((why, retry_after)) = transient(&result) else {
                return result;
            };
            if tries >= self.retries {
                return result;
            }
            let wait = delay(tries, retry_after, fastrand::f64());
            if deadline.is_some_and(|d| Instant::now() + wait >= d) {
                return result;
            }
            tries += 1;
            self.retried = true;
            progress::warn(format!(
                "{} {}: {why}; retrying in {:.1}s (retry {tries} of {})",
                template.method,
                template.url,
                wait.as_secs_f64(),
                self.retries
            ));
            std::thread::sleep(wait);
        }
    }
}

impl<T: Transport> Transport for Retrying<T> {
    fn send(&mut self, request: Request<'_>) -> Result<Response, TransportError> {
        self.repeat(
            request,
            |inner, r| inner.send(r),
            |result| transient(result.as_ref().map(|r| (r.status, r.header("retry-after")))),
        )
    }

    fn open(&mut self, request: Request<'_>) -> Result<StreamedResponse, TransportError> {
        self.repeat(
            request,
            |inner, r| inner.open(r),
            |result| transient(result.as_ref().map(|r| (r.status, r.header("retry-after")))),
        )
    }
}

fn transient(result: Result<(u16, Option<&str>), &TransportError>) -> Transient {
    match result {
        Ok((status, retry_after)) if transient_status(status) => {
            Some((format!("HTTP {status}"), retry_after.and_then(parse_retry_after)))
        }
        Err(TransportError::Broken { reason, .. }) => Some((reason.clone(), None)),
        _ => None,
    }
}

/// A copy of `request` when its body can be sent again.
fn replayable(request: &Request<'_>) -> Option<Request<'static>> {
    let body = match &request.body {
        Body::Empty => Body::Empty,
        Body::Json(value) => Body::Json(value.clone()),
        Body::Stream { .. } => return None,
    };
    Some(Request {
        method: request.method,
        url: request.url.clone(),
        headers: request.headers.clone(),
        body,
        timeout: request.timeout,
    })
}

/// The wait before retry number `tries + 1`: `Retry-After` when the server gave one
/// (capped), otherwise exponential backoff with full jitter (`jitter` in [0, 1)).
pub fn delay(tries: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    if let Some(wait) = retry_after {
        return wait.min(MAX_RETRY_AFTER);
    }
    let ceiling = BASE_DELAY.saturating_mul(1u32 << tries.min(16)).min(MAX_DELAY);
    // Full jitter, but never less than a tenth of the ceiling.
    ceiling.mul_f64(0.1 + 0.9 * jitter.clamp(0.0, 1.0))
}

/// `Retry-After` in seconds (the HTTP-date form falls back to backoff).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Answers from a script: a status (with optional Retry-After) or a broken connection.
    struct Scripted {
        answers: VecDeque<Result<(u16, Option<&'static str>), ()>>,
        sent: usize,
    }

    impl Transport for Scripted {
        fn send(&mut self, request: Request<'_>) -> Result<Response, TransportError> {
            self.sent += 1;
            match self.answers.pop_front().expect("a scripted answer") {
                Ok((status, retry_after)) => Ok(Response {
                    status,
                    headers: retry_after
                        .map(|v| vec![("Retry-After".to_string(), v.to_string())])
                        .unwrap_or_default(),
                    body: Vec::new(),
                }),
                Err(()) => Err(TransportError::Broken {
                    url: request.url,
                    reason: "connection reset".into(),
                }),
            }
        }

        fn open(&mut self, _request: Request<'_>) -> Result<StreamedResponse, TransportError> {
            unreachable!("not used")
        }
    }

    fn scripted(answers: &[Result<(u16, Option<&'static str>), ()>], retries: u32) -> Retrying<Scripted> {
        let mut t = Retrying::new(Scripted {
            answers: answers.iter().cloned().collect(),
            sent: 0,
        });
        t.retries = retries;
        t
    }

    #[test]
    fn transient_failures_are_retried_until_success() {
        let mut t = scripted(&[Err(()), Ok((503, Some("0"))), Ok((200, None))], 4);
        let response = t.send(Request::new("GET", "http://g/v2/images/x")).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(t.inner.sent, 3);
        assert!(t.retried());
    }

    #[test]
    fn the_budget_bounds_attempts_and_the_last_answer_is_returned() {
        let mut t = scripted(
            &[Ok((503, Some("0"))), Ok((502, Some("0"))), Ok((504, Some("0")))],
            2,
        );
        let response = t.send(Request::new("GET", "http://g/x")).unwrap();
        assert_eq!(response.status, 504);
        assert_eq!(t.inner.sent, 3);
    }

    #[test]
    fn final_answers_and_streams_are_not_repeated() {
        for status in [200, 400, 401, 404, 409, 500] {
            let mut t = scripted(&[Ok((status, None))], 4);
            assert_eq!(
                t.send(Request::new("DELETE", "http://g/x")).unwrap().status,
                status
            );
            assert_eq!(t.inner.sent, 1, "{status}");
            assert!(!t.retried());
        }
        let mut t = scripted(&[Ok((503, None))], 4);
        let mut data: &[u8] = b"bytes";
        let request = Request::new("PUT", "http://g/file").stream(&mut data, Some(5));
        assert_eq!(t.send(request).unwrap().status, 503);
        assert_eq!(t.inner.sent, 1, "an upload is never repeated here");
    }

    #[test]
    fn a_retry_that_would_pass_the_deadline_is_not_made() {
        let mut t = scripted(&[Ok((429, Some("30"))), Ok((200, None))], 4);
        let request = Request::new("GET", "http://g/x").timeout(Duration::from_secs(5));
        assert_eq!(t.send(request).unwrap().status, 429);
        assert_eq!(t.inner.sent, 1);
    }

    #[test]
    fn delays_grow_with_jitter_and_honour_retry_after() {
        assert_eq!(
            delay(0, Some(Duration::from_secs(7)), 0.5),
            Duration::from_secs(7)
        );
        assert_eq!(delay(0, Some(Duration::from_secs(9999)), 0.5), MAX_RETRY_AFTER);
        assert_eq!(delay(0, None, 1.0), BASE_DELAY);
        assert_eq!(delay(3, None, 1.0), BASE_DELAY * 8);
        assert_eq!(delay(30, None, 1.0), MAX_DELAY);
        assert!(delay(3, None, 0.0) >= BASE_DELAY * 8 / 10);
        assert_eq!(parse_retry_after(" 12 "), Some(Duration::from_secs(12)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
