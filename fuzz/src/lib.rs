//! Arbitrary inputs shaped like the contract's records, shared by the fuzz targets.

use arbitrary::Arbitrary;
use openstack_image_documents::{ImageDoc, SpecDoc};
use openstack_image_guest::types::{ImageSpec, ImageState, Timeouts};

/// A scratch directory for targets that parse files, made once per process.
pub fn scratch_dir() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a scratch directory"))
        .path()
}

/// An image spec from fuzz data: short strings from small alphabets so that values collide
/// (equal keys, equal tags) as often as they differ.
#[derive(Debug, Arbitrary)]
pub struct Spec {
    pub name: Option<String>,
    pub container_format: u8,
    pub disk_format: u8,
    pub local_file_path: Option<String>,
    pub image_source_url: Option<String>,
    pub source_checksum: Option<String>,
    pub decompress: Option<bool>,
    pub web_download: Option<bool>,
    pub import_method: Option<u8>,
    pub source_image_id: Option<String>,
    pub stores: Vec<String>,
    pub image_id: Option<String>,
    pub min_disk_gb: Option<u64>,
    pub min_ram_mb: Option<u64>,
    pub properties: Vec<(String, String)>,
    pub protected: Option<bool>,
    pub hidden: Option<bool>,
    pub region: Option<String>,
    pub tags: Vec<String>,
    pub visibility: Option<u8>,
    pub members: Option<Vec<String>>,
    pub deactivated: Option<bool>,
    pub timeouts: (Option<u64>, Option<u64>, Option<u64>),
}

const CONTAINERS: [&str; 5] = ["bare", "ovf", "docker", "ova", "tarball?"];
const DISKS: [&str; 6] = ["qcow2", "raw", "vmdk", "iso", "ploop", "qcow3"];
const METHODS: [&str; 5] = [
    "direct",
    "glance-direct",
    "web-download",
    "glance-download",
    "ftp",
];
const VISIBILITIES: [&str; 5] = ["public", "private", "shared", "community", "everyone"];

impl Spec {
    pub fn to_spec(&self) -> ImageSpec {
        ImageSpec {
            name: self.name.clone(),
            container_format: CONTAINERS[usize::from(self.container_format) % CONTAINERS.len()].into(),
            disk_format: DISKS[usize::from(self.disk_format) % DISKS.len()].into(),
            local_file_path: self.local_file_path.clone(),
            image_source_url: self.image_source_url.clone(),
            source_checksum: self.source_checksum.clone(),
            decompress: self.decompress,
            web_download: self.web_download,
            import_method: self
                .import_method
                .map(|m| METHODS[usize::from(m) % METHODS.len()].into()),
            source_region: self.source_image_id.as_ref().map(|_| "RegionOne".into()),
            source_image_id: self.source_image_id.clone(),
            stores: self.stores.clone(),
            image_id: self.image_id.clone(),
            min_disk_gb: self.min_disk_gb,
            min_ram_mb: self.min_ram_mb,
            properties: self.properties.clone(),
            protected: self.protected,
            hidden: self.hidden,
            region: self.region.clone(),
            tags: self.tags.clone(),
            visibility: self
                .visibility
                .map(|v| VISIBILITIES[usize::from(v) % VISIBILITIES.len()].into()),
            members: self.members.clone(),
            deactivated: self.deactivated,
            timeouts: Timeouts {
                create: self.timeouts.0,
                update: self.timeouts.1,
                delete: self.timeouts.2,
                import_stall: None,
            },
            ..ImageSpec::from(SpecDoc::default())
        }
    }
}

/// An image state around `spec`, with the given status.
pub fn state(spec: ImageSpec, status: &str) -> ImageState {
    ImageState {
        id: "0b1e3c1a-8d4f-4a5e-9c3b-2f6d7e8a9b0c".into(),
        spec,
        status: status.into(),
        ..ImageState::from(ImageDoc::default())
    }
}
