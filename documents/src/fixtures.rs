//! Whole documents for tests across the workspace — the guest's and the host's unit tests and
//! the hostile test component — written once and turned into each side's WIT types with
//! `.into()`; a test states only the fields it is about (`ImageSpec { tags, ..spec().into() }`).
//! Built with the `fixtures` feature only.

use crate::records::{
    CloudRecord, CredentialsRecord, ImageDoc, PasswordAuthRecord, ProjectScopeRecord, SpecDoc,
};

/// The id of [`image`]'s image.
pub const IMAGE_ID: &str = "6b0f4f5a-3b1e-4f7e-9a62-1f2d3c4b5a69";

/// A minimal valid spec: `cirros`, bare qcow2, from `/images/cirros.qcow2`.
pub fn spec() -> SpecDoc {
    SpecDoc {
        name: Some("cirros".into()),
        container_format: Some("bare".into()),
        disk_format: Some("qcow2".into()),
        local_file_path: Some("/images/cirros.qcow2".into()),
        ..SpecDoc::default()
    }
}

/// The active image [`IMAGE_ID`] holding `spec`, as Glance reports it: 3 bytes, owned by
/// project `p`, its user properties the spec's.
pub fn image(spec: SpecDoc) -> ImageDoc {
    ImageDoc {
        id: IMAGE_ID.into(),
        status: "active".into(),
        checksum: Some("m".into()),
        os_hash_algo: Some("sha512".into()),
        os_hash_value: Some("s".into()),
        size_bytes: Some(3),
        owner: Some("p".into()),
        created_at: "2026-01-01T00:00:00Z".into(),
        updated_at: "2026-01-01T00:00:01Z".into(),
        update_at: "2026-01-01T00:00:01Z".into(),
        file: format!("/v2/images/{IMAGE_ID}/file"),
        schema: "/v2/schemas/image".into(),
        metadata: spec.properties.clone(),
        spec,
        ..ImageDoc::default()
    }
}

/// A cloud at `auth_url` with password credentials: user `admin` (password `pw`), project
/// `demo` in domain `Default`.
pub fn cloud(auth_url: &str) -> CloudRecord {
    CloudRecord {
        auth_url: auth_url.into(),
        credentials: password("admin", "pw"),
        scope: ProjectScopeRecord {
            project_name: Some("demo".into()),
            project_domain_name: Some("Default".into()),
            ..ProjectScopeRecord::default()
        },
        region: None,
        interface: None,
        retries: None,
        session: None,
    }
}

/// Password credentials for `username`.
pub fn password(username: &str, password: &str) -> CredentialsRecord {
    CredentialsRecord::Password(PasswordAuthRecord {
        user_id: None,
        username: Some(username.into()),
        password: password.into(),
        user_domain_id: None,
        user_domain_name: None,
    })
}
