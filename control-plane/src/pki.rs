//! The cluster's certificate authority, the certificates it issues, and
//! join tokens.
//!
//! Every rk process authenticates with a certificate from the cluster CA.
//! The subject common name carries the identity: `rk:admin` for operators,
//! `rk:replica:ID` for control-plane replicas and `system:node:NAME` for
//! node agents. A join token (`rk1.<sha256 of the CA cert>.<secret>`) lets a
//! newcomer first pin the CA it talks to, then prove it may join.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use sha2::{Digest, Sha256};
use std::net::IpAddr;
use std::time::Duration;

pub use rk_client::join::{new_key_and_csr, JoinToken};

/// Identity common names.
pub const ADMIN_CN: &str = "rk:admin";
pub const REPLICA_CN_PREFIX: &str = "rk:replica:";
pub const NODE_CN_PREFIX: &str = "system:node:";

#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("malformed CA certificate: {0}")]
    BadCa(&'static str),
    #[error("invalid certificate signing request: {0}")]
    BadCsr(String),
}

/// The cluster CA: its certificate (PEM) and key (PEM).
#[derive(Clone)]
pub struct CertificateAuthority {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A leaf certificate with its private key, both PEM.
#[derive(Clone)]
pub struct IssuedCert {
    pub cert_pem: String,
    pub key_pem: String,
}

/// Ten years: rk does not rotate certificates yet, and an expired cluster CA
/// is worse than a long-lived one.
const VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

fn validity(params: &mut CertificateParams) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + VALIDITY;
}

impl CertificateAuthority {
    pub fn generate(cluster_name: &str) -> Result<Self, PkiError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, format!("rk-ca ({cluster_name})"));
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity(&mut params);
        let cert = params.self_signed(&key)?;
        Ok(Self {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, PkiError> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, key)?)
    }

    /// sha256 of the CA certificate's DER, hex: what a join token pins.
    pub fn fingerprint(&self) -> Result<String, PkiError> {
        ca_fingerprint(&self.cert_pem)
    }

    /// Issue a certificate with a fresh key (for init, where the CA and the
    /// key holder are the same process).
    pub fn issue(&self, common_name: &str, sans: &[String]) -> Result<IssuedCert, PkiError> {
        let key = KeyPair::generate()?;
        let params = leaf_params(common_name, sans)?;
        let cert = params.signed_by(&key, &self.issuer()?)?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Sign a joiner's CSR. Only its public key is used: the identity and
    /// names come from the server's decision, never from the request.
    pub fn sign_csr(&self, csr_pem: &str, common_name: &str, sans: &[String]) -> Result<String, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let params = leaf_params(common_name, sans)?;
        let cert = params.signed_by(&csr.public_key, &self.issuer()?)?;
        Ok(cert.pem())
    }
}

fn leaf_params(common_name: &str, sans: &[String]) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::NoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    for san in sans {
        let entry = match san.parse::<IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(san.as_str().try_into()?),
        };
        if !params.subject_alt_names.contains(&entry) {
            params.subject_alt_names.push(entry);
        }
    }
    validity(&mut params);
    Ok(params)
}

/// sha256 over the DER of the first certificate in `pem`, hex.
pub fn ca_fingerprint(cert_pem: &str) -> Result<String, PkiError> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes())
        .map_err(|_| PkiError::BadCa("not valid PEM"))?;
    Ok(hex::encode(Sha256::digest(der.as_ref())))
}

/// The common name of the first certificate in a DER chain, if it parses.
pub fn common_name_of(der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csr_is_signed_with_server_chosen_identity() {
        let ca = CertificateAuthority::generate("t").expect("ca");
        let (_key, csr) = new_key_and_csr("rk:admin").expect("csr");
        // The joiner asked for admin; the server decides it is a node.
        let cert = ca
            .sign_csr(&csr, "system:node:n1", &["10.0.0.1".into(), "n1".into()])
            .expect("sign");
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes()).expect("der");
        assert_eq!(common_name_of(&der).as_deref(), Some("system:node:n1"));
    }

    #[test]
    fn issued_cert_names_its_subject() {
        let ca = CertificateAuthority::generate("t").expect("ca");
        let leaf = ca.issue(ADMIN_CN, &[]).expect("issue");
        use rustls_pki_types::pem::PemObject;
        let der = rustls_pki_types::CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("der");
        assert_eq!(common_name_of(&der).as_deref(), Some(ADMIN_CN));
    }
}
