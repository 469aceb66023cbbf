//! Every record that crosses the WIT boundary, each field written once: the lists below
//! declare the document types (with their serde and JSON Schema attributes) *and* drive the
//! conversions to and from each side's generated WIT types (see [`convert_records!`]).
//!
//! A list entry is `struct Doc => WitRecord { field: Type => conversion, ... }` or
//! `enum Doc => WitVariant { Case(Payload), ...; UnitCase, ... }` (cases without a payload
//! after a `;`); a conversion is `into` (same or nested
//! record type), `option` (an optional nested record), `text` (an optional text that the WIT
//! record holds as a plain string, empty when unset), `flag` (an optional yes/no that the WIT
//! record holds as a plain bool, false when unset) or `pairs` (an object that the WIT record
//! holds as a list of key/value tuples).

/// The image's documents: the spec (inputs), a `find` query and the state (inputs as applied
/// plus what Glance computed). Invokes `$callback! { [$args] LIST }`.
#[macro_export]
macro_rules! image_records {
    ($callback:ident $(, $($arg:tt)*)?) => {
        $callback! { [$($($arg)*)?]
            /// The spec document: an image's inputs, in the spec file's snake_case names. Unknown
            /// keys are errors; property values may be text, numbers or booleans.
            #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct SpecDoc => ImageSpec {
                /// Image name in Glance.
                #[serde(default)]
                #[schemars(extend("x-keep-when-unset" = true))]
                name: Option<String> => into,
                /// Container format.
                #[schemars(required, extend("enum" = $crate::spec::CONTAINER_FORMATS, "x-force-new" = true))]
                container_format: Option<String> => text,
                /// Disk format. With container_format bare, the data's own header must agree (a raw file declared qcow2, or a qcow2 declared raw, is refused), and images that read other files (a qcow2 backing file or external data file, a vmdk with other extents) are refused; both before anything is created.
                #[schemars(required, extend("enum" = $crate::spec::DISK_FORMATS, "x-force-new" = true))]
                disk_format: Option<String> => text,
                /// Absolute path of the image file to upload (the runtime must grant its directory). Conflicts with image_source_url; one of the two is required.
                #[serde(default)]
                #[schemars(extend("x-force-new" = true))]
                local_file_path: Option<String> => into,
                /// URL (http or https) to download the image data from. Conflicts with local_file_path; one of the two is required.
                #[serde(default)]
                #[schemars(extend("x-force-new" = true))]
                image_source_url: Option<String> => into,
                /// Basic-auth user for image_source_url. Changing it changes only the state.
                #[serde(default)]
                image_source_username: Option<String> => into,
                /// Basic-auth password for image_source_url; never returned or stored.
                #[serde(default, skip_serializing)]
                #[schemars(extend("x-secret" = true, "writeOnly" = true))]
                image_source_password: Option<String> => into,
                /// Directory where downloads are cached, or "none" to stream the download into Glance. Default: the runtime's cache (the CLI's: $OPENSTACK_IMAGE_CACHE_DIR/images, else ~/.cache/openstack-image/images). Changing it changes only the state.
                #[serde(default)]
                #[schemars(extend("x-runtime-default" = true))]
                image_cache_path: Option<String> => into,
                /// Expected digest of the image data as uploaded: sha256:<hex>, sha512:<hex> or md5:<hex>. Changing it changes only the state.
                #[serde(default)]
                #[schemars(extend("pattern" = "^(sha256|sha512|md5):[0-9a-fA-F]+$"))]
                source_checksum: Option<String> => into,
                /// Decompress the downloaded data (gzip, bzip2, xz, zstd) before upload; the format is told by the Content-Type, then the Content-Disposition filename, then the URL's extension, then the data's magic bytes.
                #[serde(default)]
                #[schemars(extend("x-force-new" = true, "default" = $crate::spec::defaults::DECOMPRESS))]
                decompress: Option<bool> => into,
                /// Let Glance download image_source_url itself (web-download import).
                #[serde(default)]
                #[schemars(extend("x-force-new" = true, "default" = $crate::spec::defaults::WEB_DOWNLOAD))]
                web_download: Option<bool> => into,
                /// How the data reaches Glance: direct (PUT the data; the default, or web-download with web_download), glance-direct (stage, then import: runs Glance's import plugins), web-download (Glance fetches image_source_url) or glance-download (Glance copies source_image_id from source_region).
                #[serde(default)]
                #[schemars(extend("enum" = $crate::spec::IMPORT_METHODS, "x-force-new" = true))]
                import_method: Option<String> => into,
                /// web-download only: what to do when Glance's import fails or stalls (timeouts.import_stall). upload: delete the half-made image, fetch the data here (through the cache, verified as any image_source_url download) and upload it into the same stores, as a new image whose id derives from the import's; the state's import_result says so. Unset: the create fails. Changing it changes only the state.
                #[serde(default)]
                #[schemars(extend("enum" = $crate::spec::IMPORT_FALLBACKS))]
                import_fallback: Option<String> => into,
                /// glance-download: the region whose Glance holds the image to copy.
                #[serde(default)]
                #[schemars(extend("x-force-new" = true))]
                source_region: Option<String> => into,
                /// glance-download: the id of the image to copy.
                #[serde(default)]
                #[schemars(extend("format" = "uuid", "x-force-new" = true))]
                source_image_id: Option<String> => into,
                /// Store ids that must hold the data (a set). Unset: the cloud's default store at create, not managed afterwards. Adding or removing a store is done in place (copy-image, delete from store).
                #[serde(default)]
                #[schemars(extend("uniqueItems" = true, "x-keep-when-unset" = true))]
                stores: Vec<String> => into,
                /// With several stores: one failed store fails the import (true, the default) or the image keeps the stores that worked (false). Changing it changes only the state.
                #[serde(default)]
                #[schemars(extend("default" = $crate::spec::defaults::ALL_STORES_MUST_SUCCEED))]
                all_stores_must_succeed: Option<bool> => into,
                /// Create the image with this UUID (default: one the runtime chooses and records before the create).
                #[serde(default)]
                #[schemars(extend("format" = "uuid", "x-force-new" = true))]
                image_id: Option<String> => into,
                /// Minimum disk size in GB needed to boot the image. Default 0.
                #[serde(default, deserialize_with = "crate::text::count")]
                #[schemars(extend("default" = $crate::spec::defaults::MIN_DISK_GB))]
                min_disk_gb: Option<u64> => into,
                /// Minimum RAM in MB needed to boot the image. Default 0.
                #[serde(default, deserialize_with = "crate::text::count")]
                #[schemars(extend("default" = $crate::spec::defaults::MIN_RAM_MB))]
                min_ram_mb: Option<u64> => into,
                /// Free-form key/value properties managed by this resource. Values are text (numbers and booleans are written as text). Only the keys the spec names (now or before) are compared and changed; keys Glance owns (os_hash_*, os_glance_*, stores, checksum, ...) are refused.
                #[serde(default, deserialize_with = "crate::text::properties")]
                #[schemars(extend("additionalProperties" = { "type": ["string", "number", "boolean"] }))]
                properties: std::collections::BTreeMap<String, String> => pairs,
                /// When true the image cannot be deleted. Default false.
                #[serde(default)]
                #[schemars(extend("default" = $crate::spec::defaults::PROTECTED))]
                protected: Option<bool> => into,
                /// Hide the image from the default image list. Default false.
                #[serde(default)]
                #[schemars(extend("default" = $crate::spec::defaults::HIDDEN))]
                hidden: Option<bool> => into,
                /// Region whose image endpoint hosts the image. Default: the cloud's region (OS_REGION_NAME).
                #[serde(default)]
                #[schemars(extend("x-force-new" = true))]
                region: Option<String> => into,
                /// Tags, as a set, replaced as a whole ([] clears them).
                #[serde(default)]
                #[schemars(extend("uniqueItems" = true))]
                tags: Vec<String> => into,
                /// Verify Glance's checksums against the uploaded bytes. Default true. Changing it changes only the state.
                #[serde(default)]
                #[schemars(extend("default" = $crate::spec::defaults::VERIFY_CHECKSUM))]
                verify_checksum: Option<bool> => into,
                /// Who can see the image. Default private.
                #[serde(default)]
                #[schemars(extend("enum" = $crate::spec::VISIBILITIES, "default" = $crate::spec::defaults::VISIBILITY))]
                visibility: Option<String> => into,
                /// The projects (Keystone project ids) the image is shared with, as a set; only a shared image has members. Unset: its memberships are left alone; [] removes them all (the visibility stays). In place.
                #[serde(default)]
                #[schemars(extend("uniqueItems" = true, "x-keep-when-unset" = true, "items" = { "type": "string", "pattern": $crate::spec::PROJECT_ID_PATTERN }))]
                members: Option<Vec<String>> => into,
                /// Deactivate the image: Glance keeps it but serves no data, so nothing new boots from it; false reactivates it. Default false. In place.
                #[serde(default)]
                #[schemars(extend("default" = $crate::spec::defaults::DEACTIVATED))]
                deactivated: Option<bool> => into,
                /// Per-operation time limits in seconds (create 1800, update 600, delete 600); each request of the operation may take only the time left, and a timeout names the last status seen. Changing them changes only the state.
                #[serde(default, deserialize_with = "crate::text::or_default")]
                timeouts: TimeoutsDoc => into,
            }

            /// Per-operation time limits, in whole seconds (`90s`, `30m`, `1h30m` are read too).
            #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct TimeoutsDoc => Timeouts {
                /// The whole create: upload or import, waiting for active, verifying. Default 1800 (30m).
                #[serde(default, deserialize_with = "crate::text::seconds")]
                #[schemars(extend("x-unit" = "seconds"))]
                create: Option<u64> => into,
                /// An in-place update. Default 600 (10m).
                #[serde(default, deserialize_with = "crate::text::seconds")]
                #[schemars(extend("x-unit" = "seconds"))]
                update: Option<u64> => into,
                /// A delete. Default 600 (10m).
                #[serde(default, deserialize_with = "crate::text::seconds")]
                #[schemars(extend("x-unit" = "seconds"))]
                delete: Option<u64> => into,
                /// How long an import Glance runs (web-download, glance-download, glance-direct, copy-image) may show no progress (status, task, stores, size) before it counts as stalled: the wait ends, the half-made image is deleted, and the error names the import, the time and the stores. Default 600 (10m).
                #[serde(default, deserialize_with = "crate::text::seconds")]
                #[schemars(extend("x-unit" = "seconds"))]
                import_stall: Option<u64> => into,
            }

            /// A `find` query: Terraform's `openstack_images_image_v2` data source arguments
            /// (the `image-query` record), `properties` as an object.
            #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct QueryDoc => ImageQuery {
                /// Exact image name.
                #[serde(default)]
                name: Option<String> => into,
                /// A regular expression the name must match (Rust regex syntax, unanchored).
                #[serde(default)]
                name_regex: Option<String> => into,
                /// public, private, shared, community or all.
                #[serde(default)]
                visibility: Option<String> => into,
                /// Project id that owns the image.
                #[serde(default)]
                owner: Option<String> => into,
                /// Tags the image must all have.
                #[serde(default)]
                tags: Vec<String> => into,
                /// One more tag the image must have (Terraform's data source has both tag and tags).
                #[serde(default)]
                tag: Option<String> => into,
                /// Properties the image must have with these values.
                #[serde(default, deserialize_with = "crate::text::properties")]
                #[schemars(extend("additionalProperties" = { "type": ["string", "number", "boolean"] }))]
                properties: std::collections::BTreeMap<String, String> => pairs,
                /// Smallest size in bytes.
                #[serde(default)]
                size_min: Option<u64> => into,
                /// Largest size in bytes.
                #[serde(default)]
                size_max: Option<u64> => into,
                /// Glance's sort: comma-separated key[:asc|:desc] (default created_at:desc).
                #[serde(default)]
                sort: Option<String> => into,
                /// With several matches, take the most recently created one instead of failing.
                #[serde(default)]
                most_recent: Option<bool> => flag,
                /// For images shared with the project: accepted, pending, rejected or all.
                #[serde(default)]
                member_status: Option<String> => into,
                /// Only hidden images (true) or only visible ones (false, Glance's default).
                #[serde(default)]
                hidden: Option<bool> => into,
                /// Container format.
                #[serde(default)]
                container_format: Option<String> => into,
                /// Disk format.
                #[serde(default)]
                disk_format: Option<String> => into,
                /// Region whose image endpoint to search; default: the cloud's region.
                #[serde(default)]
                region: Option<String> => into,
            }

            /// An image as it exists: its inputs as last applied and read back (`spec`, secrets
            /// left out) beside everything Glance computed.
            #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct ImageDoc => ImageState {
                /// Glance image id.
                #[schemars(extend("format" = "uuid", "x-stable" = true))]
                id: String => into,
                /// The inputs as applied and read back.
                spec: SpecDoc => into,
                /// Image status (active once created).
                #[serde(default)]
                status: String => into,
                /// MD5 of the data, as Glance computed it.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                checksum: Option<String> => into,
                /// Algorithm of os_hash_value (usually sha512).
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                os_hash_algo: Option<String> => into,
                /// Multihash of the data.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                os_hash_value: Option<String> => into,
                /// Size in bytes of the data.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                size_bytes: Option<u64> => into,
                /// Virtual disk size in bytes, when Glance knows it.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                virtual_size: Option<u64> => into,
                /// Project that owns the image.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                owner: Option<String> => into,
                /// Creation time (ISO 8601).
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                created_at: String => into,
                /// Last update time (ISO 8601).
                #[serde(default)]
                updated_at: String => into,
                /// Deprecated alias of updated_at.
                #[serde(default)]
                update_at: String => into,
                /// Path of the image data below the image endpoint.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                file: String => into,
                /// Path of Glance's JSON schema of the image.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                schema: String => into,
                /// Every property Glance reports, server-set ones included.
                #[serde(default, deserialize_with = "crate::text::properties")]
                metadata: std::collections::BTreeMap<String, String> => pairs,
                /// The last import Glance ran for the image (none after a plain upload).
                #[serde(default)]
                import_result: Option<ImportResultDoc> => option,
                /// Direct URL of the data, when exposed.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                direct_url: Option<String> => into,
                /// The source data as uploaded, to notice when it changes.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                source_fingerprint: Option<FingerprintDoc> => option,
                /// Each member project of a shared image and its answer: pending, accepted or rejected.
                #[serde(default)]
                member_statuses: std::collections::BTreeMap<String, String> => pairs,
            }

            /// What one of Glance's imports did.
            #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct ImportResultDoc => ImportResult {
                /// glance-direct, web-download, glance-download or copy-image.
                method: String => into,
                /// Glance's import task, when the cloud has the tasks API.
                #[serde(default)]
                task_id: Option<String> => into,
                /// The task's last status (success, failure).
                #[serde(default)]
                status: String => into,
                /// The task's message.
                #[serde(default)]
                message: String => into,
                /// Stores the import was asked to write.
                #[serde(default)]
                stores: Vec<String> => into,
                /// Stores that failed.
                #[serde(default)]
                failed_stores: Vec<String> => into,
                /// The disk format Glance stored when an import plugin converted the data.
                #[serde(default)]
                converted_to: Option<String> => into,
                /// How the data arrived after this import failed: upload (import_fallback).
                #[serde(default)]
                fallback: Option<String> => into,
            }

            /// What the image's data was when it was uploaded.
            #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct FingerprintDoc => SourceFingerprint {
                size: u64 => into,
                sha512: String => into,
                /// Nanoseconds since 1970, as a decimal string (exact beyond 2^53).
                #[serde(default, with = "crate::text::decimal")]
                #[schemars(with = "Option<String>", extend("pattern" = "^[0-9]+$"))]
                mtime_ns: Option<u64> => into,
                #[serde(default)]
                etag: Option<String> => into,
                #[serde(default)]
                last_modified: Option<String> => into,
            }
        }
    };
}

