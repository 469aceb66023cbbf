//! Keystone sessions (one token per cloud, renewed once on 401; `authenticate` hands one to
//! the runtime) and each operation's Glance endpoint and time budget.

use super::*;

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
    /// authenticates again once.
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
            if response.status == 401 && attempt == 0 {
                self.sessions.remove(&op.session_key);
                continue;
            }
            return Ok(response);
        }
        unreachable!("the loop returns on its second attempt")
    }

    pub(super) fn token(&mut self, op: &Op) -> Result<String, Error> {
        if !self.sessions.contains_key(&op.session_key) {
            self.renew(op.cloud, &op.session_key, op.remaining()?)?;
        }
        Ok(self.sessions[&op.session_key].token.clone())
    }

    /// `lifecycle.authenticate`: the session for `cloud`: its `session` refreshed when
    /// Keystone still accepts the token (a token check: no new token, no password hashing),
    /// otherwise a new token from the credentials. Later calls with the same credentials in
    /// this instance use it too.
    pub fn authenticate(&mut self, cloud: &Cloud) -> Result<Session, Error> {
        self.transport.retries = cloud.retries.unwrap_or(DEFAULT_RETRIES);
        let session_key = session_key(cloud);
        let checked = match &cloud.session {
            Some(session) => self.check_token(cloud, &session.token)?,
            None => None,
        };
        let session = match checked {
            Some(session) => session,
            None => self.log_in(cloud, AUTHENTICATE_TIMEOUT)?,
        };
        self.sessions.insert(session_key, session.clone());
        Ok(session)
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
                Some(session) => session.clone(),
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

    /// Authenticates again with the credentials (the token was refused).
    fn renew(&mut self, cloud: &Cloud, session_key: &str, timeout: Duration) -> Result<(), Error> {
        let session = self.log_in(cloud, timeout)?;
        self.sessions.insert(session_key.to_string(), session);
        Ok(())
    }

    /// A new token from the cloud's credentials.
    fn log_in(&mut self, cloud: &Cloud, timeout: Duration) -> Result<Session, Error> {
        let url = keystone::tokens_url(&cloud.auth_url);
        let request = Request::new("POST", &url)
            .timeout(timeout)
            .json(keystone::token_request(cloud));
        let response = self.transport.send(request)?;
        if response.status == 401 {
            return Err(Error::AuthFailed(format!(
                "Keystone at {} rejected the credentials: {} (check OS_USERNAME/OS_PASSWORD, the \
                 user and project domains, or the application credential)",
                cloud.auth_url,
                response.message()
            )));
        }
        expect(&response, "POST", &url, &[201])?;
        let token = response
            .header("x-subject-token")
            .ok_or_else(|| Error::AuthFailed(format!("Keystone at {} returned no token", cloud.auth_url)))?
            .to_string();
        session_of(cloud, token, &response)
    }

    /// The session of `token` when Keystone still accepts it (`GET /v3/auth/tokens`, the
    /// token checking itself); `None` when it does not.
    fn check_token(&mut self, cloud: &Cloud, token: &str) -> Result<Option<Session>, Error> {
        let url = keystone::tokens_url(&cloud.auth_url);
        let request = Request::new("GET", &url)
            .timeout(AUTHENTICATE_TIMEOUT)
            .header("x-auth-token", token.to_string())
            .header("x-subject-token", token.to_string());
        match self.transport.send(request) {
            Ok(response) if response.status == 200 => {
                session_of(cloud, token.to_string(), &response).map(Some)
            }
            // Expired, revoked, or a Keystone that will not say: the credentials decide.
            Ok(_) | Err(_) => Ok(None),
        }
    }
}

/// The session a token response describes.
fn session_of(cloud: &Cloud, token: String, response: &Response) -> Result<Session, Error> {
    let body = response.json().map_err(Error::Transport)?;
    keystone::session(token, &body)
        .map_err(|e| Error::NotFound(format!("Keystone at {}: {e}", cloud.auth_url)))
}

/// A transport failure; a request cut short by the operation's deadline is its timeout.
pub(super) fn transport_error(op: &Op, err: TransportError) -> Error {
    match err {
        TransportError::TimedOut { .. } if op.remaining().is_err() => op.timed_out(),
        other => other.into(),
    }
}

/// Identifies a cloud's credentials and scope without keeping secrets in the key.
fn session_key(cloud: &Cloud) -> String {
    let identity = json!([
        keystone::tokens_url(&cloud.auth_url),
        keystone::token_request(cloud)
    ]);
    hex::encode(Sha256::digest(identity.to_string().as_bytes()))
}
