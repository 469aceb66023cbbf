//! Reading image data once: every byte read from the source feeds MD5 and SHA-512 and the
//! upload in the same pass.

use std::io::{self, Read};

use md5::{Digest, Md5};
use sha2::Sha512;

use crate::progress;

/// Report upload progress at most once per this many bytes.
const PROGRESS_STEP: u64 = 8 * 1024 * 1024;

/// Digests of the bytes that went through a [`DigestingReader`].
#[derive(Debug, Clone, PartialEq)]
pub struct SourceDigests {
    pub bytes: u64,
    pub md5: String,
    pub sha512: String,
}

/// Wraps a source; hashes and counts what is read and reports progress.
pub struct DigestingReader<R> {
    inner: R,
    md5: Md5,
    sha512: Sha512,
    bytes: u64,
    total: u64,
    image: String,
    reported: u64,
}

impl<R: Read> DigestingReader<R> {
    /// `total` is the expected length, for progress events about `image`.
    pub fn new(inner: R, image: &str, total: u64) -> Self {
        DigestingReader {
            inner,
            md5: Md5::new(),
            sha512: Sha512::new(),
            bytes: 0,
            total,
            image: image.to_string(),
            reported: 0,
        }
    }

    /// The digests of everything read so far.
    pub fn finish(self) -> SourceDigests {
        SourceDigests {
            bytes: self.bytes,
            md5: hex::encode(self.md5.finalize()),
            sha512: hex::encode(self.sha512.finalize()),
        }
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.md5.update(&buf[..n]);
        self.sha512.update(&buf[..n]);
        self.bytes += n as u64;
        if self.bytes - self.reported >= PROGRESS_STEP
            || (self.bytes == self.total && self.reported != self.bytes)
        {
            self.reported = self.bytes;
            progress::upload(&self.image, self.bytes, self.total);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_values() {
        let mut reader = DigestingReader::new(&b"abc"[..], "i", 3);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        let d = reader.finish();
        assert_eq!(out, b"abc");
        assert_eq!(d.bytes, 3);
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert!(d.sha512.starts_with("ddaf35a193617abacc417349ae204131"));
    }
}
