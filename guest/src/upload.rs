//! Reading image data once: every byte read from the source feeds the digests, the
//! `source_checksum` check and the upload in the same pass.

use std::io::{self, Read};

use crate::progress;
use crate::source::{Digests, ExpectedDigest, Hasher};

/// Report upload progress at most once per this many bytes.
const PROGRESS_STEP: u64 = 8 * 1024 * 1024;

/// Wraps a source; hashes and counts what is read, reports progress, and checks the
/// expected digest before the last bytes are handed on.
pub struct DigestingReader<R> {
    inner: R,
    hasher: Hasher,
    total: Option<u64>,
    image: String,
    reported: u64,
    expected: Option<ExpectedDigest>,
    mismatch: Option<String>,
}

impl<R: Read> DigestingReader<R> {
    /// `total` is the length when known (for progress and the early digest check).
    pub fn new(inner: R, image: &str, total: Option<u64>, expected: Option<ExpectedDigest>) -> Self {
        DigestingReader {
            inner,
            hasher: Hasher::for_check(expected.as_ref()),
            total,
            image: image.to_string(),
            reported: 0,
            expected,
            mismatch: None,
        }
    }

    /// The digest the data really had when it did not match `source_checksum`.
    pub fn mismatch(&self) -> Option<&str> {
        self.mismatch.as_deref()
    }

    /// The digests of everything read so far.
    pub fn finish(self) -> Digests {
        self.hasher.finish()
    }

    /// At the end of the data: refuses to yield the final bytes when the digest is wrong, so
    /// the upload never completes with them.
    fn check_end(&mut self) -> io::Result<()> {
        let Some(expected) = self.expected.take() else {
            return Ok(());
        };
        let digests = self.hasher.clone().finish();
        let actual = digests
            .get(expected.algorithm)
            .expect("the hasher computes the expected digest");
        if actual == expected.hex {
            return Ok(());
        }
        self.mismatch = Some(actual.to_string());
        Err(io::Error::other(format!(
            "the data's {} is {actual}, not the source_checksum {}; nothing was uploaded",
            expected.algorithm.name(),
            expected.hex
        )))
    }
}

impl<R: Read> Read for DigestingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        let size = self.hasher.size();
        let at_end = n == 0 || self.total == Some(size);
        if at_end {
            self.check_end()?;
        }
        if size != self.reported && (at_end || size - self.reported >= PROGRESS_STEP) {
            progress::upload(&self.image, size, self.total);
            self.reported = size;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::parse_checksum;

    #[test]
    fn digests_match_known_values() {
        let mut reader = DigestingReader::new(&b"abc"[..], "i", Some(3), None);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        let d = reader.finish();
        assert_eq!(out, b"abc");
        assert_eq!(d.size, 3);
        assert_eq!(d.md5, "900150983cd24fb0d6963f7d28e17f72");
        assert!(d.sha512.starts_with("ddaf35a193617abacc417349ae204131"));
    }

    #[test]
    fn a_wrong_checksum_withholds_the_last_bytes() {
        let wrong = parse_checksum(&format!("md5:{}", "0".repeat(32))).unwrap();
        let mut reader = DigestingReader::new(&b"abcdef"[..], "i", Some(6), Some(wrong));
        let mut buf = [0u8; 4];
        assert_eq!(reader.read(&mut buf).unwrap(), 4);
        assert!(
            reader.read(&mut buf).is_err(),
            "the read that completes the data fails"
        );
        assert_eq!(reader.mismatch(), Some("e80b5017098950fc58aad83c8c14978e"));
    }

    #[test]
    fn a_wrong_checksum_fails_at_the_end_of_unknown_length_data() {
        let wrong = parse_checksum(&format!("md5:{}", "0".repeat(32))).unwrap();
        let mut reader = DigestingReader::new(&b"abc"[..], "i", None, Some(wrong));
        let mut out = Vec::new();
        assert!(reader.read_to_end(&mut out).is_err());
        let right = parse_checksum("md5:900150983cd24fb0d6963f7d28e17f72").unwrap();
        let mut reader = DigestingReader::new(&b"abc"[..], "i", None, Some(right));
        assert_eq!(reader.read_to_end(&mut out).unwrap(), 3);
    }
}