/// The membership resource's documents: one project's membership of a shared image (the
/// WIT `membership-spec` and `membership-state`). Invokes `$callback! { [$args] LIST }`.
#[macro_export]
macro_rules! membership_records {
    ($callback:ident $(, $($arg:tt)*)?) => {
        $callback! { [$($($arg)*)?]
            /// A membership's inputs: the image, the member project, the answer and who acts.
            #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct MembershipSpecDoc => MembershipSpec {
                /// The shared image's id.
                #[schemars(required, extend("format" = "uuid", "x-force-new" = true))]
                image_id: Option<String> => text,
                /// The member project (a Keystone project id). Default: the project of the caller's token.
                #[serde(default)]
                #[schemars(extend("pattern" = $crate::spec::PROJECT_ID_PATTERN, "x-force-new" = true, "x-cloud-default" = true))]
                member_id: Option<String> => into,
                /// The member's answer: pending, accepted or rejected. Member side: default accepted. Owner side: unset leaves the answer to the member (setting it takes an admin).
                #[serde(default)]
                #[schemars(extend("enum" = $crate::spec::MEMBER_STATUSES, "x-keep-when-unset" = true))]
                status: Option<String> => into,
                /// Who acts: member (the default; answers the owner's offer, and rejects it when deleted) or owner (offers the image to member_id, and withdraws the offer when deleted).
                #[serde(default)]
                #[schemars(extend("enum" = $crate::spec::MEMBERSHIP_SIDES, "default" = $crate::spec::defaults::MEMBERSHIP_SIDE, "x-force-new" = true))]
                side: Option<String> => into,
                /// Region whose image endpoint holds the image.
                #[serde(default)]
                #[schemars(extend("x-force-new" = true))]
                region: Option<String> => into,
            }

            /// A membership as Glance has it: its inputs as applied and read back beside what
            /// Glance computed.
            #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct MembershipDoc => MembershipState {
                /// IMAGE_ID/MEMBER_ID.
                #[schemars(extend("x-stable" = true))]
                id: String => into,
                /// The inputs as applied and read back.
                spec: MembershipSpecDoc => into,
                /// The member's answer: pending, accepted or rejected.
                #[serde(default)]
                status: String => into,
                /// When the owner offered the image (ISO 8601).
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                created_at: String => into,
                /// When the membership last changed (ISO 8601).
                #[serde(default)]
                updated_at: String => into,
                /// Path of Glance's JSON schema of a member.
                #[serde(default)]
                #[schemars(extend("x-stable" = true))]
                schema: String => into,
            }
        }
    };
}

