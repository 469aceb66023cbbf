//! How a request that got no answer failed, in words for people: the same sentences whichever
//! side saw it — the component, through wasi:http, or the bundled host, for its own Keystone
//! requests.

/// Why a request got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unanswered {
    /// Nothing listens there.
    Refused,
    /// The connection broke before a whole answer came.
    Broken,
    /// The name does not resolve.
    NotResolved,
    /// The server's certificate is not trusted.
    CertificateNotTrusted,
    /// The name resolves only into the blocked address ranges.
    BlockedAddress,
    /// TLS failed for another reason.
    TlsHandshake,
}

impl Unanswered {
    /// What happened and, where there is one, the fix.
    pub fn reason(self) -> &'static str {
        match self {
            Unanswered::Refused => "connection refused: is the service running and the URL right?",
            Unanswered::Broken => "the connection broke before a complete answer arrived",
            Unanswered::NotResolved => "the host name does not resolve",
            Unanswered::CertificateNotTrusted => {
                "the server's TLS certificate is not trusted (if the cloud uses a private CA, set \
                 `cacert` in clouds.yaml or OS_CACERT to its CA certificate file)"
            }
            Unanswered::BlockedAddress => {
                "the host name resolves only to addresses the sandbox blocks (link-local, metadata \
                 service, multicast); allow the address itself with --allow-host if it is really wanted"
            }
            Unanswered::TlsHandshake => "the TLS handshake failed",
        }
    }
}
