//! The cloud document (a clouds.yaml cloud entry) and how layers of them resolve to the typed
//! cloud. Every source of settings is a layer of the same type: explicit settings (a command
//! line flag, an engine's provider block, a JSON cloud entry), the `OS_*` environment, a
//! clouds.yaml entry with secure.yaml merged in. A setting comes from the first layer that
//! has it — explicit > environment > clouds.yaml — and [`CloudSettings::resolve`] is the one
//! place that turns settings into credentials.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::records::{
    ApplicationCredentialRecord, CloudRecord, CredentialsRecord, PasswordAuthRecord, ProjectScopeRecord,
    SessionRecord,
};

/// A clouds.yaml cloud entry, as openstacksdk users write it. Keys this tool does not use are
/// ignored here (clouds.yaml holds settings for other services); the JSON face refuses them
/// ([`CloudDoc::from_request`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(extend("required" = ["auth"]))]
pub struct CloudDoc {
    #[serde(default, deserialize_with = "crate::text::or_default")]
    pub auth: AuthDoc,
    /// password (default), v3applicationcredential or v3token; without it the credentials
    /// given choose: an application credential secret, else a password, else a token (with
    /// none of them and a `session`, the session alone).
    #[serde(default, deserialize_with = "crate::text::text")]
    #[schemars(extend("enum" = AUTH_TYPES))]
    pub auth_type: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub region_name: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    #[schemars(extend("enum" = INTERFACES))]
    pub interface: Option<String>,
    /// Retries of requests that are safe to repeat. Default 4.
    #[serde(default)]
    pub retries: Option<u32>,
    /// A private CA's PEM file (TLS trust is the runtime's, not the component's).
    #[serde(default, deserialize_with = "crate::text::text")]
    #[schemars(skip)]
    pub cacert: Option<String>,
    /// `false` turns TLS verification off (the runtime's, not the component's).
    #[serde(default, deserialize_with = "crate::text::flag")]
    #[schemars(skip)]
    pub verify: Option<bool>,
    /// openstacksdk's `cache: {auth: true}`: keep the token for the next run (a runtime's).
    #[serde(default)]
    #[schemars(skip)]
    pub cache: Option<CacheDoc>,
    /// A Keystone token issued earlier for the same credentials (a runtime shares one per
    /// run); used until Keystone answers 401.
    #[serde(default)]
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub session: Option<SessionDoc>,
    /// Accepted and ignored (Keystone v3 only).
    #[serde(default)]
    pub identity_api_version: Option<Value>,
    /// Accepted and ignored (Glance v2 only).
    #[serde(default)]
    pub image_api_version: Option<Value>,
}

/// A cloud entry's `auth` mapping.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(expecting = "a mapping (auth_url, username, password, …)")]
#[schemars(extend("required" = ["auth_url"]))]
pub struct AuthDoc {
    /// Keystone v3 URL.
    #[serde(default, deserialize_with = "crate::text::text")]
    pub auth_url: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub username: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub user_id: Option<String>,
    /// The user's password.
    #[serde(default, deserialize_with = "crate::text::text")]
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub password: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub user_domain_name: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub user_domain_id: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub project_name: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub project_id: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub project_domain_name: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub project_domain_id: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub application_credential_id: Option<String>,
    #[serde(default, deserialize_with = "crate::text::text")]
    pub application_credential_name: Option<String>,
    /// The application credential's secret.
    #[serde(default, deserialize_with = "crate::text::text")]
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub application_credential_secret: Option<String>,
    /// An existing Keystone token.
    #[serde(default, deserialize_with = "crate::text::text")]
    #[schemars(extend("x-secret" = true, "writeOnly" = true))]
    pub token: Option<String>,
}

/// The `session` of a cloud document: what `authenticate` returned.
pub type SessionDoc = SessionRecord;

/// openstacksdk's `cache` mapping; only `auth` is used.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(expecting = "a mapping (auth: true or false)")]
pub struct CacheDoc {
    #[serde(default, deserialize_with = "crate::text::flag")]
    pub auth: Option<bool>,
}

