//! The Raft type configuration and the commands the state machine applies.

use rk_api::{ApiError, Reason};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::Arc;

pub type NodeId = u64;

openraft::declare_raft_types!(
    /// rk's Raft: commands are object transactions, nodes carry the
    /// replica's address (HOST:PORT, served with TLS), and a snapshot's
    /// data is a file, streamed to and from disk rather than held in
    /// memory (see `store::rocks`).
    pub TypeConfig:
        D = LogCommand,
        R = CommandResult,
        Node = openraft::BasicNode,
        SnapshotData = tokio::fs::File,
);

pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<NodeId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<NodeId, openraft::BasicNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, openraft::BasicNode>;
pub type Snapshot = openraft::Snapshot<TypeConfig>;
pub type StorageError = openraft::StorageError<NodeId>;
pub type Vote = openraft::Vote<NodeId>;

/// A [`Command`] as it travels through Raft: encoded once, by the replica
/// that proposes it, and carried as that JSON text from then on.
///
/// Every entry is written to the log, read back for replication, sent to
/// each follower, written to their logs and read again to be applied. As a
/// decoded tree each of those steps would encode or decode every object in
/// it; as text they copy bytes and check that the JSON is well formed, and
/// only the state machine decodes it, once per replica.
///
/// The proposing replica also keeps the command it encoded, and its own
/// state machine takes that instead of decoding the text again: the
/// leader's entries reach its apply as clones of this same value (through
/// the log store's recent entries). Decoding its own commands was about 4%
/// of a busy leader's CPU. It is taken by the first apply; should the entry
/// be applied again (the state machine rebuilt from a snapshot, say), the
/// text is decoded, as followers always do.
#[derive(Clone)]
pub struct LogCommand(Arc<Encoded>);

struct Encoded {
    json: Box<serde_json::value::RawValue>,
    proposed: std::sync::Mutex<Option<Command>>,
}

impl LogCommand {
    fn from_text(json: Box<serde_json::value::RawValue>, proposed: Option<Command>) -> Self {
        LogCommand(Arc::new(Encoded {
            json,
            proposed: std::sync::Mutex::new(proposed),
        }))
    }

    /// Encodes `cmd` to propose it, keeping it for this replica's apply.
    pub fn propose(cmd: Command) -> Result<Self, serde_json::Error> {
        let json = serde_json::value::to_raw_value(&cmd)?;
        Ok(Self::from_text(json, Some(cmd)))
    }

    /// A command another replica encoded and forwarded to this one to
    /// propose: its text is kept as received, and checked to decode as a
    /// command (an entry that does not stops every state machine), which
    /// is kept as if proposed here.
    pub fn received(json: &[u8]) -> Result<Self, serde_json::Error> {
        let text: Box<serde_json::value::RawValue> = serde_json::from_slice(json)?;
        let cmd: Command = serde_json::from_str(text.get())?;
        Ok(Self::from_text(text, Some(cmd)))
    }

    pub fn encode(cmd: &Command) -> Result<Self, serde_json::Error> {
        Ok(Self::from_text(serde_json::value::to_raw_value(cmd)?, None))
    }

