//! The joiner's side of the join protocol, shared by control-plane replicas
//! and node agents: parse the token, pin the CA it names, send a CSR and get
//! a certificate back.
//!
//! A join token (`rk1.<sha256 of the CA cert>.<secret>`) lets a newcomer
//! first pin the CA it talks to, then prove it may join.

use crate::tls;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rk_proto::v1 as pb;
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error("malformed join token: {0}")]
    BadToken(&'static str),
    #[error("key generation failed: {0}")]
    Key(#[from] rcgen::Error),
    #[error(transparent)]
    Discover(#[from] tls::DiscoverError),
    #[error("server address {addr}: {detail}")]
    Connect { addr: String, detail: String },
    #[error("join refused by {server}: {message}")]
    Refused { server: String, message: String },
}

/// A parsed join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_fingerprint: String,
    pub secret: String,
}

impl JoinToken {
    pub fn generate(ca_fingerprint: &str) -> Self {
        let secret: [u8; 16] = rand::random();
        Self {
            ca_fingerprint: ca_fingerprint.to_string(),
            secret: hex::encode(secret),
        }
    }

    pub fn parse(token: &str) -> Result<Self, JoinError> {
        let mut parts = token.trim().split('.');
        let (Some("rk1"), Some(fp), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JoinError::BadToken("expected rk1.<ca-sha256>.<secret>"));
        };
        if fp.len() != 64 || !fp.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JoinError::BadToken("the CA hash must be 64 hex digits"));
        }
        if secret.len() < 16 {
            return Err(JoinError::BadToken("the secret is too short"));
        }
        Ok(Self {
            ca_fingerprint: fp.to_ascii_lowercase(),
            secret: secret.to_string(),
        })
    }

    /// Constant-time comparison of the secret part, so a remote guesser
    /// learns nothing from response timing.
    pub fn secret_matches(&self, other: &JoinToken) -> bool {
        let a = Sha256::digest(self.secret.as_bytes());
        let b = Sha256::digest(other.secret.as_bytes());
        a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "rk1.{}.{}", self.ca_fingerprint, self.secret)
    }
}

/// A new key pair and a CSR for it. The CSR carries only the subject: the
/// signer decides everything else, including the identity it certifies.
pub fn new_key_and_csr(common_name: &str) -> Result<(String, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok((key.serialize_pem(), csr.pem()?))
}

/// What a successful join hands back: the pinned CA, our certificate and
/// key, and the server's answer (replica id, current servers).
pub struct Joined {
    pub identity: tls::TlsIdentity,
    pub response: pb::JoinResponse,
}

/// Pins the CA named by `token` on `server`, then asks to join as `role`
/// ("replica" or "node") under `name`, advertising `advertise`.
pub async fn join(
    server: &str,
    token: &str,
    role: &str,
    name: &str,
    advertise: &str,
) -> Result<Joined, JoinError> {
    let parsed = JoinToken::parse(token)?;
    let ca_pem = tls::discover_ca(server, &parsed.ca_fingerprint).await?;
    let (key_pem, csr_pem) = new_key_and_csr(&format!("rk:{role}:joining"))?;
    let connect_err = |detail: String| JoinError::Connect {
        addr: server.to_string(),
        detail,
    };
    let ep = tls::endpoint(server, None, &ca_pem).map_err(|e| connect_err(e.to_string()))?;
    let channel = ep.connect().await.map_err(|e| connect_err(e.to_string()))?;
    let response = pb::cluster_client::ClusterClient::new(channel)
        .join(pb::JoinRequest {
            token: token.trim().to_string(),
            role: role.to_string(),
            name: name.to_string(),
            csr_pem,
            advertise: advertise.to_string(),
        })
        .await
        .map_err(|st| JoinError::Refused {
            server: server.to_string(),
            message: st.message().to_string(),
        })?
        .into_inner();
    Ok(Joined {
        identity: tls::TlsIdentity {
            ca_pem: response.ca_cert_pem.clone(),
            cert_pem: response.cert_pem.clone(),
            key_pem,
        },
        response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_rejects_garbage() {
        let token = JoinToken::generate(&"ab".repeat(32));
        let parsed = JoinToken::parse(&token.to_string()).expect("parse");
        assert_eq!(parsed, token);
        assert!(parsed.secret_matches(&token));
        let other = JoinToken::generate(&token.ca_fingerprint);
        assert!(!other.secret_matches(&token));
        for bad in [
            "",
            "rk1",
            "rk2.aa.bb",
            "rk1.xyz.0123456789abcdef0123",
            "rk1.a.b.c",
        ] {
            assert!(JoinToken::parse(bad).is_err(), "{bad} should not parse");
        }
    }
}
