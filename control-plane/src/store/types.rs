//! The Raft type configuration and the commands the state machine applies.

use rk_api::{ApiError, Reason};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Cursor;
use std::sync::Arc;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// rk's Raft: commands are object transactions, nodes carry the
    /// replica's address (HOST:PORT, served with TLS).
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        Node = openraft::BasicNode,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Vote = openraft::Vote<NodeId>;

/// A write the state machine applies. Everything nondeterministic (uids,
/// timestamps, generated names) is decided before proposing, so every
/// replica applies the same command to the same result.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Command {
    Txn(Txn),
    /// Hands out a unique replica id for a joining member.
    AllocateReplicaId,
    /// Several commands in one log entry, applied in order, each with its
    /// own revision and outcome. The leader batches concurrent proposals so
    /// one Raft entry (one fsync, one replication round) carries many.
    Batch(Vec<Command>),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Txn {
    /// RFC 3339 time chosen by the proposer, used for deletionTimestamp.
    pub now: String,
    pub ops: Vec<Op>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Op {
    Create {
        resource: String,
        object: Value,
    },
    Update {
        resource: String,
        object: Value,
        /// A precondition: the stored resourceVersion must equal this.
        expected_rv: Option<u64>,
        /// Status subresource: only `status` is taken from `object`.
        status: bool,
    },
    Delete {
        resource: String,
        namespace: String,
        name: String,
        expected_rv: Option<u64>,
        expected_uid: Option<String>,
        /// Background (default), Foreground or Orphan.
        propagation: Option<String>,
        /// For bound Pods: how long the node gets to stop the containers
        /// before the object goes away (`None`: the Pod's
        /// terminationGracePeriodSeconds, 30 by default; 0 removes at once).
        #[serde(default)]
        grace_period_seconds: Option<i64>,
    },
    CheckExists {
        resource: String,
        namespace: String,
        name: String,
        expected_rv: Option<u64>,
    },
    CheckAbsent {
        resource: String,
        namespace: String,
        name: String,
    },
    /// The scheduler's binding (Kubernetes' `pods/binding`): sets an
    /// unbound Pod's `spec.nodeName` and its PodScheduled condition in one
    /// small op, without shipping and revalidating the whole object.
    Bind {
        namespace: String,
        name: String,
        /// The Pod as the scheduler saw it; any change since fails the op.
        expected_rv: u64,
        node: String,
    },
}

/// What applying a command produced. Errors are values: a failed
/// precondition is a normal outcome of a committed entry, not a storage
/// failure.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CommandResult {
    /// One per command: a single command has one, a batch one per member,
    /// blank and membership entries none.
    pub outcomes: Vec<Result<Applied, WireError>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Applied {
    pub revision: u64,
    /// One per op (Null for checks); for deletes the last state. Shared
    /// with the watch feed, so a caller that only needs to read it copies
    /// nothing.
    pub objects: Vec<Arc<Value>>,
    pub replica_id: u64,
}

impl Applied {
    /// The first op's object (as a single-op write returns it) and the
    /// revision.
    pub fn into_first(self) -> (Value, u64) {
        (first_object(self.objects), self.revision)
    }
}

/// The first of a transaction's objects, copied out only if the watch feed
/// still shares it.
pub fn first_object(objects: Vec<Arc<Value>>) -> Value {
    objects
        .into_iter()
        .next()
        .map(Arc::unwrap_or_clone)
        .unwrap_or_default()
}

/// An ApiError in a shape that crosses the wire between replicas.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WireError {
    pub reason: String,
    pub message: String,
    pub field: Option<String>,
}

impl From<ApiError> for WireError {
    fn from(e: ApiError) -> Self {
        WireError {
            reason: e.reason.as_str().to_string(),
            message: e.message,
            field: e.field,
        }
    }
}

impl From<WireError> for ApiError {
    fn from(e: WireError) -> Self {
        ApiError {
            reason: Reason::parse(&e.reason).unwrap_or(Reason::InternalError),
            message: e.message,
            field: e.field,
        }
    }
}

/// One change as recorded in the watch history. The objects are shared
/// (`Arc`) because one applied change reaches the object space, the
/// history, the controllers' cache and every watcher: a deep copy for each
/// cost the leader a visible share of its CPU under load.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoredEvent {
    pub kind: EventKind,
    pub resource: String,
    pub object: Arc<Value>,
    /// The object before the change (None for ADDED). Selector-filtered
    /// watches need it to tell "stopped matching" from "never matched".
    pub prev: Option<Arc<Value>>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// The events of one revision.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RevisionEvents {
    pub revision: u64,
    pub events: Vec<StoredEvent>,
}

impl RevisionEvents {
    /// The form the watch history keeps: each previous state cut down to
    /// what selectors read ([`rk_api::selector::selectable`]), which is
    /// all a replayed watch uses it for. The live feed keeps whole
    /// previous states for the controllers. This halves what an update
    /// writes to the history (the whole Pod twice for every binding, say).
    /// It reads back as a `RevisionEvents`.
    pub fn history_bytes(&self) -> serde_json::Result<Vec<u8>> {
        #[derive(Serialize)]
        struct HistoryEvent<'a> {
            kind: EventKind,
            resource: &'a str,
            object: &'a Value,
            prev: Option<Value>,
        }
        #[derive(Serialize)]
        struct HistoryRevision<'a> {
            revision: u64,
            events: Vec<HistoryEvent<'a>>,
        }
        serde_json::to_vec(&HistoryRevision {
            revision: self.revision,
            events: self
                .events
                .iter()
                .map(|e| HistoryEvent {
                    kind: e.kind,
                    resource: &e.resource,
                    object: &e.object,
                    prev: e.prev.as_deref().map(rk_api::selector::selectable),
                })
                .collect(),
        })
    }
}
