//! The Keystone session of a run, shared by every component instance (each image gets its
//! own instance, and each would otherwise authenticate again — for a password, that is
//! Keystone's slow password hashing every time), and, when asked for, kept on disk for the
//! next run (`--token-cache`, like openstacksdk's `cache: {auth: true}`).
//!
//! Sessions come from the component's `authenticate` export: the host never talks to
//! Keystone and never reads its answers; it keeps what `authenticate` returned and hands it
//! to every later call in `cloud.session`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use openstack_image_documents::SessionRecord;

use crate::bindings::{Cloud, Credentials, Session};

/// A token is offered to an instance only while it has at least this long to live.
const IN_RUN_MARGIN: Duration = Duration::from_secs(60);
/// A token from an earlier run is used only while it has at least this long to live, so a
/// long upload does not outlive it.
const CACHED_MARGIN: Duration = Duration::from_secs(5 * 60);

/// When a session's token expires (`expires_at`, RFC 3339).
fn expires_at(session: &SessionRecord) -> Option<SystemTime> {
    let text = session.expires_at.as_deref()?;
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let since_epoch = Duration::try_from(at - time::OffsetDateTime::UNIX_EPOCH).ok()?;
    Some(SystemTime::UNIX_EPOCH + since_epoch)
}

/// Whether the session's token still has `margin` to live (a token without an expiry never
/// does: it cannot be judged, so it is not reused).
fn lives_for(session: &SessionRecord, margin: Duration) -> bool {
    expires_at(session).is_some_and(|at| {
        at.duration_since(SystemTime::now())
            .is_ok_and(|left| left >= margin)
    })
}

/// Longest an instance waits for another one's token before authenticating itself.
const WAIT_FOR_TOKEN: Duration = Duration::from_secs(30);

/// The run's session, shared by every instance's network policy.
#[derive(Clone, Default)]
pub struct SessionSlot {
    /// The session an `authenticate` of this run returned.
    current: Arc<Mutex<Option<SessionRecord>>>,
    /// A session an earlier run kept: handed to the first `authenticate`, which checks it with
    /// Keystone instead of logging in again.
    kept: Option<Session>,
    cache: Option<Arc<TokenCache>>,
    /// Set while one instance is getting the run's first session, so the others wait for it
    /// instead of each asking Keystone at the same moment (a parallel apply's start).
    claimed: Arc<AtomicBool>,
    changed: Arc<Notify>,
}

/// The right to get the run's session: the holder authenticates; dropping it (when the call
/// ends) lets waiting instances go on, with the session or without.
pub struct Claim(SessionSlot);

