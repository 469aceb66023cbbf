//! Keystone v3 as the component and the bundled host both speak it, written once: the login
//! request for each kind of credentials, the session a token answer gives (the token, its
//! expiry and its catalog's image endpoints), what a refused or incomplete answer means, when
//! a session is still good to use, and which of its endpoints serves an image call.
//!
//! No I/O: each side sends the requests with its own transport (wasi:http in the component,
//! the host's connection pools in the host) and hands the answer back here. Builds natively
//! and for wasm32-wasip2; pure-Rust dependencies only.

use std::time::{Duration, SystemTime};

use openstack_image_documents::records::{
    CloudRecord, CredentialsRecord, EndpointRecord, ProjectScopeRecord, SessionRecord,
};
use serde_json::{Map, Value, json};

/// A session is used as it is until this long before its token expires, then a new one is
/// got (keystoneauth's margin).
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(120);

/// `…/v3/auth/tokens` for an auth URL given with or without the `/v3` suffix.
pub fn tokens_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        format!("{base}/auth/tokens")
    } else {
        format!("{base}/v3/auth/tokens")
    }
}

/// One request of a login, for the caller's transport to send.
#[derive(Debug, Clone, PartialEq)]
pub struct LoginRequest {
    /// `GET` (a given token describing itself) or `POST` (a new token).
    pub method: &'static str,
    pub url: String,
    /// Headers besides the JSON content type of a body.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON body of a `POST`.
    pub body: Option<Value>,
}

/// What one login answer led to.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginStep {
    /// The session the credentials give.
    Session(SessionRecord),
    /// One more request is needed (a given token without a catalog, to be scoped).
    Then(LoginRequest),
}

/// Why a login gave no session. Each message says what failed and what to do.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginError {
    /// Keystone refused the credentials (HTTP 401): the user's to fix.
    Rejected(String),
    /// The answer lacks what a session needs: a token, or a catalog with an image service.
    Incomplete(String),
    /// Any other answer.
    Unexpected { status: u16, message: String },
}

impl std::fmt::Display for LoginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoginError::Rejected(m) | LoginError::Incomplete(m) => f.write_str(m),
            LoginError::Unexpected { status, message } => write!(f, "HTTP {status}: {message}"),
        }
    }
}

/// The first request of a login with `cloud`'s credentials; none for session-only
/// credentials, which have nothing to log in with. A given token is first asked to describe
/// itself (`GET`, no new token: a scoped token already carries its catalog); a password or an
/// application credential gets a new token (`POST`).
pub fn login_request(cloud: &CloudRecord) -> Option<LoginRequest> {
    let url = tokens_url(&cloud.auth_url);
    match &cloud.credentials {
        CredentialsRecord::SessionOnly => None,
        CredentialsRecord::Token(token) => Some(LoginRequest {
            method: "GET",
            url,
            headers: vec![
                ("x-auth-token", token.clone()),
                ("x-subject-token", token.clone()),
            ],
            body: None,
        }),
        _ => Some(new_token_request(cloud, url)),
    }
}

/// `POST …/auth/tokens` with the credentials, scoped to the cloud's project (application
/// credentials carry their own scope).
fn new_token_request(cloud: &CloudRecord, url: String) -> LoginRequest {
    let identity = match &cloud.credentials {
        CredentialsRecord::Password(p) => json!({
            "methods": ["password"],
            "password": {"user": user(&p.user_id, &p.username, &p.user_domain_id, &p.user_domain_name, Some(&p.password))},
        }),
        CredentialsRecord::ApplicationCredential(a) => {
            let mut credential = Map::new();
            match &a.id {
                Some(id) => {
                    credential.insert("id".into(), json!(id));
                }
                None => {
                    credential.insert("name".into(), json!(a.name));
                    credential.insert(
                        "user".into(),
                        user(
                            &a.user_id,
                            &a.username,
                            &a.user_domain_id,
                            &a.user_domain_name,
                            None,
                        ),
                    );
                }
            }
            credential.insert("secret".into(), json!(a.secret));
            json!({"methods": ["application_credential"], "application_credential": credential})
        }
        CredentialsRecord::Token(token) => json!({"methods": ["token"], "token": {"id": token}}),
        CredentialsRecord::SessionOnly => unreachable!("session-only credentials have no login"),
    };
    let mut auth = Map::new();
    auth.insert("identity".into(), identity);
    if !matches!(cloud.credentials, CredentialsRecord::ApplicationCredential(_))
        && let Some(scope) = project_scope(&cloud.scope)
    {
        auth.insert("scope".into(), scope);
    }
    LoginRequest {
        method: "POST",
        url,
        headers: Vec::new(),
        body: Some(json!({ "auth": auth })),
    }
}