/// The `auth_type`s this tool speaks.
pub const AUTH_TYPES: &[&str] = &[
    "password",
    "v3password",
    "v3applicationcredential",
    "applicationcredential",
    "token",
    "v3token",
];
/// The catalog interfaces.
pub const INTERFACES: &[&str] = &["public", "internal", "admin"];

/// Where a layer of settings came from, so that errors can say what to fix.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// Settings given explicitly (a flag, a provider block), named for people.
    Explicit(String),
    /// The `OS_*` environment variables.
    Environment,
    /// Cloud `cloud` of the clouds.yaml `file` (secure.yaml merged in).
    CloudsYaml { cloud: String, file: String },
    /// The `cloud` document of a JSON-face request.
    Request,
}

/// One source of settings.
#[derive(Debug, Clone)]
pub struct Layer {
    pub origin: Origin,
    pub doc: CloudDoc,
}

/// Layers of settings, the first one winning setting by setting.
#[derive(Debug, Clone, Default)]
pub struct CloudSettings {
    layers: Vec<Layer>,
}

/// What keeps settings from becoming a cloud; each front end says it in its own words.
#[derive(Debug, Clone, PartialEq)]
pub enum CloudProblem {
    /// No layer gives `auth.auth_url`.
    NoAuthUrl,
    /// `auth_type` names a method this tool does not speak.
    UnsupportedAuthType { value: String, origin: Origin },
    /// No credentials at all (or a password `auth_type` without a user).
    NoCredentials,
    /// A user but no `auth.password`.
    NoPassword,
    /// An application credential secret without `auth.application_credential_id` or `_name`.
    NoApplicationCredentialId,
    /// An application credential without `auth.application_credential_secret`.
    NoApplicationCredentialSecret,
    /// `auth_type` token without `auth.token`.
    NoToken,
    /// `interface` is not public, internal or admin.
    BadInterface { value: String, origin: Origin },
}

impl CloudSettings {
    /// Settings from `layers`, highest precedence first.
    pub fn new(layers: Vec<Layer>) -> CloudSettings {
        CloudSettings { layers }
    }

    /// The layers, highest precedence first.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The first layer's value of a setting, and where it came from.
    pub fn pick<T>(&self, get: impl Fn(&CloudDoc) -> Option<T>) -> Option<(T, &Origin)> {
        self.layers
            .iter()
            .find_map(|layer| get(&layer.doc).map(|v| (v, &layer.origin)))
    }

    fn get<T: Clone>(&self, get: impl Fn(&CloudDoc) -> &Option<T>) -> Option<T> {
        self.pick(|doc| get(doc).clone()).map(|(v, _)| v)
    }