/// The typed cloud (the WIT `cloud` record and its parts), as settings resolve to it
/// ([`crate::cloud::CloudSettings::resolve`]). Invokes `$callback! { [$args] LIST }`.
#[macro_export]
macro_rules! cloud_records {
    ($callback:ident $(, $($arg:tt)*)?) => {
        $callback! { [$($($arg)*)?]
            /// Where and how to reach the cloud.
            #[derive(Debug, Clone, PartialEq)]
            struct CloudRecord => Cloud {
                auth_url: String => into,
                credentials: CredentialsRecord => into,
                scope: ProjectScopeRecord => into,
                region: Option<String> => into,
                interface: Option<String> => into,
                retries: Option<u32> => into,
                session: Option<SessionRecord> => option,
            }

            /// How to authenticate to Keystone.
            #[derive(Debug, Clone, PartialEq)]
            enum CredentialsRecord => Credentials {
                Password(PasswordAuthRecord),
                ApplicationCredential(ApplicationCredentialRecord),
                Token(String),
                ;
                /// None: the component works with the cloud's session alone.
                SessionOnly,
            }

            /// Keystone v3 password authentication.
            #[derive(Debug, Clone, PartialEq)]
            struct PasswordAuthRecord => PasswordAuth {
                user_id: Option<String> => into,
                username: Option<String> => into,
                password: String => into,
                user_domain_id: Option<String> => into,
                user_domain_name: Option<String> => into,
            }

            /// Keystone v3 application credential.
            #[derive(Debug, Clone, PartialEq)]
            struct ApplicationCredentialRecord => ApplicationCredentialAuth {
                id: Option<String> => into,
                name: Option<String> => into,
                secret: String => into,
                user_id: Option<String> => into,
                username: Option<String> => into,
                user_domain_id: Option<String> => into,
                user_domain_name: Option<String> => into,
            }

            /// The project to scope the token to.
            #[derive(Debug, Clone, Default, PartialEq)]
            struct ProjectScopeRecord => ProjectScope {
                project_id: Option<String> => into,
                project_name: Option<String> => into,
                project_domain_id: Option<String> => into,
                project_domain_name: Option<String> => into,
            }

            /// A Keystone token and its catalog's image endpoints (`authenticate`'s answer;
            /// also the `session` of a cloud document).
            #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct SessionRecord => Session {
                token: String => into,
                #[serde(default)]
                expires_at: Option<String> => into,
                #[serde(default)]
                image_endpoints: Vec<EndpointRecord> => list,
                /// The project the token is scoped to.
                #[serde(default)]
                project_id: Option<String> => into,
            }

            /// One image endpoint of a token's catalog.
            #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
            #[serde(deny_unknown_fields)]
            struct EndpointRecord => Endpoint {
                url: String => into,
                #[serde(default)]
                region: Option<String> => into,
                interface: String => into,
            }
        }
    };
}

