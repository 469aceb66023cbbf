//! go-plugin's AutoMTLS, server side: a fresh self-signed certificate for this process, and a
//! client-certificate check that accepts exactly the certificate Terraform passed in
//! PLUGIN_CLIENT_CERT. go-plugin makes that certificate with an ECDSA P-521 key, which ring
//! (rustls' crypto here) cannot verify, so P-521/SHA-512 signatures are verified with the
//! pure-Rust `p521` crate, added to ring's algorithms.

use std::sync::{Arc, LazyLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    AlgorithmIdentifier, CertificateDer, InvalidSignature, PrivateKeyDer, PrivatePkcs8KeyDer,
    SignatureVerificationAlgorithm, UnixTime, alg_id,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// ECDSA over P-521 with SHA-512: the signature go-plugin's client key makes.
#[derive(Debug)]
struct EcdsaP521Sha512;

impl SignatureVerificationAlgorithm for EcdsaP521Sha512 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        use p521::ecdsa::signature::Verifier;
        let key = p521::ecdsa::VerifyingKey::from_sec1_bytes(public_key).map_err(|_| InvalidSignature)?;
        let signature = p521::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &signature).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_P521
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ECDSA_SHA512
    }
}

static P521: EcdsaP521Sha512 = EcdsaP521Sha512;

/// ring's signature algorithms plus P-521. The tables are built once and live as long as the
/// process, as rustls' `'static` tables require.
static ALGORITHMS: LazyLock<WebPkiSupportedAlgorithms> = LazyLock::new(|| {
    let ring = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let all: Vec<&'static dyn SignatureVerificationAlgorithm> =
        ring.all.iter().copied().chain([&P521 as _]).collect();
    let p521_only: &'static [&'static dyn SignatureVerificationAlgorithm] = Box::leak(Box::new([&P521 as _]));
    let mapping: Vec<(
        SignatureScheme,
        &'static [&'static dyn SignatureVerificationAlgorithm],
    )> = ring
        .mapping
        .iter()
        .copied()
        .chain([(SignatureScheme::ECDSA_NISTP521_SHA512, p521_only)])
        .collect();
    WebPkiSupportedAlgorithms {
        all: all.leak(),
        mapping: mapping.leak(),
    }
});

/// Accepts only the one client certificate go-plugin announced, after the handshake proves
/// the client holds its key.
#[derive(Debug)]
pub struct PinnedClientCert {
    expected: CertificateDer<'static>,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // The exact certificate is pinned, so there is no chain or name to check; go-plugin
        // made it moments ago for this one connection.
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &ALGORITHMS)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &ALGORITHMS)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ALGORITHMS.supported_schemes()
    }
}

/// The TLS side of the handshake: the server configuration and the certificate to announce.
pub struct ServerIdentity {
    pub config: Arc<rustls::ServerConfig>,
    /// DER of the server certificate, for the handshake line.
    pub certificate: Vec<u8>,
}

/// A server identity that accepts only `client_cert_pem` (PLUGIN_CLIENT_CERT).
pub fn server_identity(client_cert_pem: &str) -> Result<ServerIdentity, String> {
    let expected = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
        .map_err(|e| format!("PLUGIN_CLIENT_CERT is not a PEM certificate: {e}"))?;
    // As go-plugin's own servers do: a CA certificate for "localhost" (the name its client
    // checks), trusted by the client because the handshake line carries it.
    let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a TLS key: {e}"))?;
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .map_err(|e| format!("cannot make a TLS certificate: {e}"))?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let certificate = params
        .self_signed(&key)
        .map_err(|e| format!("cannot make a TLS certificate: {e}"))?;
    let der = certificate.der().clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_client_cert_verifier(Arc::new(PinnedClientCert {
            expected: expected.into_owned(),
        }))
        .with_single_cert(
            vec![der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(ServerIdentity {
        config: Arc::new(config),
        certificate: der.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use p521::ecdsa::signature::Signer;

    fn key_pair() -> (p521::ecdsa::SigningKey, Vec<u8>) {
        let signing = p521::ecdsa::SigningKey::random(&mut p521::elliptic_curve::rand_core::OsRng);
        let public = p521::ecdsa::VerifyingKey::from(&signing)
            .to_encoded_point(false)
            .as_bytes()
            .to_vec();
        (signing, public)
    }

    #[test]
    fn p521_signatures_verify() {
        let (signing, public) = key_pair();
        let signature: p521::ecdsa::Signature = signing.sign(b"TLS 1.3, client CertificateVerify");
        let der = signature.to_der();
        assert!(
            P521.verify_signature(&public, b"TLS 1.3, client CertificateVerify", der.as_bytes())
                .is_ok()
        );
        assert!(
            P521.verify_signature(&public, b"something else", der.as_bytes())
                .is_err()
        );
        let (_, other) = key_pair();
        assert!(
            P521.verify_signature(&other, b"TLS 1.3, client CertificateVerify", der.as_bytes())
                .is_err()
        );
    }

    #[test]
    fn p521_is_offered_beside_rings_schemes() {
        let schemes = ALGORITHMS.supported_schemes();
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP521_SHA512));
        assert!(schemes.contains(&SignatureScheme::ECDSA_NISTP256_SHA256));
        assert!(schemes.contains(&SignatureScheme::RSA_PSS_SHA256));
    }

    #[test]
    fn only_the_pinned_certificate_is_accepted() {
        let other = rcgen::generate_simple_self_signed(vec!["client".to_string()]).unwrap();
        let pinned = rcgen::generate_simple_self_signed(vec!["client".to_string()]).unwrap();
        let verifier = PinnedClientCert {
            expected: pinned.cert.der().clone(),
        };
        let now = UnixTime::now();
        assert!(verifier.verify_client_cert(pinned.cert.der(), &[], now).is_ok());
        assert!(verifier.verify_client_cert(other.cert.der(), &[], now).is_err());
    }

    #[test]
    fn the_server_identity_is_for_localhost() {
        let client = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let identity = server_identity(&client.cert.pem()).unwrap();
        assert_eq!(identity.config.alpn_protocols, [b"h2".to_vec()]);
        assert!(!identity.certificate.is_empty());
        assert!(
            server_identity("not pem")
                .err()
                .unwrap()
                .contains("PLUGIN_CLIENT_CERT")
        );
    }
}
