//! What the bytes of an image are, by their headers, and whether they may be uploaded as the
//! declared `disk_format`: a raw file declared `qcow2` (or a qcow2 declared `raw`) is refused
//! before anything is created, and so are images unsafe whatever Glance does with them — a
//! qcow2 with a backing file or an external data file, a vmdk whose extents live outside the
//! file (the class of flaws behind Glance's own format-inspector advisories). Pure: it looks
//! at the first bytes (and, for a fixed VHD's footer, the last 512 when known).

/// How much of the data's beginning inspection looks at: an ISO's volume descriptor is at
/// 32 KiB, a vmdk's embedded descriptor usually at 512 bytes (and must lie inside).
pub const HEAD_BYTES: usize = 64 * 1024;

/// A VHD's footer: the last 512 bytes (a fixed VHD has no header).
pub const TAIL_BYTES: usize = 512;

/// What inspection found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// A format with a header (`qcow2`, `vmdk`, `vhd`, `vhdx`, `vdi`, `ploop`, `iso`), or
    /// `raw` for data with none of them.
    Format(&'static str),
    /// A format whose contents make it unsafe to store: the format and why.
    Unsafe(&'static str, String),
}

/// The format of `head` (the first up to [`HEAD_BYTES`] bytes of the data) and, when known,
/// `tail` (its last [`TAIL_BYTES`]).
pub fn inspect(head: &[u8], tail: Option<&[u8]>) -> Found {
    if head.starts_with(b"QFI\xfb") {
        return qcow2(head);
    }
    if head.starts_with(b"KDMV") {
        return vmdk_sparse(head);
    }
    if head.starts_with(b"# Disk DescriptorFile") {
        return Found::Unsafe(
            "vmdk",
            "it is a vmdk descriptor file: its extents (the data) are other files".into(),
        );
    }
    if head.starts_with(b"vhdxfile") {
        return Found::Format("vhdx");
    }
    if head.starts_with(b"conectix")
        || tail.is_some_and(|t| t.len() == TAIL_BYTES && t.starts_with(b"conectix"))
    {
        return Found::Format("vhd");
    }
    if head.get(0x40..0x44) == Some(&[0x7f, 0x10, 0xda, 0xbe][..]) {
        return Found::Format("vdi");
    }
    if head.starts_with(b"WithoutFreeSpace") || head.starts_with(b"WithouFreSpacExt") {
        return Found::Format("ploop");
    }
    if [0x8001, 0x8801, 0x9001]
        .iter()
        .any(|&at| head.get(at..at + 5) == Some(&b"CD001"[..]))
    {
        return Found::Format("iso");
    }
    Found::Format("raw")
}

/// Formats whose header inspection recognises: declared as one of these, data without that
/// header is refused.
const WITH_HEADER: &[&str] = &["qcow2", "vmdk", "vhdx", "vdi", "ploop", "iso"];

/// Whether data inspected as `found` may be uploaded as `disk_format`; `Err` says what the
/// bytes are and the fix. `tail_known`: whether the data's end was looked at (a fixed VHD is
/// recognised only by its footer).
pub fn matches(disk_format: &str, found: &Found, tail_known: bool) -> Result<(), String> {
    let format = match found {
        Found::Unsafe(format, why) => {
            return Err(format!(
                "the data is a {format} image that is unsafe to store: {why}; convert it to a \
                 self-contained image first (qemu-img convert -O {format} …)"
            ));
        }
        Found::Format(format) => *format,
    };
    if format == disk_format {
        return Ok(());
    }
    match format {
        // An ISO 9660 image is also usable as raw data (hybrid images boot either way), and
        // kernel, ramdisk and machine images are raw bytes of their own kinds.
        "raw" | "iso" if matches!(disk_format, "raw" | "aki" | "ari" | "ami") => Ok(()),
        // Without the footer a fixed VHD looks raw: nothing to say.
        "raw" if disk_format == "vhd" && !tail_known => Ok(()),
        "raw" | "iso" if disk_format == "vhd" || WITH_HEADER.contains(&disk_format) => Err(format!(
            "the data has no {disk_format} header (it reads as {format} data); set disk_format: \
             {format}, or point the source at a {disk_format} image"
        )),
        _ => Err(format!(
            "the data is a {format} image, not {disk_format}; set disk_format: {format}"
        )),
    }
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// A qcow2 header: a backing file (offset 8) or, in version 3, an external data file
/// (incompatible feature bit 2) makes the image read other files.
fn qcow2(head: &[u8]) -> Found {
    let Some(version) = be_u32(head, 4) else {
        return Found::Unsafe("qcow2", "its header is cut short".into());
    };
    if be_u64(head, 8).is_some_and(|offset| offset != 0) {
        return Found::Unsafe("qcow2", "it names a backing file, whose data it reads".into());
    }
    if version >= 3 && be_u64(head, 72).is_some_and(|features| features & (1 << 2) != 0) {
        return Found::Unsafe("qcow2", "it keeps its data in an external data file".into());
    }
    Found::Format("qcow2")
}

/// A vmdk sparse extent: its embedded descriptor (`descriptorOffset`, `descriptorSize` in
/// sectors, at 28 and 36) must describe one extent, the file itself, of a self-contained kind.
fn vmdk_sparse(head: &[u8]) -> Found {
    let (Some(offset), Some(size)) = (le_u64(head, 28), le_u64(head, 36)) else {
        return Found::Unsafe("vmdk", "its header is cut short".into());
    };
    if offset == 0 {
        return Found::Format("vmdk");
    }
    let start = offset.saturating_mul(512);
    let end = start.saturating_add(size.saturating_mul(512));
    if end > head.len() as u64 {
        return Found::Unsafe(
            "vmdk",
            format!(
                "its descriptor lies beyond the first {} KiB, so its extents cannot be checked",
                HEAD_BYTES >> 10
            ),
        );
    }
    let descriptor = String::from_utf8_lossy(&head[start as usize..end as usize]);
    let descriptor = descriptor.trim_end_matches('\0');
    let create_type = descriptor.lines().find_map(|line| {
        let value = line
            .trim()
            .strip_prefix("createType")?
            .trim_start()
            .strip_prefix('=')?;
        Some(value.trim().trim_matches('"').to_string())
    });
    match create_type.as_deref() {
        Some("monolithicSparse" | "streamOptimized") => {}
        Some(other) => {
            return Found::Unsafe(
                "vmdk",
                format!(
                    "its type {other} keeps data in other files (only monolithicSparse and streamOptimized are self-contained)"
                ),
            );
        }
        None => return Found::Unsafe("vmdk", "its descriptor names no createType".into()),
    }
    let extents = descriptor
        .lines()
        .filter(|line| {
            let word = line.split_whitespace().next().unwrap_or("");
            matches!(word, "RW" | "RDONLY" | "NOACCESS")
        })
        .count();
    if extents != 1 {
        return Found::Unsafe(
            "vmdk",
            format!("its descriptor lists {extents} extents; a self-contained vmdk has one"),
        );
    }
    Found::Format("vmdk")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qcow2_header(version: u32, backing: u64, incompatible: u64) -> Vec<u8> {
        let mut h = vec![0u8; 512];
        h[..4].copy_from_slice(b"QFI\xfb");
        h[4..8].copy_from_slice(&version.to_be_bytes());
        h[8..16].copy_from_slice(&backing.to_be_bytes());
        h[72..80].copy_from_slice(&incompatible.to_be_bytes());
        h
    }

    fn vmdk(create_type: &str, extents: &[&str]) -> Vec<u8> {
        let mut h = vec![0u8; 512 * 22];
        h[..4].copy_from_slice(b"KDMV");
        h[28..36].copy_from_slice(&1u64.to_le_bytes());
        h[36..44].copy_from_slice(&20u64.to_le_bytes());
        let mut text = format!("# Disk DescriptorFile\nversion=1\ncreateType=\"{create_type}\"\n");
        for extent in extents {
            text += &format!("{extent}\n");
        }
        h[512..512 + text.len()].copy_from_slice(text.as_bytes());
        h
    }

    #[test]
    fn formats_are_told_by_their_headers() {
        assert_eq!(inspect(&qcow2_header(3, 0, 0), None), Found::Format("qcow2"));
        assert_eq!(inspect(b"vhdxfile\0\0", None), Found::Format("vhdx"));
        assert_eq!(inspect(b"conectix\0\0", None), Found::Format("vhd"));
        let mut fixed_footer = vec![0u8; TAIL_BYTES];
        fixed_footer[..8].copy_from_slice(b"conectix");
        assert_eq!(inspect(&[0u8; 4096], Some(&fixed_footer)), Found::Format("vhd"));
        let mut vdi = vec![0u8; 512];
        vdi[0x40..0x44].copy_from_slice(&0xbeda107fu32.to_le_bytes());
        assert_eq!(inspect(&vdi, None), Found::Format("vdi"));
        let mut iso = vec![0u8; 0x9000];
        iso[0x8001..0x8006].copy_from_slice(b"CD001");
        assert_eq!(inspect(&iso, None), Found::Format("iso"));
        assert_eq!(inspect(&[7u8; 4096], None), Found::Format("raw"));
        assert_eq!(inspect(b"", None), Found::Format("raw"));
    }

    #[test]
    fn images_that_read_other_files_are_unsafe() {
        assert!(
            matches!(inspect(&qcow2_header(2, 512, 0), None), Found::Unsafe("qcow2", why) if why.contains("backing file"))
        );
        assert!(
            matches!(inspect(&qcow2_header(3, 0, 1 << 2), None), Found::Unsafe("qcow2", why) if why.contains("external data file"))
        );
        // Version 2 has no feature bits: the bytes there mean nothing.
        assert_eq!(inspect(&qcow2_header(2, 0, 1 << 2), None), Found::Format("qcow2"));
        assert_eq!(
            inspect(&qcow2_header(3, 0, 1 << 3), None),
            Found::Format("qcow2"),
            "other feature bits pass"
        );
        assert!(matches!(inspect(b"QFI\xfb", None), Found::Unsafe("qcow2", _)));

        let one = vmdk("monolithicSparse", &["RW 2048 SPARSE \"disk.vmdk\""]);
        assert_eq!(inspect(&one, None), Found::Format("vmdk"));
        let stream = vmdk("streamOptimized", &["RW 2048 SPARSE \"disk.vmdk\""]);
        assert_eq!(inspect(&stream, None), Found::Format("vmdk"));
        let split = vmdk(
            "monolithicSparse",
            &["RW 2048 SPARSE \"a.vmdk\"", "RW 2048 SPARSE \"/etc/shadow\""],
        );
        assert!(matches!(inspect(&split, None), Found::Unsafe("vmdk", why) if why.contains("2 extents")));
        let flat = vmdk("monolithicFlat", &["RW 2048 FLAT \"disk-flat.vmdk\" 0"]);
        assert!(matches!(inspect(&flat, None), Found::Unsafe("vmdk", why) if why.contains("monolithicFlat")));
        let descriptor_only = b"# Disk DescriptorFile\ncreateType=\"vmfs\"\nRW 2048 VMFS \"x-flat.vmdk\"\n";
        assert!(matches!(inspect(descriptor_only, None), Found::Unsafe("vmdk", _)));
        let mut far = vmdk("monolithicSparse", &["RW 1 SPARSE \"d.vmdk\""]);
        far[28..36].copy_from_slice(&4096u64.to_le_bytes());
        assert!(
            matches!(inspect(&far, None), Found::Unsafe("vmdk", why) if why.contains("beyond the first 64 KiB"))
        );
    }

    #[test]
    fn the_declared_format_must_agree_with_the_bytes() {
        let qcow2 = Found::Format("qcow2");
        let raw = Found::Format("raw");
        assert_eq!(matches("qcow2", &qcow2, true), Ok(()));
        assert_eq!(matches("raw", &raw, true), Ok(()));
        assert_eq!(matches("ami", &raw, true), Ok(()));
        assert_eq!(matches("raw", &Found::Format("iso"), true), Ok(()));
        let declared_qcow2 = matches("qcow2", &raw, true).unwrap_err();
        assert!(
            declared_qcow2.contains("no qcow2 header") && declared_qcow2.contains("set disk_format: raw"),
            "{declared_qcow2}"
        );
        let declared_raw = matches("raw", &qcow2, true).unwrap_err();
        assert_eq!(
            declared_raw,
            "the data is a qcow2 image, not raw; set disk_format: qcow2"
        );
        assert!(matches("vmdk", &qcow2, true).is_err());
        assert!(matches("iso", &raw, true).is_err());
        // A fixed VHD is told by its footer only.
        assert_eq!(matches("vhd", &raw, false), Ok(()));
        assert!(matches("vhd", &raw, true).is_err());
        let unsafe_one = matches(
            "qcow2",
            &Found::Unsafe("qcow2", "it names a backing file, whose data it reads".into()),
            true,
        )
        .unwrap_err();
        assert!(
            unsafe_one.contains("unsafe to store: it names a backing file"),
            "{unsafe_one}"
        );
    }
}
