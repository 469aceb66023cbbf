//! The Keystone token of a run, shared by every component instance (each image gets its own
//! instance, and each would otherwise authenticate again — for a password, that is
//! Keystone's slow password hashing every time), and, when asked for, kept on disk for the
//! next run (`--token-cache`, like openstacksdk's `cache: {auth: true}`).
//!
//! The host sees the token as the token response passes through its network policy; it never
//! asks Keystone for one itself.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::bindings::{Cloud, Credentials, Session};

/// A token is offered to an instance only while it has at least this long to live.
const IN_RUN_MARGIN: Duration = Duration::from_secs(60);
/// A token from an earlier run is used only while it has at least this long to live, so a
/// long upload does not outlive it.
const CACHED_MARGIN: Duration = Duration::from_secs(5 * 60);

/// A token Keystone issued and its token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeystoneSession {
    pub token: String,
    /// The token response's JSON body (the catalog).
    pub body: String,
}

impl KeystoneSession {
    /// When the token expires, from the response's `token.expires_at` (RFC 3339).
    fn expires_at(&self) -> Option<SystemTime> {
        let body: Value = serde_json::from_str(&self.body).ok()?;
        let text = body.pointer("/token/expires_at")?.as_str()?;
        let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        let since_epoch = Duration::try_from(at - time::OffsetDateTime::UNIX_EPOCH).ok()?;
        Some(SystemTime::UNIX_EPOCH + since_epoch)
    }

    /// Whether the token still has `margin` to live (a token without an expiry never does:
    /// it cannot be judged, so it is not reused).
    fn lives_for(&self, margin: Duration) -> bool {
        self.expires_at().is_some_and(|at| {
            at.duration_since(SystemTime::now())
                .is_ok_and(|left| left >= margin)
        })
    }
}

/// Longest an instance waits for another one's token before authenticating itself.
const WAIT_FOR_TOKEN: Duration = Duration::from_secs(30);

/// The run's token, shared by every instance's network policy.
#[derive(Clone, Default)]
pub struct SessionSlot {
    current: Arc<Mutex<Option<KeystoneSession>>>,
    cache: Option<Arc<TokenCache>>,
    /// Set while one instance is getting the run's first token, so the others wait for it
    /// instead of each asking Keystone at the same moment (a parallel apply's start).
    claimed: Arc<AtomicBool>,
    changed: Arc<Notify>,
}

