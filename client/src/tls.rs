//! Mutual-TLS channels to rk servers, and CA discovery for joiners.
//!
//! Servers present their certificate chain with the cluster CA appended.
//! A joiner that holds only a join token pins the CA by its sha256 (the
//! token's middle part): [`discover_ca`] accepts a server only if its chain
//! contains a certificate with that fingerprint and the leaf verifies
//! against it. After that every connection is ordinary mutual TLS.

use crate::coalesce::DeferredFlush;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Installs the process-wide rustls crypto provider (ring). Safe to call
/// more than once.
pub fn init_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// PEM material for a mutual-TLS client.
#[derive(Clone, Debug)]
pub struct TlsIdentity {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

/// `host:port` or `https://host:port` to a URI tonic accepts.
pub fn server_uri(addr: &str) -> String {
    if addr.starts_with("https://") {
        addr.to_string()
    } else if let Some(rest) = addr.strip_prefix("http://") {
        // rk has no plaintext port; an http:// address is upgraded, not honoured.
        format!("https://{rest}")
    } else {
        format!("https://{addr}")
    }
}

/// The host part of `HOST:PORT`, `[V6]:PORT` or `https://HOST:PORT`.
pub fn host_of(addr: &str) -> &str {
    let a = addr.trim_start_matches("https://").trim_start_matches("http://");
    match a.rsplit_once(':') {
        Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
        None => a,
    }
}

/// An endpoint with mutual TLS; connects lazily.
pub fn endpoint(
    addr: &str,
    id: Option<&TlsIdentity>,
    ca_pem: &str,
) -> Result<Endpoint, tonic::transport::Error> {
    init_crypto();
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca_pem));
    if let Some(id) = id {
        tls = tls.identity(Identity::from_pem(&id.cert_pem, &id.key_pem));
    }
    Ok(Endpoint::from_shared(server_uri(addr))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .keep_alive_while_idle(true))
}

/// A lazily connecting channel with mutual TLS.
pub fn channel(addr: &str, id: &TlsIdentity) -> Result<Channel, tonic::transport::Error> {
    Ok(endpoint(addr, Some(id), &id.ca_pem)?.connect_with_connector_lazy(tower::service_fn(connect_tcp)))
}

/// Opens the TCP connection under a channel's TLS: no Nagle delay, and
/// the frames of concurrent calls leave in one write (see
/// [`crate::coalesce`]).
pub async fn connect_tcp(
    uri: tonic::transport::Uri,
) -> std::io::Result<hyper_util::rt::TokioIo<DeferredFlush<tokio::net::TcpStream>>> {
    let host = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, format!("{uri} names no host"))
        })?;
    let port = uri.port_u16().unwrap_or(443);
    let tcp = tokio::net::TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    Ok(hyper_util::rt::TokioIo::new(DeferredFlush::new(tcp)))
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoverError {
    #[error("cannot reach {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error(
        "the server at {addr} did not present the CA pinned by the join token (expected sha256 {expected})"
    )]
    NotPinned { addr: String, expected: String },
}

#[derive(Debug)]
struct PinnedCaVerifier {
    fingerprint: String,
    found: Mutex<Option<CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| hex::encode(Sha256::digest(c.as_ref())) == self.fingerprint)
        else {
            return Err(rustls::Error::General(
                "pinned CA not in the server's chain".into(),
            ));
        };
        // With the pinned CA as the only root, the ordinary WebPKI checks
        // (signature chain, validity, server name) decide.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            self.provider.clone(),
        )
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
        let ok = inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        if let Ok(mut slot) = self.found.lock() {
            *slot = Some(ca.clone().into_owned());
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects to `addr` (HOST:PORT), checks that the server's chain holds the
/// CA whose sha256 is `fingerprint` and that the server's certificate
/// verifies against it, and returns that CA as PEM.
pub async fn discover_ca(addr: &str, fingerprint: &str) -> Result<String, DiscoverError> {
    init_crypto();
    let hostport = addr
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .to_string();
    let host = host_of(&hostport).to_string();
    let connect_err = |detail: String| DiscoverError::Connect {
        addr: hostport.clone(),
        detail,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(PinnedCaVerifier {
        fingerprint: fingerprint.to_ascii_lowercase(),
        found: Mutex::new(None),
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| connect_err(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(&hostport))
        .await
        .map_err(|_| connect_err("timed out".into()))?
        .map_err(|e| connect_err(e.to_string()))?;
    let name = ServerName::try_from(host).map_err(|e| connect_err(e.to_string()))?;
    let result = connector.connect(name, tcp).await;
    let found = verifier.found.lock().ok().and_then(|mut s| s.take());
    match (result, found) {
        (Ok(_), Some(ca)) => {
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD.encode(ca.as_ref());
            let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
            for chunk in b64.as_bytes().chunks(64) {
                pem.push_str(&String::from_utf8_lossy(chunk));
                pem.push('\n');
            }
            pem.push_str("-----END CERTIFICATE-----\n");
            Ok(pem)
        }
        _ => Err(DiscoverError::NotPinned {
            addr: hostport,
            expected: fingerprint.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rk_proto::v1 as pb;

    #[tokio::test]
    async fn a_refused_connection_is_unavailable_and_says_so() {
        init_crypto();
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).expect("certificate");
        let id = TlsIdentity {
            ca_pem: cert.cert.pem(),
            cert_pem: cert.cert.pem(),
            key_pem: cert.signing_key.serialize_pem(),
        };
        // A port that was just free: nothing listens, connecting is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let mut api =
            pb::api_client::ApiClient::new(channel(&format!("127.0.0.1:{port}"), &id).expect("channel"));
        let st = api
            .get(pb::GetRequest::default())
            .await
            .expect_err("nothing listens");
        assert_eq!(st.code(), tonic::Code::Unavailable, "{st:?}");
        assert!(st.message().contains("refused"), "{st:?}");
    }
}