fn user(
    id: &Option<String>,
    name: &Option<String>,
    domain_id: &Option<String>,
    domain_name: &Option<String>,
    password: Option<&str>,
) -> Value {
    let mut user = Map::new();
    match (id, name) {
        (Some(id), _) => {
            user.insert("id".into(), json!(id));
        }
        (None, name) => {
            user.insert("name".into(), json!(name));
            user.insert("domain".into(), domain(domain_id, domain_name));
        }
    }
    if let Some(password) = password {
        user.insert("password".into(), json!(password));
    }
    Value::Object(user)
}

fn domain(id: &Option<String>, name: &Option<String>) -> Value {
    match (id, name) {
        (Some(id), _) => json!({"id": id}),
        (None, Some(name)) => json!({"name": name}),
        (None, None) => json!({"id": "default"}),
    }
}

fn project_scope(scope: &ProjectScopeRecord) -> Option<Value> {
    match (&scope.project_id, &scope.project_name) {
        (Some(id), _) => Some(json!({"project": {"id": id}})),
        (None, Some(name)) => Some(json!({"project": {
            "name": name,
            "domain": domain(&scope.project_domain_id, &scope.project_domain_name),
        }})),
        (None, None) => None,
    }
}

/// Reads the answer to `request` (a step of logging in with `cloud`): its HTTP status, its
/// `X-Subject-Token` header and its body.
pub fn read_login_answer(
    cloud: &CloudRecord,
    request: &LoginRequest,
    status: u16,
    subject_token: Option<&str>,
    body: &[u8],
) -> Result<LoginStep, LoginError> {
    let auth_url = &cloud.auth_url;
    let validating = request.method == "GET";
    match status {
        401 | 404 if validating => {
            return Err(LoginError::Rejected(format!(
                "Keystone at {auth_url} does not accept the token (expired or revoked): {}; get a \
                 new one (`openstack token issue`) or log in with a password or an application \
                 credential instead",
                error_message(body)
            )));
        }
        401 => {
            return Err(LoginError::Rejected(format!(
                "Keystone at {auth_url} rejected the credentials: {} (check OS_USERNAME/OS_PASSWORD, \
                 the user and project domains, or the application credential)",
                error_message(body)
            )));
        }
        200 if validating => {}
        201 if !validating => {}
        _ => {
            return Err(LoginError::Unexpected {
                status,
                message: format!("{} {}: {}", request.method, request.url, error_message(body)),
            });
        }
    }
    let answer: Value = serde_json::from_slice(body).map_err(|e| {
        LoginError::Incomplete(format!(
            "Keystone at {auth_url} answered with something other than JSON: {e}"
        ))
    })?;
    let token = if validating {
        match &cloud.credentials {
            CredentialsRecord::Token(token) => token.clone(),
            _ => unreachable!("only a given token is validated"),
        }
    } else {
        subject_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| LoginError::Incomplete(format!("Keystone at {auth_url} returned no token")))?
            .to_string()
    };
    // A given token without a catalog (unscoped) is scoped to the cloud's project.
    if validating && answer.pointer("/token/catalog").is_none() && project_scope(&cloud.scope).is_some() {
        return Ok(LoginStep::Then(new_token_request(cloud, request.url.clone())));
    }
    session(token, &answer)
        .map(LoginStep::Session)
        .map_err(|e| LoginError::Incomplete(format!("Keystone at {auth_url}: {e}")))
}