    /// The typed cloud: credentials by `auth_type` (or, without one, by what is given: see
    /// [`CloudSettings::inferred_method`]), the project scope,
    /// region and interface (`publicURL` is read as `public`), and the session a layer carries.
    pub fn resolve(&self) -> Result<CloudRecord, CloudProblem> {
        let a = |get: fn(&AuthDoc) -> &Option<String>| self.get(move |d| get(&d.auth));
        // The method first: a wrong one is the first thing to fix.
        let method = match self.pick(|d| d.auth_type.clone()) {
            Some((t, origin)) => match t.as_str() {
                "password" | "v3password" => Method::Password,
                "v3applicationcredential" | "applicationcredential" => Method::ApplicationCredential,
                "token" | "v3token" => Method::Token,
                _ => {
                    return Err(CloudProblem::UnsupportedAuthType {
                        value: t,
                        origin: origin.clone(),
                    });
                }
            },
            None => self.inferred_method(),
        };
        let auth_url = self.get(|d| &d.auth.auth_url).ok_or(CloudProblem::NoAuthUrl)?;
        let credentials = match method {
            Method::SessionOnly => CredentialsRecord::SessionOnly,
            Method::Token => CredentialsRecord::Token(a(|a| &a.token).ok_or(CloudProblem::NoToken)?),
            Method::ApplicationCredential => {
                let (id, name) = (
                    a(|a| &a.application_credential_id),
                    a(|a| &a.application_credential_name),
                );
                let secret = a(|a| &a.application_credential_secret);
                if id.is_none() && name.is_none() {
                    return Err(if secret.is_some() {
                        CloudProblem::NoApplicationCredentialId
                    } else {
                        CloudProblem::NoCredentials
                    });
                }
                CredentialsRecord::ApplicationCredential(ApplicationCredentialRecord {
                    id,
                    name,
                    secret: secret.ok_or(CloudProblem::NoApplicationCredentialSecret)?,
                    user_id: a(|a| &a.user_id),
                    username: a(|a| &a.username),
                    user_domain_id: a(|a| &a.user_domain_id),
                    user_domain_name: a(|a| &a.user_domain_name),
                })
            }
            Method::Password => {
                let (user_id, username) = (a(|a| &a.user_id), a(|a| &a.username));
                if user_id.is_none() && username.is_none() {
                    return Err(CloudProblem::NoCredentials);
                }
                CredentialsRecord::Password(PasswordAuthRecord {
                    user_id,
                    username,
                    password: a(|a| &a.password).ok_or(CloudProblem::NoPassword)?,
                    user_domain_id: a(|a| &a.user_domain_id),
                    user_domain_name: a(|a| &a.user_domain_name),
                })
            }
        };
        let interface = match self.pick(|d| d.interface.clone()) {
            None => None,
            Some((value, origin)) => {
                let normal = value.trim_end_matches("URL").to_ascii_lowercase();
                if !INTERFACES.contains(&normal.as_str()) {
                    return Err(CloudProblem::BadInterface {
                        value,
                        origin: origin.clone(),
                    });
                }
                Some(normal)
            }
        };
        Ok(CloudRecord {
            auth_url,
            credentials,
            scope: ProjectScopeRecord {
                project_id: a(|a| &a.project_id),
                project_name: a(|a| &a.project_name),
                project_domain_id: a(|a| &a.project_domain_id),
                project_domain_name: a(|a| &a.project_domain_name),
            },
            region: self.get(|d| &d.region_name),
            interface,
            retries: self.get(|d| &d.retries),
            session: self.get(|d| &d.session),
        })
    }

    /// The credentials' kind when no `auth_type` names it, by what is given: an application
    /// credential's secret, else a password, else a token, else a user (who lacks a password)
    /// or an application credential (which lacks its secret); with nothing of these, a
    /// session alone (a host that keeps the secrets to itself).
    fn inferred_method(&self) -> Method {
        let given = |get: fn(&AuthDoc) -> &Option<String>| self.pick(|d| get(&d.auth).clone()).is_some();
        if given(|a| &a.application_credential_secret) {
            Method::ApplicationCredential
        } else if given(|a| &a.password) {
            Method::Password
        } else if given(|a| &a.token) {
            Method::Token
        } else if given(|a| &a.username) || given(|a| &a.user_id) {
            Method::Password
        } else if given(|a| &a.application_credential_id) || given(|a| &a.application_credential_name) {
            Method::ApplicationCredential
        } else if self.pick(|d| d.session.clone()).is_some() {
            Method::SessionOnly
        } else {
            Method::Password
        }
    }

    /// The CA file to trust besides the public web PKI.
    pub fn cacert(&self) -> Option<String> {
        self.get(|d| &d.cacert)
    }

    /// Whether TLS verification is off (`verify: false`).
    pub fn insecure(&self) -> bool {
        self.get(|d| &d.verify) == Some(false)
    }

    /// Whether to keep the Keystone token between runs (`cache: {auth: true}`).
    pub fn token_cache(&self) -> bool {
        self.pick(|d| d.cache.as_ref().and_then(|c| c.auth))
            .is_some_and(|(keep, _)| keep)
    }
}

enum Method {
    Password,
    ApplicationCredential,
    Token,
    SessionOnly,
}

