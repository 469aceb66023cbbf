//! Keystone v3: the token request for each credential type, the session a token response
//! gives (its catalog's image endpoints), and the endpoint lookup.

use serde_json::{Map, Value, json};

use crate::types::{Cloud, Credentials, Endpoint, ProjectScope, Session};

/// `…/v3/auth/tokens` for an auth URL given with or without the `/v3` suffix.
pub fn tokens_url(auth_url: &str) -> String {
    let base = auth_url.trim_end_matches('/');
    if base.ends_with("/v3") {
        format!("{base}/auth/tokens")
    } else {
        format!("{base}/v3/auth/tokens")
    }
}

/// The body of `POST /v3/auth/tokens`.
pub fn token_request(cloud: &Cloud) -> Value {
    let identity = match &cloud.credentials {
        Credentials::Password(p) => json!({
            "methods": ["password"],
            "password": {"user": user(&p.user_id, &p.username, &p.user_domain_id, &p.user_domain_name, Some(&p.password))},
        }),
        Credentials::ApplicationCredential(a) => {
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
        Credentials::Token(token) => json!({"methods": ["token"], "token": {"id": token}}),
    };
    let mut auth = Map::new();
    auth.insert("identity".into(), identity);
    // Application credentials carry their own project scope.
    if !matches!(cloud.credentials, Credentials::ApplicationCredential(_))
        && let Some(scope) = project_scope(&cloud.scope)
    {
        auth.insert("scope".into(), scope);
    }
    json!({ "auth": auth })
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

fn project_scope(scope: &ProjectScope) -> Option<Value> {
    match (&scope.project_id, &scope.project_name) {
        (Some(id), _) => Some(json!({"project": {"id": id}})),
        (None, Some(name)) => Some(json!({"project": {
            "name": name,
            "domain": domain(&scope.project_domain_id, &scope.project_domain_name),
        }})),
        (None, None) => None,
    }
}

/// The session a token response gives: the token, its expiry and its catalog's image
/// endpoints. A token without a catalog (unscoped) or without an image service is refused
/// here, naming the fix.
pub fn session(token: String, token_body: &Value) -> Result<Session, String> {
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
            Some(Endpoint {
                url: text(e, "url")?,
                region: text(e, "region_id").or_else(|| text(e, "region")),
                interface: text(e, "interface").unwrap_or_else(|| "public".into()),
            })
        })
        .collect();
    Ok(Session {
        token,
        expires_at: token_body
            .pointer("/token/expires_at")
            .and_then(Value::as_str)
            .map(str::to_string),
        image_endpoints,
    })
}

/// The image service's URL among a session's endpoints, with Glance's `/v2` appended.
pub fn image_endpoint(
    endpoints: &[Endpoint],
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
    use crate::types::ApplicationCredentialAuth;
    use openstack_image_documents::fixtures;

    fn cloud(credentials: Credentials) -> Cloud {
        Cloud {
            credentials,
            ..fixtures::cloud("http://127.0.0.1:5000/v3/").into()
        }
    }

    fn password() -> Credentials {
        fixtures::password("admin", "pw").into()
    }

    #[test]
    fn tokens_url_handles_both_forms() {
        assert_eq!(tokens_url("http://k:5000/v3/"), "http://k:5000/v3/auth/tokens");
        assert_eq!(tokens_url("http://k:5000"), "http://k:5000/v3/auth/tokens");
    }

    #[test]
    fn password_request_scopes_to_project_by_name() {
        let body = token_request(&cloud(password()));
        assert_eq!(
            body.pointer("/auth/identity/password/user/name").unwrap(),
            "admin"
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
    fn application_credential_is_unscoped() {
        let body = token_request(&cloud(Credentials::ApplicationCredential(
            ApplicationCredentialAuth {
                id: Some("ac".into()),
                name: None,
                secret: "s".into(),
                user_id: None,
                username: None,
                user_domain_id: None,
                user_domain_name: None,
            },
        )));
        assert_eq!(
            body.pointer("/auth/identity/application_credential/id").unwrap(),
            "ac"
        );
        assert!(body.pointer("/auth/scope").is_none());
    }

    #[test]
    fn picks_endpoint_by_region_and_interface() {
        let token = json!({"token": {"expires_at": "2999-01-01T00:00:00.000000Z", "catalog": [
            {"type": "identity", "endpoints": [{"interface": "public", "url": "http://k:5000"}]},
            {"type": "image", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://g1:9292"},
                {"interface": "internal", "region_id": "RegionOne", "url": "http://g1-int:9292"},
                {"interface": "public", "region": "RegionTwo", "url": "http://g2:9292/v2/"},
            ]},
        ]}});
        let session = session("t".into(), &token).unwrap();
        assert_eq!(session.expires_at.as_deref(), Some("2999-01-01T00:00:00.000000Z"));
        assert_eq!(session.image_endpoints.len(), 3, "only the image service's");
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
    }

    #[test]
    fn a_token_without_a_catalog_names_the_fix() {
        let err = session("t".into(), &json!({"token": {}})).unwrap_err();
        assert!(err.contains("scope it to a project"), "{err}");
        let err = session("t".into(), &json!({"token": {"catalog": []}})).unwrap_err();
        assert!(err.contains("no 'image' service"), "{err}");
    }
}
