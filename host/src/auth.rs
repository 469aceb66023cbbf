//! The authentication capability: the host logs in to Keystone itself — password,
//! application credential or a given token, as clouds.yaml's auth types say — with the shared
//! Keystone logic (`openstack_image_keystone`, the component's too) and its own transport, and
//! keeps every secret. A component gets `session-only` credentials and the run's session
//! (token, expiry, the catalog's image endpoints), and only the catalogs received here widen
//! the network grants.
//!
//! Sessions are kept the way keystoneauth keeps them: one serves every instance of a run (one
//! login even with `--parallel 8`) and, with `--token-cache`, later runs too, used as it is —
//! no validation request — until two minutes before it expires. A call whose session the cloud
//! refused (`unauthorized`) gets one new login for the whole run, whichever instance asks
//! first, and the cache is rewritten.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::json;
use sha2::{Digest, Sha256};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions};

use openstack_image_documents::SessionRecord;
use openstack_image_documents::failure::Unanswered;
use openstack_image_documents::records::CloudRecord;
use openstack_image_keystone::{self as keystone, LoginError, LoginRequest, LoginStep};

use crate::bindings::openstack::image::types::ApiError;
use crate::bindings::{Cloud, Credentials, GuestError};
use crate::network::{CatalogHosts, NetworkPolicy};
use crate::transport::Transport;

/// Largest Keystone answer read (catalogs of big clouds are some hundred KiB).
const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// How long a login may take (Keystone's password hashing included).
const LOGIN_TIMEOUT: Duration = Duration::from_secs(120);

/// The run's Keystone sessions: logs in when there is none (or it is about to expire) and
/// when the cloud refused it.
pub struct Authenticator {
    /// The cloud with its secrets, which never leave the host.
    cloud: CloudRecord,
    /// The auth host alone: where the host's own Keystone requests may go.
    keystone: NetworkPolicy,
    /// The run's catalog grant, widened by every session got here.
    catalog: CatalogHosts,
    cache: Option<TokenCache>,
    current: Mutex<Option<SessionRecord>>,
    /// Held while logging in, so callers that need a session at the same moment wait for
    /// one login instead of each logging in.
    login: tokio::sync::Mutex<()>,
}

impl Authenticator {
    /// The authenticator for `cloud`, its Keystone requests sent through `transport`, its
    /// catalogs admitted to `catalog`; with `cache`, it starts from the session an earlier
    /// run kept there (while usable) and keeps every new one there.
    pub fn new(
        cloud: &Cloud,
        transport: Transport,
        catalog: CatalogHosts,
        cache: Option<TokenCache>,
    ) -> anyhow::Result<Authenticator> {
        let keystone = NetworkPolicy::new(&cloud.auth_url, &[], CatalogHosts::default(), transport)
            .map_err(|e| anyhow::anyhow!("the auth URL: {e}"))?;
        let kept = cache
            .as_ref()
            .and_then(TokenCache::load)
            .filter(|session| keystone::usable(session, SystemTime::now()));
        if let Some(session) = &kept {
            tracing::debug!("using the session kept by an earlier run");
            catalog.admit(session);
        }
        Ok(Authenticator {
            cloud: CloudRecord::from(cloud.clone()),
            keystone,
            catalog,
            cache,
            current: Mutex::new(kept),
            login: tokio::sync::Mutex::new(()),
        })
    }

    /// The run's session: the current one while it is usable, else one new login (which
    /// every caller waiting meanwhile shares).
    pub async fn session(&self) -> Result<SessionRecord, GuestError> {
        if let Some(session) = self.usable() {
            return Ok(session);
        }
        let _login = self.login.lock().await;
        if let Some(session) = self.usable() {
            return Ok(session);
        }
        self.log_in().await
    }

    /// The cloud refused the session with `token`: a new session, from one new login unless
    /// another caller already replaced that one.
    pub async fn refused(&self, token: &str) -> Result<SessionRecord, GuestError> {
        let _login = self.login.lock().await;
        if let Some(session) = self.usable()
            && session.token != token
        {
            return Ok(session);
        }
        tracing::info!("the cloud refused the session's token; logging in again");
        self.log_in().await
    }

    /// `cloud` as a component gets it: no credentials, and `session`.
    pub fn for_component(cloud: &Cloud, session: &SessionRecord) -> Cloud {
        Cloud {
            credentials: Credentials::SessionOnly,
            session: Some(session.clone().into()),
            ..cloud.clone()
        }
    }

    fn usable(&self) -> Option<SessionRecord> {
        self.current
            .lock()
            .expect("session lock")
            .clone()
            .filter(|session| keystone::usable(session, SystemTime::now()))
    }

