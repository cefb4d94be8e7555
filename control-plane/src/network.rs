//! Raft traffic between replicas: openraft's RPCs serialized as JSON and
//! carried by the `Raft` gRPC service over mutual TLS. AppendEntries, the
//! one sent for every write, travels on one long-lived stream per leader
//! and follower, so no gRPC call is set up per request. A snapshot chunk's
//! data travels as bytes beside its JSON (`InstallSnapshotChunk`). Each of
//! the two falls back to the plain JSON RPC for a replica that answers
//! "unimplemented" (an older version).

use crate::store::rocks::LogDurability;
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
use rk_proto::v1::{RaftBytes, SnapshotChunk};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;
use tonic::transport::Channel;

/// Creates one client per target replica; channels are cached by address
/// so reconnects reuse HTTP/2 connections.
#[derive(Clone)]
pub struct Network {
    identity: Arc<TlsIdentity>,
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    /// How far the local log is on disk: a leader tells followers no
    /// commit index past it (see [`LogDurability`]).
    log_durability: LogDurability,
    /// Set when an AppendEntries went out with its commit index held back,
    /// so the commit is sent again once the log catches up
    /// ([`Network::resend_held_back_commits`]).
    commit_held_back: Arc<AtomicBool>,
}

impl Network {
    pub fn new(identity: TlsIdentity, log_durability: LogDurability) -> Self {
        Self {
            identity: Arc::new(identity),
            channels: Default::default(),
            log_durability,
            commit_held_back: Default::default(),
        }
    }

    /// The commit index a follower may learn: the leader's, unless the
    /// leader's own log is not yet on disk that far. A follower applies
    /// what it learns is committed, and the leader may count itself toward
    /// a quorum before its fsync; holding the index back keeps every
    /// applied entry on a majority of disks.
    fn commit_to_send(&self, leader_commit: Option<LogId>) -> Option<LogId> {
        let durable = self.log_durability.durable();
        if leader_commit <= durable {
            return leader_commit;
        }
        // Flag first, then look again: a sync that lands after this look
        // is then sure to see the flag.
        self.commit_held_back.store(true, Ordering::SeqCst);
        std::cmp::min(leader_commit, self.log_durability.durable())
    }

    /// Sends a heartbeat (which carries the commit index) whenever the
    /// local log becomes more durable after a commit index was held back.
    /// Runs until the log store or Raft stops.
    pub async fn resend_held_back_commits(self, raft: Raft) {
        let mut changes = self.log_durability.changes();
        while changes.changed().await.is_ok() {
            if self.commit_held_back.swap(false, Ordering::SeqCst)
                && raft.trigger().heartbeat().await.is_err()
            {
                return;
            }
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
    /// The AppendEntries stream to the target, while it works. Taken out
    /// for each request and put back only once the reply arrived, so a
    /// call that fails or that openraft abandons (a timeout drops it)
    /// leaves no stream whose next reply would answer the wrong request.
    append_stream: Option<AppendStream>,
    /// The target has no AppendEntriesStream (an older version): unary
    /// calls from now on.
    unary_only: bool,
    /// The target has no InstallSnapshotChunk (an older version): snapshot
    /// chunks go as JSON from now on.
    snapshot_chunks_as_json: bool,
}

/// One open AppendEntriesStream call: requests go out on `requests`, and
/// each is answered on `replies` before the next is sent.
struct AppendStream {
    requests: mpsc::Sender<RaftBytes>,
    replies: tonic::Streaming<RaftBytes>,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        Connection {
            target,
            addr: node.addr.clone(),
            net: self.clone(),
            append_stream: None,
            unary_only: false,
            snapshot_chunks_as_json: false,
        }
    }
}

type RpcErr<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

/// A failed call as openraft sees it: an unavailable replica is
/// unreachable (openraft backs off), anything else a network error.
fn rpc_error<E: std::error::Error>(target: NodeId, addr: &str, st: &tonic::Status) -> RpcErr<E> {
    let err = std::io::Error::other(format!("replica {target} ({addr}): {}", st.message()));
    if st.code() == tonic::Code::Unavailable {
        RPCError::Unreachable(Unreachable::new(&err))
    } else {
        RPCError::Network(NetworkError::new(&err))
    }
}

impl Connection {
    fn client(&self) -> Result<RaftClient<Channel>, tonic::transport::Error> {
        Ok(RaftClient::new(self.net.channel(&self.addr)?)
            .max_decoding_message_size(1 << 30)
            .max_encoding_message_size(1 << 30))
    }