impl CloudDoc {
    /// The inverse of [`CloudSettings::resolve`]: the one cloud document that resolves to
    /// `cloud`, for runtimes that call the component with documents. TLS settings and the
    /// token cache stay with the runtime.
    pub fn of(cloud: &CloudRecord) -> CloudDoc {
        let mut auth = AuthDoc {
            auth_url: Some(cloud.auth_url.clone()),
            project_id: cloud.scope.project_id.clone(),
            project_name: cloud.scope.project_name.clone(),
            project_domain_id: cloud.scope.project_domain_id.clone(),
            project_domain_name: cloud.scope.project_domain_name.clone(),
            ..AuthDoc::default()
        };
        let auth_type = match &cloud.credentials {
            CredentialsRecord::Password(p) => {
                auth.user_id = p.user_id.clone();
                auth.username = p.username.clone();
                auth.password = Some(p.password.clone());
                auth.user_domain_id = p.user_domain_id.clone();
                auth.user_domain_name = p.user_domain_name.clone();
                Some("password")
            }
            CredentialsRecord::ApplicationCredential(c) => {
                auth.application_credential_id = c.id.clone();
                auth.application_credential_name = c.name.clone();
                auth.application_credential_secret = Some(c.secret.clone());
                auth.user_id = c.user_id.clone();
                auth.username = c.username.clone();
                auth.user_domain_id = c.user_domain_id.clone();
                auth.user_domain_name = c.user_domain_name.clone();
                Some("v3applicationcredential")
            }
            CredentialsRecord::Token(token) => {
                auth.token = Some(token.clone());
                Some("v3token")
            }
            CredentialsRecord::SessionOnly => None,
        };
        CloudDoc {
            auth,
            auth_type: auth_type.map(str::to_string),
            region_name: cloud.region.clone(),
            interface: cloud.interface.clone(),
            retries: cloud.retries,
            session: cloud.session.clone(),
            ..CloudDoc::default()
        }
    }

    /// The document as JSON, unset settings left out.
    pub fn to_json(&self) -> Value {
        fn prune(value: &mut Value) {
            match value {
                Value::Object(map) => {
                    map.retain(|_, v| !v.is_null());
                    map.values_mut().for_each(prune);
                }
                Value::Array(items) => items.iter_mut().for_each(prune),
                _ => {}
            }
        }
        let mut value = serde_json::to_value(self).expect("cloud documents serialise");
        prune(&mut value);
        value
    }

    /// Reads the `cloud` document of a JSON-face request: only the keys its schema
    /// (`$defs.cloud`) describes, the unknown one named (`auth.colour`).
    pub fn from_request(value: Value) -> Result<CloudDoc, String> {
        let (top, auth) = crate::schema::cloud_keys();
        let unknown = |object: Option<&serde_json::Map<String, Value>>, known: &[String], prefix: &str| {
            object.and_then(|o| {
                o.keys()
                    .find(|k| !known.contains(k))
                    .map(|k| format!("{prefix}{k}"))
            })
        };
        if let Some(key) = unknown(value.as_object(), top, "")
            .or_else(|| unknown(value.get("auth").and_then(Value::as_object), auth, "auth."))
        {
            return Err(format!("unknown field `{key}`"));
        }
        serde_path_to_error::deserialize(value).map_err(|e| match e.path().to_string().as_str() {
            "." => e.inner().to_string(),
            path => format!("{path}: {}", e.inner()),
        })
    }
}

/// The `OS_*` variables each setting is read from, the first one set winning (one list for
/// every runtime: openstacksdk's names, and terraform-provider-openstack's where they differ).
const AUTH_VARIABLES: &[(&str, &[&str])] = &[
    ("auth_url", &["OS_AUTH_URL"]),
    ("username", &["OS_USERNAME"]),
    ("user_id", &["OS_USER_ID"]),
    ("password", &["OS_PASSWORD"]),
    ("user_domain_name", &["OS_USER_DOMAIN_NAME", "OS_DOMAIN_NAME"]),
    ("user_domain_id", &["OS_USER_DOMAIN_ID", "OS_DOMAIN_ID"]),
    ("project_name", &["OS_PROJECT_NAME", "OS_TENANT_NAME"]),
    ("project_id", &["OS_PROJECT_ID", "OS_TENANT_ID"]),
    (
        "project_domain_name",
        &["OS_PROJECT_DOMAIN_NAME", "OS_DOMAIN_NAME"],
    ),
    ("project_domain_id", &["OS_PROJECT_DOMAIN_ID", "OS_DOMAIN_ID"]),
    ("application_credential_id", &["OS_APPLICATION_CREDENTIAL_ID"]),
    ("application_credential_name", &["OS_APPLICATION_CREDENTIAL_NAME"]),
    (
        "application_credential_secret",
        &["OS_APPLICATION_CREDENTIAL_SECRET"],
    ),
    ("token", &["OS_TOKEN", "OS_AUTH_TOKEN"]),
];

