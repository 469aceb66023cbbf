//! Image data from a URL: opening it (basic auth, redirects), the download cache (a file
//! plus a sidecar recording size, digests and the server's validators), and the checks
//! that keep a partial or stale download from ever being uploaded.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::{Sha256, Sha512};

use openstack_image_documents::spec::cache_entry_name;

use crate::decompress::{self, Compression, SourceHints};
use crate::http::{Request, StreamedResponse, Transport, same_origin};
use crate::progress;
use crate::types::{ApiError, Error};

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 5;
/// Bytes buffered between the download and the cache file.
const COPY_CHUNK: usize = 1024 * 1024;
/// Report download progress at most once per this many bytes.
const PROGRESS_STEP: u64 = 8 * 1024 * 1024;

pub use openstack_image_documents::spec::NO_CACHE;

/// A digest the user expects the image data to have (`source_checksum`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedDigest {
    pub algorithm: DigestAlgorithm,
    pub hex: String,
}

/// The algorithms `source_checksum` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
    Sha512,
}

impl DigestAlgorithm {
    /// The name used in `source_checksum` and in messages.
    pub fn name(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "md5",
            DigestAlgorithm::Sha256 => "sha256",
            DigestAlgorithm::Sha512 => "sha512",
        }
    }
}

/// Parses `sha256:<hex>`, `sha512:<hex>` or `md5:<hex>`.
pub fn parse_checksum(text: &str) -> Result<ExpectedDigest, String> {
    let usage = "write it as sha256:<hex>, sha512:<hex> or md5:<hex>";
    let (algorithm, hex) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' names no algorithm; {usage}"))?;
    let (algorithm, length) = match algorithm.to_ascii_lowercase().as_str() {
        "md5" => (DigestAlgorithm::Md5, 32),
        "sha256" => (DigestAlgorithm::Sha256, 64),
        "sha512" => (DigestAlgorithm::Sha512, 128),
        other => return Err(format!("'{other}' is not a supported algorithm; {usage}")),
    };
    let hex = hex.trim().to_ascii_lowercase();
    if hex.len() != length || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "a {} digest is {length} hex digits; {usage}",
            algorithm.name()
        ));
    }
    Ok(ExpectedDigest { algorithm, hex })
}

/// Digests of some bytes. MD5 and SHA-512 are what Glance reports, so they are always
/// computed; SHA-256 only when a `source_checksum` asks for it (it costs a third of the
/// hashing time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digests {
    pub size: u64,
    pub md5: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub sha512: String,
}

impl Digests {
    /// The digest for `algorithm`, if it was computed.
    pub fn get(&self, algorithm: DigestAlgorithm) -> Option<&str> {
        match algorithm {
            DigestAlgorithm::Md5 => Some(&self.md5),
            DigestAlgorithm::Sha256 => self.sha256.as_deref(),
            DigestAlgorithm::Sha512 => Some(&self.sha512),
        }
    }

    /// True when both describe the same bytes (size, MD5 and SHA-512).
    pub fn same_bytes(&self, other: &Digests) -> bool {
        self.size == other.size && self.md5 == other.md5 && self.sha512 == other.sha512
    }

    /// Checks these digests against `source_checksum`; they must have been computed for it
    /// (see [`Hasher::for_check`]).
    pub fn check(&self, expected: &ExpectedDigest) -> Result<(), Error> {
        let actual = self
            .get(expected.algorithm)
            .expect("the digest a source_checksum names is computed");
        if actual == expected.hex {
            Ok(())
        } else {
            Err(Error::ChecksumMismatch(crate::types::ChecksumMismatch {
                algorithm: format!("source_checksum {}", expected.algorithm.name()),
                expected: expected.hex.clone(),
                actual: actual.to_string(),
            }))
        }
    }
}

/// Running MD5 and SHA-512 (and SHA-256 when asked) over bytes as they pass.
#[derive(Clone, Default)]
pub struct Hasher {
    md5: Md5,
    sha256: Option<Sha256>,
    sha512: Sha512,
    size: u64,
}

