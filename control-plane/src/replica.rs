//! One control-plane replica: its Raft node, its store, and the two things
//! every request handler needs from them: proposing a write (on the leader,
//! wherever it was received) and a linearizable read barrier.

use crate::network::Network;
use crate::pki::{CertificateAuthority, JoinToken};
use crate::store::rocks::ObjectStore;
use crate::store::types::*;
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use rk_api::{ApiError, Reason};
use rk_proto::v1::raft_client::RaftClient;
use rk_proto::v1::RaftBytes;
use std::sync::Arc;
use std::time::Duration;

/// How long a request waits for a leader to appear before answering
/// ServiceUnavailable (a client then tries another replica).
const LEADER_WAIT: Duration = Duration::from_secs(3);

/// Most commands one Raft entry carries.
const MAX_BATCH: usize = 256;
/// Batches in flight at once: while they are, new proposals queue up and
/// form the next batch.
const BATCHES_IN_FLIGHT: usize = 4;

/// What the batcher answers a proposal with.
enum Submitted {
    /// This replica is not (or no longer) the leader: try elsewhere.
    NotLeader,
    Done(Result<Applied, ApiError>),
}

type Proposal = (LogCommand, tokio::sync::oneshot::Sender<Submitted>);

/// Hands proposals to Raft in batches: whatever queued up while earlier
/// batches were in flight goes into one log entry. A lone proposal goes
/// out at once, so batching adds no latency when the load is light.
pub struct Batcher {
    tx: tokio::sync::mpsc::Sender<Proposal>,
    raft: Raft,
    /// One per batch in flight.
    permits: Arc<tokio::sync::Semaphore>,
}