/// The top-level settings read from the environment, as [`AUTH_VARIABLES`].
const CLOUD_VARIABLES: &[(&str, &[&str])] = &[
    ("auth_type", &["OS_AUTH_TYPE"]),
    ("region_name", &["OS_REGION_NAME"]),
    ("interface", &["OS_INTERFACE", "OS_ENDPOINT_TYPE"]),
    ("cacert", &["OS_CACERT"]),
];

/// The variable that names the clouds.yaml cloud.
pub const CLOUD_VARIABLE: &str = "OS_CLOUD";

/// The variable (besides clouds.yaml's `cache: {auth: true}` and a runtime's own switch)
/// that keeps the Keystone session for the next run.
pub const TOKEN_CACHE_VARIABLE: &str = "OPENSTACK_IMAGE_TOKEN_CACHE";

/// The environment (read through `var`: the process environment, or a map) as a layer of
/// settings; an empty variable is unset. A variable that cannot be read is named.
pub fn environment(var: &dyn Fn(&str) -> Option<String>) -> Result<Layer, String> {
    let get = |names: &[&str]| names.iter().find_map(|name| var(name).filter(|v| !v.is_empty()));
    let pick = |list: &[(&str, &[&str])]| -> serde_json::Map<String, Value> {
        list.iter()
            .filter_map(|(key, names)| get(names).map(|v| (key.to_string(), Value::String(v))))
            .collect()
    };
    let mut doc = pick(CLOUD_VARIABLES);
    doc.insert("auth".into(), Value::Object(pick(AUTH_VARIABLES)));
    if let Some(insecure) = flag(get(&["OS_INSECURE"]), "OS_INSECURE")? {
        doc.insert("verify".into(), Value::Bool(!insecure));
    }
    if let Some(keep) = flag(get(&[TOKEN_CACHE_VARIABLE]), TOKEN_CACHE_VARIABLE)? {
        doc.insert("cache".into(), serde_json::json!({ "auth": keep }));
    }
    Ok(Layer {
        origin: Origin::Environment,
        doc: serde_json::from_value(Value::Object(doc)).expect("the environment's settings are text"),
    })
}

/// A yes/no variable, as openstacksdk and Go's `strconv.ParseBool` read them.
fn flag(value: Option<String>, name: &str) -> Result<Option<bool>, String> {
    match value.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None => Ok(None),
        Some("true" | "1" | "yes" | "t") => Ok(Some(true)),
        Some("false" | "0" | "no" | "f") => Ok(Some(false)),
        Some(_) => Err(format!(
            "{name} is '{}'; use true or false",
            value.unwrap_or_default()
        )),
    }
}