    async fn log_in(&self) -> Result<SessionRecord, GuestError> {
        let mut step = keystone::login_request(&self.cloud).ok_or_else(|| {
            GuestError::AuthFailed(format!(
                "no credentials for Keystone at {}: set OS_USERNAME and OS_PASSWORD, an \
                 application credential, or OS_TOKEN",
                self.cloud.auth_url
            ))
        })?;
        let session = loop {
            let (status, subject_token, body) = self.send(&step).await?;
            match keystone::read_login_answer(&self.cloud, &step, status, subject_token.as_deref(), &body)
                .map_err(|e| login_error(&step, e))?
            {
                LoginStep::Session(session) => break session,
                LoginStep::Then(next) => step = next,
            }
        };
        tracing::info!(auth_url = %self.cloud.auth_url, "logged in to Keystone");
        self.catalog.admit(&session);
        if let Some(cache) = &self.cache
            && let Err(e) = cache.save(&session)
        {
            tracing::warn!("cannot keep the token for the next run: {e:#}");
        }
        *self.current.lock().expect("session lock") = Some(session.clone());
        Ok(session)
    }

    /// Sends one login request; its status, `X-Subject-Token` and body.
    async fn send(&self, step: &LoginRequest) -> Result<(u16, Option<String>, Bytes), GuestError> {
        let unreachable = |e: &dyn std::fmt::Display| {
            GuestError::Transport(format!("cannot reach Keystone at {}: {e}", self.cloud.auth_url))
        };
        let uri: http::Uri = step.url.parse().map_err(|e| unreachable(&e))?;
        let mut request = http::Request::builder().method(step.method).uri(&uri);
        if let Some(authority) = uri.authority() {
            request = request.header(http::header::HOST, authority.as_str());
        }
        for (name, value) in &step.headers {
            request = request.header(*name, value);
        }
        let body = match &step.body {
            Some(body) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(body.to_string())
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body).map_err(|never| match never {}).boxed_unsync())
            .map_err(|e| unreachable(&e))?;
        let options = RequestOptions {
            connect_timeout: Some(Duration::from_secs(30)),
            first_byte_timeout: Some(LOGIN_TIMEOUT),
            between_bytes_timeout: Some(Duration::from_secs(30)),
        };
        let response = self
            .keystone
            .send(request, Some(options))
            .await
            .map_err(|e| unreachable(&reason(&e)))?;
        let status = response.status().as_u16();
        let subject_token = response
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| unreachable(&e))?
            .to_bytes();
        Ok((status, subject_token, body))
    }
}

/// Why a Keystone request got no answer, in the words the component uses for its own.
fn reason(err: &HttpError) -> String {
    let unanswered = match err {
        HttpError::ConnectionRefused => Unanswered::Refused,
        HttpError::DnsError { .. } | HttpError::DestinationNotFound => Unanswered::NotResolved,
        HttpError::TlsCertificateError => Unanswered::CertificateNotTrusted,
        HttpError::DestinationIpProhibited => Unanswered::BlockedAddress,
        HttpError::TlsProtocolError | HttpError::TlsAlertReceived { .. } => Unanswered::TlsHandshake,
        HttpError::ConnectionTerminated
        | HttpError::HttpProtocolError
        | HttpError::HttpResponseIncomplete => Unanswered::Broken,
        other => return other.to_string(),
    };
    unanswered.reason().to_string()
}

/// The contract's error for a login that gave no session (as the component words it).
fn login_error(request: &LoginRequest, err: LoginError) -> GuestError {
    match err {
        LoginError::Rejected(message) => GuestError::AuthFailed(message),
        LoginError::Incomplete(message) => GuestError::NotFound(message),
        LoginError::Unexpected { status, message } => GuestError::Api(ApiError {
            method: request.method.to_string(),
            url: request.url.clone(),
            status,
            message,
        }),
    }
}

/// Sessions kept between runs: one file per cloud identity (auth URL, user or application
/// credential, project scope — never the secret itself), mode 0600 in a 0700 directory.
pub struct TokenCache {
    path: PathBuf,
}

impl TokenCache {
    /// The cache file for `cloud` in `dir`; `None` for a given token or no credentials
    /// (nothing to log in with, so nothing worth keeping).
    pub fn for_cloud(dir: &Path, cloud: &Cloud) -> Option<TokenCache> {
        let who = match &cloud.credentials {
            Credentials::Password(p) => json!({
                "password": [p.user_id, p.username, p.user_domain_id, p.user_domain_name],
            }),
            Credentials::ApplicationCredential(a) => json!({
                "application_credential": [a.id, a.name, a.user_id, a.username, a.user_domain_id, a.user_domain_name],
            }),
            Credentials::Token(_) | Credentials::SessionOnly => return None,
        };
        let scope = &cloud.scope;
        let identity = json!([
            cloud.auth_url.trim_end_matches('/'),
            who,
            [
                scope.project_id,
                scope.project_name,
                scope.project_domain_id,
                scope.project_domain_name
            ],
        ]);
        let key = hex::encode(Sha256::digest(identity.to_string().as_bytes()));
        Some(TokenCache {
            path: dir.join(format!("{}.json", &key[..32])),
        })
    }

