//! Who is calling: the identity in the client certificate that TLS already
//! verified against the cluster CA.

use crate::pki::{common_name_of, ADMIN_CN, NODE_CN_PREFIX, REPLICA_CN_PREFIX};
use tonic::{Request, Status};

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
    let cn = common_name_of(first.as_ref()).unwrap_or_default();
    Ok(if cn == ADMIN_CN {
        Caller::Admin
    } else if let Some(id) = cn.strip_prefix(REPLICA_CN_PREFIX).and_then(|s| s.parse().ok()) {
        Caller::Replica(id)
    } else if let Some(name) = cn.strip_prefix(NODE_CN_PREFIX) {
        Caller::Node(name.to_string())
    } else {
        Caller::Other(cn)
    })
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