impl Drop for Claim {
    fn drop(&mut self) {
        self.0.claimed.store(false, Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

impl SessionSlot {
    /// A slot that keeps every session `authenticate` returns in `cache`, when given, and
    /// whose first `authenticate` checks the session an earlier run kept there (if it is
    /// still good for a while) before logging in.
    pub fn new(cache: Option<TokenCache>) -> SessionSlot {
        let kept = cache
            .as_ref()
            .and_then(TokenCache::load)
            .filter(|s| lives_for(s, CACHED_MARGIN))
            .map(Session::from);
        SessionSlot {
            kept,
            cache: cache.map(Arc::new),
            ..SessionSlot::default()
        }
    }

    /// Before a call that talks to the cloud: the session to start with, or — when there is
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

    /// The session an earlier run kept, for `authenticate` to check (none once this run has
    /// one of its own).
    pub fn kept(&self) -> Option<Session> {
        match *self.current.lock().expect("session lock") {
            Some(_) => None,
            None => self.kept.clone(),
        }
    }

    /// Records the session an `authenticate` returned.
    pub fn issued(&self, session: &Session) {
        let session = SessionRecord::from(session.clone());
        if let Some(cache) = &self.cache
            && let Err(e) = cache.save(&session)
        {
            tracing::warn!("cannot keep the token for the next run: {e:#}");
        }
        *self.current.lock().expect("session lock") = Some(session);
        self.changed.notify_waiters();
    }

    /// The session this run holds, whatever its age (its endpoints stay admitted).
    pub fn current(&self) -> Option<Session> {
        self.current
            .lock()
            .expect("session lock")
            .clone()
            .map(Session::from)
    }

    /// The session to hand an instance, while its token has some life left.
    pub fn offer(&self) -> Option<Session> {
        let current = self.current.lock().expect("session lock");
        current
            .as_ref()
            .filter(|s| lives_for(s, IN_RUN_MARGIN))
            .cloned()
            .map(Session::from)
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
    use std::pin::Pin;
    use std::task::{Context, Waker};

    use crate::bindings::Endpoint;
    use openstack_image_documents::fixtures;

    /// A session whose token expires in `expires_in` seconds (none: no expiry given).
    fn session(token: &str, expires_in: Option<i64>) -> Session {
        let at = expires_in.map(|seconds| {
            (time::OffsetDateTime::now_utc() + time::Duration::seconds(seconds))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        });
        Session {
            token: token.into(),
            expires_at: at,
            image_endpoints: vec![Endpoint {
                url: "http://127.0.0.1:9292".into(),
                region: Some("RegionOne".into()),
                interface: "public".into(),
            }],
        }
    }

    /// Polls `future` once: whether it is still waiting.
    fn waits<F: Future>(future: Pin<&mut F>) -> bool {
        future.poll(&mut Context::from_waker(Waker::noop())).is_pending()
    }

    fn cloud(user: &str, password: &str) -> Cloud {
        Cloud {
            credentials: fixtures::password(user, password).into(),
            ..fixtures::cloud("http://k:5000/v3").into()
        }
    }

    #[test]
    fn tokens_are_offered_while_they_live() {
        let slot = SessionSlot::new(None);
        assert!(slot.offer().is_none());
        slot.issued(&session("t1", Some(3600)));
        assert_eq!(slot.offer().unwrap().token, "t1");
        slot.issued(&session("t2", Some(30)));
        assert!(slot.offer().is_none(), "30 s left is too little");
        assert_eq!(slot.current().unwrap().token, "t2", "its endpoints stay admitted");
        slot.issued(&session("t3", None));
        assert!(slot.offer().is_none(), "no expiry, no reuse");
        // Keystone's own format, with microseconds.
        let keystone = SessionRecord {
            expires_at: Some("2999-01-01T00:00:00.000000Z".into()),
            ..session("t", None).into()
        };
        assert!(lives_for(&keystone, CACHED_MARGIN));
    }

    #[tokio::test]
    async fn instances_wait_for_the_first_token_instead_of_each_authenticating() {
        let slot = SessionSlot::new(None);
        let (none, claim) = slot.acquire().await;
        assert!(
            none.is_none() && claim.is_some(),
            "the first caller authenticates"
        );
        let mut waiters: Vec<_> = (0..3).map(|_| Box::pin(slot.acquire())).collect();
        for waiter in &mut waiters {
            assert!(waits(waiter.as_mut()), "the others wait");
        }
        slot.issued(&session("t", Some(3600)));
        for waiter in waiters {
            let (session, claim) = waiter.await;
            assert_eq!(session.unwrap().token, "t");
            assert!(claim.is_none());
        }
        drop(claim);

        // A claim given up without a token passes to the next caller.
        let slot = SessionSlot::new(None);
        let (_, first) = slot.acquire().await;
        let mut next = Box::pin(slot.acquire());
        assert!(waits(next.as_mut()));
        drop(first);
        let (session, claim) = next.await;
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

        SessionSlot::new(Some(cache)).issued(&session("tok", Some(3600)));
        let file = TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret"))
            .unwrap()
            .path;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(&tokens).unwrap().permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);

        let next_run = SessionSlot::new(TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")));
        assert_eq!(next_run.kept().unwrap().token, "tok");
        assert!(
            next_run.offer().is_none(),
            "a kept token is checked before it is offered"
        );
        next_run.issued(&session("fresh", Some(3600)));
        assert!(next_run.kept().is_none(), "once this run has its own");
        assert!(
            SessionSlot::new(TokenCache::for_cloud(&tokens, &cloud("bob", "x")))
                .kept()
                .is_none()
        );

        // A token about to expire is not picked up by the next run.
        SessionSlot::new(Some(
            TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")).unwrap(),
        ))
        .issued(&session("old", Some(120)));
        assert!(
            SessionSlot::new(TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")))
                .kept()
                .is_none()
        );
        // Garbage in the file, or an older release's file, is ignored.
        for text in ["not json", r#"{"token": "t", "body": "{}"}"#] {
            std::fs::write(&file, text).unwrap();
            assert!(
                SessionSlot::new(TokenCache::for_cloud(&tokens, &cloud("alice", "s3cret")))
                    .kept()
                    .is_none()
            );
        }
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
