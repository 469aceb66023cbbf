//! Deciding whether downloaded image data is compressed, and decoding it as a stream.
//!
//! Every decoder here is pure Rust, because the guest is built for `wasm32-wasip2` by the Rust
//! toolchain alone (no C compiler):
//! - gzip: `flate2` on its `miniz_oxide` backend (`MultiGzDecoder`, so concatenated members decode);
//! - bzip2: `bzip2` 0.6, whose default backend is the Rust port `libbz2-rs-sys` (`MultiBzDecoder`);
//! - xz: `lzma-rust2` (`XzReader`, a `Read` port of XZ for Java; `xz2`/`liblzma` wrap C);
//! - zstd: `ruzstd` (`FrameDecoder`, driven here so that every frame decodes and checksums are checked).

use std::io::{self, BufRead, BufReader, Read};

use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
use ruzstd::decoding::{BlockDecodingStrategy, FrameDecoder};

/// Largest xz dictionary or zstd window accepted, so hostile headers can't exhaust guest memory
/// (xz's presets stop at 64 MiB; zstd's CLI refuses windows over 128 MiB by default).
const MAX_WINDOW_BYTES: u64 = 256 * 1024 * 1024;

/// A compression format of downloaded image data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    /// Lower-case name for messages and state: "gzip", "bzip2", "xz", "zstd".
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Bzip2 => "bzip2",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
        }
    }
}

/// What is known about a download when deciding how to decompress it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceHints<'a> {
    /// The `Content-Type` header, e.g. "application/gzip; charset=binary".
    pub content_type: Option<&'a str>,
    /// The `Content-Disposition` header, e.g. `attachment; filename="img.qcow2.xz"`.
    pub content_disposition: Option<&'a str>,
    /// The URL's path without the query, e.g. "/images/cirros.img.zst".
    pub url_path: &'a str,
    /// The first bytes of the body (may be shorter than any magic).
    pub first_bytes: &'a [u8],
}

/// Detects the format from Content-Type, filename, URL extension, then magic; None = pass through.
pub fn detect(hints: &SourceHints) -> Option<Compression> {
    // A hint decides only when it names a format: a generic type or a filename without a
    // compression extension says nothing, so the next hint is asked.
    hints
        .content_type
        .and_then(from_content_type)
        .or_else(|| {
            hints
                .content_disposition
                .and_then(disposition_filename)
                .and_then(|f| from_name(&f))
        })
        .or_else(|| from_name(&last_segment(hints.url_path)))
        .or_else(|| from_magic(hints.first_bytes))
}

/// Wraps `source` in a streaming decoder for `format` that decompresses incrementally in bounded memory.
pub fn decoder<'a>(format: Compression, source: Box<dyn Read + 'a>) -> io::Result<Box<dyn Read + 'a>> {
    // Nothing is read yet: a malformed stream shows up as an `io::Error` from the first read.
    Ok(match format {
        // The Multi* decoders keep going after the first member, as `gzip -d`/`bzip2 -d` do.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(source)),
        Compression::Bzip2 => Box::new(bzip2::read::MultiBzDecoder::new(source)),
        Compression::Xz => {
            let limit_kib = u32::try_from(MAX_WINDOW_BYTES / 1024).unwrap_or(u32::MAX);
            // XzReader pulls small header reads from its input: buffer them.
            Box::new(lzma_rust2::XzReader::new_mem_limit(
                BufReader::new(source),
                true,
                limit_kib,
            ))
        }
        Compression::Zstd => Box::new(ZstdFrames::new(BufReader::new(source))),
    })
}

