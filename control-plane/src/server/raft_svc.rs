//! The replica-to-replica service: Raft RPCs plus Propose and ReadIndex,
//! which let followers serve writes and linearizable reads.

use super::auth;
use crate::replica::Replica;
use crate::store::types::*;
use rk_proto::v1::raft_server::Raft as RaftService;
use rk_proto::v1::{RaftBytes, SnapshotChunk};
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::Stream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};

pub struct RaftSvc {
    pub replica: Arc<Replica>,
    /// Off only in tests, standing for a replica from before the stream
    /// (and so from before InstallSnapshotChunk).
    pub serve_append_stream: bool,
    /// Ends the AppendEntries streams: a graceful shutdown waits for every
    /// open call, and the leader never ends these itself.
    pub shutdown: CancellationToken,
}

fn decode<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, Status> {
    serde_json::from_slice(b).map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

fn encode_bytes<T: serde::Serialize>(v: &T) -> Result<RaftBytes, Status> {
    serde_json::to_vec(v)
        .map(|data| RaftBytes { data: data.into() })
        .map_err(|e| Status::internal(e.to_string()))
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Response<RaftBytes>, Status> {
    encode_bytes(v).map(Response::new)
}

#[tonic::async_trait]
impl RaftService for RaftSvc {
    async fn append_entries(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        auth::require_replica(&req)?;
        let rpc = decode(&req.into_inner().data)?;
        // openraft gives an AppendEntries only one heartbeat interval
        // before the leader abandons it, which drops this handler. The
        // append then runs in its own task so that it finishes anyway: the
        // leader's retry finds the entries already in the log instead of
        // starting over, and a large batch cannot time out forever.
        let replica = self.replica.clone();
        let appended = tokio::spawn(async move { replica.raft.append_entries(rpc).await })
            .await
            .map_err(|e| Status::internal(format!("append task failed: {e}")))?;
        encode(&appended)
    }

    type AppendEntriesStreamStream = Pin<Box<dyn Stream<Item = Result<RaftBytes, Status>> + Send>>;

    async fn append_entries_stream(
        &self,
        req: Request<Streaming<RaftBytes>>,
    ) -> Result<Response<Self::AppendEntriesStreamStream>, Status> {
        auth::require_replica(&req)?;
        if !self.serve_append_stream {
            return Err(Status::unimplemented("AppendEntriesStream is turned off"));
        }
        let mut requests = req.into_inner();
        let (replies, out) = mpsc::channel(1);
        // The appends run in a task of their own, as the unary handler's
        // do: one the leader stops waiting for (a timeout drops its end of
        // the stream) still finishes, and the retry finds the entries in
        // the log.
        let replica = self.replica.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    msg = requests.message() => match msg {
                        Ok(Some(msg)) => msg,
                        Ok(None) | Err(_) => break,
                    },
                };
                let reply = match decode(&msg.data) {
                    Ok(rpc) => encode_bytes(&replica.raft.append_entries(rpc).await),
                    Err(status) => Err(status),
                };
                let failed = reply.is_err();
                if replies.send(reply).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(out))))
    }

    async fn vote(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        auth::require_replica(&req)?;
        let rpc = decode(&req.into_inner().data)?;
        encode(&self.replica.raft.vote(rpc).await)
    }

    async fn install_snapshot(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        auth::require_replica(&req)?;
        let rpc = decode(&req.into_inner().data)?;
        encode(&self.replica.raft.install_snapshot(rpc).await)
    }

    async fn install_snapshot_chunk(
        &self,
        req: Request<SnapshotChunk>,
    ) -> Result<Response<RaftBytes>, Status> {
        auth::require_replica(&req)?;
        if !self.serve_append_stream {
            return Err(Status::unimplemented("InstallSnapshotChunk is off (test)"));
        }
        let chunk = req.into_inner();
        let mut rpc: openraft::raft::InstallSnapshotRequest<TypeConfig> = decode(&chunk.request)?;
        rpc.data = chunk.data.into();
        encode(&self.replica.raft.install_snapshot(rpc).await)
    }

    async fn propose(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        auth::require_replica(&req)?;
        // Proposed as the text the follower encoded, not encoded again.
        let cmd = LogCommand::received(&req.into_inner().data)
            .map_err(|e| Status::invalid_argument(format!("undecodable command: {e}")))?;
        match self.replica.propose_encoded_local(cmd).await {
            Ok(a) => encode(&Ok::<Applied, WireError>(a)),
            // Not being the leader any more is a transport-level condition:
            // the forwarding replica retries elsewhere.
            Err(e) if e.reason == rk_api::Reason::ServiceUnavailable => Err(Status::unavailable(e.message)),
            Err(e) => encode(&Err::<Applied, WireError>(e.into())),
        }
    }

    async fn read_index(&self, req: Request<RaftBytes>) -> Result<Response<RaftBytes>, Status> {
        auth::require_replica(&req)?;
        match self.replica.local_read_index().await {
            Ok(i) => encode(&i),
            Err(e) => Err(Status::unavailable(e.message)),
        }
    }
}