    /// The cached session, if the file exists and reads as one (anything else, such as an
    /// older release's file, is ignored).
    fn load(&self) -> Option<SessionRecord> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        match serde_json::from_str(&text) {
            Ok(session) => Some(session),
            Err(e) => {
                tracing::debug!("ignoring the unreadable token cache {}: {e}", self.path.display());
                None
            }
        }
    }

    /// Writes `session` atomically, readable by this user only.
    fn save(&self, session: &SessionRecord) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

        let dir = self.path.parent().expect("the cache file is in a directory");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        // NamedTempFile is created with mode 0600.
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        serde_json::to_writer(&mut file, session)?;
        file.write_all(b"\n")?;
        file.as_file().sync_all()?;
        file.persist(&self.path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use openstack_image_documents::fixtures;

    /// A Keystone on 127.0.0.1 that answers every login with a new token (`t1`, `t2`, …)
    /// valid for `lifetime`, after `delay`; counts the requests.
    struct FakeKeystone {
        addr: SocketAddr,
        requests: Arc<AtomicUsize>,
    }

    impl FakeKeystone {
        async fn start(lifetime: time::Duration, delay: Duration) -> FakeKeystone {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let requests = Arc::new(AtomicUsize::new(0));
            let counter = requests.clone();
            tokio::spawn(async move {
                loop {
                    let (mut stream, _) = listener.accept().await.unwrap();
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                        let length: usize = text
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .map_or(0, |v| v.trim().parse().unwrap());
                        let mut body = vec![0u8; length];
                        stream.read_exact(&mut body).await.unwrap();
                        tokio::time::sleep(delay).await;
                        let expires = (time::OffsetDateTime::now_utc() + lifetime)
                            .format(&time::format_description::well_known::Rfc3339)
                            .unwrap();
                        let answer = json!({"token": {"expires_at": expires, "catalog": [
                            {"type": "image", "endpoints": [
                                {"interface": "public", "region_id": "RegionOne", "url": "http://127.0.0.1:9292"}]}]}})
                        .to_string();
                        let response = format!(
                            "HTTP/1.1 201 Created\r\nX-Subject-Token: t{n}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                            answer.len()
                        );
                        let _ = stream.write_all(response.as_bytes()).await;
                    });
                }
            });
            FakeKeystone { addr, requests }
        }

        fn cloud(&self) -> Cloud {
            fixtures::cloud(&format!("http://{}/v3", self.addr)).into()
        }

        fn requests(&self) -> usize {
            self.requests.load(Ordering::SeqCst)
        }
    }

    fn authenticator(cloud: &Cloud, catalog: CatalogHosts, cache: Option<TokenCache>) -> Arc<Authenticator> {
        let transport = Transport::new(&Default::default()).unwrap();
        Arc::new(Authenticator::new(cloud, transport, catalog, cache).unwrap())
    }

    #[tokio::test]
    async fn callers_at_the_same_moment_share_one_login_and_its_catalog() {
        let keystone = FakeKeystone::start(time::Duration::hours(1), Duration::from_millis(200)).await;
        let catalog = CatalogHosts::default();
        let auth = authenticator(&keystone.cloud(), catalog.clone(), None);
        let glance: http::Uri = "http://127.0.0.1:9292/v2/images".parse().unwrap();
        let policy = NetworkPolicy::new(
            &keystone.cloud().auth_url,
            &[],
            catalog,
            Transport::new(&Default::default()).unwrap(),
        )
        .unwrap();
        assert!(!policy.admits(&glance), "no catalog yet");
        let sessions: Vec<_> = (0..8)
            .map(|_| {
                let auth = auth.clone();
                tokio::spawn(async move { auth.session().await.unwrap().token })
            })
            .collect();
        for session in sessions {
            assert_eq!(session.await.unwrap(), "t1");
        }
        assert_eq!(keystone.requests(), 1);
        assert!(policy.admits(&glance), "the catalog the host received");
        assert_eq!(auth.session().await.unwrap().token, "t1", "used as it is");
        assert_eq!(keystone.requests(), 1);
    }

    #[tokio::test]
    async fn a_refused_session_costs_one_login_however_many_callers_saw_it() {
        let keystone = FakeKeystone::start(time::Duration::hours(1), Duration::from_millis(100)).await;
        let auth = authenticator(&keystone.cloud(), CatalogHosts::default(), None);
        let refused = auth.session().await.unwrap().token;
        let renewed: Vec<_> = (0..8)
            .map(|_| {
                let (auth, refused) = (auth.clone(), refused.clone());
                tokio::spawn(async move { auth.refused(&refused).await.unwrap().token })
            })
            .collect();
        for session in renewed {
            assert_eq!(session.await.unwrap(), "t2");
        }
        assert_eq!(keystone.requests(), 2);
    }

    #[tokio::test]
    async fn a_session_about_to_expire_is_replaced() {
        let keystone = FakeKeystone::start(time::Duration::seconds(100), Duration::ZERO).await;
        let auth = authenticator(&keystone.cloud(), CatalogHosts::default(), None);
        assert_eq!(auth.session().await.unwrap().token, "t1");
        assert_eq!(
            auth.session().await.unwrap().token,
            "t2",
            "100 s left is within the margin"
        );
    }

    #[tokio::test]
    async fn a_kept_session_serves_the_next_run_without_any_keystone_request() {
        let keystone = FakeKeystone::start(time::Duration::hours(1), Duration::ZERO).await;
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        let cloud = keystone.cloud();
        let first = authenticator(
            &cloud,
            CatalogHosts::default(),
            TokenCache::for_cloud(&tokens, &cloud),
        );
        assert_eq!(first.session().await.unwrap().token, "t1");
        let catalog = CatalogHosts::default();
        let next_run = authenticator(&cloud, catalog.clone(), TokenCache::for_cloud(&tokens, &cloud));
        assert_eq!(next_run.session().await.unwrap().token, "t1");
        assert_eq!(keystone.requests(), 1);
        let policy = NetworkPolicy::new(
            &cloud.auth_url,
            &[],
            catalog,
            Transport::new(&Default::default()).unwrap(),
        )
        .unwrap();
        assert!(policy.admits(&"http://127.0.0.1:9292/v2".parse().unwrap()));
        // Refused (revoked): one login, kept for the run after.
        assert_eq!(next_run.refused("t1").await.unwrap().token, "t2");
        let third = authenticator(
            &cloud,
            CatalogHosts::default(),
            TokenCache::for_cloud(&tokens, &cloud),
        );
        assert_eq!(third.session().await.unwrap().token, "t2");
        assert_eq!(keystone.requests(), 2);
    }

    #[tokio::test]
    async fn the_component_gets_the_session_and_no_secret() {
        let cloud: Cloud = fixtures::cloud("http://127.0.0.1:5000/v3").into();
        let session = SessionRecord {
            token: "t".into(),
            expires_at: None,
            image_endpoints: Vec::new(),
            project_id: None,
        };
        let given = Authenticator::for_component(&cloud, &session);
        assert!(matches!(given.credentials, Credentials::SessionOnly));
        assert_eq!(given.session.unwrap().token, "t");
        assert_eq!(given.scope.project_name, cloud.scope.project_name);
    }

    fn cloud(user: &str, password: &str) -> Cloud {
        Cloud {
            credentials: fixtures::password(user, password).into(),
            ..fixtures::cloud("http://k:5000/v3").into()
        }
    }

    #[test]
    fn the_cache_is_private_keyed_without_secrets() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        let cache = TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")).unwrap();
        let same = TokenCache::for_cloud(&tokens, &cloud("alice", "other")).unwrap();
        let other = TokenCache::for_cloud(&tokens, &cloud("bob", "s3cret")).unwrap();
        assert_eq!(cache.path, same.path, "the secret is not part of the key");
        assert_ne!(cache.path, other.path);
        assert!(!cache.path.to_string_lossy().contains("alice"));
        let session = SessionRecord {
            token: "tok".into(),
            expires_at: Some("2999-01-01T00:00:00Z".into()),
            image_endpoints: Vec::new(),
            project_id: None,
        };
        cache.save(&session).unwrap();
        assert_eq!(
            std::fs::metadata(&cache.path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(same.load().unwrap(), session);
        // Garbage in the file, or an older release's file, is ignored.
        for text in ["not json", r#"{"token": "t", "body": "{}"}"#] {
            std::fs::write(&cache.path, text).unwrap();
            assert!(cache.load().is_none());
        }
        let token = Cloud {
            credentials: Credentials::Token("t".into()),
            ..cloud("alice", "s3cret")
        };
        assert!(TokenCache::for_cloud(&tokens, &token).is_none());
    }
}