/// The media type of a `Content-Type` header when it names a compression format.
fn from_content_type(value: &str) -> Option<Compression> {
    let media = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    match media.as_str() {
        "application/gzip" | "application/x-gzip" => Some(Compression::Gzip),
        "application/x-bzip2" => Some(Compression::Bzip2),
        "application/x-xz" => Some(Compression::Xz),
        "application/zstd" | "application/x-zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// The format a file name's extension names, if any.
fn from_name(name: &str) -> Option<Compression> {
    let name = name.trim().to_ascii_lowercase();
    const EXTENSIONS: [(&str, Compression); 6] = [
        (".gz", Compression::Gzip),
        (".tgz", Compression::Gzip),
        (".bz2", Compression::Bzip2),
        (".xz", Compression::Xz),
        (".zst", Compression::Zstd),
        (".zstd", Compression::Zstd),
    ];
    EXTENSIONS
        .iter()
        // A bare ".gz" is a hidden file's name, not an extension.
        .find(|(ext, _)| name.len() > ext.len() && name.ends_with(ext))
        .map(|&(_, format)| format)
}

/// The format announced by the body's first bytes.
fn from_magic(bytes: &[u8]) -> Option<Compression> {
    const MAGICS: [(&[u8], Compression); 4] = [
        (&[0x1f, 0x8b], Compression::Gzip),
        (b"BZh", Compression::Bzip2),
        (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], Compression::Xz),
        (&[0x28, 0xb5, 0x2f, 0xfd], Compression::Zstd),
    ];
    MAGICS
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|&(_, format)| format)
}

/// The last segment of a URL path, percent-decoded (a defensive cut at `?`/`#` too).
fn last_segment(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    percent_decode(path.rsplit('/').next().unwrap_or(""))
}

/// The file name of a `Content-Disposition` header; `filename*` (RFC 6266) wins over `filename`.
fn disposition_filename(value: &str) -> Option<String> {
    let mut plain = None;
    let mut extended = None;
    for (name, val) in disposition_params(value) {
        if name.eq_ignore_ascii_case("filename*") {
            // charset'language'percent-encoded-value: the charset barely matters for an extension.
            extended = val.splitn(3, '\'').nth(2).map(percent_decode);
        } else if name.eq_ignore_ascii_case("filename") {
            plain = Some(val);
        }
    }
    extended.or(plain).filter(|f| !f.is_empty())
}

/// The `name=value` parameters of a header value; quoted values may hold `;` and `\"`.
fn disposition_params(value: &str) -> Vec<(String, String)> {
    let mut params = Vec::new();
    let mut chars = value.chars().peekable();
    loop {
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        // Whatever precedes the last ';' is the disposition type or a bare token: not a name.
        let name = name.rsplit(';').next().unwrap_or("").trim().to_string();
        if name.is_empty() {
            return params;
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut val = String::new();
        if chars.next_if_eq(&'"').is_some() {
            while let Some(c) = chars.next() {
                match c {
                    '\\' => val.extend(chars.next()),
                    '"' => break,
                    c => val.push(c),
                }
            }
            // Drop anything between the closing quote and the next parameter.
            for c in chars.by_ref() {
                if c == ';' {
                    break;
                }
            }
        } else {
            val = chars.by_ref().take_while(|&c| c != ';').collect();
            val = val.trim().to_string();
        }
        params.push((name, val));
    }
}

/// Decodes `%XX` escapes (invalid escapes stay as they are; invalid UTF-8 becomes U+FFFD).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|&b| hex(b)),
                bytes.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes every zstd frame, skipping skippable ones and checking checksums (ruzstd's
/// `StreamingDecoder` stops after one frame and ignores checksums).
struct ZstdFrames<R: BufRead> {
    source: R,
    frame: FrameDecoder,
    in_frame: bool,
    frames: u64,
}

impl<R: BufRead> ZstdFrames<R> {
    fn new(source: R) -> Self {
        let mut frame = FrameDecoder::new();
        frame.set_max_window_size(MAX_WINDOW_BYTES);
        ZstdFrames {
            source,
            frame,
            in_frame: false,
            frames: 0,
        }
    }

    /// Reads the next frame header, skipping skippable frames; false at a clean end of input.
    fn start_frame(&mut self) -> io::Result<bool> {
        loop {
            if self.source.fill_buf()?.is_empty() {
                if self.frames == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "empty zstd stream"));
                }
                return Ok(false);
            }
            match self.frame.reset(&mut self.source) {
                Ok(()) => {
                    self.frames += 1;
                    return Ok(true);
                }
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    let skipped = io::copy(&mut (&mut self.source).take(u64::from(length)), &mut io::sink())?;
                    if skipped != u64::from(length) {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "truncated zstd skippable frame",
                        ));
                    }
                    // A stream of only skippable frames still counts as well-formed.
                    self.frames += 1;
                }
                Err(e) => return Err(zstd_error(e)),
            }
        }
    }
}

