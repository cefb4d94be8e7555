//! Raft traffic between replicas: openraft's RPCs serialized as JSON and
//! carried by the `Raft` gRPC service over mutual TLS.

use crate::store::types::*;
use openraft::error::{InstallSnapshotError, NetworkError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use rk_client::tls::TlsIdentity;
use rk_proto::v1::raft_client::RaftClient;
use rk_proto::v1::RaftBytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tonic::transport::Channel;

/// Creates one client per target replica; channels are cached by address
/// so reconnects reuse HTTP/2 connections.
#[derive(Clone)]
pub struct Network {
    identity: Arc<TlsIdentity>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Network {
    pub fn new(identity: TlsIdentity) -> Self {
        Self {
            identity: Arc::new(identity),
            channels: Default::default(),
        }
    }

    /// A channel to a replica, reused across calls.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        if let Ok(map) = self.channels.lock() {
            if let Some(ch) = map.get(addr) {
                return Ok(ch.clone());
            }
        }
        let ch = rk_client::tls::channel(addr, &self.identity)?;
        if let Ok(mut map) = self.channels.lock() {
            map.insert(addr.to_string(), ch.clone());
        }
        Ok(ch)
    }
}

pub struct Connection {
    target: NodeId,
    addr: String,
    net: Network,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        Connection {
            target,
            addr: node.addr.clone(),
            net: self.clone(),
        }
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

impl Connection {
    async fn send<Req, Resp, E>(&self, which: Rpc, req: &Req, option: &RPCOption) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let ch = self
            .net
            .channel(&self.addr)
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut client = RaftClient::new(ch)
            .max_decoding_message_size(1 << 30)
            .max_encoding_message_size(1 << 30);
        let mut request = tonic::Request::new(RaftBytes { data });
        request.set_timeout(option.hard_ttl());
        let result = match which {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = result.map_err(|st| {
            let err = std::io::Error::other(format!(
                "replica {} ({}): {}",
                self.target,
                self.addr,
                st.message()
            ));
            if st.code() == tonic::Code::Unavailable {
                RPCError::Unreachable(Unreachable::new(&err))
            } else {
                RPCError::Network(NetworkError::new(&err))
            }
        })?;
        let decoded: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply.into_inner().data)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e)))
    }
}

enum Rpc {
    Append,
    Vote,
    Snapshot,
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        self.send(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        self.send(Rpc::Snapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcErr> {
        self.send(Rpc::Vote, &rpc, &option).await
    }
}