    /// One entry carrying several commands (`Command::Batch`), built from
    /// their text without decoding them. The members' kept commands move
    /// into the batch's, if every member still has its own.
    pub fn batch(cmds: &[LogCommand]) -> Result<Self, serde_json::Error> {
        let len = cmds.iter().map(|c| c.json().len() + 1).sum::<usize>();
        let mut json = String::with_capacity(len + 12);
        json.push_str("{\"Batch\":[");
        for (i, c) in cmds.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(c.json());
        }
        json.push_str("]}");
        let json = serde_json::value::RawValue::from_string(json)?;
        let taken: Vec<Option<Command>> = cmds.iter().map(LogCommand::take_proposed).collect();
        if taken.iter().any(Option::is_none) {
            // Some member has none (a proposal retried after a lost
            // leadership): the batch decodes its text. What was taken goes
            // back, in case this batch is never applied here either.
            for (c, cmd) in cmds.iter().zip(taken) {
                if let Some(cmd) = cmd {
                    c.put_proposed(cmd);
                }
            }
            return Ok(Self::from_text(json, None));
        }
        let proposed = taken.into_iter().flatten().collect();
        Ok(Self::from_text(json, Some(Command::Batch(proposed))))
    }

    fn take_proposed(&self) -> Option<Command> {
        self.0.proposed.lock().ok().and_then(|mut p| p.take())
    }

    fn put_proposed(&self, cmd: Command) {
        if let Ok(mut p) = self.0.proposed.lock() {
            *p = Some(cmd);
        }
    }

    /// The command: the one this replica proposed, the first time it asks,
    /// and otherwise decoded from the text.
    pub fn decode(&self) -> Result<Command, serde_json::Error> {
        match self.take_proposed() {
            Some(cmd) => Ok(cmd),
            None => serde_json::from_str(self.json()),
        }
    }

    pub fn json(&self) -> &str {
        self.0.json.get()
    }
}

/// Encodes `value` (a log entry, or a message carrying entries) into a
/// buffer of `size_hint` bytes to start with (see [`entry_size_hint`]). A
/// message of many MiB encoded into a growing buffer is copied a dozen
/// times, each time into freshly faulted pages.
pub fn encode_sized<T: Serialize>(value: &T, size_hint: usize) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size_hint + 256);
    serde_json::to_writer(&mut out, value)?;
    Ok(out)
}

/// About the size of `entry` encoded: its command's text and the frame.
pub fn entry_size_hint(entry: &Entry) -> usize {
    match &entry.payload {
        openraft::EntryPayload::Normal(cmd) => cmd.json().len() + 128,
        _ => 512,
    }
}

impl std::fmt::Debug for LogCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Log lines name the entry, not its objects.
        write!(f, "LogCommand({} bytes)", self.json().len())
    }
}

impl Serialize for LogCommand {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.json.serialize(s)
    }
}

impl<'de> Deserialize<'de> for LogCommand {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Self::from_text(
            Box::<serde_json::value::RawValue>::deserialize(d)?,
            None,
        ))
    }
}

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
    /// The JSON of the first object, as the state machine encoded it for
    /// the store, when it wrote that object. A reply sends these bytes
    /// rather than encoding the object a second time. Only for this
    /// replica: not sent to the replica that forwarded the write.
    #[serde(skip)]
    pub first_json: Option<Vec<u8>>,
}

/// A written object as a reply carries it.
pub struct Written {
    pub object: Arc<Value>,
    /// Its JSON, if already encoded (see [`Applied::first_json`]).
    pub json: Option<Vec<u8>>,
    pub revision: u64,
}

impl Written {
    /// An object not written (a dry run) with the store's `revision`.
    pub fn unwritten(object: Value, revision: u64) -> Self {
        Written {
            object: Arc::new(object),
            json: None,
            revision,
        }
    }

    /// Its JSON: the bytes already encoded, or encoded now.
    pub fn into_json(self) -> Vec<u8> {
        match self.json {
            Some(json) => json,
            None => serde_json::to_vec(&*self.object).unwrap_or_default(),
        }
    }
}