impl Batcher {
    pub fn spawn(raft: Raft) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Proposal>(MAX_BATCH * BATCHES_IN_FLIGHT);
        let permits = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
        let batcher = Batcher {
            tx,
            raft: raft.clone(),
            permits: permits.clone(),
        };
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                // Waiting for a permit first lets the next batch grow.
                let Ok(permit) = permits.clone().acquire_owned().await else {
                    return;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
                let raft = raft.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let (cmds, waiters): (Vec<LogCommand>, Vec<_>) = batch.into_iter().unzip();
                    for (waiter, answer) in waiters.into_iter().zip(write_entry(&raft, cmds).await) {
                        let _ = waiter.send(answer);
                    }
                });
            }
        });
        batcher
    }

    async fn submit(&self, cmd: LogCommand) -> Submitted {
        // Nothing queued and a batch slot free: this proposal would form a
        // batch of one at once, so it is written from the caller's task.
        // Going through the batcher's task and a task of its own cost a
        // sequential write three more task wake-ups. The semaphore is
        // fair: a slot the batcher waits for is never taken here.
        if self.tx.capacity() == self.tx.max_capacity() {
            if let Ok(_permit) = self.permits.clone().try_acquire_owned() {
                return write_entry(&self.raft, vec![cmd])
                    .await
                    .pop()
                    .unwrap_or_else(|| Submitted::Done(Err(no_result())));
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.tx.send((cmd, tx)).await.is_err() {
            return Submitted::Done(Err(unavailable("replica shutting down")));
        }
        rx.await
            .unwrap_or_else(|_| Submitted::Done(Err(unavailable("replica shutting down"))))
    }
}

/// Proposes `cmds` as one log entry and answers each, in order.
async fn write_entry(raft: &Raft, mut cmds: Vec<LogCommand>) -> Vec<Submitted> {
    let n = cmds.len();
    let to_all = |answer: &dyn Fn() -> Submitted| (0..n).map(|_| answer()).collect();
    let cmd = if n == 1 {
        Ok(cmds.remove(0))
    } else {
        LogCommand::batch(&cmds)
    };
    let cmd = match cmd {
        Ok(cmd) => cmd,
        Err(e) => {
            // Unreachable in practice: every member is JSON that
            // serde_json produced.
            let err = ApiError::new(Reason::InternalError, format!("batching commands: {e}"));
            return to_all(&|| Submitted::Done(Err(err.clone())));
        }
    };
    match raft.client_write(cmd).await {
        Ok(resp) => {
            let mut outcomes = resp.data.outcomes.into_iter();
            (0..n)
                .map(|_| match outcomes.next() {
                    Some(o) => Submitted::Done(o.map_err(ApiError::from)),
                    None => Submitted::Done(Err(no_result())),
                })
                .collect()
        }
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => to_all(&|| Submitted::NotLeader),
        Err(e) => {
            let err = match e {
                RaftError::Fatal(f) => unavailable(format!("replica stopped: {f}")),
                other => ApiError::new(Reason::InternalError, other.to_string()),
            };
            to_all(&|| Submitted::Done(Err(err.clone())))
        }
    }
}

fn no_result() -> ApiError {
    ApiError::new(Reason::InternalError, "the command produced no result")
}

pub struct Replica {
    pub id: NodeId,
    pub raft: Raft,
    pub batcher: Batcher,
    /// When this replica last started an election because the leader
    /// refused connections (milliseconds since the Unix epoch).
    pub last_forced_election_ms: std::sync::atomic::AtomicU64,
    pub store: ObjectStore,
    pub net: Network,
    pub ca: CertificateAuthority,
    pub token: JoinToken,
    pub advertise: String,
}

/// Whether a failed call means the peer is gone rather than slow: the
/// connection could not be made (refused, as from a dead process's port).
/// A request that merely takes long is not counted.
fn refused(st: &tonic::Status) -> bool {
    st.message().contains("connect") || st.message().contains("refused")
}

/// The command as Raft carries it: encoded once, here, and kept for this
/// replica's own apply should it lead (see [`LogCommand`]).
fn encode(cmd: Command) -> Result<LogCommand, ApiError> {
    LogCommand::propose(cmd)
        .map_err(|e| ApiError::new(Reason::InternalError, format!("encoding the command: {e}")))
}

/// How often a replica that found the leader's port closed starts another
/// election. The first that comes after the voters' lease of the old
/// leader ends wins, so failover overshoots the lease by up to this much:
/// at 50 ms the overshoot was 10-60 ms. A refused election costs a vote
/// request to each voter and a term number.
const PRESS_INTERVAL_MS: u64 = 20;

fn unavailable(msg: impl Into<String>) -> ApiError {
    ApiError::new(Reason::ServiceUnavailable, msg)
}

impl Replica {
    /// The address of the current leader, if known and not this replica.
    pub async fn leader_addr(&self) -> Option<(NodeId, String)> {
        let m = self.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        let node = m.membership_config.membership().get_node(&leader)?;
        Some((leader, node.addr.clone()))
    }

    /// Commits `cmd` through Raft. On a follower the command is handed to
    /// the leader; while there is no leader it waits up to LEADER_WAIT.
    pub async fn propose(&self, cmd: Command) -> Result<Applied, ApiError> {
        let cmd = encode(cmd)?;
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        // Until when this call keeps pressing for an election, once the
        // leader's port refused a connection (see `press_for_election`).
        let mut press_until: Option<tokio::time::Instant> = None;
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            let result = if leader == Some(self.id) {
                match self.batcher.submit(cmd.clone()).await {
                    Submitted::Done(r) => Some(r),
                    Submitted::NotLeader => None,
                }
            } else if let Some((_, addr)) = self.leader_addr().await {
                // A leader cut off from us never answers; the write may have
                // reached it, so a timeout is reported, never retried here.
                let wait = deadline
                    .saturating_duration_since(tokio::time::Instant::now())
                    .max(Duration::from_secs(1));
                let forwarded = match tokio::time::timeout(wait, self.forward_propose(&addr, &cmd)).await {
                    Ok(r) => r,
                    Err(_) => {
                        return Err(ApiError::new(
                            Reason::Timeout,
                            format!(
                                "the leader at {addr} did not answer within {wait:?}; the write may or may not have been applied"
                            ),
                        ))
                    }
                };
                match forwarded {
                    Ok(r) => Some(r),
                    Err(st) if st.code() == tonic::Code::Unavailable => {
                        if refused(&st) {
                            let window = Duration::from_millis(2 * self.raft.config().election_timeout_max);
                            press_until = Some(tokio::time::Instant::now() + window);
                            self.press_for_election().await;
                        }
                        None
                    }
                    Err(st) => Some(Err(rk_client::error::from_status(&st))),
                }
            } else {
                // No leader: this replica is a candidate, or waits for one.
                // While the old leader is known dead, keep asking: voters
                // refuse until their lease of it ends, and the first try
                // after that should win rather than the next election timer.
                if press_until.is_some_and(|t| tokio::time::Instant::now() < t) {
                    self.press_for_election().await;
                }
                None
            };
            if let Some(r) = result {
                return r;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(
                    "no leader: the control plane has no quorum right now",
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The leader's port refused a connection, so its process is gone: do
    /// not wait out the election timer, start an election now, and (from
    /// `propose`) again every [`PRESS_INTERVAL_MS`] while there is no
    /// leader, for up to twice the election timeout. Voters refuse until
    /// their own lease of the old leader ends (openraft's `leader_lease`,
    /// the election timeout's upper bound), so the first try after that
    /// wins. One try
    /// alone, which usually failed on the lease, left the next to this
    /// replica's election timer, and when the other voter's timer fired
    /// too the vote split: failover took about 600 ms instead of 350.
    /// Pressing is harmless: a voter that refuses a candidate (lease, or a
    /// shorter log) keeps its own vote, so a lagging replica cannot unseat
    /// a better candidate.
    async fn press_for_election(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let last = self
            .last_forced_election_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        if now.saturating_sub(last) < PRESS_INTERVAL_MS {
            return;
        }
        self.last_forced_election_ms
            .store(now, std::sync::atomic::Ordering::Relaxed);
        tracing::debug!(replica = self.id, "the leader is gone; starting an election");
        let _ = self.raft.trigger().elect().await;
    }

    /// Proposes `cmd` on this replica only, never forwarding: for the
    /// leader's own controllers, and for a command a follower forwarded
    /// (which retries if leadership moved meanwhile).
    pub async fn propose_local(&self, cmd: Command) -> Result<Applied, ApiError> {
        self.propose_encoded_local(encode(cmd)?).await
    }

    /// [`Replica::propose_local`] for a command already encoded: a
    /// follower's forwarded text is proposed as it came.
    pub async fn propose_encoded_local(&self, cmd: LogCommand) -> Result<Applied, ApiError> {
        match self.batcher.submit(cmd).await {
            Submitted::Done(r) => r,
            Submitted::NotLeader => Err(unavailable("not the leader")),
        }
    }

    async fn forward_propose(
        &self,
        addr: &str,
        cmd: &LogCommand,
    ) -> Result<Result<Applied, ApiError>, tonic::Status> {
        let data = rk_proto::bytes::Bytes::copy_from_slice(cmd.json().as_bytes());
        let ch = self
            .net
            .channel(addr)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let reply = RaftClient::new(ch)
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20)
            .propose(RaftBytes { data })
            .await?
            .into_inner();
        let r: Result<Applied, WireError> =
            serde_json::from_slice(&reply.data).map_err(|e| tonic::Status::internal(e.to_string()))?;
        Ok(r.map_err(Into::into))
    }

    /// Waits until this replica has applied every write acknowledged before
    /// the call (the read-index protocol; followers ask the leader).
    pub async fn read_barrier(&self) -> Result<(), ApiError> {
        let deadline = tokio::time::Instant::now() + LEADER_WAIT;
        loop {
            let leader = self.raft.metrics().borrow().current_leader;
            let index = if leader == Some(self.id) {
                match self.raft.ensure_linearizable().await {
                    Ok(_) => return Ok(()),
                    Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(_)))
                    | Err(RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(_))) => None,
                    Err(RaftError::Fatal(e)) => return Err(unavailable(e.to_string())),
                }
            } else if let Some((_, addr)) = self.leader_addr().await {
                // A read index is answered in milliseconds; one that hangs is
                // from a leader cut off from us, so ask again (leadership may
                // have moved meanwhile).
                tokio::time::timeout(Duration::from_millis(500), self.remote_read_index(&addr))
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            };
            if let Some(index) = index {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                return match self
                    .raft
                    .wait(Some(remaining.max(Duration::from_millis(100))))
                    .applied_index_at_least(Some(index), "read barrier")
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(e) => Err(unavailable(format!("this replica is catching up: {e}"))),
                };
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(unavailable(
                    "no leader: the control plane has no quorum right now",
                ));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn remote_read_index(&self, addr: &str) -> Result<u64, tonic::Status> {
        let ch = self
            .net
            .channel(addr)
            .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
        let reply = RaftClient::new(ch)
            .read_index(RaftBytes::default())
            .await?
            .into_inner();
        serde_json::from_slice(&reply.data).map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// The leader's half of ReadIndex: confirm leadership with a quorum and
    /// return the index a reader must wait for.
    pub async fn local_read_index(&self) -> Result<u64, ApiError> {
        match self.raft.ensure_linearizable().await {
            Ok(log_id) => Ok(log_id.map(|l| l.index).unwrap_or(0)),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }
}