/// Declares the document types of a record list (used inside this crate).
macro_rules! define_records {
    ([]) => {};
    ([] $(#[$meta:meta])* struct $doc:ident => $wit:ident {
        $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $conv:ident, )*
    } $($rest:tt)*) => {
        $(#[$meta])*
        pub struct $doc {
            $( $(#[$fmeta])* pub $field: $ty, )*
        }
        define_records!([] $($rest)*);
    };
    ([] $(#[$meta:meta])* enum $doc:ident => $wit:ident {
        $( $(#[$vmeta:meta])* $case:ident($payload:ty), )*
        $( ; $( $(#[$umeta:meta])* $unit:ident, )* )?
    } $($rest:tt)*) => {
        $(#[$meta])*
        pub enum $doc {
            $( $(#[$vmeta])* $case($payload), )*
            $( $( $(#[$umeta])* $unit, )* )?
        }
        define_records!([] $($rest)*);
    };
}

/// Conversions between this crate's records and one side's generated WIT types, both ways:
/// `image_records!(convert_records, crate::types)` in the guest (wit-bindgen types),
/// `image_records!(convert_records, crate::bindings::openstack::image::types)` in the host
/// (wasmtime bindgen types). Each side gets `From` impls for its own types from the one list.
#[macro_export]
macro_rules! convert_records {
    (@into into $value:expr) => { ::core::convert::Into::into($value) };
    (@into option $value:expr) => { ($value).map(::core::convert::Into::into) };
    (@into text $value:expr) => { ($value).unwrap_or_default() };
    (@into pairs $value:expr) => { ($value).into_iter().collect() };
    (@into flag $value:expr) => { ($value).unwrap_or(false) };
    (@into list $value:expr) => { ($value).into_iter().map(::core::convert::Into::into).collect() };
    (@from into $value:expr) => { ::core::convert::Into::into($value) };
    (@from option $value:expr) => { ($value).map(::core::convert::Into::into) };
    (@from text $value:expr) => { ::core::option::Option::Some($value).filter(|t: &String| !t.is_empty()) };
    (@from pairs $value:expr) => { ($value).into_iter().collect() };
    (@from flag $value:expr) => { ::core::option::Option::Some($value).filter(|on: &bool| *on) };
    (@from list $value:expr) => { ($value).into_iter().map(::core::convert::Into::into).collect() };
    ([$($wit:ident)::+]) => {};
    ([$($wit:ident)::+] $(#[$meta:meta])* struct $doc:ident => $rec:ident {
        $( $(#[$fmeta:meta])* $field:ident : $ty:ty => $conv:ident, )*
    } $($rest:tt)*) => {
        impl ::core::convert::From<$crate::records::$doc> for $($wit)::+::$rec {
            fn from(doc: $crate::records::$doc) -> Self {
                Self { $( $field: $crate::convert_records!(@into $conv doc.$field), )* }
            }
        }
        impl ::core::convert::From<$($wit)::+::$rec> for $crate::records::$doc {
            fn from(record: $($wit)::+::$rec) -> Self {
                Self { $( $field: $crate::convert_records!(@from $conv record.$field), )* }
            }
        }
        $crate::convert_records!([$($wit)::+] $($rest)*);
    };
    ([$($wit:ident)::+] $(#[$meta:meta])* enum $doc:ident => $rec:ident {
        $( $(#[$vmeta:meta])* $case:ident($payload:ty), )*
        $( ; $( $(#[$umeta:meta])* $unit:ident, )* )?
    } $($rest:tt)*) => {
        impl ::core::convert::From<$crate::records::$doc> for $($wit)::+::$rec {
            fn from(doc: $crate::records::$doc) -> Self {
                match doc {
                    $( $crate::records::$doc::$case(v) => Self::$case(v.into()), )*
                    $( $( $crate::records::$doc::$unit => Self::$unit, )* )?
                }
            }
        }
        impl ::core::convert::From<$($wit)::+::$rec> for $crate::records::$doc {
            fn from(record: $($wit)::+::$rec) -> Self {
                type Wit = $($wit)::+::$rec;
                match record {
                    $( Wit::$case(v) => Self::$case(v.into()), )*
                    $( $( Wit::$unit => Self::$unit, )* )?
                }
            }
        }
        $crate::convert_records!([$($wit)::+] $($rest)*);
    };
}

image_records!(define_records);
membership_records!(define_records);
cloud_records!(define_records);