impl<R: BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.in_frame {
                if !self.start_frame()? {
                    return Ok(0);
                }
                self.in_frame = true;
            }
            // One block at a time keeps memory at the window plus one block.
            while self.frame.can_collect() == 0 && !self.frame.is_finished() {
                self.frame
                    .decode_blocks(&mut self.source, BlockDecodingStrategy::UptoBlocks(1))
                    .map_err(zstd_error)?;
            }
            let n = self.frame.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            // The frame is finished and drained: its checksum now covers every byte handed out.
            if let Some(expected) = self.frame.get_checksum_from_data()
                && self.frame.get_calculated_checksum() != Some(expected)
            {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "zstd frame checksum mismatch",
                ));
            }
            self.in_frame = false;
        }
    }
}

/// A ruzstd error as an `io::Error`, keeping a short read's kind so truncation stays recognisable.
fn zstd_error(e: FrameDecoderError) -> io::Error {
    let mut kind = io::ErrorKind::InvalidData;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<io::Error>() {
            kind = io.kind();
            break;
        }
        cause = c.source();
    }
    io::Error::new(kind, format!("zstd: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn hints<'a>(
        content_type: Option<&'a str>,
        content_disposition: Option<&'a str>,
        url_path: &'a str,
        first_bytes: &'a [u8],
    ) -> SourceHints<'a> {
        SourceHints {
            content_type,
            content_disposition,
            url_path,
            first_bytes,
        }
    }

    const GZ_MAGIC: &[u8] = &[0x1f, 0x8b, 0x08, 0x00];
    const XZ_MAGIC: &[u8] = &[0xfd, b'7', b'z', b'X', b'Z', 0x00, 0x00, 0x04];
    const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd, 0x04];

    #[test]
    fn names() {
        let all = [
            Compression::Gzip,
            Compression::Bzip2,
            Compression::Xz,
            Compression::Zstd,
        ];
        let names: Vec<_> = all.iter().map(|c| c.name()).collect();
        assert_eq!(names, ["gzip", "bzip2", "xz", "zstd"]);
    }

    #[test]
    fn content_type_wins_over_everything() {
        let h = hints(
            Some("Application/X-XZ; charset=binary"),
            Some(r#"attachment; filename="img.qcow2.gz""#),
            "/images/cirros.img.zst",
            GZ_MAGIC,
        );
        assert_eq!(detect(&h), Some(Compression::Xz));
        for (ct, want) in [
            ("application/gzip", Compression::Gzip),
            ("application/x-gzip", Compression::Gzip),
            ("application/x-bzip2", Compression::Bzip2),
            ("application/x-xz", Compression::Xz),
            ("application/zstd", Compression::Zstd),
            (" APPLICATION/X-ZSTD ;q=1", Compression::Zstd),
        ] {
            assert_eq!(
                detect(&hints(Some(ct), None, "/img.raw", b"QFI\xfb")),
                Some(want),
                "{ct}"
            );
        }
    }

    #[test]
    fn generic_content_type_falls_through() {
        let h = hints(
            Some("application/octet-stream"),
            Some("attachment; filename=disk.bz2"),
            "/x.gz",
            XZ_MAGIC,
        );
        assert_eq!(detect(&h), Some(Compression::Bzip2));
        let h = hints(Some("application/octet-stream"), None, "/x", ZSTD_MAGIC);
        assert_eq!(detect(&h), Some(Compression::Zstd));
        let h = hints(
            Some("application/octet-stream"),
            None,
            "/cirros.qcow2",
            b"QFI\xfb\0\0\0\x03",
        );
        assert_eq!(detect(&h), None);
    }

    #[test]
    fn filename_beats_extension_and_magic() {
        let h = hints(
            None,
            Some(r#"attachment; filename="img.qcow2.xz""#),
            "/download/img.gz",
            GZ_MAGIC,
        );
        assert_eq!(detect(&h), Some(Compression::Xz));
        // Unquoted and upper-case.
        let h = hints(None, Some("attachment;filename=DISK.IMG.ZSTD"), "/download", b"");
        assert_eq!(detect(&h), Some(Compression::Zstd));
        // A filename without a compression extension says nothing: the URL decides.
        let h = hints(
            None,
            Some(r#"attachment; filename="disk.img""#),
            "/disk.img.bz2",
            b"",
        );
        assert_eq!(detect(&h), Some(Compression::Bzip2));
    }

    #[test]
    fn extended_filename_form() {
        let h = hints(
            None,
            Some("attachment; filename*=UTF-8''cirros%20disk.img.xz"),
            "/dl",
            b"",
        );
        assert_eq!(detect(&h), Some(Compression::Xz));
        // filename* wins over filename, in either order; the extension may be escaped.
        let cd = r#"attachment; filename*=utf-8'en'img%2Ezst; filename="img.gz""#;
        assert_eq!(
            detect(&hints(None, Some(cd), "/dl", b"")),
            Some(Compression::Zstd)
        );
        let cd = r#"attachment; filename="img.gz"; FILENAME*=UTF-8''img.tgz"#;
        assert_eq!(
            detect(&hints(None, Some(cd), "/dl", b"")),
            Some(Compression::Gzip)
        );
        // No disposition type, or a bare token before the name.
        let cd = "filename=img.xz";
        assert_eq!(detect(&hints(None, Some(cd), "/dl", b"")), Some(Compression::Xz));
        let cd = "attachment; creation; filename = img.bz2";
        assert_eq!(
            detect(&hints(None, Some(cd), "/dl", b"")),
            Some(Compression::Bzip2)
        );
        let cd = "inline";
        assert_eq!(detect(&hints(None, Some(cd), "/dl", b"")), None);
        // Quoted names may hold ';' and escaped quotes.
        let cd = r#"attachment; filename="a;b \"c\".bz2"; size=3"#;
        assert_eq!(disposition_filename(cd).as_deref(), Some(r#"a;b "c".bz2"#));
        assert_eq!(
            detect(&hints(None, Some(cd), "/dl", b"")),
            Some(Compression::Bzip2)
        );
    }

    #[test]
    fn extension_beats_magic() {
        assert_eq!(
            detect(&hints(None, None, "/images/cirros.img.zst", GZ_MAGIC)),
            Some(Compression::Zstd)
        );
        assert_eq!(
            detect(&hints(None, None, "/images/cirros.TGZ", b"")),
            Some(Compression::Gzip)
        );
        assert_eq!(
            detect(&hints(None, None, "/a/b.bz2", b"")),
            Some(Compression::Bzip2)
        );
        // Only the last segment counts: a directory named like an archive is not one.
        assert_eq!(detect(&hints(None, None, "/mirror.gz/cirros.img", b"")), None);
        // The path given has no query, but a stray one must not make ".gz?x=1" unrecognised.
        assert_eq!(
            detect(&hints(None, None, "/cirros.img.xz?sig=abc.gz", b"")),
            Some(Compression::Xz)
        );
        // A bare ".gz" is not an extension.
        assert_eq!(detect(&hints(None, None, "/.gz", b"")), None);
    }

    #[test]
    fn magic_bytes() {
        assert_eq!(detect(&hints(None, None, "/", GZ_MAGIC)), Some(Compression::Gzip));
        assert_eq!(
            detect(&hints(None, None, "/", b"BZh91AY&SY")),
            Some(Compression::Bzip2)
        );
        assert_eq!(detect(&hints(None, None, "/", XZ_MAGIC)), Some(Compression::Xz));
        assert_eq!(
            detect(&hints(None, None, "/", ZSTD_MAGIC)),
            Some(Compression::Zstd)
        );
        assert_eq!(detect(&hints(None, None, "", b"")), None);
    }

    #[test]
    fn short_first_bytes_do_not_match() {
        for bytes in [&[0x1f][..], b"BZ", &XZ_MAGIC[..5], &ZSTD_MAGIC[..3]] {
            assert_eq!(detect(&hints(None, None, "/img", bytes)), None, "{bytes:?}");
        }
        // Exactly the magic is enough.
        assert_eq!(
            detect(&hints(None, None, "/img", &XZ_MAGIC[..6])),
            Some(Compression::Xz)
        );
        assert_eq!(
            detect(&hints(None, None, "/img", &ZSTD_MAGIC[..4])),
            Some(Compression::Zstd)
        );
    }

    /// A few hundred KB of pseudo-random text: compressible, but not trivially.
    fn sample(len: usize) -> Vec<u8> {
        const WORDS: [&str; 12] = [
            "glance", "image", "qcow2", "raw", "cirros", "kernel", "\n", "disk", "0", "zz", "checksum",
            "\0\0",
        ];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = Vec::with_capacity(len + 16);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            if state.is_multiple_of(5) {
                // Some incompressible bytes too.
                out.extend_from_slice(&state.to_le_bytes()[..3]);
            } else {
                out.extend_from_slice(WORDS[(state >> 32) as usize % WORDS.len()].as_bytes());
            }
        }
        out.truncate(len);
        out
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn bzip2(data: &[u8]) -> Vec<u8> {
        let mut enc = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn xz(data: &[u8]) -> Vec<u8> {
        let mut enc = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).unwrap();
        enc.write_all(data).unwrap();
        enc.finish().unwrap()
    }

    fn zstd(data: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(data, ruzstd::encoding::CompressionLevel::Fastest)
    }

    fn compress(format: Compression, data: &[u8]) -> Vec<u8> {
        match format {
            Compression::Gzip => gzip(data),
            Compression::Bzip2 => bzip2(data),
            Compression::Xz => xz(data),
            Compression::Zstd => zstd(data),
        }
    }

    const ALL: [Compression; 4] = [
        Compression::Gzip,
        Compression::Bzip2,
        Compression::Xz,
        Compression::Zstd,
    ];

    /// Reads through `decoder` in small, odd-sized steps, as a download loop would.
    fn decode(format: Compression, compressed: &[u8]) -> io::Result<Vec<u8>> {
        let mut reader = decoder(format, Box::new(compressed))?;
        let mut out = Vec::new();
        let mut buf = [0u8; 7919];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(out);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn round_trips() {
        let data = sample(300 * 1024);
        for format in ALL {
            let compressed = compress(format, &data);
            assert!(
                compressed.len() < data.len(),
                "{} did not compress",
                format.name()
            );
            assert_eq!(detect(&hints(None, None, "/img", &compressed)), Some(format));
            let decoded = decode(format, &compressed).unwrap_or_else(|e| panic!("{}: {e}", format.name()));
            assert!(decoded == data, "{} round trip differs", format.name());
        }
    }

    #[test]
    fn empty_payload_round_trips() {
        for format in ALL {
            let decoded = decode(format, &compress(format, b"")).unwrap();
            assert!(decoded.is_empty(), "{}", format.name());
        }
    }

    #[test]
    fn concatenated_streams_decode_fully() {
        let (a, b) = (sample(150 * 1024), sample(70 * 1024 + 3));
        let mut want = a.clone();
        want.extend_from_slice(&b);
        for format in ALL {
            let mut joined = compress(format, &a);
            joined.extend_from_slice(&compress(format, &b));
            let decoded = decode(format, &joined).unwrap_or_else(|e| panic!("{}: {e}", format.name()));
            assert!(decoded == want, "{} lost a member", format.name());
        }
    }

    #[test]
    fn zstd_skippable_frames_are_skipped() {
        let data = sample(40 * 1024);
        let mut stream = vec![0x50, 0x2a, 0x4d, 0x18, 5, 0, 0, 0, 1, 2, 3, 4, 5];
        stream.extend_from_slice(&zstd(&data));
        stream.extend_from_slice(&[0x5f, 0x2a, 0x4d, 0x18, 0, 0, 0, 0]);
        assert_eq!(decode(Compression::Zstd, &stream).unwrap(), data);
        // A skippable frame cut short is truncation.
        let err = decode(Compression::Zstd, &stream[..10]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let data = sample(200 * 1024);
        for format in ALL {
            let good = compress(format, &data);
            // Flipped bytes in the middle: a decode error or a checksum mismatch.
            let mut flipped = good.clone();
            let mid = flipped.len() / 2;
            for b in &mut flipped[mid..mid + 4] {
                *b ^= 0x55;
            }
            assert!(
                decode(format, &flipped).is_err(),
                "{} accepted flipped bytes",
                format.name()
            );
            // Cut short, as a dropped download would be.
            let cut = &good[..good.len() * 2 / 3];
            let err = decode(format, cut).expect_err(format.name());
            assert_eq!(
                err.kind(),
                io::ErrorKind::UnexpectedEof,
                "{}: {err}",
                format.name()
            );
            // Garbage after the magic.
            let mut garbage = good[..6].to_vec();
            garbage.extend(sample(4096).iter().map(|b| b.wrapping_mul(31)));
            assert!(
                decode(format, &garbage).is_err(),
                "{} accepted garbage",
                format.name()
            );
            // Not this format at all.
            assert!(
                decode(format, b"QFI\xfb\0\0\0\x03 not compressed").is_err(),
                "{}",
                format.name()
            );
        }
    }

    #[test]
    fn zstd_checksum_is_verified() {
        let data = sample(10 * 1024);
        let mut frame = zstd(&data);
        // ruzstd's encoder writes the optional content checksum (frame header flag 0x04).
        assert_ne!(frame[4] & 0x04, 0, "test frame carries no checksum");
        let last = frame.len() - 1;
        frame[last] ^= 0xff;
        let err = decode(Compression::Zstd, &frame).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }

    #[test]
    fn empty_input_is_an_error() {
        for format in ALL {
            assert!(
                decode(format, b"").is_err(),
                "{} accepted empty input",
                format.name()
            );
        }
    }

    #[test]
    fn hostile_windows_are_refused_not_allocated() {
        // A zstd frame header asking for a 2 GiB window (window descriptor exponent 21).
        let frame = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 21 << 3, 0, 0, 0];
        assert!(decode(Compression::Zstd, &frame).is_err());
    }

    /// Counts what the decoder pulls from its source.
    struct Counting<'a> {
        inner: &'a [u8],
        taken: std::rc::Rc<std::cell::Cell<usize>>,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.taken.set(self.taken.get() + n);
            Ok(n)
        }
    }

    #[test]
    fn decoding_is_incremental() {
        let data = sample(4 * 1024 * 1024);
        for format in ALL {
            let compressed = compress(format, &data);
            let taken = std::rc::Rc::new(std::cell::Cell::new(0));
            let source = Counting {
                inner: &compressed,
                taken: taken.clone(),
            };
            let mut reader = decoder(format, Box::new(source)).unwrap();
            let mut first = [0u8; 4096];
            reader.read_exact(&mut first).unwrap();
            assert_eq!(&first[..], &data[..4096]);
            // The first output needs only the first part of the input, not all of it.
            assert!(
                taken.get() < compressed.len() / 2,
                "{} read {} of {} bytes for its first 4 KiB",
                format.name(),
                taken.get(),
                compressed.len()
            );
        }
    }

    /// Streams made by the real command-line tools, where installed (skipped otherwise).
    #[test]
    fn command_line_tools_interoperate() {
        let data = sample(256 * 1024);
        let runs: [(Compression, &str, &[&str]); 6] = [
            (Compression::Gzip, "gzip", &["-c", "-9"]),
            (Compression::Bzip2, "bzip2", &["-c", "-9"]),
            (Compression::Xz, "xz", &["-c", "-9", "--check=sha256"]),
            // Several blocks in one stream.
            (
                Compression::Xz,
                "xz",
                &["-c", "--block-size=65536", "--check=crc32"],
            ),
            (Compression::Zstd, "zstd", &["-c", "-q", "-19"]),
            (
                Compression::Zstd,
                "zstd",
                &["-c", "-q", "--no-check", "--long=24"],
            ),
        ];
        for (format, tool, args) in runs {
            let child = std::process::Command::new(tool)
                .args(args)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn();
            let Ok(mut child) = child else {
                eprintln!("{tool} not installed: skipped");
                continue;
            };
            let mut stdin = child.stdin.take().unwrap();
            let input = data.clone();
            let writer = std::thread::spawn(move || stdin.write_all(&input));
            let output = child.wait_with_output().unwrap();
            writer.join().unwrap().unwrap();
            assert!(output.status.success(), "{tool} {args:?} failed");
            assert_eq!(detect(&hints(None, None, "/img", &output.stdout)), Some(format));
            let decoded = decode(format, &output.stdout).unwrap_or_else(|e| panic!("{tool} {args:?}: {e}"));
            assert!(decoded == data, "{tool} {args:?} round trip differs");
        }
    }
}