impl Hasher {
    /// A hasher that also computes what `expected` names.
    pub fn for_check(expected: Option<&ExpectedDigest>) -> Hasher {
        Hasher {
            sha256: expected
                .filter(|e| e.algorithm == DigestAlgorithm::Sha256)
                .map(|_| Sha256::default()),
            ..Hasher::default()
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.md5.update(bytes);
        if let Some(sha256) = &mut self.sha256 {
            sha256.update(bytes);
        }
        self.sha512.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// Bytes fed so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digests of everything fed so far.
    pub fn finish(self) -> Digests {
        Digests {
            size: self.size,
            md5: hex::encode(self.md5.finalize()),
            sha256: self.sha256.map(|h| hex::encode(h.finalize())),
            sha512: hex::encode(self.sha512.finalize()),
        }
    }
}

/// What the cache records beside a downloaded file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sidecar {
    pub url: String,
    pub decompress: bool,
    /// Digests of the cached (decompressed) bytes.
    pub digests: Digests,
    pub compression: Option<String>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// The cache file for a URL and decompress flag (the one naming rule, shared with the host).
pub fn cache_file(dir: &Path, url: &str, decompress: bool) -> PathBuf {
    dir.join(cache_entry_name(url, decompress))
}

fn sidecar_path(data: &Path) -> PathBuf {
    let mut name = data.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// How to fetch one URL.
pub struct UrlSource<'a> {
    pub url: &'a str,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub decompress: bool,
    pub timeout: Duration,
}

impl UrlSource<'_> {
    /// Sends `method` to the URL, following redirects; basic auth goes only to the URL's own host.
    pub fn open(
        &self,
        transport: &mut dyn Transport,
        method: &'static str,
    ) -> Result<StreamedResponse, Error> {
        let mut url = self.url.to_string();
        let mut seen = vec![url.clone()];
        loop {
            let mut request = Request::new(method, &url).timeout(self.timeout);
            if let (Some(user), Some(password)) = (self.username, self.password)
                && same_origin(&url, self.url)
            {
                let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                request = request.header("authorization", format!("Basic {token}"));
            }
            let response = transport.open(request)?;
            if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
                return self.expect_ok(&url, response);
            }
            let location = response.header("location").ok_or_else(|| {
                source_error(
                    &url,
                    format!("answered HTTP {} without a Location to follow", response.status),
                )
            })?;
            let next = url::Url::parse(&url)
                .and_then(|base| base.join(location))
                .map_err(|e| {
                    source_error(
                        &url,
                        format!("redirects to '{location}', which is not a URL ({e})"),
                    )
                })?
                .to_string();
            if seen.contains(&next) {
                return Err(source_error(
                    self.url,
                    format!("redirects in a loop ({} → {next})", seen.join(" → ")),
                ));
            }
            if seen.len() > MAX_REDIRECTS {
                return Err(source_error(
                    self.url,
                    format!("redirects more than {MAX_REDIRECTS} times"),
                ));
            }
            seen.push(next.clone());
            url = next;
        }
    }

    fn expect_ok(&self, url: &str, response: StreamedResponse) -> Result<StreamedResponse, Error> {
        match response.status {
            200 => Ok(response),
            401 | 403 => Err(Error::Forbidden(format!(
                "image_source_url {url}: the server refused access (HTTP {}); {}",
                response.status,
                if self.username.is_some() {
                    "check image_source_username and image_source_password"
                } else {
                    "it needs credentials: set image_source_username and image_source_password"
                }
            ))),
            404 | 410 => Err(Error::NotFound(format!(
                "image_source_url {url}: the server has no such file (HTTP {}); check the URL",
                response.status
            ))),
            status => Err(Error::Api(ApiError {
                method: "GET".into(),
                url: url.to_string(),
                status,
                message: "the image source did not answer with the file".into(),
            })),
        }
    }

