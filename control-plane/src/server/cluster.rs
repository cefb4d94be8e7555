//! Membership and admission: join tokens turn into certificates, replicas
//! are added and removed online.

use super::auth;
use crate::pki::{JoinToken, NODE_CN_PREFIX, REPLICA_CN_PREFIX};
use crate::replica::Replica;
use crate::store::types::*;
use openraft::{BasicNode, ChangeMembers};
use rk_client::tls::host_of;
use rk_proto::v1 as pb;
use rk_proto::v1::cluster_client::ClusterClient;
use rk_proto::v1::cluster_server::Cluster;
use std::collections::BTreeSet;
use std::sync::Arc;
use tonic::{Request, Response, Status};

pub struct ClusterSvc {
    pub replica: Arc<Replica>,
}

fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

impl ClusterSvc {
    pub fn members(&self) -> pb::MembersResponse {
        let m = self.replica.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        let members = membership
            .nodes()
            .map(|(id, node)| pb::Member {
                id: *id,
                addr: node.addr.clone(),
                voter: voters.contains(id),
                leader: m.current_leader == Some(*id),
            })
            .collect();
        pb::MembersResponse {
            members,
            leader_id: m.current_leader.unwrap_or(0),
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index).unwrap_or(0),
            revision: self.replica.store.revision(),
        }
    }

    async fn leader_client(&self) -> Result<Option<ClusterClient<tonic::transport::Channel>>, Status> {
        let leader = self.replica.raft.metrics().borrow().current_leader;
        if leader == Some(self.replica.id) {
            return Ok(None);
        }
        let (_, addr) = self
            .replica
            .leader_addr()
            .await
            .ok_or_else(|| Status::unavailable("no leader: the control plane has no quorum right now"))?;
        let ch = self
            .replica
            .net
            .channel(&addr)
            .map_err(|e| Status::unavailable(e.to_string()))?;
        Ok(Some(ClusterClient::new(ch)))
    }
}

#[tonic::async_trait]
impl Cluster for ClusterSvc {
    async fn join(&self, req: Request<pb::JoinRequest>) -> Result<Response<pb::JoinResponse>, Status> {
        let req = req.into_inner();
        let token = JoinToken::parse(&req.token).map_err(|e| Status::unauthenticated(e.to_string()))?;
        if token.ca_fingerprint != self.replica.token.ca_fingerprint
            || !token.secret_matches(&self.replica.token)
        {
            return Err(Status::unauthenticated("invalid join token"));
        }
        let ca = &self.replica.ca;
        match req.role.as_str() {
            "replica" => {
                if req.advertise.is_empty() {
                    return Err(Status::invalid_argument(
                        "a joining replica must give its advertise address",
                    ));
                }
                let applied = self
                    .replica
                    .propose(Command::AllocateReplicaId)
                    .await
                    .map_err(|e| rk_client::error::to_status(&e))?;
                let id = applied.replica_id;
                let sans = vec![
                    host_of(&req.advertise).to_string(),
                    "localhost".into(),
                    "127.0.0.1".into(),
                ];
                let cert = ca
                    .sign_csr(&req.csr_pem, &format!("{REPLICA_CN_PREFIX}{id}"), &sans)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                let servers = self.members().members.into_iter().map(|m| m.addr).collect();
                tracing::info!(replica = id, advertise = %req.advertise, "admitted a replica");
                Ok(Response::new(pb::JoinResponse {
                    ca_cert_pem: ca.cert_pem.clone(),
                    cert_pem: cert,
                    ca_key_pem: ca.key_pem.clone(),
                    replica_id: id,
                    servers,
                }))
            }
            "node" => {
                if !valid_dns_label(&req.name) {
                    return Err(Status::invalid_argument(format!(
                        "node name \"{}\" must be a lowercase DNS-1123 subdomain",
                        req.name
                    )));
                }
                let mut sans = vec![req.name.clone()];
                if !req.advertise.is_empty() {
                    sans.push(host_of(&req.advertise).to_string());
                }
                let cert = ca
                    .sign_csr(&req.csr_pem, &format!("{NODE_CN_PREFIX}{}", req.name), &sans)
                    .map_err(|e| Status::invalid_argument(e.to_string()))?;
                let servers = self.members().members.into_iter().map(|m| m.addr).collect();
                tracing::info!(node = %req.name, "admitted a node");
                Ok(Response::new(pb::JoinResponse {
                    ca_cert_pem: ca.cert_pem.clone(),
                    cert_pem: cert,
                    ca_key_pem: String::new(),
                    replica_id: 0,
                    servers,
                }))
            }
            other => Err(Status::invalid_argument(format!(
                "role must be \"replica\" or \"node\", not \"{other}\""
            ))),
        }
    }

    async fn members(
        &self,
        req: Request<pb::MembersRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        auth::require_api(&req)?;
        Ok(Response::new(self.members()))
    }

    async fn add_replica(
        &self,
        req: Request<pb::AddReplicaRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        let caller = auth::require_admin_or_replica(&req)?;
        let r = req.into_inner();
        if let auth::Caller::Replica(id) = caller {
            if id != r.id && id != self.replica.id {
                return Err(Status::permission_denied("a replica may only add itself"));
            }
        }
        if let Some(mut leader) = self.leader_client().await? {
            return leader.add_replica(r).await;
        }
        let raft = &self.replica.raft;
        raft.add_learner(r.id, BasicNode::new(&r.addr), true)
            .await
            .map_err(|e| Status::unavailable(format!("adding replica {} as learner: {e}", r.id)))?;
        raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([r.id])), false)
            .await
            .map_err(|e| Status::unavailable(format!("promoting replica {} to voter: {e}", r.id)))?;
        tracing::info!(replica = r.id, addr = %r.addr, "replica is now a voter");
        Ok(Response::new(self.members()))
    }

    async fn remove_replica(
        &self,
        req: Request<pb::RemoveReplicaRequest>,
    ) -> Result<Response<pb::MembersResponse>, Status> {
        auth::require_admin_or_replica(&req)?;
        let r = req.into_inner();
        if let Some(mut leader) = self.leader_client().await? {
            return leader.remove_replica(r).await;
        }
        let m = self.members();
        if !m.members.iter().any(|x| x.id == r.id) {
            return Err(Status::not_found(format!("replica {} is not a member", r.id)));
        }
        let voters = m.members.iter().filter(|x| x.voter).count();
        if voters <= 1 {
            return Err(Status::failed_precondition("cannot remove the last voter"));
        }
        self.replica
            .raft
            .change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([r.id])), false)
            .await
            .map_err(|e| Status::unavailable(format!("removing replica {}: {e}", r.id)))?;
        // Drop it from the node list too, so nothing replicates to it.
        let _ = self
            .replica
            .raft
            .change_membership(ChangeMembers::RemoveNodes(BTreeSet::from([r.id])), false)
            .await;
        tracing::info!(replica = r.id, "replica removed");
        Ok(Response::new(self.members()))
    }
}
