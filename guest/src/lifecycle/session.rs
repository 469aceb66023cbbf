//! Keystone sessions (one per cloud, renewed once on 401 — or, with `session-only`
//! credentials, handed back to the runtime as `unauthorized`; `authenticate` hands one to the
//! runtime) and each operation's Glance endpoint and time budget. The Keystone requests and
//! answers are the shared `openstack_image_keystone` crate's, as the bundled host's are.

use openstack_image_documents::records::{CloudRecord, SessionRecord};
use openstack_image_keystone::{self as keystone, LoginError, LoginStep};

use super::*;
use crate::types::{ApiError, Credentials, UnauthorizedInfo};

/// How long `authenticate` may take (Keystone's password hashing included).
const AUTHENTICATE_TIMEOUT: Duration = Duration::from_secs(120);

/// One operation in progress: the cloud, the Glance endpoint it talks to, and its time
/// budget. Every request it sends may take at most the time left.
pub(crate) struct Op<'a> {
    pub(super) cloud: &'a Cloud,
    pub(super) session_key: String,
    pub(super) endpoint: String,
    pub(super) operation: &'static str,
    pub(super) started: Instant,
    pub(super) limit: Duration,
    pub(super) last_status: String,
}

impl Op<'_> {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    /// Time left, or the timeout error naming the operation and the last status seen.
    pub(super) fn remaining(&self) -> Result<Duration, Error> {
        self.limit
            .checked_sub(self.started.elapsed())
            .filter(|left| !left.is_zero())
            .ok_or_else(|| self.timed_out())
    }

    pub(super) fn timed_out(&self) -> Error {
        Error::Timeout(TimeoutInfo {
            operation: self.operation.into(),
            last_status: if self.last_status.is_empty() {
                "unknown".into()
            } else {
                self.last_status.clone()
            },
            elapsed_seconds: self.started.elapsed().as_secs(),
        })
    }
}

impl<T: Transport> Provider<T> {
    /// Sends a JSON request with the cloud's token within the operation's time; on 401
    /// authenticates again once (with `session-only` credentials: ends with `unauthorized`).
    pub(crate) fn call(
        &mut self,
        op: &mut Op,
        method: &'static str,
        url: &str,
        body: Option<Value>,
    ) -> Result<Response, Error> {
        for attempt in 0..2 {
            let token = self.token(op)?;
            let mut request = Request::new(method, url)
                .header("x-auth-token", token)
                .timeout(op.remaining()?);
            if let Some(body) = &body {
                if method == "PATCH" {
                    request = request.header("content-type", patch::CONTENT_TYPE);
                }
                request = request.json(body.clone());
            }
            let response = self.transport.send(request).map_err(|e| transport_error(op, e))?;
            if response.status == 401 {
                if let Some(refused) = refused_session(op.cloud, method, url, &response) {
                    return Err(refused);
                }
                if attempt == 0 {
                    self.sessions.remove(&op.session_key);
                    continue;
                }
            }
            return Ok(response);
        }
        unreachable!("the loop returns on its second attempt")
    }

    pub(super) fn token(&mut self, op: &Op) -> Result<String, Error> {
        if !self.sessions.contains_key(&op.session_key) {
            let session = self.log_in(op.cloud, op.remaining()?)?;
            self.sessions.insert(op.session_key.clone(), session);
        }
        Ok(self.sessions[&op.session_key].token.clone())
    }

    /// `lifecycle.authenticate`: a new session for `cloud` from its credentials. Later calls
    /// with the same credentials in this instance use it too.
    pub fn authenticate(&mut self, cloud: &Cloud) -> Result<Session, Error> {
        self.transport.retries = cloud.retries.unwrap_or(DEFAULT_RETRIES);
        let session = self.log_in(cloud, AUTHENTICATE_TIMEOUT)?;
        self.sessions.insert(session_key(cloud), session.clone());
        Ok(session.into())
    }

