//! Who is calling: the identity in the client certificate that TLS already
//! verified against the cluster CA.

use crate::pki::{common_name_of, ADMIN_CN, NODE_CN_PREFIX, REPLICA_CN_PREFIX};
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use tonic::{Request, Status};

/// Certificates already read, by their DER bytes. Every request carries
/// its connection's certificate, and parsing it each time cost 3% of the
/// leader's CPU when writes arrive thousands per second. The same bytes
/// always name the same caller, so a hit is as good as a parse.
static CALLERS: LazyLock<Mutex<HashMap<Vec<u8>, Caller>>> = LazyLock::new(Default::default);

/// Entries kept at most: one per client certificate in use (admins,
/// replicas, node agents). Past it the map starts over, rather than grow
/// with certificates that are no longer used.
const MAX_KNOWN_CALLERS: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    Replica(u64),
    Node(String),
    /// A certificate from the cluster CA with a name rk does not know.
    Other(String),
}

/// The caller's identity, or Unauthenticated when the connection carried
/// no client certificate (only Join is open to such callers).
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    let certs = req
        .peer_certs()
        .ok_or_else(|| Status::unauthenticated("a client certificate from the cluster CA is required"))?;
    let first = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("a client certificate from the cluster CA is required"))?;
    Ok(caller_of_certificate(first.as_ref()))
}

/// The caller a (verified) certificate names, read once per certificate.
fn caller_of_certificate(der: &[u8]) -> Caller {
    if let Some(known) = CALLERS.lock().ok().and_then(|m| m.get(der).cloned()) {
        return known;
    }
    let caller = caller_named(common_name_of(der).unwrap_or_default());
    if let Ok(mut known) = CALLERS.lock() {
        if known.len() >= MAX_KNOWN_CALLERS {
            known.clear();
        }
        known.insert(der.to_vec(), caller.clone());
    }
    caller
}

/// The caller a certificate's common name stands for.
fn caller_named(cn: String) -> Caller {
    if cn == ADMIN_CN {
        Caller::Admin
    } else if let Some(id) = cn.strip_prefix(REPLICA_CN_PREFIX).and_then(|s| s.parse().ok()) {
        Caller::Replica(id)
    } else if let Some(name) = cn.strip_prefix(NODE_CN_PREFIX) {
        Caller::Node(name.to_string())
    } else {
        Caller::Other(cn)
    }
}

/// Object API access: admins, replicas (forwarding) and nodes.
pub fn require_api<T>(req: &Request<T>) -> Result<Caller, Status> {
    match caller(req)? {
        Caller::Other(cn) => Err(Status::permission_denied(format!(
            "identity \"{cn}\" may not use the API"
        ))),
        c => Ok(c),
    }
}

pub fn require_replica<T>(req: &Request<T>) -> Result<u64, Status> {
    match caller(req)? {
        Caller::Replica(id) => Ok(id),
        other => Err(Status::permission_denied(format!(
            "{other:?} is not a control-plane replica"
        ))),
    }
}

pub fn require_admin_or_replica<T>(req: &Request<T>) -> Result<Caller, Status> {
    match caller(req)? {
        c @ (Caller::Admin | Caller::Replica(_)) => Ok(c),
        other => Err(Status::permission_denied(format!(
            "{other:?} may not change cluster membership"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::CertificateAuthority;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn each_certificate_names_its_caller_the_first_time_and_every_time_after() {
        let ca = CertificateAuthority::generate("t").expect("ca");
        let cases = [
            (ADMIN_CN.to_string(), Caller::Admin),
            (format!("{REPLICA_CN_PREFIX}7"), Caller::Replica(7)),
            (
                format!("{NODE_CN_PREFIX}worker-1"),
                Caller::Node("worker-1".into()),
            ),
            ("someone".to_string(), Caller::Other("someone".into())),
        ];
        for (cn, want) in cases {
            let cert = ca.issue(&cn, &[]).expect("issue");
            let der =
                rustls_pki_types::CertificateDer::from_pem_slice(cert.cert_pem.as_bytes()).expect("der");
            assert_eq!(caller_of_certificate(der.as_ref()), want, "{cn}, parsed");
            assert_eq!(caller_of_certificate(der.as_ref()), want, "{cn}, remembered");
        }
    }
}