    /// Sends one AppendEntries on the stream, opening it first if none is
    /// open. `Ok(None)`: the target does not know the stream.
    async fn append_on_stream(
        &mut self,
        rpc: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<Option<AppendEntriesResponse<NodeId>>, RpcErr> {
        let size_hint = rpc.entries.iter().map(entry_size_hint).sum();
        let data = encode_sized(rpc, size_hint).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut stream = match self.append_stream.take() {
            Some(stream) => stream,
            None => {
                let mut client = self
                    .client()
                    .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
                let (requests, outgoing) = mpsc::channel(1);
                match client
                    .append_entries_stream(tokio_stream::wrappers::ReceiverStream::new(outgoing))
                    .await
                {
                    Ok(replies) => AppendStream {
                        requests,
                        replies: replies.into_inner(),
                    },
                    Err(st) if st.code() == tonic::Code::Unimplemented => return Ok(None),
                    Err(st) => return Err(rpc_error(self.target, &self.addr, &st)),
                }
            }
        };
        let closed = || {
            let err = std::io::Error::other(format!(
                "replica {} ({}): the AppendEntries stream closed",
                self.target, self.addr
            ));
            RPCError::Unreachable(Unreachable::new(&err))
        };
        stream
            .requests
            .send(RaftBytes { data: data.into() })
            .await
            .map_err(|_| closed())?;
        let reply = match stream.replies.message().await {
            Ok(Some(reply)) => reply,
            Ok(None) => return Err(closed()),
            Err(st) => return Err(rpc_error(self.target, &self.addr, &st)),
        };
        self.append_stream = Some(stream);
        self.decode_reply(&reply.data).map(Some)
    }

    /// A reply's bytes: the target's answer, or the error it returned.
    // The error type is the one openraft's `RaftNetwork` returns.
    #[allow(clippy::result_large_err)]
    fn decode_reply<Resp, E>(&self, data: &[u8]) -> Result<Resp, RpcErr<E>>
    where
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let decoded: Result<Resp, RaftError<NodeId, E>> =
            serde_json::from_slice(data).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        decoded.map_err(|e| RPCError::RemoteError(openraft::error::RemoteError::new(self.target, e)))
    }

    /// Sends one snapshot chunk: `header` is the request with its data
    /// taken out, and `data` goes beside it. `Ok(None)`: the target does
    /// not know InstallSnapshotChunk.
    async fn send_snapshot_chunk(
        &self,
        header: &InstallSnapshotRequest<TypeConfig>,
        data: rk_proto::bytes::Bytes,
        option: &RPCOption,
    ) -> Result<Option<InstallSnapshotResponse<NodeId>>, RpcErr<InstallSnapshotError>> {
        let request = serde_json::to_vec(header).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self
            .client()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut call = tonic::Request::new(SnapshotChunk { request, data });
        call.set_timeout(option.hard_ttl());
        match client.install_snapshot_chunk(call).await {
            Ok(reply) => self.decode_reply(&reply.into_inner().data).map(Some),
            Err(st) if st.code() == tonic::Code::Unimplemented => Ok(None),
            Err(st) => Err(rpc_error(self.target, &self.addr, &st)),
        }
    }

    async fn send<Req, Resp, E>(&self, which: Rpc, req: &Req, option: &RPCOption) -> Result<Resp, RpcErr<E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let data = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let mut client = self
            .client()
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        let mut request = tonic::Request::new(RaftBytes { data: data.into() });
        request.set_timeout(option.hard_ttl());
        let result = match which {
            Rpc::Append => client.append_entries(request).await,
            Rpc::Vote => client.vote(request).await,
            Rpc::Snapshot => client.install_snapshot(request).await,
        };
        let reply = result.map_err(|st| rpc_error(self.target, &self.addr, &st))?;
        self.decode_reply(&reply.into_inner().data)
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
        mut rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcErr> {
        rpc.leader_commit = self.net.commit_to_send(rpc.leader_commit);
        if !self.unary_only {
            match self.append_on_stream(&rpc).await? {
                Some(reply) => return Ok(reply),
                None => {
                    tracing::info!(
                        target = self.target,
                        "replica has no AppendEntries stream; using unary calls"
                    );
                    self.unary_only = true;
                }
            }
        }
        self.send(Rpc::Append, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        mut rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcErr<InstallSnapshotError>> {
        if !self.snapshot_chunks_as_json {
            let data = rk_proto::bytes::Bytes::from(std::mem::take(&mut rpc.data));
            match self.send_snapshot_chunk(&rpc, data.clone(), &option).await? {
                Some(reply) => return Ok(reply),
                None => {
                    // With the call over this handle is normally the
                    // data's only one, and then gives its buffer back
                    // without a copy.
                    rpc.data = data.into();
                    tracing::info!(
                        target = self.target,
                        "replica has no InstallSnapshotChunk; sending snapshot chunks as JSON"
                    );
                    self.snapshot_chunks_as_json = true;
                }
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::CommittedLeaderId;
    use tokio::sync::watch;

    fn log_id(index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(2, 1), index)
    }

    #[test]
    fn a_leader_tells_followers_no_commit_index_past_its_own_durable_log() {
        let (durable_tx, durable_rx) = watch::channel(Some(log_id(4)));
        let identity = TlsIdentity {
            ca_pem: String::new(),
            cert_pem: String::new(),
            key_pem: String::new(),
        };
        let net = Network::new(identity, LogDurability::from_receiver(durable_rx));
        assert_eq!(net.commit_to_send(Some(log_id(3))), Some(log_id(3)));
        assert_eq!(net.commit_to_send(None), None);
        assert!(!net.commit_held_back.load(Ordering::SeqCst));
        assert_eq!(
            net.commit_to_send(Some(log_id(6))),
            Some(log_id(4)),
            "held back to the durable entry"
        );
        assert!(
            net.commit_held_back.load(Ordering::SeqCst),
            "so it is sent again after the next sync"
        );
        durable_tx.send_replace(Some(log_id(6)));
        assert_eq!(net.commit_to_send(Some(log_id(6))), Some(log_id(6)));
    }
}