/// A problem with the settings, naming the `OS_*` variable and, when clouds.yaml is in use,
/// its key.
pub fn describe(problem: &CloudProblem, settings: &CloudSettings) -> String {
    let clouds_yaml = settings.layers().iter().find_map(|layer| match &layer.origin {
        Origin::CloudsYaml { cloud, file } => Some(format!("cloud '{cloud}' in {file}")),
        _ => None,
    });
    let in_clouds_yaml = |key: &str| match &clouds_yaml {
        Some(origin) => format!(" ({origin}: set {key} there, secrets also in secure.yaml)"),
        None => String::new(),
    };
    match problem {
        CloudProblem::NoAuthUrl => match &clouds_yaml {
            Some(origin) => format!(
                "{origin} has no auth.auth_url; add the Keystone URL there (e.g. https://keystone.example.org:5000/v3), or set OS_AUTH_URL"
            ),
            None => "OS_AUTH_URL is not set: load your cloud's openrc file (or, for the local dev \
                     cloud, run: eval \"$(scripts/dev-cloud env)\")"
                .to_string(),
        },
        CloudProblem::NoCredentials => format!(
            "no credentials: set OS_USERNAME (or OS_USER_ID) and OS_PASSWORD, OS_APPLICATION_CREDENTIAL_ID and OS_APPLICATION_CREDENTIAL_SECRET, or OS_TOKEN{}",
            in_clouds_yaml("auth.username and auth.password")
        ),
        CloudProblem::NoPassword => format!(
            "OS_PASSWORD is not set (needed with OS_USERNAME/OS_USER_ID){}",
            in_clouds_yaml("auth.password")
        ),
        CloudProblem::NoApplicationCredentialId => format!(
            "OS_APPLICATION_CREDENTIAL_SECRET is set but neither OS_APPLICATION_CREDENTIAL_ID nor OS_APPLICATION_CREDENTIAL_NAME is{}",
            in_clouds_yaml("auth.application_credential_id")
        ),
        CloudProblem::NoApplicationCredentialSecret => format!(
            "OS_APPLICATION_CREDENTIAL_SECRET is not set (needed with OS_APPLICATION_CREDENTIAL_ID/_NAME){}",
            in_clouds_yaml("auth.application_credential_secret")
        ),
        CloudProblem::NoToken => format!(
            "OS_TOKEN is not set (needed with auth_type v3token){}",
            in_clouds_yaml("auth.token")
        ),
        CloudProblem::UnsupportedAuthType { value, origin } => format!(
            "{}: auth_type '{value}' is not supported; use password, v3applicationcredential or v3token",
            origin_text(origin)
        ),
        CloudProblem::BadInterface { value, origin } => match origin {
            Origin::Environment => format!("OS_INTERFACE is '{value}'; use public, internal or admin"),
            origin => format!(
                "{}: interface is '{value}'; use public, internal or admin",
                origin_text(origin)
            ),
        },
    }
}

