//! Keystone v3: the token request for each credential type, and the service catalog lookup.

use serde_json::{Map, Value, json};

use crate::types::{Cloud, Credentials, ProjectScope};

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

/// The image service's URL from a token response's catalog, with Glance's `/v2` appended.
pub fn image_endpoint(token_body: &Value, region: Option<&str>, interface: &str) -> Result<String, String> {
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
    let endpoints = service
        .get("endpoints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let in_region = |e: &Value| {
        region.is_none_or(|r| {
            e.get("region_id").and_then(Value::as_str) == Some(r)
                || e.get("region").and_then(Value::as_str) == Some(r)
        })
    };
    let endpoint = endpoints
        .iter()
        .find(|e| e.get("interface").and_then(Value::as_str) == Some(interface) && in_region(e))
        .and_then(|e| e.get("url").and_then(Value::as_str))
        .ok_or_else(|| {
            let offered: Vec<String> = endpoints
                .iter()
                .map(|e| {
                    format!(
                        "{}/{}",
                        e.get("region_id").and_then(Value::as_str).unwrap_or("?"),
                        e.get("interface").and_then(Value::as_str).unwrap_or("?")
                    )
                })
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
    Ok(glance_v2(endpoint))
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
    use crate::types::{ApplicationCredentialAuth, PasswordAuth};

    fn cloud(credentials: Credentials) -> Cloud {
        Cloud {
            auth_url: "http://127.0.0.1:5000/v3/".into(),
            credentials,
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

    fn password() -> Credentials {
        Credentials::Password(PasswordAuth {
            user_id: None,
            username: Some("admin".into()),
            password: "pw".into(),
            user_domain_id: None,
            user_domain_name: None,
        })
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
        let token = json!({"token": {"catalog": [
            {"type": "identity", "endpoints": []},
            {"type": "image", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": "http://g1:9292"},
                {"interface": "internal", "region_id": "RegionOne", "url": "http://g1-int:9292"},
                {"interface": "public", "region_id": "RegionTwo", "url": "http://g2:9292/v2/"},
            ]},
        ]}});
        assert_eq!(
            image_endpoint(&token, Some("RegionOne"), "public").unwrap(),
            "http://g1:9292/v2"
        );
        assert_eq!(
            image_endpoint(&token, Some("RegionTwo"), "public").unwrap(),
            "http://g2:9292/v2"
        );
        assert_eq!(
            image_endpoint(&token, None, "internal").unwrap(),
            "http://g1-int:9292/v2"
        );
        let err = image_endpoint(&token, Some("RegionThree"), "public").unwrap_err();
        assert!(err.contains("RegionOne/public"), "{err}");
    }
}