/// The right to get the run's token: the holder's call authenticates; dropping it (when the
/// call ends) lets waiting instances go on, with the token or without.
pub struct Claim(SessionSlot);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.claimed.store(false, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl SessionSlot {
    /// A slot that starts with the cached token of an earlier run, when `cache` is given
    /// and holds one that is still good, and writes every new token back to it.
    pub fn new(cache: Option<TokenCache>) -> SessionSlot {
        let loaded = cache
            .as_ref()
            .and_then(TokenCache::load)
            .filter(|s| s.lives_for(CACHED_MARGIN));
        SessionSlot {
            current: Arc::new(Mutex::new(loaded)),
            cache: cache.map(Arc::new),
            ..SessionSlot::default()
        }
    }

    /// Before a call that talks to the cloud: the token to start with, or — when there is
    /// none yet — a claim to get it (the caller authenticates), waiting while another
    /// instance is doing just that. After [`WAIT_FOR_TOKEN`] the caller goes ahead alone.
    pub async fn acquire(&self) -> (Option<Session>, Option<Claim>) {
        let deadline = tokio::time::Instant::now() + WAIT_FOR_TOKEN;
        loop {
            let changed = self.changed.notified();
            if let Some(session) = self.offer() {
                return (Some(session), None);
            }
            if !self.claimed.swap(true, Ordering::SeqCst) {
                return (None, Some(Claim(self.clone())));
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return (self.offer(), None);
            }
        }
    }

    /// Records a token the cloud just issued (a 201 answer to a token request).
    pub fn issued(&self, token: &str, body: &[u8]) {
        let Ok(body) = std::str::from_utf8(body) else {
            return;
        };
        let session = KeystoneSession {
            token: token.to_string(),
            body: body.to_string(),
        };
        if let Some(cache) = &self.cache
            && let Err(e) = cache.save(&session)
        {
            tracing::warn!("cannot keep the token for the next run: {e:#}");
        }
        *self.current.lock().expect("session lock") = Some(session);
        self.changed.notify_waiters();
    }

    /// The token response body, if a token is held (to admit its catalog's endpoints).
    pub fn body(&self) -> Option<String> {
        self.current
            .lock()
            .expect("session lock")
            .as_ref()
            .map(|s| s.body.clone())
    }

    /// The token to hand an instance, while it has some life left.
    pub fn offer(&self) -> Option<Session> {
        let current = self.current.lock().expect("session lock");
        let session = current.as_ref().filter(|s| s.lives_for(IN_RUN_MARGIN))?;
        Some(Session {
            token: session.token.clone(),
            token_body: session.body.clone(),
        })
    }
}

/// Tokens kept between runs: one file per cloud identity (auth URL, user or application
/// credential, project scope — never the secret itself), mode 0600 in a 0700 directory.
pub struct TokenCache {
    path: PathBuf,
}

impl TokenCache {
    /// The cache file for `cloud` in `dir`; `None` for token credentials (nothing to save).
    pub fn for_cloud(dir: &Path, cloud: &Cloud) -> Option<TokenCache> {
        let who = match &cloud.credentials {
            Credentials::Password(p) => json!({
                "password": [p.user_id, p.username, p.user_domain_id, p.user_domain_name],
            }),
            Credentials::ApplicationCredential(a) => json!({
                "application_credential": [a.id, a.name, a.user_id, a.username, a.user_domain_id, a.user_domain_name],
            }),
            Credentials::Token(_) => return None,
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

    /// The cached token, if the file exists and reads as one (anything else is ignored).
    fn load(&self) -> Option<KeystoneSession> {
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
    fn save(&self, session: &KeystoneSession) -> anyhow::Result<()> {
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
    use crate::bindings::{PasswordAuth, ProjectScope};

    fn body(expires_in: i64) -> String {
        let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(expires_in);
        let text = at.format(&time::format_description::well_known::Rfc3339).unwrap();
        json!({ "token": { "expires_at": text, "catalog": [] } }).to_string()
    }

    fn cloud(user: &str, password: &str) -> Cloud {
        Cloud {
            auth_url: "http://k:5000/v3".into(),
            credentials: Credentials::Password(PasswordAuth {
                user_id: None,
                username: Some(user.into()),
                password: password.into(),
                user_domain_id: None,
                user_domain_name: Some("Default".into()),
            }),
            scope: ProjectScope {
                project_id: None,
                project_name: Some("demo".into()),
                project_domain_id: None,
                project_domain_name: Some("Default".into()),
            },
            region: None,
            interface: None,
            retries: None,
            session: None,
        }
    }

    #[test]
    fn tokens_are_offered_while_they_live() {
        let slot = SessionSlot::new(None);
        assert!(slot.offer().is_none());
        slot.issued("t1", body(3600).as_bytes());
        assert_eq!(slot.offer().unwrap().token, "t1");
        slot.issued("t2", body(30).as_bytes());
        assert!(slot.offer().is_none(), "30 s left is too little");
        slot.issued("t3", br#"{"token": {}}"#);
        assert!(slot.offer().is_none(), "no expiry, no reuse");
        // Keystone's own format, with microseconds.
        let keystone = KeystoneSession {
            token: "t".into(),
            body: r#"{"token": {"expires_at": "2999-01-01T00:00:00.000000Z"}}"#.into(),
        };
        assert!(keystone.lives_for(CACHED_MARGIN));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_wait_for_the_first_token_instead_of_each_authenticating() {
        let slot = SessionSlot::new(None);
        let (none, claim) = slot.acquire().await;
        assert!(
            none.is_none() && claim.is_some(),
            "the first caller authenticates"
        );
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let slot = slot.clone();
                tokio::spawn(async move { slot.acquire().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(waiters.iter().all(|w| !w.is_finished()), "the others wait");
        slot.issued("t", body(3600).as_bytes());
        for waiter in waiters {
            let (session, claim) = waiter.await.unwrap();
            assert_eq!(session.unwrap().token, "t");
            assert!(claim.is_none());
        }
        drop(claim);

        // A claim given up without a token passes to the next caller.
        let slot = SessionSlot::new(None);
        let (_, first) = slot.acquire().await;
        let next = tokio::spawn({
            let slot = slot.clone();
            async move { slot.acquire().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        let (session, claim) = next.await.unwrap();
        assert!(session.is_none() && claim.is_some());
    }

    #[test]
    fn the_cache_is_private_keyed_without_secrets_and_survives_runs() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        let cache = TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")).unwrap();
        let same = TokenCache::for_cloud(&tokens, &cloud("alice", "other")).unwrap();
        let other = TokenCache::for_cloud(&tokens, &cloud("bob", "s3cret")).unwrap();
        assert_eq!(cache.path, same.path, "the secret is not part of the key");
        assert_ne!(cache.path, other.path);
        assert!(!cache.path.to_string_lossy().contains("alice"));

        SessionSlot::new(Some(cache)).issued("tok", body(3600).as_bytes());
        let file = TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret"))
            .unwrap()
            .path;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);

        let next_run = SessionSlot::new(TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")));
        assert_eq!(next_run.offer().unwrap().token, "tok");
        assert!(
            SessionSlot::new(TokenCache::for_cloud(&tokens, &cloud("bob", "x")))
                .offer()
                .is_none()
        );

        // A token about to expire is not picked up by the next run.
        SessionSlot::new(Some(
            TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")).unwrap(),
        ))
        .issued("old", body(120).as_bytes());
        assert!(
            SessionSlot::new(TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")))
                .offer()
                .is_none()
        );
        // Garbage in the file is ignored.
        std::fs::write(&file, "not json").unwrap();
        assert!(
            SessionSlot::new(TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")))
                .offer()
                .is_none()
        );
        assert!(
            TokenCache::for_cloud(
                &tokens,
                &Cloud {
                    credentials: Credentials::Token("t".into()),
                    ..cloud("alice", "s3cret")
                }
            )
            .is_none()
        );
    }
}