    /// The compression to undo for a response, when `decompress` is set. Reads the first
    /// bytes to sniff magic numbers; returns them so they are not lost.
    fn compression(&self, response: &mut StreamedResponse) -> io::Result<(Option<Compression>, Vec<u8>)> {
        let mut head = vec![0u8; 8];
        let mut filled = 0;
        while filled < head.len() {
            let n = response.body.read(&mut head[filled..])?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        head.truncate(filled);
        if !self.decompress {
            return Ok((None, head));
        }
        let path = url::Url::parse(self.url)
            .map(|u| u.path().to_string())
            .unwrap_or_default();
        let format = decompress::detect(&SourceHints {
            content_type: response.header("content-type"),
            content_disposition: response.header("content-disposition"),
            url_path: &path,
            first_bytes: &head,
        });
        Ok((format, head))
    }

    /// A reader of the image bytes (decompressed when asked) and what is known about them.
    pub fn stream(&self, transport: &mut dyn Transport) -> Result<OpenedSource, Error> {
        let mut response = self.open(transport, "GET")?;
        let (compression, head) = self
            .compression(&mut response)
            .map_err(|e| source_error(self.url, e.to_string()))?;
        let content_length = response
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let etag = response.header("etag").map(str::to_string);
        let last_modified = response.header("last-modified").map(str::to_string);
        let raw: Box<dyn Read> = Box::new(Checked {
            inner: io::Cursor::new(head).chain(response.body),
            expected: content_length,
            seen: 0,
            url: self.url.to_string(),
        });
        let reader = match compression {
            Some(format) => {
                decompress::decoder(format, raw).map_err(|e| source_error(self.url, e.to_string()))?
            }
            None => raw,
        };
        Ok(OpenedSource {
            reader,
            // The decompressed size is unknown until the end.
            length: if compression.is_some() {
                None
            } else {
                content_length
            },
            compression,
            etag,
            last_modified,
        })
    }

    /// A verified cache file for this URL: reused when its sidecar matches and the server's
    /// validators are unchanged, downloaded (to a temporary name, renamed when complete)
    /// otherwise.
    pub fn cached(&self, transport: &mut dyn Transport, dir: &Path) -> Result<(PathBuf, Sidecar), Error> {
        fs::create_dir_all(dir).map_err(|e| cache_error(dir, &e))?;
        let data = cache_file(dir, self.url, self.decompress);
        if let Some(sidecar) = self.reusable(transport, &data)? {
            progress::info(format!(
                "using the cached download {} of {}",
                data.display(),
                self.url
            ));
            return Ok((data, sidecar));
        }
        let mut opened = self.stream(transport)?;
        let partial = dir.join(format!(
            ".{}.{}.part",
            file_name(&data),
            uuid::Uuid::new_v4().simple()
        ));
        let result = (|| {
            let mut file = File::create(&partial).map_err(|e| cache_error(&partial, &e))?;
            let mut hasher = Hasher::default();
            let mut buffer = vec![0u8; COPY_CHUNK];
            let mut reported = 0;
            loop {
                let n = opened
                    .reader
                    .read(&mut buffer)
                    .map_err(|e| source_error(self.url, e.to_string()))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buffer[..n]);
                file.write_all(&buffer[..n])
                    .map_err(|e| cache_error(&partial, &e))?;
                let size = hasher.size();
                if size - reported >= PROGRESS_STEP {
                    reported = size;
                    progress::download(self.url, size, opened.length);
                }
            }
            file.sync_all().map_err(|e| cache_error(&partial, &e))?;
            Ok(hasher.finish())
        })();
        let digests = match result {
            Ok(digests) => digests,
            Err(err) => {
                let _ = fs::remove_file(&partial);
                return Err(err);
            }
        };
        let sidecar = Sidecar {
            url: self.url.to_string(),
            decompress: self.decompress,
            digests,
            compression: opened.compression.map(|c| c.name().to_string()),
            etag: opened.etag,
            last_modified: opened.last_modified,
        };
        // Data first, then the sidecar: a sidecar never describes a file that is not complete.
        fs::rename(&partial, &data).map_err(|e| cache_error(&data, &e))?;
        let sidecar_file = sidecar_path(&data);
        let sidecar_partial = dir.join(format!(
            ".{}.{}.part",
            file_name(&sidecar_file),
            uuid::Uuid::new_v4().simple()
        ));
        let text = serde_json::to_vec_pretty(&sidecar).expect("sidecars serialise");
        fs::write(&sidecar_partial, text)
            .and_then(|()| fs::rename(&sidecar_partial, &sidecar_file))
            .map_err(|e| cache_error(&sidecar_file, &e))?;
        progress::info(format!(
            "downloaded {} ({} bytes) into {}",
            self.url,
            sidecar.digests.size,
            data.display()
        ));
        Ok((data, sidecar))
    }

    /// The sidecar of a cache file that is complete, intact and still current.
    fn reusable(&self, transport: &mut dyn Transport, data: &Path) -> Result<Option<Sidecar>, Error> {
        let Ok(text) = fs::read(sidecar_path(data)) else {
            return Ok(None);
        };
        let Ok(sidecar) = serde_json::from_slice::<Sidecar>(&text) else {
            progress::warn(format!(
                "ignoring the unreadable cache record of {}",
                data.display()
            ));
            return Ok(None);
        };
        if sidecar.url != self.url || sidecar.decompress != self.decompress {
            return Ok(None);
        }
        if sidecar.etag.is_none() && sidecar.last_modified.is_none() {
            // Without validators there is no way to tell the file is current.
            return Ok(None);
        }
        let head = self.open(transport, "HEAD")?;
        let current = |name: &str| head.header(name).map(str::to_string);
        let unchanged = match (&sidecar.etag, current("etag")) {
            (Some(cached), Some(now)) => *cached == now,
            _ => sidecar.last_modified.is_some() && sidecar.last_modified == current("last-modified"),
        };
        if !unchanged {
            progress::info(format!(
                "{} changed since it was cached; downloading it again",
                self.url
            ));
            return Ok(None);
        }
        match digest_file(data, None) {
            Ok(digests) if digests.same_bytes(&sidecar.digests) => Ok(Some(sidecar)),
            Ok(_) => {
                progress::warn(format!(
                    "the cached {} does not match its record; downloading again",
                    data.display()
                ));
                Ok(None)
            }
            Err(_) => Ok(None),
        }
    }
}