/// The session a token answer gives: the token, its expiry, its catalog's image endpoints and
/// the project it is scoped to.
/// A token without a catalog (unscoped) or without an image service is refused here, naming
/// the fix.
pub fn session(token: String, token_body: &Value) -> Result<SessionRecord, String> {
    let catalog = token_body
        .pointer("/token/catalog")
        .and_then(Value::as_array)
        .ok_or(
            "the token has no service catalog; scope it to a project (OS_PROJECT_NAME or OS_PROJECT_ID)",
        )?;
    let service = catalog
        .iter()
        .find(|s| s.get("type").and_then(Value::as_str) == Some("image"))
        .ok_or("the service catalog has no 'image' service (Glance)")?;
    let text = |e: &Value, key: &str| e.get(key).and_then(Value::as_str).map(str::to_string);
    let image_endpoints = service
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            Some(EndpointRecord {
                url: text(e, "url")?,
                region: text(e, "region_id").or_else(|| text(e, "region")),
                interface: text(e, "interface").unwrap_or_else(|| "public".into()),
            })
        })
        .collect();
    Ok(SessionRecord {
        token,
        expires_at: token_body
            .pointer("/token/expires_at")
            .and_then(Value::as_str)
            .map(str::to_string),
        image_endpoints,
        project_id: token_body
            .pointer("/token/project/id")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}

/// The message of an error answer (Keystone's and Glance's `{"error": {"message"}}`, or the
/// start of the text).
pub fn error_message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        let found = ["/error/message", "/message", "/title"]
            .iter()
            .find_map(|p| json.pointer(p).and_then(Value::as_str));
        if let Some(message) = found {
            return message.trim().to_string();
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(500).collect()
}

/// When the session's token expires, as Keystone said (RFC 3339).
pub fn expires_at(session: &SessionRecord) -> Option<SystemTime> {
    let text = session.expires_at.as_deref()?;
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    let since_epoch = Duration::try_from(at - time::OffsetDateTime::UNIX_EPOCH).ok()?;
    Some(SystemTime::UNIX_EPOCH + since_epoch)
}

/// Whether the session may still be used at `now`: its token lives at least
/// [`EXPIRY_MARGIN`] longer. A token without an expiry cannot be judged, so it is not reused.
pub fn usable(session: &SessionRecord, now: SystemTime) -> bool {
    expires_at(session).is_some_and(|at| at.duration_since(now).is_ok_and(|left| left >= EXPIRY_MARGIN))
}

/// The image service's URL among a session's endpoints, with Glance's `/v2` appended.
pub fn image_endpoint(
    endpoints: &[EndpointRecord],
    region: Option<&str>,
    interface: &str,
) -> Result<String, String> {
    let endpoint = endpoints
        .iter()
        .find(|e| e.interface == interface && region.is_none_or(|r| e.region.as_deref() == Some(r)))
        .ok_or_else(|| {
            let offered: Vec<String> = endpoints
                .iter()
                .map(|e| format!("{}/{}", e.region.as_deref().unwrap_or("?"), e.interface))
                .collect();
            format!(
                "no image endpoint for region {} and interface {interface}; the catalog offers {} \
                 (set OS_REGION_NAME / the image's region, or OS_INTERFACE)",
                region.unwrap_or("(any)"),
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )
        })?;
    Ok(glance_v2(&endpoint.url))
}

fn glance_v2(endpoint: &str) -> String {
    let base = endpoint.trim_end_matches('/');
    if base.ends_with("/v2") {
        base.to_string()
    } else {
        format!("{base}/v2")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openstack_image_documents::fixtures;
    use openstack_image_documents::records::ApplicationCredentialRecord;

    fn cloud(credentials: CredentialsRecord) -> CloudRecord {
        CloudRecord {
            credentials,
            ..fixtures::cloud("http://127.0.0.1:5000/v3/")
        }
    }

    fn catalog(expires_at: &str) -> Value {
        json!({"token": {"expires_at": expires_at, "catalog": [
            {"type": "identity", "endpoints": [{"interface": "public", "url": "http://k:5000"}]},
            {"type": "image", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://g1:9292"},
                {"interface": "internal", "region_id": "RegionOne", "url": "http://g1-int:9292"},
                {"interface": "public", "region": "RegionTwo", "url": "http://g2:9292/v2/"},
            ]},
        ]}})
    }

    #[test]
    fn tokens_url_handles_both_forms() {
        assert_eq!(tokens_url("http://k:5000/v3/"), "http://k:5000/v3/auth/tokens");
        assert_eq!(tokens_url("http://k:5000"), "http://k:5000/v3/auth/tokens");
    }

    #[test]
    fn a_password_login_is_scoped_to_the_project_by_name() {
        let request = login_request(&cloud(fixtures::password("admin", "pw"))).unwrap();
        assert_eq!(
            (request.method, request.url.as_str()),
            ("POST", "http://127.0.0.1:5000/v3/auth/tokens")
        );
        let body = request.body.unwrap();
        assert_eq!(
            body.pointer("/auth/identity/password/user/name").unwrap(),
            "admin"
        );
        assert_eq!(
            body.pointer("/auth/identity/password/user/password").unwrap(),
            "pw"
        );
        assert_eq!(
            body.pointer("/auth/identity/password/user/domain/id").unwrap(),
            "default"
        );
        assert_eq!(body.pointer("/auth/scope/project/name").unwrap(), "demo");
        assert_eq!(
            body.pointer("/auth/scope/project/domain/name").unwrap(),
            "Default"
        );
    }

    #[test]
    fn an_application_credential_carries_its_own_scope() {
        let request = login_request(&cloud(CredentialsRecord::ApplicationCredential(
            ApplicationCredentialRecord {
                id: Some("ac".into()),
                name: None,
                secret: "s".into(),
                user_id: None,
                username: None,
                user_domain_id: None,
                user_domain_name: None,
            },
        )))
        .unwrap();
        let body = request.body.unwrap();
        assert_eq!(
            body.pointer("/auth/identity/application_credential/id").unwrap(),
            "ac"
        );
        assert!(body.pointer("/auth/scope").is_none());
    }

    #[test]
    fn session_only_credentials_have_no_login() {
        assert!(login_request(&cloud(CredentialsRecord::SessionOnly)).is_none());
    }

    #[test]
    fn a_given_token_describes_itself_and_is_scoped_only_without_a_catalog() {
        let cloud = cloud(CredentialsRecord::Token("given".into()));
        let check = login_request(&cloud).unwrap();
        assert_eq!(check.method, "GET");
        assert!(check.headers.contains(&("x-subject-token", "given".into())));
        let body = catalog("2999-01-01T00:00:00.000000Z").to_string();
        let LoginStep::Session(session) =
            read_login_answer(&cloud, &check, 200, None, body.as_bytes()).unwrap()
        else {
            panic!("a scoped token is used as it is");
        };
        assert_eq!(session.token, "given");
        assert_eq!(session.image_endpoints.len(), 3);

        let unscoped = json!({"token": {"expires_at": "2999-01-01T00:00:00Z"}}).to_string();
        let LoginStep::Then(scope) =
            read_login_answer(&cloud, &check, 200, None, unscoped.as_bytes()).unwrap()
        else {
            panic!("an unscoped token is scoped");
        };
        assert_eq!(scope.method, "POST");
        assert_eq!(
            scope.body.unwrap().pointer("/auth/identity/token/id").unwrap(),
            "given"
        );
        let err = read_login_answer(&cloud, &check, 404, None, b"{}").unwrap_err();
        assert!(
            matches!(&err, LoginError::Rejected(m) if m.contains("expired or revoked")),
            "{err}"
        );
    }

    #[test]
    fn login_answers_give_a_session_or_say_what_is_wrong() {
        let cloud = cloud(fixtures::password("admin", "pw"));
        let post = login_request(&cloud).unwrap();
        let body = catalog("2999-01-01T00:00:00.000000Z").to_string();
        let LoginStep::Session(session) =
            read_login_answer(&cloud, &post, 201, Some("new"), body.as_bytes()).unwrap()
        else {
            panic!("a session");
        };
        assert_eq!(session.token, "new");
        assert_eq!(session.expires_at.as_deref(), Some("2999-01-01T00:00:00.000000Z"));

        let refused =
            br#"{"error": {"message": "The request you have made requires authentication.", "code": 401}}"#;
        let err = read_login_answer(&cloud, &post, 401, None, refused).unwrap_err();
        assert!(
            matches!(&err, LoginError::Rejected(m) if m.contains("requires authentication") && m.contains("OS_PASSWORD")),
            "{err}"
        );
        let err = read_login_answer(&cloud, &post, 201, None, body.as_bytes()).unwrap_err();
        assert!(
            matches!(&err, LoginError::Incomplete(m) if m.contains("no token")),
            "{err}"
        );
        let err = read_login_answer(&cloud, &post, 500, Some("t"), b"boom").unwrap_err();
        assert!(matches!(err, LoginError::Unexpected { status: 500, .. }));
        let err = read_login_answer(&cloud, &post, 201, Some("t"), br#"{"token": {}}"#).unwrap_err();
        assert!(err.to_string().contains("scope it to a project"), "{err}");
    }

    #[test]
    fn picks_endpoint_by_region_and_interface() {
        let session = session("t".into(), &catalog("2999-01-01T00:00:00Z")).unwrap();
        let endpoints = &session.image_endpoints;
        assert_eq!(
            image_endpoint(endpoints, Some("RegionOne"), "public").unwrap(),
            "http://g1:9292/v2"
        );
        assert_eq!(
            image_endpoint(endpoints, Some("RegionTwo"), "public").unwrap(),
            "http://g2:9292/v2"
        );
        assert_eq!(
            image_endpoint(endpoints, None, "internal").unwrap(),
            "http://g1-int:9292/v2"
        );
        let err = image_endpoint(endpoints, Some("RegionThree"), "public").unwrap_err();
        assert!(err.contains("RegionOne/public"), "{err}");
        let err = super::session("t".into(), &json!({"token": {"catalog": []}})).unwrap_err();
        assert!(err.contains("no 'image' service"), "{err}");
    }

    #[test]
    fn a_session_is_usable_until_two_minutes_before_it_expires() {
        let at = |text: &str| SessionRecord {
            token: "t".into(),
            expires_at: Some(text.into()),
            image_endpoints: Vec::new(),
            project_id: None,
        };
        let now = expires_at(&at("2030-01-01T12:00:00Z")).unwrap();
        assert!(usable(&at("2030-01-01T12:02:00.000000Z"), now));
        assert!(!usable(&at("2030-01-01T12:01:59Z"), now));
        assert!(!usable(&at("2029-12-31T12:00:00Z"), now), "expired");
        assert!(!usable(&at("soon"), now), "unreadable");
        let no_expiry = SessionRecord {
            expires_at: None,
            ..at("x")
        };
        assert!(!usable(&no_expiry, now));
    }
}