/// Where a setting was given, for people.
fn origin_text(origin: &Origin) -> String {
    match origin {
        Origin::Explicit(what) => what.clone(),
        Origin::Environment => "the OS_* environment".to_string(),
        Origin::CloudsYaml { cloud, file } => format!("cloud '{cloud}' in {file}"),
        Origin::Request => "the request's cloud".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn settings(layers: &[(Origin, Value)]) -> CloudSettings {
        CloudSettings::new(
            layers
                .iter()
                .map(|(origin, doc)| Layer {
                    origin: origin.clone(),
                    doc: serde_json::from_value(doc.clone()).unwrap(),
                })
                .collect(),
        )
    }

    fn yaml() -> Origin {
        Origin::CloudsYaml {
            cloud: "dev".into(),
            file: "/etc/openstack/clouds.yaml".into(),
        }
    }

    #[test]
    fn a_cloud_written_as_a_document_resolves_to_itself() {
        let clouds = [
            json!({ "auth": { "auth_url": "http://k/v3", "username": "u", "password": "p",
                              "user_domain_name": "Default", "project_name": "demo",
                              "project_domain_id": "default" },
                    "region_name": "RegionTwo", "interface": "internal", "retries": 2 }),
            json!({ "auth": { "auth_url": "http://k/v3", "application_credential_id": "a",
                              "application_credential_secret": "s" } }),
            json!({ "auth": { "auth_url": "http://k/v3", "token": "t", "project_id": "p" } }),
            json!({ "auth": { "auth_url": "http://k/v3", "project_id": "p" },
                    "session": { "token": "s", "expires_at": "2999-01-01T00:00:00Z",
                                 "image_endpoints": [{ "url": "http://g", "interface": "public" }] } }),
        ];
        for doc in clouds {
            let record = settings(&[(Origin::Request, doc)]).resolve().unwrap();
            let written = CloudDoc::of(&record).to_json();
            assert!(!written.to_string().contains("null"), "{written}");
            let again = settings(&[(Origin::Request, written)]).resolve().unwrap();
            assert_eq!(again, record);
        }
    }

    #[test]
    fn the_first_layer_wins_setting_by_setting() {
        let s = settings(&[
            (
                Origin::Environment,
                json!({ "auth": { "password": "from-env" }, "interface": "internalURL" }),
            ),
            (
                yaml(),
                json!({ "auth": { "auth_url": "http://k/v3", "username": "u", "password": "p" }, "region_name": "RegionOne", "verify": false, "cache": { "auth": true } }),
            ),
        ]);
        let cloud = s.resolve().unwrap();
        assert_eq!(cloud.auth_url, "http://k/v3");
        assert!(matches!(&cloud.credentials, CredentialsRecord::Password(p) if p.password == "from-env"));
        assert_eq!(cloud.interface.as_deref(), Some("internal"));
        assert_eq!(cloud.region.as_deref(), Some("RegionOne"));
        assert!(s.insecure() && s.token_cache());
    }

    #[test]
    fn credentials_follow_auth_type_or_what_is_given() {
        let resolve = |doc: Value| settings(&[(yaml(), doc)]).resolve();
        let url = json!("http://k/v3");
        // One rule for every runtime: a password wins over a token, a token over a lone user.
        let c =
            resolve(json!({ "auth": { "auth_url": url, "token": "t", "username": "u", "password": "p" } }));
        assert!(matches!(c.unwrap().credentials, CredentialsRecord::Password(_)));
        let c = resolve(json!({ "auth": { "auth_url": url, "token": "t", "username": "u" } }));
        assert!(matches!(c.unwrap().credentials, CredentialsRecord::Token(_)));
        let c = resolve(
            json!({ "auth_type": "v3token", "auth": { "auth_url": url, "token": "t", "username": "u", "password": "p" } }),
        );
        assert!(matches!(c.unwrap().credentials, CredentialsRecord::Token(_)));
        let session = json!({ "token": "s", "expires_at": "2999-01-01T00:00:00Z", "image_endpoints": [] });
        let c = resolve(json!({ "auth": { "auth_url": url, "project_name": "p" }, "session": session }));
        assert_eq!(c.unwrap().credentials, CredentialsRecord::SessionOnly);
        let c = resolve(
            json!({ "auth": { "auth_url": url, "username": "u", "password": "p" }, "session": session }),
        );
        assert!(matches!(c.unwrap().credentials, CredentialsRecord::Password(_)));
        let c = resolve(
            json!({ "auth_type": "password", "auth": { "auth_url": url, "token": "t", "username": "u", "password": "p" } }),
        );
        assert!(matches!(c.unwrap().credentials, CredentialsRecord::Password(_)));
        let c = resolve(
            json!({ "auth": { "auth_url": url, "application_credential_id": "i", "application_credential_secret": "s" } }),
        );
        assert!(matches!(
            c.unwrap().credentials,
            CredentialsRecord::ApplicationCredential(_)
        ));
        let problem = |doc: Value| resolve(doc).unwrap_err();
        assert_eq!(problem(json!({ "auth": {} })), CloudProblem::NoAuthUrl);
        assert_eq!(
            problem(json!({ "auth": { "auth_url": url } })),
            CloudProblem::NoCredentials
        );
        assert_eq!(
            problem(json!({ "auth": { "auth_url": url, "username": "u" } })),
            CloudProblem::NoPassword
        );
        assert_eq!(
            problem(json!({ "auth": { "auth_url": url, "application_credential_secret": "s" } })),
            CloudProblem::NoApplicationCredentialId
        );
        assert_eq!(
            problem(json!({ "auth_type": "v3token", "auth": { "auth_url": url } })),
            CloudProblem::NoToken
        );
        assert_eq!(
            problem(json!({ "auth_type": "application_credential", "auth": { "auth_url": url } })),
            CloudProblem::UnsupportedAuthType {
                value: "application_credential".into(),
                origin: yaml()
            }
        );
        assert_eq!(
            problem(json!({ "interface": "sideways", "auth": { "auth_url": url, "token": "t" } })),
            CloudProblem::BadInterface {
                value: "sideways".into(),
                origin: yaml()
            }
        );
    }

    #[test]
    fn requests_name_unknown_keys() {
        let err = CloudDoc::from_request(json!({ "auth": { "auth_url": "u" }, "cacert": "/x" })).unwrap_err();
        assert!(err.contains("unknown field `cacert`"), "{err}");
        let err = CloudDoc::from_request(json!({ "auth": { "auth_url": "u", "colour": 1 } })).unwrap_err();
        assert!(err.contains("`auth.colour`"), "{err}");
        let doc = CloudDoc::from_request(json!({ "auth": { "auth_url": "u" }, "identity_api_version": 3 }))
            .unwrap();
        assert_eq!(doc.auth.auth_url.as_deref(), Some("u"));
    }
}