/// An opened image source.
pub struct OpenedSource {
    pub reader: Box<dyn Read>,
    /// Bytes the reader will yield, when known in advance.
    pub length: Option<u64>,
    pub compression: Option<Compression>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Digests of a whole file (including what `expected` names).
pub fn digest_file(path: &Path, expected: Option<&ExpectedDigest>) -> io::Result<Digests> {
    let mut file = File::open(path)?;
    let mut hasher = Hasher::for_check(expected);
    let mut buffer = vec![0u8; COPY_CHUNK];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buffer[..n]);
    }
}

/// Fails the read when the body ends before its announced Content-Length.
struct Checked<R> {
    inner: R,
    expected: Option<u64>,
    seen: u64,
    url: String,
}

impl<R: Read> Read for Checked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            // A connection that breaks before the announced length is a cut-short download.
            Err(err) => match self.expected {
                Some(expected) if self.seen < expected => {
                    return Err(io::Error::other(format!(
                        "the download from {} was cut short: {} of {expected} bytes arrived ({err})",
                        self.url, self.seen
                    )));
                }
                _ => return Err(err),
            },
        };
        self.seen += n as u64;
        if n == 0
            && let Some(expected) = self.expected
            && self.seen != expected
        {
            return Err(io::Error::other(format!(
                "the download from {} was cut short: {} of {expected} bytes arrived",
                self.url, self.seen
            )));
        }
        Ok(n)
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn source_error(url: &str, message: String) -> Error {
    Error::Transport(format!("image_source_url {url}: {message}"))
}

fn cache_error(path: &Path, err: &io::Error) -> Error {
    Error::Transport(format!(
        "image_cache_path: cannot write {}: {err} (the runtime must grant the cache directory read-write)",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checksums() {
        let sha = "a".repeat(64);
        assert_eq!(
            parse_checksum(&format!("SHA256:{sha}")).unwrap(),
            ExpectedDigest {
                algorithm: DigestAlgorithm::Sha256,
                hex: sha
            }
        );
        assert!(parse_checksum("md5:abc").unwrap_err().contains("32 hex digits"));
        assert!(
            parse_checksum("crc32:00")
                .unwrap_err()
                .contains("not a supported")
        );
        assert!(
            parse_checksum("deadbeef")
                .unwrap_err()
                .contains("names no algorithm")
        );
    }

    #[test]
    fn cache_names_depend_on_url_and_flag() {
        let dir = Path::new("/cache");
        let a = cache_file(dir, "http://x/a.img", false);
        assert_ne!(a, cache_file(dir, "http://x/a.img", true));
        assert_eq!(a, cache_file(dir, "http://x/a.img", false));
        assert_eq!(a.extension().unwrap(), "img");
        assert_eq!(
            sidecar_path(&a).to_string_lossy(),
            format!("{}.json", a.display())
        );
    }

    #[test]
    fn hasher_matches_known_digests() {
        let sha256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let expected = parse_checksum(&format!("sha256:{sha256}")).unwrap();
        let mut h = Hasher::for_check(Some(&expected));
        h.update(b"abc");
        let d = h.finish();
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d.sha256.as_deref(), Some(sha256));
        assert!(d.check(&expected).is_ok());
        let mut plain = Hasher::default();
        plain.update(b"abc");
        let plain = plain.finish();
        assert_eq!(plain.sha256, None, "SHA-256 only when asked");
        assert!(plain.same_bytes(&d));
        assert!(
            d.check(&parse_checksum(&format!("md5:{}", "0".repeat(32))).unwrap())
                .is_err()
        );
    }

    #[test]
    fn truncated_bodies_fail() {
        let mut short = Checked {
            inner: &b"abc"[..],
            expected: Some(5),
            seen: 0,
            url: "u".into(),
        };
        let mut out = Vec::new();
        assert!(
            short
                .read_to_end(&mut out)
                .unwrap_err()
                .to_string()
                .contains("3 of 5 bytes")
        );
        let mut exact = Checked {
            inner: &b"abc"[..],
            expected: Some(3),
            seen: 0,
            url: "u".into(),
        };
        assert_eq!(exact.read_to_end(&mut out).unwrap(), 3);
    }
}