impl Applied {
    /// The first op's object (as a single-op write returns it), its JSON
    /// if already encoded, and the revision.
    pub fn into_first(self) -> Written {
        Written {
            object: self.objects.into_iter().next().unwrap_or_default(),
            json: self.first_json,
            revision: self.revision,
        }
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
    ///
    /// `encoded` gives the JSON of an object the caller has already
    /// encoded (for the objects column family), which is then copied
    /// rather than encoded a second time.
    pub fn history_bytes<'a>(
        &self,
        encoded: &dyn Fn(&Arc<Value>) -> Option<&'a [u8]>,
    ) -> serde_json::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(64 + self.events.len() * 1024);
        out.extend_from_slice(b"{\"revision\":");
        serde_json::to_writer(&mut out, &self.revision)?;
        out.extend_from_slice(b",\"events\":[");
        for (i, e) in self.events.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"kind\":");
            serde_json::to_writer(&mut out, &e.kind)?;
            out.extend_from_slice(b",\"resource\":");
            serde_json::to_writer(&mut out, &e.resource)?;
            out.extend_from_slice(b",\"object\":");
            match encoded(&e.object) {
                Some(json) => out.extend_from_slice(json),
                None => serde_json::to_writer(&mut out, &*e.object)?,
            }
            out.extend_from_slice(b",\"prev\":");
            serde_json::to_writer(
                &mut out,
                &e.prev.as_deref().map(rk_api::selector::selectable_view),
            )?;
            out.push(b'}');
        }
        out.extend_from_slice(b"]}");
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(name: &str) -> Command {
        Command::Txn(Txn {
            now: "2026-11-27T00:00:00Z".into(),
            ops: vec![Op::Create {
                resource: "configmaps".into(),
                object: json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": "default"}, "data": {"k": "v\"\n"}}),
            }],
        })
    }

    fn names(cmd: &Command) -> Vec<String> {
        match cmd {
            Command::Txn(t) => t
                .ops
                .iter()
                .map(|op| match op {
                    Op::Create { object, .. } => {
                        object["metadata"]["name"].as_str().unwrap_or("").to_string()
                    }
                    other => format!("{other:?}"),
                })
                .collect(),
            Command::Batch(cmds) => cmds.iter().flat_map(names).collect(),
            Command::AllocateReplicaId => vec!["allocate".into()],
        }
    }

    #[test]
    fn a_batch_of_encoded_commands_decodes_as_the_batch_of_the_commands() {
        let members = [create("a"), Command::AllocateReplicaId, create("b")];
        let encoded: Vec<LogCommand> = members
            .iter()
            .map(|c| LogCommand::encode(c).expect("encode"))
            .collect();
        let batch = LogCommand::batch(&encoded).expect("batch");
        let decoded = batch.decode().expect("decode");
        assert!(matches!(&decoded, Command::Batch(cmds) if cmds.len() == 3));
        assert_eq!(names(&decoded), ["a", "allocate", "b"]);
    }

    fn kept(c: &LogCommand) -> bool {
        c.0.proposed.lock().map(|p| p.is_some()).unwrap_or(false)
    }

    /// The leader applies the command it kept; followers the text. They
    /// agree only if the text decodes to exactly the kept command, so
    /// every kind of op and value must survive the trip unchanged.
    #[test]
    fn the_text_of_a_command_decodes_to_exactly_the_command() {
        let cmd = Command::Batch(vec![
            Command::Txn(Txn {
                now: "2026-11-28T00:00:00Z".into(),
                ops: vec![
                    Op::Create {
                        resource: "pods".into(),
                        object: json!({"metadata": {"name": "p", "labels": {"a": "é\u{1F600}\"\\"}},
                            "spec": {"x": 1.5, "y": -0.0, "z": 1e300, "n": -7, "u": u64::MAX, "e": [], "o": {}, "b": true, "null": null}}),
                    },
                    Op::Update {
                        resource: "configmaps".into(),
                        object: json!({"data": {"k": "v\n\t\u{0}"}}),
                        expected_rv: Some(7),
                        status: true,
                    },
                    Op::Delete {
                        resource: "pods".into(),
                        namespace: "default".into(),
                        name: "p".into(),
                        expected_rv: None,
                        expected_uid: Some("u".into()),
                        propagation: Some("Foreground".into()),
                        grace_period_seconds: Some(0),
                    },
                    Op::CheckExists {
                        resource: "namespaces".into(),
                        namespace: String::new(),
                        name: "default".into(),
                        expected_rv: Some(1),
                    },
                    Op::CheckAbsent {
                        resource: "pods".into(),
                        namespace: "default".into(),
                        name: "q".into(),
                    },
                    Op::Bind {
                        namespace: "default".into(),
                        name: "p".into(),
                        expected_rv: 9,
                        node: "n1".into(),
                    },
                ],
            }),
            Command::AllocateReplicaId,
        ]);
        let text = LogCommand::encode(&cmd).expect("encode");
        let decoded: Command = serde_json::from_str(text.json()).expect("decode");
        assert_eq!(format!("{decoded:?}"), format!("{cmd:?}"));
    }

    #[test]
    fn the_proposer_applies_the_command_it_kept_once_then_decodes_the_text() {
        let proposed = LogCommand::propose(create("a")).expect("propose");
        let copy = proposed.clone();
        assert!(kept(&copy), "clones share what the proposer kept");
        assert_eq!(names(&copy.decode().expect("first")), ["a"]);
        assert!(!kept(&proposed), "taken by the first apply");
        assert_eq!(names(&proposed.decode().expect("again")), ["a"]);
        // What the text says, not a leftover, even when kept is gone.
        let from_disk: LogCommand = serde_json::from_str(proposed.json()).expect("read back");
        assert!(!kept(&from_disk));
        assert_eq!(names(&from_disk.decode().expect("decode")), ["a"]);
    }

    #[test]
    fn a_forwarded_command_keeps_its_text_and_is_refused_unless_it_is_a_command() {
        let sent = LogCommand::encode(&create("a")).expect("encode");
        let got = LogCommand::received(sent.json().as_bytes()).expect("received");
        assert_eq!(got.json(), sent.json());
        assert!(kept(&got));
        assert_eq!(names(&got.decode().expect("kept")), ["a"]);
        assert!(LogCommand::received(br#"{"NoSuchCommand":1}"#).is_err());
        assert!(LogCommand::received(b"{").is_err());
    }

    #[test]
    fn a_batch_of_proposals_keeps_their_commands_in_order() {
        let members: Vec<LogCommand> = ["a", "b", "c"]
            .into_iter()
            .map(|n| LogCommand::propose(create(n)).expect("propose"))
            .collect();
        let batch = LogCommand::batch(&members).expect("batch");
        assert!(kept(&batch));
        assert!(members.iter().all(|m| !kept(m)), "moved into the batch");
        assert_eq!(names(&batch.decode().expect("kept")), ["a", "b", "c"]);
        assert_eq!(names(&batch.decode().expect("text")), ["a", "b", "c"]);
    }

    #[test]
    fn a_batch_with_a_member_that_kept_nothing_decodes_its_text_and_leaves_the_others_theirs() {
        let members = vec![
            LogCommand::propose(create("a")).expect("propose"),
            LogCommand::encode(&create("b")).expect("encode"),
            LogCommand::propose(create("c")).expect("propose"),
        ];
        let batch = LogCommand::batch(&members).expect("batch");
        assert!(!kept(&batch));
        assert!(kept(&members[0]) && !kept(&members[1]) && kept(&members[2]));
        assert_eq!(names(&members[2].decode().expect("kept")), ["c"]);
        assert_eq!(names(&batch.decode().expect("text")), ["a", "b", "c"]);
    }

    #[test]
    fn a_log_entry_carries_the_command_text_verbatim() {
        let cmd = LogCommand::encode(&create("a")).expect("encode");
        let entry = Entry {
            log_id: LogId::new(openraft::CommittedLeaderId::new(3, 1), 7),
            payload: openraft::EntryPayload::Normal(cmd.clone()),
        };
        // The log store and the Raft RPCs encode entries with serde_json.
        let bytes = serde_json::to_vec(&entry).expect("encode entry");
        let back: Entry = serde_json::from_slice(&bytes).expect("decode entry");
        let openraft::EntryPayload::Normal(got) = back.payload else {
            panic!("payload kind changed: {:?}", back.payload);
        };
        assert_eq!(got.json(), cmd.json());
        assert_eq!(names(&got.decode().expect("decode")), ["a"]);
    }

    #[test]
    fn the_history_form_reads_back_with_pre_encoded_objects_copied_verbatim() {
        let pod = Arc::new(
            json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"app": "a\"b"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}}),
        );
        let prev = Arc::new(
            json!({"kind": "Pod", "metadata": {"name": "p", "labels": {"app": "a\"b"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        );
        let gone = Arc::new(json!({"kind": "ConfigMap", "metadata": {"name": "cm"}}));
        let events = RevisionEvents {
            revision: 42,
            events: vec![
                StoredEvent {
                    kind: EventKind::Modified,
                    resource: "pods".into(),
                    object: pod.clone(),
                    prev: Some(prev.clone()),
                },
                StoredEvent {
                    kind: EventKind::Deleted,
                    resource: "configmaps".into(),
                    object: gone.clone(),
                    prev: Some(gone.clone()),
                },
            ],
        };
        let pod_json = serde_json::to_vec(&*pod).expect("encode");
        let bytes = events
            .history_bytes(&|obj| Arc::ptr_eq(obj, &pod).then_some(pod_json.as_slice()))
            .expect("history");
        let back: RevisionEvents = serde_json::from_slice(&bytes).expect("reads back");
        assert_eq!(back.revision, 42);
        assert_eq!(back.events.len(), 2);
        assert_eq!(*back.events[0].object, *pod);
        assert_eq!(back.events[0].kind, EventKind::Modified);
        assert_eq!(
            back.events[0].prev.as_deref(),
            Some(&rk_api::selector::selectable(&prev))
        );
        assert_eq!(back.events[1].resource, "configmaps");
        assert_eq!(*back.events[1].object, *gone);
        // Encoding everything here gives the same document.
        let plain = events.history_bytes(&|_| None).expect("history");
        assert_eq!(bytes, plain);
    }

    /// Logs and AppendEntries written before `LogCommand` carried the
    /// decoded `Command`; the text form must read them, and they it, so a
    /// replica upgraded in place keeps its log and talks to older peers.
    #[test]
    fn log_entries_read_and_write_the_same_json_as_when_they_carried_decoded_commands() {
        openraft::declare_raft_types!(
            DecodedConfig:
                D = Command,
                R = CommandResult,
                Node = openraft::BasicNode,
                SnapshotData = tokio::fs::File,
        );
        let log_id = LogId::new(openraft::CommittedLeaderId::new(2, 1), 9);
        let decoded = openraft::Entry::<DecodedConfig> {
            log_id,
            payload: openraft::EntryPayload::Normal(Command::Batch(vec![create("a"), create("b")])),
        };
        let old_bytes = serde_json::to_vec(&decoded).expect("encode");
        let read: Entry = serde_json::from_slice(&old_bytes).expect("the text form reads the old entry");
        let openraft::EntryPayload::Normal(cmd) = &read.payload else {
            panic!("payload kind changed: {:?}", read.payload);
        };
        assert_eq!(names(&cmd.decode().expect("decode")), ["a", "b"]);
        assert_eq!(
            serde_json::to_vec(&read).expect("encode"),
            old_bytes,
            "written back unchanged"
        );

        let new_bytes = serde_json::to_vec(&Entry {
            log_id,
            payload: openraft::EntryPayload::Normal(LogCommand::encode(&create("c")).expect("encode")),
        })
        .expect("encode");
        let old_read: openraft::Entry<DecodedConfig> =
            serde_json::from_slice(&new_bytes).expect("the decoded form reads the new entry");
        let openraft::EntryPayload::Normal(cmd) = &old_read.payload else {
            panic!("payload kind changed");
        };
        assert_eq!(names(cmd), ["c"]);
    }

    #[test]
    fn a_log_entry_whose_command_is_not_json_is_refused() {
        let bad =
            br#"{"log_id":{"leader_id":{"term":1,"node_id":1},"index":1},"payload":{"Normal":{"Txn":}}"#;
        assert!(serde_json::from_slice::<Entry>(bad).is_err());
    }
}