    /// Starts an operation against the Glance endpoint for `region` (or the cloud's),
    /// authenticating if needed.
    pub(crate) fn begin<'a>(
        &mut self,
        cloud: &'a Cloud,
        region: Option<&str>,
        operation: &'static str,
        timeout_seconds: u64,
    ) -> Result<Op<'a>, Error> {
        let started = Instant::now();
        let limit = Duration::from_secs(timeout_seconds);
        self.transport.retries = cloud.retries.unwrap_or(DEFAULT_RETRIES);
        let session_key = session_key(cloud);
        if !self.sessions.contains_key(&session_key) {
            // A session the runtime kept from `authenticate` (this instance's or another's)
            // saves a Keystone round trip (and its password hashing); a 401 later falls back
            // to the credentials.
            let session = match &cloud.session {
                Some(session) => SessionRecord::from(session.clone()),
                None => self.log_in(cloud, limit)?,
            };
            self.sessions.insert(session_key.clone(), session);
        }
        let session = &self.sessions[&session_key];
        let region = region.or(cloud.region.as_deref());
        let interface = cloud.interface.as_deref().unwrap_or("public");
        let endpoint = keystone::image_endpoint(&session.image_endpoints, region, interface)
            .map_err(|e| Error::NotFound(format!("Keystone at {}: {e}", cloud.auth_url)))?;
        Ok(Op {
            cloud,
            session_key,
            endpoint,
            operation,
            started,
            limit,
            last_status: String::new(),
        })
    }

    /// A new session from the cloud's credentials.
    fn log_in(&mut self, cloud: &Cloud, timeout: Duration) -> Result<SessionRecord, Error> {
        let record = CloudRecord::from(cloud.clone());
        let mut step = keystone::login_request(&record).ok_or_else(|| {
            Error::AuthFailed(format!(
                "no session to use for Keystone at {} and no credentials to log in with (session-only): the runtime must pass the session in cloud.session",
                cloud.auth_url
            ))
        })?;
        loop {
            let mut request = Request::new(step.method, &step.url).timeout(timeout);
            for (name, value) in &step.headers {
                request = request.header(name, value.clone());
            }
            if let Some(body) = &step.body {
                request = request.json(body.clone());
            }
            let response = self.transport.send(request)?;
            let answer = keystone::read_login_answer(
                &record,
                &step,
                response.status,
                response.header("x-subject-token"),
                &response.body,
            );
            match answer.map_err(|e| login_error(&step, e))? {
                LoginStep::Session(session) => return Ok(session),
                LoginStep::Then(next) => step = next,
            }
        }
    }
}

/// The contract's error for a login that gave no session.
fn login_error(request: &keystone::LoginRequest, err: LoginError) -> Error {
    match err {
        LoginError::Rejected(message) => Error::AuthFailed(message),
        LoginError::Incomplete(message) => Error::NotFound(message),
        LoginError::Unexpected { status, message } => Error::Api(ApiError {
            method: request.method.to_string(),
            url: request.url.clone(),
            status,
            message,
        }),
    }
}

/// With `session-only` credentials, a 401 is the session's refusal, for the runtime to act
/// on (`unauthorized`); with credentials the caller logs in again (`None`).
pub(super) fn refused_session(cloud: &Cloud, method: &str, url: &str, response: &Response) -> Option<Error> {
    matches!(cloud.credentials, Credentials::SessionOnly).then(|| {
        Error::Unauthorized(UnauthorizedInfo {
            message: format!(
                "{method} {url}: the cloud refused the session's token ({}); the runtime logs in \
                 again and repeats the call",
                response.message()
            ),
            image_id: None,
        })
    })
}

/// A transport failure; a request cut short by the operation's deadline is its timeout.
pub(super) fn transport_error(op: &Op, err: TransportError) -> Error {
    match err {
        TransportError::TimedOut { .. } if op.remaining().is_err() => op.timed_out(),
        other => other.into(),
    }
}

/// Identifies a cloud's credentials and scope without keeping secrets in the key. With
/// `session-only` credentials the session given is the identity: a new one replaces the old.
fn session_key(cloud: &Cloud) -> String {
    let record = CloudRecord::from(cloud.clone());
    let identity = match keystone::login_request(&record) {
        Some(login) => json!([login.url, login.headers, login.body]),
        None => json!([
            keystone::tokens_url(&cloud.auth_url),
            cloud.session.as_ref().map(|s| s.token.clone())
        ]),
    };
    hex::encode(Sha256::digest(identity.to_string().as_bytes()))
}
