//! RocksDB persistence: the Raft log and the state machine share one
//! database (column families below).
//!
//! The log goes through RocksDB's write-ahead log, which the syncer
//! fsyncs. What applying entries writes skips it (an installed snapshot
//! does not: it is written synced): it reaches disk when RocksDB
//! flushes its memtables, atomically across column families, and after a
//! crash the state machine is wherever the last flush left it, at a
//! consistent `last_applied`. openraft then applies the log again from
//! there. So the log may not lose an entry the state machine has not
//! flushed: [`LogStore::purge`] deletes entries only behind a flush.
//!
//! Column families:
//! - `log`: Raft entries by index (big-endian u64 keys).
//! - `raft`: vote, committed log id, last purged log id.
//! - `objects`: API objects by `resource/namespace/name`.
//! - `history`: watch history, one [`RevisionEvents`] per revision.
//! - `meta`: state machine metadata (last applied log id, membership,
//!   revision, compacted revision, next replica id, current snapshot).

// openraft's StorageError is large, and the storage traits return it by
// value; the helpers here return the same type rather than box and unbox it.
#![allow(clippy::result_large_err)]

use super::background_io::PacedWriter;
use super::objects::{self, ObjectRead};
use super::recent::{RecentObjects, Written};
use super::snapshot_read::{read_snapshot, SnapshotSink, SnapshotSummary};
use super::types::*;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, EntryPayload, ErrorSubject, ErrorVerb, OptionalSend, RaftLogReader, RaftSnapshotBuilder,
    StorageIOError,
};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

const CF_LOG: &str = "log";
const CF_RAFT: &str = "raft";
const CF_OBJECTS: &str = "objects";
const CF_HISTORY: &str = "history";
const CF_META: &str = "meta";

const KEY_VOTE: &[u8] = b"vote";
const KEY_COMMITTED: &[u8] = b"committed";
const KEY_PURGED: &[u8] = b"last_purged";
const KEY_APPLIED: &[u8] = b"last_applied";
const KEY_MEMBERSHIP: &[u8] = b"membership";
const KEY_REVISION: &[u8] = b"revision";
const KEY_COMPACTED: &[u8] = b"compacted";
const KEY_NEXT_REPLICA: &[u8] = b"next_replica_id";
/// The last snapshot: its metadata and the file its data is in
/// ([`StoredSnapshot`]).
const KEY_SNAPSHOT: &[u8] = b"snapshot";

/// Opens (or creates) the database under `dir`.
pub fn open_db(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // A small cluster store: keep memory modest.
    opts.set_max_background_jobs(2);
    // Flushes and compactions write their files out a megabyte at a time
    // rather than all at their end, so the log's fsyncs never queue behind
    // a whole table file (see `background_io`).
    opts.set_bytes_per_sync(1 << 20);
    // The state machine's writes skip the WAL (see the module comment), so
    // its column families must reach disk together or not at all: objects
    // flushed without the `last_applied` that covers them would be applied
    // twice after a crash.
    opts.set_atomic_flush(true);
    let cfs = [CF_LOG, CF_RAFT, CF_OBJECTS, CF_HISTORY, CF_META]
        .into_iter()
        .map(|n| ColumnFamilyDescriptor::new(n, column_family_options(n)));
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}

/// Per column family. Every one is LZ4-compressed (writing the log's
/// flushes uncompressed instead was measured no cheaper here).
fn column_family_options(name: &str) -> Options {
    let mut opts = Options::default();
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    if name == CF_OBJECTS {
        // Every create first looks up its key to find it free. Without
        // a filter each of those misses read index and data blocks of
        // the SST files (3% of a follower's CPU under load); a bloom
        // filter, on disk and in the memtable, answers most of them.
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        opts.set_memtable_whole_key_filtering(true);
        opts.set_memtable_prefix_bloom_ratio(0.02);
    }
    opts
}

fn be(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn from_be(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.try_into().ok()?))
}

fn cf<'a>(db: &'a DB, name: &str) -> &'a rocksdb::ColumnFamily {
    // Every column family is created at open (create_missing_column_families),
    // so a missing handle is a programming error, not bad input.
    db.cf_handle(name).expect("column family created at open")
}

fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError {
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read(AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write(AnyError::new(&e)).into()
}

fn get_json<T: for<'de> Deserialize<'de>>(
    db: &DB,
    cfname: &str,
    key: &[u8],
) -> Result<Option<T>, StorageError> {
    match db.get_cf(cf(db, cfname), key).map_err(read_err)? {
        None => Ok(None),
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes).map_err(read_err)?)),
    }
}

// ---------------------------------------------------------------- log

/// How far this replica's log is known to be on disk: the id of the last
/// entry that a completed fsync covers.
///
/// The leader reports its own appends to Raft before they are synced (see
/// [`LogStore`]), so its replication starts while its fsync runs. Two things
/// wait on this instead: the state machine applies no entry past it, and
/// the leader sends followers no commit index past it (`network.rs`). So an
/// entry is still applied anywhere, and acknowledged to a client, only once
/// a majority of replicas have it on disk.
#[derive(Clone)]
pub struct LogDurability {
    durable: watch::Receiver<Option<LogId>>,
}

impl LogDurability {
    /// The last log id known to be on disk.
    pub fn durable(&self) -> Option<LogId> {
        *self.durable.borrow()
    }

    /// Changes whenever a sync completes (or a truncation lowers it).
    pub fn changes(&self) -> watch::Receiver<Option<LogId>> {
        self.durable.clone()
    }

    /// Waits until the entry at `index` is on disk.
    async fn wait_for(&self, index: u64) -> Result<(), StorageError> {
        let mut rx = self.durable.clone();
        rx.wait_for(|d| d.is_some_and(|d| d.index >= index))
            .await
            .map(|_| ())
            .map_err(|_| {
                io_err(
                    ErrorSubject::Logs,
                    ErrorVerb::Write,
                    std::io::Error::other("the log sync thread stopped (an fsync failed)"),
                )
            })
    }

    /// For a state machine used on its own, without a log (tests, and
    /// `rk-bench apply`): every entry counts as durable.
    pub fn everything() -> Self {
        let (_tx, rx) = watch::channel(Some(LogId::new(
            openraft::CommittedLeaderId::new(u64::MAX, 0),
            u64::MAX,
        )));
        Self { durable: rx }
    }

    /// Durability that a test moves by hand.
    #[cfg(test)]
    pub fn from_receiver(durable: watch::Receiver<Option<LogId>>) -> Self {
        Self { durable }
    }
}

/// The Raft log on RocksDB.
///
/// Appends are written at once, in order, but made durable by a separate
/// syncer thread that fsyncs the write-ahead log once for every append
/// queued since its last sync (group commit).
///
/// A follower's append is reported to Raft only after that fsync: its
/// answer to the leader counts toward a quorum. The leader's own appends
/// (entries of the term it leads) are reported as soon as they are written,
/// because openraft 0.9 waits for that report inside its core loop before it
/// replicates them; reporting after the fsync would put the leader's fsync
/// and the followers' round trip one after the other instead of side by
/// side (Raft thesis, 10.2.1). The leader's durability is enforced later,
/// by [`LogDurability`].
#[derive(Clone)]
pub struct LogStore {
    db: Arc<DB>,
    /// This replica's Raft id.
    id: NodeId,
    /// The vote last saved: it tells the leader's own appends from
    /// replicated ones.
    vote: Arc<std::sync::Mutex<Option<Vote>>>,
    syncer: std::sync::mpsc::Sender<SyncRequest>,
    durability: LogDurability,
    /// The newest entries, as appended (see [`RecentEntries`]).
    recent: Arc<std::sync::Mutex<RecentEntries>>,
    /// The commit index Raft last saved; on disk only as of the last purge
    /// (see `save_committed`).
    committed: Arc<std::sync::Mutex<Option<LogId>>>,
    /// Indexes up to which entries may be deleted (see [`spawn_purger`]).
    purger: std::sync::mpsc::Sender<u64>,
}

/// Work for the syncer thread.
struct SyncRequest {
    /// The last entry in the log once the write before this request is
    /// done; after the next fsync it is durable.
    last: Option<LogId>,
    /// Raft's callback, for appends that are reported only once synced.
    flushed: Option<LogFlushed<TypeConfig>>,
}

impl LogStore {
    pub fn new(db: Arc<DB>, id: NodeId) -> Result<Self, StorageError> {
        let vote = get_json(&db, CF_RAFT, KEY_VOTE)?;
        // Whatever is in the log at open survived the last stop; a crash
        // of this process alone (not the machine) loses nothing written.
        let last = last_log_id(&db)?;
        let (durable_tx, durable_rx) = watch::channel(last);
        let syncer = spawn_syncer(db.clone(), durable_tx)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Write, e))?;
        let committed = get_json::<Option<LogId>>(&db, CF_RAFT, KEY_COMMITTED)?.flatten();
        let purger =
            spawn_purger(db.clone()).map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        Ok(Self {
            db,
            id,
            vote: Arc::new(std::sync::Mutex::new(vote)),
            committed: Arc::new(std::sync::Mutex::new(committed)),
            syncer,
            durability: LogDurability { durable: durable_rx },
            recent: Default::default(),
            purger,
        })
    }

    pub fn durability(&self) -> LogDurability {
        self.durability.clone()
    }

    fn put_raft<T: Serialize>(&self, key: &[u8], value: &T, sync: bool) -> Result<(), StorageError> {
        let bytes = serde_json::to_vec(value).map_err(write_err)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db
            .put_cf_opt(cf(&self.db, CF_RAFT), key, bytes, &wo)
            .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    /// The leader id of the term this replica leads, if its saved vote is
    /// a committed vote for itself.
    fn leading(&self) -> Option<openraft::LeaderId<NodeId>> {
        let vote = (*self.vote.lock().ok()?)?;
        (vote.committed && vote.leader_id.node_id == self.id).then_some(vote.leader_id)
    }

    fn sync_later(&self, request: SyncRequest) -> Result<(), StorageError> {
        self.syncer
            .send(request)
            .map_err(|std::sync::mpsc::SendError(r)| {
                let err = std::io::Error::other("the log sync thread stopped (an fsync failed)");
                if let Some(cb) = r.flushed {
                    cb.log_io_completed(Err(std::io::Error::other(err.to_string())));
                }
                io_err(ErrorSubject::Logs, ErrorVerb::Write, err)
            })
    }
}

/// The id of the last entry in the log, or of the last purged one when
/// the log is empty (as Raft counts it).
fn last_log_id(db: &DB) -> Result<Option<LogId>, StorageError> {
    match last_entry_id(db)? {
        Some(id) => Ok(Some(id)),
        None => get_json(db, CF_RAFT, KEY_PURGED),
    }
}

/// The id of the last entry in the log; None when the log is empty.
fn last_entry_id(db: &DB) -> Result<Option<LogId>, StorageError> {
    match db.iterator_cf(cf(db, CF_LOG), IteratorMode::End).next() {
        Some(item) => {
            let (_, v) = item.map_err(read_err)?;
            let e: Entry = serde_json::from_slice(&v).map_err(read_err)?;
            Ok(Some(e.log_id))
        }
        None => Ok(None),
    }
}

/// Starts the group-commit thread. It exits when every LogStore handle
/// (and so every sender) is gone, or when an fsync fails: a failed fsync
/// leaves the page cache in an unknown state, so nothing after it may be
/// reported durable, and Raft stops on the errors that follow.
fn spawn_syncer(
    db: Arc<DB>,
    durable: watch::Sender<Option<LogId>>,
) -> std::io::Result<std::sync::mpsc::Sender<SyncRequest>> {
    let (tx, rx) = std::sync::mpsc::channel::<SyncRequest>();
    std::thread::Builder::new()
        .name("rk-log-sync".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut waiting = vec![first];
                while let Ok(more) = rx.try_recv() {
                    waiting.push(more);
                }
                let result = db.flush_wal(true).map_err(|e| e.to_string());
                if result.is_ok() {
                    if let Some(last) = waiting.last().map(|r| r.last) {
                        durable.send_replace(last);
                    }
                }
                for cb in waiting.into_iter().filter_map(|r| r.flushed) {
                    cb.log_io_completed(result.clone().map_err(std::io::Error::other));
                }
                if let Err(e) = result {
                    tracing::error!(error = %e, "fsync of the Raft log failed; no further entry will be reported durable");
                    return;
                }
            }
        })?;
    Ok(tx)
}

/// The newest log entries, kept as appended. Right after an append each
/// replication stream reads the new entries to send them, and the state
/// machine reads them to apply them once committed; from RocksDB each read
/// cost a seek and a JSON parse per entry, about 4% of every replica's CPU
/// under load. The entries held are always the log's last ones, with
/// consecutive indexes, so a read that starts inside them is answered from
/// here; anything older comes from RocksDB.
#[derive(Default)]
struct RecentEntries {
    /// Each entry with its size as stored in the log column family, the
    /// size every byte budget here counts (see [`ReadBudget`]).
    entries: std::collections::VecDeque<(Entry, usize)>,
    /// Sum of the stored sizes of `entries`.
    bytes: usize,
}

/// The encoded bytes of one generation of [`RecentObjects`]: the state
/// machine keeps up to twice this many of its last writes decoded. The
/// scheduler benchmark binds Pods a few MiB of writes after creating them.
const RECENT_OBJECTS_BYTES: usize = 8 << 20;

/// How much of the log [`RecentEntries`] holds at most. A follower that
/// lags further is sent entries read from RocksDB.
const RECENT_ENTRIES_MAX_BYTES: usize = 32 << 20;

/// The byte limit of one log read, in stored bytes: entries are taken while
/// the total stays within it, and the first is taken whatever its size.
/// Both [`RecentEntries::read`] and the RocksDB path count the same way, so
/// a read returns the same entries from either.
struct ReadBudget {
    max: usize,
    used: usize,
}

impl ReadBudget {
    fn new(max: usize) -> Self {
        ReadBudget { max, used: 0 }
    }

    /// Whether an entry of `stored` bytes is taken after `taken` others.
    fn admits(&mut self, stored: usize, taken: usize) -> bool {
        self.used = self.used.saturating_add(stored);
        taken == 0 || self.used <= self.max
    }
}

impl RecentEntries {
    /// Adds newly appended entries (with their stored sizes), which follow
    /// the last held one. An append that does not (the first after a
    /// restart, or after a truncation emptied what was held) starts over
    /// from it.
    fn push(&mut self, appended: Vec<(Entry, usize)>) {
        let Some((first, _)) = appended.first() else {
            return;
        };
        if self
            .entries
            .back()
            .is_some_and(|(b, _)| b.log_id.index + 1 != first.log_id.index)
        {
            self.entries.clear();
            self.bytes = 0;
        }
        for held in appended {
            self.bytes += held.1;
            self.entries.push_back(held);
        }
        while self.bytes > RECENT_ENTRIES_MAX_BYTES && self.entries.len() > 1 {
            if let Some((_, stored)) = self.entries.pop_front() {
                self.bytes -= stored;
            }
        }
    }

    /// Forgets the entries from `index` on (a truncation).
    fn truncate(&mut self, index: u64) {
        while self.entries.back().is_some_and(|(b, _)| b.log_id.index >= index) {
            if let Some((_, stored)) = self.entries.pop_back() {
                self.bytes -= stored;
            }
        }
    }

    /// Forgets the entries up to `index` (a purge).
    fn purge(&mut self, index: u64) {
        while self.entries.front().is_some_and(|(f, _)| f.log_id.index <= index) {
            if let Some((_, stored)) = self.entries.pop_front() {
                self.bytes -= stored;
            }
        }
    }

    /// The entries of `[start, end)` within `max_bytes` (see
    /// [`ReadBudget`]), or None when `start` is not held.
    fn read(&self, start: u64, end: u64, max_bytes: usize) -> Option<Vec<Entry>> {
        let first = self.entries.front()?.0.log_id.index;
        let offset = usize::try_from(start.checked_sub(first)?).ok()?;
        if offset >= self.entries.len() {
            return None;
        }
        let mut out = Vec::new();
        let mut budget = ReadBudget::new(max_bytes);
        for (e, stored) in self.entries.range(offset..) {
            if e.log_id.index >= end || !budget.admits(*stored, out.len()) {
                break;
            }
            out.push(e.clone());
        }
        Some(out)
    }
}

/// Starts the thread that deletes purged log entries. A purge asks to
/// delete up to an index; the thread reads the state machine's
/// `last_applied` as written so far, flushes the state machine's column
/// families (so that `last_applied` is on disk, see the module comment),
/// and deletes the entries up to the lower of the two. An entry the state
/// machine has not applied yet stays until a later purge.
///
/// It runs apart from Raft because a flush of full memtables takes long
/// enough to delay heartbeats. It exits when every LogStore handle is gone.
fn spawn_purger(db: Arc<DB>) -> std::io::Result<std::sync::mpsc::Sender<u64>> {
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    std::thread::Builder::new()
        .name("rk-log-purge".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let upto = rx.try_iter().fold(first, u64::max);
                if let Err(e) = delete_flushed_entries(&db, upto) {
                    // The entries stay; the next purge tries again.
                    tracing::warn!(error = %e, upto, "deleting purged log entries failed");
                }
            }
        })?;
    Ok(tx)
}

/// One round of the purger.
fn delete_flushed_entries(db: &DB, upto: u64) -> Result<(), StorageError> {
    // Read before the flush: the write that set it is then in the flush.
    let applied = get_json::<Option<LogId>>(db, CF_META, KEY_APPLIED)?
        .flatten()
        .map_or(0, |l| l.index);
    let target = upto.min(applied);
    if target == 0 {
        return Ok(());
    }
    let mut fo = rocksdb::FlushOptions::default();
    fo.set_wait(true);
    let machine = [cf(db, CF_OBJECTS), cf(db, CF_HISTORY), cf(db, CF_META)];
    db.flush_cfs_opt(&machine, &fo)
        .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
    db.delete_range_cf(cf(db, CF_LOG), be(0), be(target + 1))
        .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))
}

/// At most this many bytes of log entries go into one AppendEntries (but
/// always at least one entry). openraft gives an AppendEntries one
/// heartbeat interval; a few transactions of hundreds of Pods each would
/// otherwise make a request of many megabytes that never arrives in time,
/// and the follower would fall further behind with every retry.
const MAX_APPEND_BYTES: usize = 512 * 1024;

impl LogStore {
    /// The entries of `range`, stopping before the one that would take the
    /// total past `max_bytes` (the first entry is always included).
    fn read_entries<RB: RangeBounds<u64>>(
        &self,
        range: RB,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => *i,
            Bound::Excluded(i) => *i + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => i.saturating_add(1),
            Bound::Excluded(i) => *i,
            Bound::Unbounded => u64::MAX,
        };
        if let Some(held) = self
            .recent
            .lock()
            .ok()
            .and_then(|r| r.read(start, end, max_bytes))
        {
            return Ok(held);
        }
        let mut out = Vec::new();
        let mut budget = ReadBudget::new(max_bytes);
        let it = self.db.iterator_cf(
            cf(&self.db, CF_LOG),
            IteratorMode::From(&be(start), Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(read_err)?;
            let idx = from_be(&k).ok_or_else(|| read_err(std::io::Error::other("bad log key")))?;
            if !range.contains(&idx) {
                break;
            }
            if !budget.admits(v.len(), out.len()) {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(range, usize::MAX)
    }

    /// What replication sends: a prefix of `[start, end)` of at most
    /// [`MAX_APPEND_BYTES`].
    async fn limited_get_log_entries(&mut self, start: u64, end: u64) -> Result<Vec<Entry>, StorageError> {
        self.read_entries(start..end, MAX_APPEND_BYTES)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id = get_json(&self.db, CF_RAFT, KEY_PURGED)?;
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last_entry_id(&self.db)?.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), StorageError> {
        self.put_raft(KEY_VOTE, vote, true)?;
        if let Ok(mut saved) = self.vote.lock() {
            *saved = Some(*vote);
        }
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, StorageError> {
        get_json(&self.db, CF_RAFT, KEY_VOTE)
    }

    /// Kept in memory, and written to disk only with a purge. Writing it on
    /// every commit put a RocksDB write (2.5% of a follower's CPU) between
    /// the leader's quorum and its apply. A replica that restarts with an
    /// older commit index applies the rest once the leader tells it, as
    /// openraft allows. What a restart must reach by itself is the purge
    /// point (entries up to it are gone as Raft sees it) and the stored
    /// snapshot (openraft checks that it is committed): the commit index
    /// is saved with each purge (it is past the purge point then, since a
    /// purge follows a snapshot of applied, so committed, state), and the
    /// snapshot's own last entry is saved with the snapshot.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if let Ok(mut saved) = self.committed.lock() {
            *saved = committed;
        }
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.committed.lock().ok().and_then(|c| *c))
    }

    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let leading = self.leading();
        let mut own = true;
        let mut last = None;
        let mut batch = WriteBatch::default();
        let cf_log = cf(&self.db, CF_LOG);
        let mut appended = Vec::new();
        for e in entries {
            own &= leading.as_ref() == Some(&e.log_id.leader_id);
            last = Some(e.log_id);
            let bytes = encode_sized(&e, entry_size_hint(&e)).map_err(write_err)?;
            batch.put_cf(cf_log, be(e.log_id.index), &bytes);
            appended.push((e, bytes.len()));
        }
        // Written now (so later reads and appends see it, in order), made
        // durable by the syncer.
        if let Err(e) = self.db.write(batch) {
            callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
            return Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, e));
        }
        // Held before Raft hears of the append, so every read it then asks
        // for finds them.
        if let Ok(mut recent) = self.recent.lock() {
            recent.push(appended);
        }
        if own && last.is_some() {
            // The leader's own entries: replicate now, apply once synced.
            callback.log_io_completed(Ok(()));
            self.sync_later(SyncRequest { last, flushed: None })
        } else {
            self.sync_later(SyncRequest {
                last,
                flushed: Some(callback),
            })
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        if let Ok(mut recent) = self.recent.lock() {
            recent.truncate(log_id.index);
        }
        self.db
            .delete_range_cf(cf(&self.db, CF_LOG), be(log_id.index), be(u64::MAX))
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        // What is durable now ends before the removed entries; the request
        // goes through the syncer so it stays in order with the appends.
        let last = last_log_id(&self.db)?;
        self.sync_later(SyncRequest { last, flushed: None })
    }

    /// Records `log_id` as purged, as Raft sees it, at once; the entries
    /// themselves are deleted by the purger thread once the state machine
    /// has flushed past them (see [`spawn_purger`]). Until then they stay
    /// readable, so a crash in between can still apply them again.
    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let committed = self.committed.lock().ok().and_then(|c| *c);
        let encode = |v: &Option<LogId>| serde_json::to_vec(v).map_err(write_err);
        let mut batch = WriteBatch::default();
        batch.put_cf(cf(&self.db, CF_RAFT), KEY_PURGED, encode(&Some(log_id))?);
        batch.put_cf(cf(&self.db, CF_RAFT), KEY_COMMITTED, encode(&committed)?);
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db
            .write_opt(batch, &wo)
            .map_err(|e| io_err(ErrorSubject::Logs, ErrorVerb::Delete, e))?;
        if let Ok(mut recent) = self.recent.lock() {
            recent.purge(log_id.index);
        }
        self.purger.send(log_id.index).map_err(|_| {
            io_err(
                ErrorSubject::Logs,
                ErrorVerb::Delete,
                std::io::Error::other("the log purger thread stopped"),
            )
        })
    }
}

// ---------------------------------------------------------------- state machine

/// A batch of committed changes, broadcast to watchers after it is
/// written.
#[derive(Debug)]
pub struct AppliedBatch {
    pub revisions: Vec<RevisionEvents>,
}

/// Read access to the state machine for the API server: objects, lists and
/// watch history, straight from RocksDB.
#[derive(Clone)]
pub struct ObjectStore {
    db: Arc<DB>,
    events: broadcast::Sender<Arc<AppliedBatch>>,
    revision: watch::Receiver<u64>,
}

impl ObjectRead for ObjectStore {
    fn get(&self, key: &str) -> Result<Option<Value>, String> {
        match self.db.get_cf(cf(&self.db, CF_OBJECTS), key.as_bytes()) {
            Ok(None) => Ok(None),
            Ok(Some(b)) => serde_json::from_slice(&b).map(Some).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("revision {requested} has been compacted (oldest retained: {compacted})")]
    Compacted { requested: u64, compacted: u64 },
}

impl ObjectStore {
    /// The revision of the last applied write.
    pub fn revision(&self) -> u64 {
        *self.revision.borrow()
    }

    pub fn revision_watch(&self) -> watch::Receiver<u64> {
        self.revision.clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<AppliedBatch>> {
        self.events.subscribe()
    }

    pub fn compacted(&self) -> Result<u64, ReadError> {
        Ok(get_json(&self.db, CF_META, KEY_COMPACTED)
            .map_err(|e| ReadError::Storage(e.to_string()))?
            .unwrap_or(0))
    }

    /// Every object under `prefix` and the revision they were read at, from
    /// one consistent RocksDB snapshot.
    pub fn list_prefix(&self, prefix: &str) -> Result<(Vec<Value>, u64), ReadError> {
        let snap = self.db.snapshot();
        let rev = match snap.get_cf(cf(&self.db, CF_META), KEY_REVISION) {
            Ok(Some(b)) => serde_json::from_slice(&b).map_err(|e| ReadError::Storage(e.to_string()))?,
            Ok(None) => 0,
            Err(e) => return Err(ReadError::Storage(e.to_string())),
        };
        let mut out = Vec::new();
        let it = snap.iterator_cf(
            cf(&self.db, CF_OBJECTS),
            IteratorMode::From(prefix.as_bytes(), Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(|e| ReadError::Storage(e.to_string()))?;
            if !k.starts_with(prefix.as_bytes()) {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(|e| ReadError::Storage(e.to_string()))?);
        }
        Ok((out, rev))
    }

    /// The recorded changes with revision in `(after, upto]`.
    pub fn history(&self, after: u64, upto: u64) -> Result<Vec<RevisionEvents>, ReadError> {
        let compacted = self.compacted()?;
        if after < compacted {
            return Err(ReadError::Compacted {
                requested: after,
                compacted,
            });
        }
        let mut out = Vec::new();
        let it = self.db.iterator_cf(
            cf(&self.db, CF_HISTORY),
            IteratorMode::From(&be(after + 1), Direction::Forward),
        );
        for item in it {
            let (k, v) = item.map_err(|e| ReadError::Storage(e.to_string()))?;
            let rev = from_be(&k).unwrap_or(u64::MAX);
            if rev > upto {
                break;
            }
            out.push(serde_json::from_slice(&v).map_err(|e| ReadError::Storage(e.to_string()))?);
        }
        Ok(out)
    }
}

/// Puts a received snapshot's objects and history into the write batch
/// that installs it, as [`read_snapshot`] parses them. Both are stored as
/// the snapshot holds them: the leader copied them from its own column
/// families.
struct InstallBatch<'db> {
    batch: WriteBatch,
    objects: &'db rocksdb::ColumnFamily,
    history: &'db rocksdb::ColumnFamily,
}

impl SnapshotSink for InstallBatch<'_> {
    fn object(&mut self, key: &str, json: &serde_json::value::RawValue) {
        self.batch
            .put_cf(self.objects, key.as_bytes(), json.get().as_bytes());
    }

    fn history(&mut self, revision: u64, json: &serde_json::value::RawValue) {
        self.batch
            .put_cf(self.history, be(revision), json.get().as_bytes());
    }
}

/// What a snapshot records besides the objects and the history.
struct SnapshotHeader {
    revision: u64,
    compacted: u64,
    next_replica_id: u64,
}

/// The last snapshot's metadata and where its data is.
///
/// The data is a file of its own in [`snapshot_dir`]. Kept in RocksDB, as
/// it was, every snapshot of a large store went through the write-ahead
/// log and the memtable and was then flushed and compacted again and
/// again: a third of each replica's CPU while a snapshot of 30000 objects
/// was being stored. Replicas from before kept the data inline, as a JSON
/// array of numbers; such a record still reads.
#[derive(Serialize, Deserialize)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<Vec<u8>>,
}

/// Where snapshot files are kept: a directory inside the database's, so
/// that the two go together. RocksDB leaves alone what it did not create.
fn snapshot_dir(db: &DB) -> std::path::PathBuf {
    db.path().join("snapshots")
}

/// Writes a new snapshot file in `dir` with `contents`, durably, and
/// returns the file's name. The name is made here, not taken from the
/// snapshot's id, which comes from another replica when a snapshot is
/// installed.
///
/// `contents` writes through a buffer straight to the file: encoded into
/// memory first, a snapshot of 40000 objects took 60 MB of fresh pages,
/// and zeroing them was most of the half second of CPU each replica spent
/// on it. The file reaches the disk as it is written ([`PacedWriter`]), so
/// that the Raft log's fsyncs meanwhile do not wait behind all of it.
fn write_snapshot_file(
    dir: &Path,
    contents: impl FnOnce(&mut dyn std::io::Write) -> Result<(), StorageError>,
) -> Result<String, StorageError> {
    let io = |e: std::io::Error| snapshot_io_err(None, ErrorVerb::Write, &e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let name = new_snapshot_name();
    let partial = dir.join(format!("{name}.partial"));
    let file = std::fs::File::create(&partial).map_err(io)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, PacedWriter::new(file));
    let written = contents(&mut out).and_then(|()| {
        let file = out.into_inner().map_err(|e| io(e.into_error()))?.into_file();
        file.sync_all().map_err(io)?;
        std::fs::rename(&partial, dir.join(&name)).map_err(io)?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io)
    });
    if written.is_err() {
        // Nothing names the partial file; it would only wait for the next
        // open to be swept.
        let _ = std::fs::remove_file(&partial);
    }
    written.map(|()| name)
}

/// A name for a new snapshot file.
fn new_snapshot_name() -> String {
    format!("snapshot-{:016x}.json", rand::random::<u64>())
}

/// The prefix of the files snapshots are received into.
const RECEIVING_PREFIX: &str = "receiving-";

/// A new file in the snapshot directory to receive a snapshot into, and its
/// path. It is named, so that installing the snapshot names it as this
/// replica's own rather than copying it; the files of transfers given up
/// before (the leader changed midway) are deleted first. openraft receives
/// one snapshot at a time, and a crash leaves the file for the next open
/// to sweep, as it does every file no record names.
async fn receiving_snapshot_file(db: &DB) -> Result<(PathBuf, tokio::fs::File), StorageError> {
    let dir = snapshot_dir(db);
    let io = |e: std::io::Error| snapshot_io_err(None, ErrorVerb::Write, &e);
    let (path, file) = tokio::task::spawn_blocking(move || {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.file_name().to_string_lossy().starts_with(RECEIVING_PREFIX) {
                    remove_snapshot_file(&entry.path());
                }
            }
        }
        new_file_in(&dir, RECEIVING_PREFIX)
    })
    .await
    .map_err(|e| snapshot_io_err(None, ErrorVerb::Write, &e))?
    .map_err(io)?;
    Ok((path, tokio::fs::File::from_std(file)))
}

/// A new file in `dir` (created if missing), named `prefix` and a random
/// suffix, open for reading and writing. Blocking.
fn new_file_in(dir: &Path, prefix: &str) -> std::io::Result<(PathBuf, std::fs::File)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{prefix}{:016x}", rand::random::<u64>()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    Ok((path, file))
}

/// A received snapshot, read into the write batch that installs it, and
/// the name of the file that now holds it as this replica's snapshot.
struct ReceivedSnapshot {
    /// Replaces the objects and the history with the snapshot's.
    batch: WriteBatch,
    summary: SnapshotSummary,
    bytes: u64,
    file: String,
}

/// Reads the snapshot received into `file` (through a buffer, not whole
/// into memory) into a write batch that replaces this replica's objects
/// and history, and makes the file this replica's snapshot file: by
/// renaming it when it is the one at `receiving`, by copying it otherwise.
/// Blocking.
fn take_received_snapshot(
    db: &DB,
    meta: &SnapshotMeta,
    mut file: std::fs::File,
    receiving: Option<PathBuf>,
) -> Result<ReceivedSnapshot, StorageError> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    let read_err = |e: &dyn std::fmt::Display| snapshot_io_err(Some(meta), ErrorVerb::Read, e);
    let write_err = |e: &dyn std::fmt::Display| snapshot_io_err(Some(meta), ErrorVerb::Write, e);
    // Durable before it is named as a snapshot.
    file.sync_all().map_err(|e| write_err(&e))?;
    let stat = file.metadata().map_err(|e| read_err(&e))?;
    file.seek(SeekFrom::Start(0)).map_err(|e| read_err(&e))?;
    let mut install = InstallBatch {
        batch: WriteBatch::default(),
        objects: cf(db, CF_OBJECTS),
        history: cf(db, CF_HISTORY),
    };
    install
        .batch
        .delete_range_cf(install.objects, b"".as_slice(), [0xffu8; 8].as_slice());
    install
        .batch
        .delete_range_cf(install.history, be(0), be(u64::MAX));
    let summary = read_snapshot(std::io::BufReader::with_capacity(1 << 20, &file), &mut install)
        .map_err(|e| read_err(&e))?;
    let dir = snapshot_dir(db);
    let same_file =
        |path: &Path| std::fs::metadata(path).is_ok_and(|p| p.dev() == stat.dev() && p.ino() == stat.ino());
    let name = match receiving {
        Some(path) if same_file(&path) => {
            let name = new_snapshot_name();
            std::fs::rename(&path, dir.join(&name)).map_err(|e| write_err(&e))?;
            std::fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| write_err(&e))?;
            name
        }
        other => {
            // The receiving file, if any, belonged to a transfer that ended
            // otherwise.
            if let Some(stale) = other {
                remove_snapshot_file(&stale);
            }
            file.seek(SeekFrom::Start(0)).map_err(|e| read_err(&e))?;
            write_snapshot_file(&dir, |out| {
                std::io::copy(&mut file, out).map(drop).map_err(|e| write_err(&e))
            })?
        }
    };
    Ok(ReceivedSnapshot {
        batch: install.batch,
        summary,
        bytes: stat.len(),
        file: name,
    })
}

/// Opens the snapshot file `name` for reading.
async fn open_snapshot_file(
    db: &DB,
    meta: &SnapshotMeta,
    name: &str,
) -> Result<tokio::fs::File, StorageError> {
    let path = snapshot_dir(db).join(name);
    tokio::fs::File::open(&path)
        .await
        .map_err(|e| snapshot_io_err(Some(meta), ErrorVerb::Read, &format!("{}: {e}", path.display())))
}

/// The file the snapshot record names, if there is a record.
fn recorded_snapshot_file(db: &DB) -> Result<Option<String>, StorageError> {
    Ok(get_json::<StoredSnapshot>(db, CF_META, KEY_SNAPSHOT)?.and_then(|s| s.file))
}

fn remove_snapshot_file(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        tracing::warn!(file = %path.display(), error = %e, "could not delete an old snapshot");
    }
}

/// Once a new record names `current`, deletes the file the record before
/// it named. Only that one: a snapshot being built and one being installed
/// can overlap, and deleting every other file could take the one the
/// other is about to record.
fn remove_replaced_snapshot_file(db: &DB, previous: Option<String>, current: &str) {
    if let Some(previous) = previous.filter(|p| p != current) {
        remove_snapshot_file(&snapshot_dir(db).join(previous));
    }
}

/// At open, when nothing builds or installs: deletes the files no record
/// names, left by a crash between writing a file and its record.
fn remove_unrecorded_snapshot_files(db: &DB) -> Result<(), StorageError> {
    let recorded = recorded_snapshot_file(db)?;
    let Ok(entries) = std::fs::read_dir(snapshot_dir(db)) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        if recorded.as_deref().is_none_or(|r| entry.file_name() != r) {
            remove_snapshot_file(&entry.path());
        }
    }
    Ok(())
}

/// A new file in the snapshot directory whose name is removed at once (it
/// goes away with its last handle), for the data of a snapshot record an
/// earlier version wrote inline.
async fn unnamed_snapshot_file(db: &DB) -> Result<tokio::fs::File, StorageError> {
    let dir = snapshot_dir(db);
    let file = tokio::task::spawn_blocking(move || {
        let (path, file) = new_file_in(&dir, "unnamed-")?;
        std::fs::remove_file(&path)?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| snapshot_io_err(None, ErrorVerb::Write, &e))?
    .map_err(|e| snapshot_io_err(None, ErrorVerb::Write, &e))?;
    Ok(tokio::fs::File::from_std(file))
}

fn snapshot_io_err(meta: Option<&SnapshotMeta>, verb: ErrorVerb, e: &dyn std::fmt::Display) -> StorageError {
    io_err(
        ErrorSubject::Snapshot(meta.map(SnapshotMeta::signature)),
        verb,
        std::io::Error::other(e.to_string()),
    )
}

/// A snapshot's data, in the form [`read_snapshot`] reads, from one
/// consistent view of the database. Objects and history entries are
/// stored as JSON already and are copied as they are: decoding and encoding
/// them again made every snapshot of a large store cost seconds of CPU.
fn encode_snapshot(
    db: &DB,
    view: &rocksdb::SnapshotWithThreadMode<'_, DB>,
    header: &SnapshotHeader,
    out: &mut dyn std::io::Write,
) -> Result<(), StorageError> {
    write!(
        out,
        "{{\"revision\":{},\"compacted\":{},\"next_replica_id\":{},\"objects\":",
        header.revision, header.compacted, header.next_replica_id
    )
    .map_err(write_err)?;
    append_json_array(out, db, view, CF_OBJECTS, |out, key, object| {
        out.write_all(b"[").map_err(write_err)?;
        serde_json::to_writer(&mut *out, &*String::from_utf8_lossy(key)).map_err(write_err)?;
        out.write_all(b",").map_err(write_err)?;
        out.write_all(object).map_err(write_err)?;
        out.write_all(b"]").map_err(write_err)
    })?;
    out.write_all(b",\"history\":").map_err(write_err)?;
    append_json_array(out, db, view, CF_HISTORY, |out, _, revision| {
        out.write_all(revision).map_err(write_err)
    })?;
    out.write_all(b"}").map_err(write_err)
}

/// Writes one JSON array to `out`: an element for each entry of column
/// family `name` in `view`, written by `element` from its key and value.
fn append_json_array(
    out: &mut dyn std::io::Write,
    db: &DB,
    view: &rocksdb::SnapshotWithThreadMode<'_, DB>,
    name: &str,
    element: impl Fn(&mut dyn std::io::Write, &[u8], &[u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    out.write_all(b"[").map_err(write_err)?;
    for (i, item) in view.iterator_cf(cf(db, name), IteratorMode::Start).enumerate() {
        let (key, value) = item.map_err(read_err)?;
        if i > 0 {
            out.write_all(b",").map_err(write_err)?;
        }
        element(out, &key, &value)?;
    }
    out.write_all(b"]").map_err(write_err)
}

/// The state machine: applies committed commands to `objects` and
/// `history`, atomically with the applied log id.
pub struct StateMachine {
    db: Arc<DB>,
    events: broadcast::Sender<Arc<AppliedBatch>>,
    revision_tx: watch::Sender<u64>,
    revision: u64,
    compacted: u64,
    next_replica_id: u64,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// How many revisions of watch history to keep.
    history_limit: u64,
    /// This replica's id, reported in results for diagnostics.
    replica_id: u64,
    /// No entry is applied before the local log has it on disk.
    log_durability: LogDurability,
    /// The objects of the last writes, decoded (see [`RecentObjects`]).
    recent: RecentObjects,
    /// The file the snapshot being received goes into.
    receiving: Option<PathBuf>,
}

impl StateMachine {
    pub fn open(
        db: Arc<DB>,
        replica_id: u64,
        history_limit: u64,
        log_durability: LogDurability,
    ) -> Result<(Self, ObjectStore), StorageError> {
        let revision = get_json(&db, CF_META, KEY_REVISION)?.unwrap_or(0);
        let compacted = get_json(&db, CF_META, KEY_COMPACTED)?.unwrap_or(0);
        let next_replica_id = get_json(&db, CF_META, KEY_NEXT_REPLICA)?.unwrap_or(2);
        let last_applied = get_json::<Option<LogId>>(&db, CF_META, KEY_APPLIED)?.flatten();
        let membership = get_json(&db, CF_META, KEY_MEMBERSHIP)?.unwrap_or_default();
        remove_unrecorded_snapshot_files(&db)?;
        let (events, _) = broadcast::channel(1024);
        let (revision_tx, revision_rx) = watch::channel(revision);
        let store = ObjectStore {
            db: db.clone(),
            events: events.clone(),
            revision: revision_rx,
        };
        Ok((
            Self {
                db,
                events,
                revision_tx,
                revision,
                compacted,
                next_replica_id,
                last_applied,
                membership,
                history_limit: history_limit.max(100),
                replica_id,
                log_durability,
                recent: RecentObjects::new(RECENT_OBJECTS_BYTES),
                receiving: None,
            },
            store,
        ))
    }

    /// Applies one command (a batch: each of its commands in order, each
    /// with its own revision), adding one outcome per command.
    fn apply_command(
        &mut self,
        log_id: LogId,
        cmd: Command,
        batch: &mut WriteBatch,
        view: &mut CallView,
        revisions: &mut Vec<RevisionEvents>,
        outcomes: &mut Vec<Result<Applied, WireError>>,
    ) -> Result<(), StorageError> {
        match cmd {
            Command::Batch(cmds) => {
                for c in cmds {
                    // Batches do not nest: the proposer only wraps single
                    // commands, and a nested one is applied as a unit.
                    self.apply_command(log_id, c, batch, view, revisions, outcomes)?;
                }
            }
            Command::AllocateReplicaId => {
                let id = self.next_replica_id;
                self.next_replica_id += 1;
                outcomes.push(Ok(Applied {
                    revision: self.revision,
                    objects: vec![],
                    replica_id: id,
                    first_json: None,
                }));
            }
            Command::Txn(txn) => {
                let next = self.revision + 1;
                let overlay = Overlay {
                    db: &self.db,
                    view,
                    recent: &self.recent,
                };
                let outcome = objects::apply_txn(&overlay, next, txn)
                    .map_err(|e| StorageIOError::apply(log_id, AnyError::error(e)))?;
                match outcome {
                    Err(e) => outcomes.push(Err(e.into())),
                    Ok(fx) => {
                        self.revision = next;
                        let cf_objects = cf(&self.db, CF_OBJECTS);
                        // Each written object is encoded once, for both the
                        // objects and the history column families. Keyed by
                        // address: the events share the written objects'
                        // Arcs, which `view.writes` keeps alive meanwhile.
                        let mut encoded: HashMap<*const Value, Vec<u8>> =
                            HashMap::with_capacity(fx.writes.len());
                        for (k, v) in fx.writes {
                            let encoded_len = match &v {
                                Some(obj) => {
                                    let json = serde_json::to_vec(obj).map_err(write_err)?;
                                    batch.put_cf(cf_objects, k.as_bytes(), &json);
                                    let len = json.len();
                                    encoded.insert(Arc::as_ptr(obj), json);
                                    len
                                }
                                None => {
                                    batch.delete_cf(cf_objects, k.as_bytes());
                                    0
                                }
                            };
                            view.writes.insert(k, (v, encoded_len));
                        }
                        let rev_events = RevisionEvents {
                            revision: next,
                            events: fx.events,
                        };
                        let history = rev_events
                            .history_bytes(&|obj| encoded.get(&Arc::as_ptr(obj)).map(Vec::as_slice))
                            .map_err(write_err)?;
                        batch.put_cf(cf(&self.db, CF_HISTORY), be(next), history);
                        revisions.push(rev_events);
                        let first_json = fx.objects.first().and_then(|o| encoded.remove(&Arc::as_ptr(o)));
                        outcomes.push(Ok(Applied {
                            revision: next,
                            objects: fx.objects,
                            replica_id: self.replica_id,
                            first_json,
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    /// Applies committed entries: one RocksDB write batch for all of them,
    /// then one notice to the watch feed.
    fn apply_entries(&mut self, entries: Vec<Entry>) -> Result<Vec<CommandResult>, StorageError> {
        let mut batch = WriteBatch::default();
        let mut view = CallView::default();
        let mut results = Vec::new();
        let mut revisions = Vec::new();
        let mut membership_changed = false;
        let next_replica_before = self.next_replica_id;
        for entry in entries {
            self.last_applied = Some(entry.log_id);
            match entry.payload {
                EntryPayload::Blank => results.push(CommandResult::default()),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m);
                    membership_changed = true;
                    results.push(CommandResult::default());
                }
                EntryPayload::Normal(cmd) => {
                    // The one decode of this command on this replica. An
                    // entry that does not decode stops the state machine,
                    // as an unreadable log would: skipping it would let the
                    // replicas' states diverge.
                    let cmd = cmd
                        .decode()
                        .map_err(|e| io_err(ErrorSubject::Log(entry.log_id), ErrorVerb::Read, e))?;
                    let mut outcomes = Vec::new();
                    self.apply_command(
                        entry.log_id,
                        cmd,
                        &mut batch,
                        &mut view,
                        &mut revisions,
                        &mut outcomes,
                    )?;
                    results.push(CommandResult { outcomes });
                }
            }
        }
        // Bound the watch history: drop the oldest revisions in chunks.
        if self.revision > self.compacted + self.history_limit + self.history_limit / 10 {
            let new_compacted = self.revision - self.history_limit;
            batch.delete_range_cf(cf(&self.db, CF_HISTORY), be(0), be(new_compacted + 1));
            self.compacted = new_compacted;
            self.meta_put(&mut batch, KEY_COMPACTED, &self.compacted)?;
        }
        self.meta_put(&mut batch, KEY_REVISION, &self.revision)?;
        self.meta_put(&mut batch, KEY_APPLIED, &self.last_applied)?;
        // These two change rarely (a membership entry, a replica joining);
        // written for every call, they cost every lone write's apply (the
        // four meta writes were about 5% of it in a profile of sequential
        // writes, the membership the largest). Written in the same batch as
        // what changed them, they are never behind `last_applied`.
        if membership_changed {
            self.meta_put(&mut batch, KEY_MEMBERSHIP, &self.membership)?;
        }
        if self.next_replica_id != next_replica_before {
            self.meta_put(&mut batch, KEY_NEXT_REPLICA, &self.next_replica_id)?;
        }
        // Not in the WAL: the log is the durable record. This write reaches
        // disk with the next memtable flush; after a crash the entries past
        // the flushed last_applied are applied again. Keeping it out of the
        // WAL halves what every log fsync writes.
        let mut wo = WriteOptions::default();
        wo.disable_wal(true);
        self.db
            .write_opt(batch, &wo)
            .map_err(|e| io_err(ErrorSubject::StateMachine, ErrorVerb::Write, e))?;
        // Only now: what the memory holds is always what RocksDB holds.
        for (key, (object, encoded_len)) in view.writes {
            self.recent.remember(key, object, encoded_len);
        }
        self.revision_tx.send_replace(self.revision);
        if !revisions.is_empty() {
            // No receivers is fine: nobody is watching.
            let _ = self.events.send(Arc::new(AppliedBatch { revisions }));
        }
        Ok(results)
    }

    fn meta_put<T: Serialize>(&self, batch: &mut WriteBatch, key: &[u8], v: &T) -> Result<(), StorageError> {
        batch.put_cf(
            cf(&self.db, CF_META),
            key,
            serde_json::to_vec(v).map_err(write_err)?,
        );
        Ok(())
    }
}

/// What one apply call has seen so far.
#[derive(Default)]
struct CallView {
    /// Its own writes, not yet in RocksDB, with the size of their
    /// encoding: later entries of the call read them here.
    writes: HashMap<String, (Written, usize)>,
    /// The namespaces it read from RocksDB. Every namespaced create reads
    /// its namespace, so an entry of 2048 creates decodes it once. RocksDB
    /// does not change during the call (its batch is written at the end),
    /// and a namespace the call writes is found in `writes` first.
    namespaces: std::cell::RefCell<HashMap<String, Option<Arc<Value>>>>,
}

/// Reads through the batch being built, so later entries of one apply call
/// see the writes of earlier ones.
struct Overlay<'a> {
    db: &'a DB,
    view: &'a CallView,
    /// What the calls before this one wrote last; RocksDB holds the same.
    recent: &'a RecentObjects,
}

impl Overlay<'_> {
    fn read_committed(&self, key: &str) -> Result<Option<Value>, String> {
        match self.db.get_cf(cf(self.db, CF_OBJECTS), key.as_bytes()) {
            Ok(None) => Ok(None),
            Ok(Some(b)) => serde_json::from_slice(&b).map(Some).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        }
    }
}

impl ObjectRead for Overlay<'_> {
    fn get(&self, key: &str) -> Result<Option<Value>, String> {
        Ok(self.get_shared(key)?.map(Arc::unwrap_or_clone))
    }

    fn get_shared(&self, key: &str) -> Result<Option<Arc<Value>>, String> {
        if let Some((v, _)) = self.view.writes.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.recent.get(key) {
            return Ok(v);
        }
        if !objects::is_namespace_key(key) {
            return Ok(self.read_committed(key)?.map(Arc::new));
        }
        if let Some(v) = self.view.namespaces.borrow().get(key) {
            return Ok(v.clone());
        }
        let v = self.read_committed(key)?.map(Arc::new);
        self.view
            .namespaces
            .borrow_mut()
            .insert(key.to_string(), v.clone());
        Ok(v)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot, StorageError> {
        let file = match self.encoding.take() {
            Some(encoding) => encoding
                .await
                .map_err(|_| snapshot_io_err(None, ErrorVerb::Write, &"the snapshot thread ended early"))??,
            None => {
                return Err(snapshot_io_err(
                    None,
                    ErrorVerb::Read,
                    &"this builder already built its snapshot",
                ))
            }
        };
        let previous = recorded_snapshot_file(&self.db)?;
        let (last_applied, membership) = (self.last_applied, self.membership.clone());
        let snapshot_id = format!(
            "{}-{}",
            last_applied.map(|l| l.index).unwrap_or(0),
            rand::random::<u32>()
        );
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let stored = StoredSnapshot {
            meta: meta.clone(),
            file: Some(file.clone()),
            data: None,
        };
        // openraft requires a restarted replica's commit index to reach its
        // snapshot, and the commit index is otherwise saved only with a
        // purge (see `LogStore::save_committed`): the snapshot's last entry
        // was applied, so committed, and is saved with it.
        let mut batch = WriteBatch::default();
        batch.put_cf(
            cf(&self.db, CF_META),
            KEY_SNAPSHOT,
            serde_json::to_vec(&stored).map_err(write_err)?,
        );
        batch.put_cf(
            cf(&self.db, CF_RAFT),
            KEY_COMMITTED,
            serde_json::to_vec(&last_applied).map_err(write_err)?,
        );
        self.db
            .write(batch)
            .map_err(|e| io_err(ErrorSubject::Snapshot(None), ErrorVerb::Write, e))?;
        remove_replaced_snapshot_file(&self.db, previous, &file);
        let data = open_snapshot_file(&self.db, &meta, &file).await?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(data),
        })
    }
}

/// A snapshot builder: the state as it was when Raft asked for it, being
/// encoded to a file from a RocksDB snapshot taken then, on a thread of its
/// own ("rk-snapshot", at a lower priority), so that applying goes on
/// meanwhile.
pub struct StateMachineBuilder {
    db: Arc<DB>,
    /// The data's encoding, which ends with the file's name; taken by the
    /// one build.
    encoding: Option<tokio::sync::oneshot::Receiver<Result<String, StorageError>>>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachineBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let Some(last) = entries.last() {
            // Only the leader's own entries can get here before their
            // fsync (see LogStore); everything else is already durable.
            self.log_durability.wait_for(last.log_id.index).await?;
        }
        // Applying runs on this runtime worker. Handing it to a blocking
        // thread (`block_in_place`) was measured slower on 2 cores: the
        // scheduler benchmark fell from 1506-1755 to 1335-1622 pods/s.
        self.apply_entries(entries)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        // The RocksDB snapshot is taken before this returns, so before the
        // next apply: the data then matches last_applied and the header.
        // Encoding it takes a while for a large store and runs meanwhile;
        // failures surface when the snapshot is built.
        let header = SnapshotHeader {
            revision: self.revision,
            compacted: self.compacted,
            next_replica_id: self.next_replica_id,
        };
        let (taken_tx, taken) = tokio::sync::oneshot::channel();
        let (encoding_tx, encoding) = tokio::sync::oneshot::channel();
        let db = self.db.clone();
        let spawned = std::thread::Builder::new()
            .name("rk-snapshot".into())
            .spawn(move || {
                super::background_io::lower_thread_priority();
                let view = db.snapshot();
                let _ = taken_tx.send(());
                let _ = encoding_tx.send(write_snapshot_file(&snapshot_dir(&db), |out| {
                    encode_snapshot(&db, &view, &header, out)
                }));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start a thread to build a snapshot");
        }
        // An error here means the thread ended early, or never started;
        // the build reports it.
        let _ = taken.await;
        StateMachineBuilder {
            db: self.db.clone(),
            encoding: Some(encoding),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
        }
    }

    /// See [`receiving_snapshot_file`].
    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, StorageError> {
        let (path, file) = receiving_snapshot_file(&self.db).await?;
        self.receiving = Some(path);
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        mut snapshot: Box<tokio::fs::File>,
    ) -> Result<(), StorageError> {
        use tokio::io::AsyncWriteExt;
        snapshot.flush().await.map_err(|e| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })?;
        let file = snapshot.into_std().await;
        let (db, receiving, owned_meta) = (self.db.clone(), self.receiving.take(), meta.clone());
        let ReceivedSnapshot {
            mut batch,
            summary,
            bytes: size,
            file,
        } = tokio::task::spawn_blocking(move || take_received_snapshot(&db, &owned_meta, file, receiving))
            .await
            .map_err(|e| snapshot_io_err(Some(meta), ErrorVerb::Read, &e))??;
        self.revision = summary.revision;
        self.compacted = summary.compacted;
        self.next_replica_id = summary.next_replica_id;
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.meta_put(&mut batch, KEY_REVISION, &self.revision)?;
        self.meta_put(&mut batch, KEY_COMPACTED, &self.compacted)?;
        self.meta_put(&mut batch, KEY_APPLIED, &self.last_applied)?;
        self.meta_put(&mut batch, KEY_MEMBERSHIP, &self.membership)?;
        self.meta_put(&mut batch, KEY_NEXT_REPLICA, &self.next_replica_id)?;
        let previous = recorded_snapshot_file(&self.db)?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            file: Some(file.clone()),
            data: None,
        };
        self.meta_put(&mut batch, KEY_SNAPSHOT, &stored)?;
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo).map_err(|e| {
            io_err(
                ErrorSubject::Snapshot(Some(meta.signature())),
                ErrorVerb::Write,
                e,
            )
        })?;
        self.recent.clear();
        remove_replaced_snapshot_file(&self.db, previous, &file);
        tracing::info!(
            snapshot = %meta.snapshot_id,
            revision = self.revision,
            objects = summary.objects,
            bytes = size,
            "installed a snapshot from the leader"
        );
        self.revision_tx.send_replace(self.revision);
        // Watchers connected here are told of the newest revision in the
        // snapshot's history. One further behind sees the gap and re-reads
        // what it missed from the history column family, which the
        // snapshot just replaced (or is told to relist, if the snapshot's
        // history no longer reaches back to it).
        let _ = self.events.send(Arc::new(AppliedBatch {
            revisions: summary
                .last_history
                .into_iter()
                .filter(|r| r.revision > 0)
                .collect(),
        }));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let Some(stored) = get_json::<StoredSnapshot>(&self.db, CF_META, KEY_SNAPSHOT)? else {
            return Ok(None);
        };
        let data = match (stored.data, &stored.file) {
            (_, Some(file)) => open_snapshot_file(&self.db, &stored.meta, file).await?,
            // A record from before snapshots had files of their own: its
            // data is handed out through a file with no name. The record
            // stays as it is until the next snapshot replaces it.
            (Some(data), None) => {
                use tokio::io::{AsyncSeekExt, AsyncWriteExt};
                let write_err = |e: std::io::Error| snapshot_io_err(Some(&stored.meta), ErrorVerb::Write, &e);
                let mut file = unnamed_snapshot_file(&self.db).await?;
                file.write_all(&data).await.map_err(write_err)?;
                file.flush().await.map_err(write_err)?;
                file.seek(std::io::SeekFrom::Start(0)).await.map_err(write_err)?;
                file
            }
            (None, None) => {
                return Err(snapshot_io_err(
                    Some(&stored.meta),
                    ErrorVerb::Read,
                    &"the snapshot record names no data",
                ))
            }
        };
        Ok(Some(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(data),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};
    use serde_json::json;

    fn entry(index: u64, cmd: Command) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(LogCommand::encode(&cmd).expect("encode")),
        }
    }

    /// A transaction of the one op `op`.
    fn txn(op: Op) -> Command {
        Command::Txn(Txn {
            now: "2026-11-27T00:00:00Z".into(),
            ops: vec![op],
        })
    }

    fn create(name: &str) -> Command {
        txn(Op::Create {
            resource: if name.starts_with("ns-") {
                "namespaces".into()
            } else {
                "configmaps".into()
            },
            object: if let Some(ns) = name.strip_prefix("ns-") {
                json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":ns}})
            } else {
                json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"namespace":"default"},"data":{"k":"v"}})
            },
        })
    }

    #[tokio::test]
    async fn only_the_current_leaders_own_entries_are_reported_before_their_fsync() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let mut log = LogStore::new(db.clone(), 1).expect("log store");
        assert_eq!(log.leading(), None, "no vote yet");
        log.save_vote(&Vote::new(3, 1)).await.expect("vote");
        assert_eq!(log.leading(), None, "a candidate's vote is not leadership");
        log.save_vote(&Vote::new_committed(4, 2)).await.expect("vote");
        assert_eq!(log.leading(), None, "another replica leads");
        log.save_vote(&Vote::new_committed(5, 1)).await.expect("vote");
        let leading = log.leading().expect("this replica leads term 5");
        assert_eq!((leading.term, leading.node_id), (5, 1));
        // The vote survives a restart, so a re-elected leader is recognised.
        drop(log);
        let log = LogStore::new(db, 1).expect("reopen");
        assert_eq!(log.leading(), Some(leading));
    }

    #[tokio::test]
    async fn the_state_machine_applies_nothing_past_the_durable_log() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let (durable_tx, durable_rx) = watch::channel(Some(LogId::new(CommittedLeaderId::new(1, 1), 1)));
        let (mut sm, store) =
            StateMachine::open(db, 1, 1000, LogDurability::from_receiver(durable_rx)).expect("sm");
        sm.apply(vec![entry(1, create("ns-default"))])
            .await
            .expect("durable entry applies");
        assert_eq!(store.revision(), 1);
        let applying = tokio::spawn(async move {
            sm.apply(vec![entry(2, create("cm-a")), entry(3, create("cm-b"))])
                .await
                .map(|_| sm)
        });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        durable_tx.send_replace(Some(LogId::new(CommittedLeaderId::new(1, 1), 2)));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!applying.is_finished(), "entry 3 is not on disk yet");
        assert_eq!(store.revision(), 1, "nothing of the batch is visible");
        durable_tx.send_replace(Some(LogId::new(CommittedLeaderId::new(1, 1), 3)));
        let _sm = applying.await.expect("task").expect("applies once durable");
        assert_eq!(store.revision(), 3);
        assert!(store.get("configmaps/default/cm-b").expect("read").is_some());
    }

    /// What a crash of the process leaves behind: the files as they are
    /// (the page cache outlives the process), without RocksDB's memtables.
    fn crashed_copy(dir: &Path) -> tempfile::TempDir {
        let copy = tempfile::tempdir().expect("tmp");
        for file in std::fs::read_dir(dir).expect("list the database") {
            let file = file.expect("directory entry");
            if file.file_name() != "LOCK" {
                std::fs::copy(file.path(), copy.path().join(file.file_name())).expect("copy");
            }
        }
        copy
    }

    /// Waits until the purger has deleted the log up to `index`.
    async fn deleted_through(db: &DB, index: u64) {
        for _ in 0..1000 {
            let first = db
                .iterator_cf(cf(db, CF_LOG), IteratorMode::Start)
                .next()
                .and_then(|item| item.ok())
                .and_then(|(k, _)| from_be(&k));
            if first.is_none_or(|i| i > index) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the log was not deleted through {index} in 10 s");
    }

    async fn log_indexes(db: Arc<DB>) -> Vec<u64> {
        let mut log = LogStore::new(db, 1).expect("log store");
        let entries = log.try_get_log_entries(0..100).await.expect("read the log");
        entries.iter().map(|e| e.log_id.index).collect()
    }

    #[tokio::test]
    async fn a_crash_loses_no_log_entry_that_the_state_machine_must_apply_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let mut log = LogStore::new(db.clone(), 1).expect("log store");
        let (mut sm, _store) =
            StateMachine::open(db.clone(), 1, 1000, LogDurability::everything()).expect("sm");
        let mut entries = vec![entry(1, create("ns-default"))];
        entries.extend((2..=12).map(|i| entry(i, create(&format!("cm-{i}")))));
        for e in &entries {
            let bytes = serde_json::to_vec(e).expect("encode");
            db.put_cf(cf(&db, CF_LOG), be(e.log_id.index), bytes)
                .expect("append");
        }
        // Entries 11 and 12 are in the log but not applied yet.
        sm.apply(entries[..10].to_vec()).await.expect("apply");

        // A crash now loses the state machine's writes (they skip the WAL
        // and were never flushed) but not the log they came from.
        {
            let crashed = crashed_copy(dir.path());
            let db = open_db(crashed.path()).expect("reopen");
            let (mut sm, store) =
                StateMachine::open(db.clone(), 1, 1000, LogDurability::everything()).expect("sm");
            assert_eq!(sm.applied_state().await.expect("state").0, None);
            assert_eq!(store.get("configmaps/default/cm-2").expect("read"), None);
            assert_eq!(log_indexes(db).await, (1..=12).collect::<Vec<_>>());
        }

        // Raft purges through entry 12; only what the state machine has
        // applied (through 10) is deleted, and only after a flush.
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), 12))
            .await
            .expect("purge");
        deleted_through(&db, 10).await;
        let crashed = crashed_copy(dir.path());
        let db = open_db(crashed.path()).expect("reopen");
        let (mut sm, store) =
            StateMachine::open(db.clone(), 1, 1000, LogDurability::everything()).expect("sm");
        let applied = sm.applied_state().await.expect("state").0;
        assert_eq!(applied.map(|l| l.index), Some(10), "flushed before deleting");
        assert!(store.get("configmaps/default/cm-10").expect("read").is_some());
        assert_eq!(log_indexes(db.clone()).await, vec![11, 12]);
        let purged: Option<LogId> = get_json(&db, CF_RAFT, KEY_PURGED).expect("read");
        assert_eq!(purged.map(|l| l.index), Some(12), "as Raft sees it");
    }

    /// Entries with their stored sizes, as `append` hands them to
    /// [`RecentEntries`].
    fn stored(entries: impl IntoIterator<Item = Entry>) -> Vec<(Entry, usize)> {
        entries
            .into_iter()
            .map(|e| {
                let len = serde_json::to_vec(&e).expect("encode").len();
                (e, len)
            })
            .collect()
    }

    fn indexes(entries: Option<Vec<Entry>>) -> Option<Vec<u64>> {
        entries.map(|v| v.iter().map(|e| e.log_id.index).collect())
    }

    #[test]
    fn the_recent_entries_answer_reads_that_start_among_them() {
        let mut recent = RecentEntries::default();
        let appended: Vec<Entry> = (5..=9).map(|i| entry(i, create(&format!("cm-{i}")))).collect();
        recent.push(stored(appended));
        assert_eq!(indexes(recent.read(5, 10, usize::MAX)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(indexes(recent.read(7, 9, usize::MAX)), Some(vec![7, 8]));
        assert_eq!(
            indexes(recent.read(6, 10, 1)),
            Some(vec![6]),
            "a budget, but never empty"
        );
        assert_eq!(
            indexes(recent.read(4, 10, usize::MAX)),
            None,
            "older: from RocksDB"
        );
        assert_eq!(indexes(recent.read(10, 12, usize::MAX)), None, "past the last");
        // A truncation drops the tail; the next append follows what is left.
        recent.truncate(8);
        assert_eq!(indexes(recent.read(5, 100, usize::MAX)), Some(vec![5, 6, 7]));
        recent.push(stored([entry(8, create("cm-8b"))]));
        assert_eq!(indexes(recent.read(7, 100, usize::MAX)), Some(vec![7, 8]));
        // An append that does not follow starts over from it.
        recent.push(stored([entry(20, create("cm-20"))]));
        assert_eq!(indexes(recent.read(5, 100, usize::MAX)), None);
        assert_eq!(indexes(recent.read(20, 100, usize::MAX)), Some(vec![20]));
        recent.purge(20);
        assert_eq!(indexes(recent.read(20, 100, usize::MAX)), None);
        assert_eq!(recent.bytes, 0);
    }

    #[test]
    fn the_recent_entries_are_bounded_and_keep_the_newest() {
        let mut recent = RecentEntries::default();
        let big = |i: u64| {
            let mut cmd = create(&format!("cm-{i}"));
            if let Command::Txn(t) = &mut cmd {
                if let Some(Op::Create { object, .. }) = t.ops.first_mut() {
                    object["data"]["k"] = json!("x".repeat(1 << 20));
                }
            }
            entry(i, cmd)
        };
        for i in 1..=40 {
            recent.push(stored([big(i)]));
        }
        assert!(recent.bytes <= RECENT_ENTRIES_MAX_BYTES);
        let held = indexes(recent.read(40, 41, usize::MAX)).expect("the newest is held");
        assert_eq!(held, vec![40]);
        assert_eq!(indexes(recent.read(1, 41, usize::MAX)), None, "the oldest went");
        let first = recent
            .entries
            .front()
            .map(|(e, _)| e.log_id.index)
            .expect("some held");
        assert!(first > 8, "about 32 of the 1 MiB entries fit, not {}", 41 - first);
    }

    #[tokio::test]
    async fn log_reads_come_from_the_recent_entries_when_they_hold_them() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let log = LogStore::new(db.clone(), 1).expect("log store");
        let appended: Vec<Entry> = (1..=6).map(|i| entry(i, create(&format!("cm-{i}")))).collect();
        for e in &appended {
            let bytes = serde_json::to_vec(e).expect("encode");
            db.put_cf(cf(&db, CF_LOG), be(e.log_id.index), bytes)
                .expect("put");
        }
        log.recent
            .lock()
            .expect("lock")
            .push(stored(appended[3..].to_vec()));
        // Gone from RocksDB but held: only the held entries can answer.
        db.delete_range_cf(cf(&db, CF_LOG), be(4), be(7)).expect("delete");
        let from_recent = log.read_entries(4..7, usize::MAX).expect("read");
        assert_eq!(indexes(Some(from_recent.clone())), Some(vec![4, 5, 6]));
        assert_eq!(
            serde_json::to_string(&from_recent[2]).expect("encode"),
            serde_json::to_string(&appended[5]).expect("encode")
        );
        // A read that starts before them goes to RocksDB.
        assert_eq!(
            indexes(Some(log.read_entries(1..7, usize::MAX).expect("read"))),
            Some(vec![1, 2, 3])
        );
    }

    #[tokio::test]
    async fn a_budgeted_read_returns_the_same_entries_from_memory_and_from_rocksdb() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let held = stored((1..=6).map(|i| entry(i, create(&format!("cm-{i}")))));
        for (e, _) in &held {
            let bytes = serde_json::to_vec(e).expect("encode");
            db.put_cf(cf(&db, CF_LOG), be(e.log_id.index), bytes)
                .expect("put");
        }
        // Room for the first two entries and part of the third.
        let budget = held[0].1 + held[1].1 + held[2].1 / 2;
        let log = LogStore::new(db.clone(), 1).expect("log store");
        let from_rocksdb = log.read_entries(1..7, budget).expect("read");
        log.recent.lock().expect("lock").push(held);
        let from_memory = log.read_entries(1..7, budget).expect("read");
        assert_eq!(indexes(Some(from_rocksdb)), Some(vec![1, 2]));
        assert_eq!(indexes(Some(from_memory)), Some(vec![1, 2]));
    }

    #[tokio::test]
    async fn the_commit_index_reaches_disk_with_each_purge() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let at = |i| Some(LogId::new(CommittedLeaderId::new(1, 1), i));
        let mut log = LogStore::new(db.clone(), 1).expect("log store");
        log.save_committed(at(5)).await.expect("save");
        assert_eq!(log.read_committed().await.expect("read"), at(5));
        let mut restarted = LogStore::new(db.clone(), 1).expect("reopen");
        assert_eq!(
            restarted.read_committed().await.expect("read"),
            None,
            "memory only"
        );
        log.save_committed(at(9)).await.expect("save");
        log.purge(LogId::new(CommittedLeaderId::new(1, 1), 4))
            .await
            .expect("purge");
        let mut restarted = LogStore::new(db, 1).expect("reopen");
        assert_eq!(
            restarted.read_committed().await.expect("read"),
            at(9),
            "saved with the purge"
        );
    }

    #[tokio::test]
    async fn replication_reads_are_bounded_in_bytes_but_never_empty() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let mut log = LogStore::new(db.clone(), 1).expect("log store");
        let big = |i: u64| {
            let mut cmd = create(&format!("cm-{i}"));
            if let Command::Txn(t) = &mut cmd {
                if let Some(Op::Create { object, .. }) = t.ops.first_mut() {
                    object["data"]["k"] = json!("x".repeat(200 * 1024));
                }
            }
            entry(i, cmd)
        };
        for i in 1..=10 {
            let bytes = serde_json::to_vec(&big(i)).expect("encode");
            db.put_cf(cf(&db, CF_LOG), be(i), bytes).expect("put");
        }
        // 200 KiB entries: two fit in the 512 KiB budget, the third would not.
        let sent = log.limited_get_log_entries(1, 11).await.expect("read");
        assert_eq!(
            sent.iter().map(|e| e.log_id.index).collect::<Vec<_>>(),
            vec![1, 2]
        );
        // One entry over the budget on its own still goes out.
        let sent = log.read_entries(5..11, 1024).expect("read");
        assert_eq!(sent.iter().map(|e| e.log_id.index).collect::<Vec<_>>(), vec![5]);
        // Reads that are not for replication are not limited.
        assert_eq!(log.try_get_log_entries(1..11).await.expect("read").len(), 10);
    }

    #[tokio::test]
    async fn applies_persists_and_recovers_from_disk() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let db = open_db(dir.path()).expect("open");
            let (mut sm, store) = StateMachine::open(db, 1, 1000, LogDurability::everything()).expect("sm");
            let res = sm
                .apply(vec![
                    entry(1, create("ns-default")),
                    entry(2, create("a")),
                    entry(3, create("a")),
                ])
                .await
                .expect("apply");
            assert_eq!(
                res[1]
                    .outcomes
                    .first()
                    .and_then(|r| r.as_ref().ok())
                    .map(|a| a.revision),
                Some(2)
            );
            // The duplicate in the same batch sees the first create.
            assert!(matches!(res[2].outcomes.first(), Some(Err(_))));
            assert_eq!(store.revision(), 2);
            let (items, rev) = store.list_prefix("configmaps/").expect("list");
            assert_eq!((items.len(), rev), (1, 2));
        }
        // Reopen: the state and the applied position survive.
        let db = open_db(dir.path()).expect("reopen");
        let (mut sm, store) = StateMachine::open(db, 1, 1000, LogDurability::everything()).expect("sm");
        let (applied, _) = sm.applied_state().await.expect("applied");
        assert_eq!(applied.map(|l| l.index), Some(3));
        assert_eq!(store.revision(), 2);
        let h = store.history(0, 10).expect("history");
        assert_eq!(h.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[tokio::test]
    async fn membership_and_replica_ids_written_once_survive_later_applies_and_a_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        let members = openraft::Membership::new(vec![[1u64, 2].into_iter().collect()], None);
        {
            let db = open_db(dir.path()).expect("open");
            let (mut sm, _store) = StateMachine::open(db, 1, 1000, LogDurability::everything()).expect("sm");
            let membership_entry = Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
                payload: EntryPayload::Membership(members.clone()),
            };
            sm.apply(vec![membership_entry, entry(2, Command::AllocateReplicaId)])
                .await
                .expect("apply");
            // Later calls change neither, so they write neither.
            sm.apply(vec![entry(3, create("ns-default"))])
                .await
                .expect("apply");
            sm.apply(vec![entry(4, create("a"))]).await.expect("apply");
        }
        let db = open_db(dir.path()).expect("reopen");
        let (mut sm, _store) = StateMachine::open(db, 1, 1000, LogDurability::everything()).expect("sm");
        let (applied, membership) = sm.applied_state().await.expect("applied");
        assert_eq!(applied.map(|l| l.index), Some(4));
        assert_eq!(membership.log_id().map(|l| l.index), Some(1));
        assert_eq!(membership.membership(), &members);
        // The next id allocated follows the one allocated before the reopen.
        let res = sm
            .apply(vec![entry(5, Command::AllocateReplicaId)])
            .await
            .expect("apply");
        let first = res[0].outcomes.first().and_then(|r| r.as_ref().ok());
        assert_eq!(
            first.map(|a| a.replica_id),
            Some(3),
            "ids start at 2; one was taken"
        );
    }

    /// A state machine on a fresh database, with the `default` namespace
    /// applied at index 1.
    async fn machine_with_default_namespace() -> (tempfile::TempDir, StateMachine, ObjectStore) {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let (mut sm, store) = StateMachine::open(db, 1, 1000, LogDurability::everything()).expect("sm");
        sm.apply(vec![entry(1, create("ns-default"))])
            .await
            .expect("apply");
        (dir, sm, store)
    }

    #[tokio::test]
    async fn a_batch_entry_applies_each_command_with_its_own_revision() {
        let (_dir, mut sm, store) = machine_with_default_namespace().await;
        let batch = Command::Batch(vec![create("a"), create("a"), create("b")]);
        let res = sm.apply(vec![entry(2, batch)]).await.expect("apply");
        let outcomes = &res[0].outcomes;
        assert_eq!(outcomes.len(), 3, "one outcome per command");
        assert_eq!(outcomes[0].as_ref().map(|a| a.revision).ok(), Some(2));
        assert!(outcomes[1].is_err(), "the duplicate fails alone");
        assert_eq!(outcomes[2].as_ref().map(|a| a.revision).ok(), Some(3));
        assert_eq!(store.revision(), 3);
        let h = store.history(1, 3).expect("history");
        assert_eq!(h.iter().map(|r| r.revision).collect::<Vec<_>>(), vec![2, 3]);
    }

    /// A reply sends the JSON the state machine stored, so it must be the
    /// object's own encoding, and only where an object was written.
    #[tokio::test]
    async fn each_written_object_comes_back_with_the_json_stored_for_it() {
        let (_dir, mut sm, store) = machine_with_default_namespace().await;
        let check = txn(Op::CheckAbsent {
            resource: "configmaps".into(),
            namespace: "default".into(),
            name: "zz".into(),
        });
        let batch = Command::Batch(vec![create("a"), check, create("a")]);
        let res = sm.apply(vec![entry(2, batch)]).await.expect("apply");
        let outcomes = &res[0].outcomes;
        let written = outcomes[0].as_ref().expect("created");
        let json = written.first_json.as_deref().expect("the created object's JSON");
        assert_eq!(json, serde_json::to_vec(&*written.objects[0]).expect("encode"));
        let stored = store
            .get(&crate::store::objects::object_key("configmaps", "default", "a"))
            .expect("read")
            .expect("stored");
        assert_eq!(json, serde_json::to_vec(&stored).expect("encode"));
        assert_eq!(stored["metadata"]["resourceVersion"], "2");
        let checked = outcomes[1].as_ref().expect("the check passes");
        assert!(checked.first_json.is_none(), "a check writes nothing");
        assert!(outcomes[2].is_err(), "the duplicate fails");
    }

    #[tokio::test]
    async fn a_namespace_deleted_earlier_in_one_apply_call_takes_no_creates_later_in_it() {
        let (_dir, mut sm, store) = machine_with_default_namespace().await;
        let delete_namespace = txn(Op::Delete {
            resource: "namespaces".into(),
            namespace: String::new(),
            name: "default".into(),
            expected_rv: None,
            expected_uid: None,
            propagation: None,
            grace_period_seconds: None,
        });
        // One call: the first create reads the namespace (and the call
        // remembers it), the delete removes it, the second create must see
        // the delete rather than the namespace as first read.
        let res = sm
            .apply(vec![
                entry(2, create("a")),
                entry(3, delete_namespace),
                entry(4, create("b")),
            ])
            .await
            .expect("apply");
        assert!(res[0].outcomes[0].is_ok(), "created while the namespace exists");
        assert!(res[1].outcomes[0].is_ok(), "namespace deleted");
        let refused = res[2].outcomes[0]
            .as_ref()
            .expect_err("no create in a deleted namespace");
        assert_eq!(refused.reason, "NotFound", "{refused:?}");
        assert!(store.get("configmaps/default/b").expect("read").is_none());
    }

    fn delete(name: &str) -> Command {
        txn(Op::Delete {
            resource: "configmaps".into(),
            namespace: "default".into(),
            name: name.into(),
            expected_rv: None,
            expected_uid: None,
            propagation: None,
            grace_period_seconds: None,
        })
    }

    /// The reason of the one outcome of the one entry `sm` applies, or
    /// "Ok".
    async fn outcome(sm: &mut StateMachine, index: u64, cmd: Command) -> String {
        let res = sm.apply(vec![entry(index, cmd)]).await.expect("apply");
        match &res[0].outcomes[0] {
            Ok(_) => "Ok".into(),
            Err(e) => e.reason.clone(),
        }
    }

    #[tokio::test]
    async fn writes_of_earlier_apply_calls_are_read_back_as_committed() {
        let (_dir, mut sm, store) = machine_with_default_namespace().await;
        // Each call reads what the one before wrote (the state machine's
        // memory of its last writes, or RocksDB): present, then deleted.
        assert_eq!(outcome(&mut sm, 2, create("a")).await, "Ok");
        assert_eq!(outcome(&mut sm, 3, create("a")).await, "AlreadyExists");
        assert_eq!(outcome(&mut sm, 4, delete("a")).await, "Ok");
        assert_eq!(outcome(&mut sm, 5, delete("a")).await, "NotFound");
        assert_eq!(outcome(&mut sm, 6, create("a")).await, "Ok");
        // Revisions 1 (the namespace), 2 (create), 3 (delete), 4 (create):
        // the refused writes took none.
        let stored = store.get("configmaps/default/a").expect("read").expect("a");
        assert_eq!(stored["metadata"]["resourceVersion"], "4");
    }

    /// A snapshot of `sm` as it is now.
    async fn built_snapshot(sm: &mut StateMachine) -> Snapshot {
        sm.get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .expect("build")
    }

    /// A leader's snapshot of the `default` namespace and ConfigMap `b`
    /// (applied at indexes 1 and 2), with the leader's directory.
    async fn snapshot_of_b() -> (tempfile::TempDir, Snapshot) {
        let (dir, mut leader, _) = machine_with_default_namespace().await;
        leader.apply(vec![entry(2, create("b"))]).await.expect("apply");
        (dir, built_snapshot(&mut leader).await)
    }

    #[tokio::test]
    async fn an_installed_snapshot_replaces_what_the_state_machine_remembered() {
        use tokio::io::AsyncWriteExt;
        let (_src, snap) = snapshot_of_b().await;
        // A replica that wrote `a` (which the leader's log no longer has)
        // and remembers it, then is sent the snapshot.
        let (_dir, mut sm, store) = machine_with_default_namespace().await;
        assert_eq!(outcome(&mut sm, 2, create("a")).await, "Ok");
        let bytes = snapshot_bytes(snap.snapshot).await;
        let mut receiving = sm.begin_receiving_snapshot().await.expect("receive");
        receiving.write_all(&bytes).await.expect("write");
        sm.install_snapshot(&snap.meta, receiving).await.expect("install");
        assert!(store.get("configmaps/default/a").expect("read").is_none());
        // Applying goes on from the snapshot: `a` is free, `b` is taken.
        assert_eq!(outcome(&mut sm, 3, create("a")).await, "Ok");
        assert_eq!(outcome(&mut sm, 4, create("b")).await, "AlreadyExists");
    }

    #[tokio::test]
    async fn history_is_bounded_and_old_starts_are_expired() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let (mut sm, store) = StateMachine::open(db, 1, 100, LogDurability::everything()).expect("sm");
        let mut entries = vec![entry(1, create("ns-default"))];
        for i in 0..300 {
            entries.push(entry(i + 2, create(&format!("c{i}"))));
        }
        for chunk in entries.chunks(10) {
            sm.apply(chunk.to_vec()).await.expect("apply");
        }
        assert_eq!(store.revision(), 301);
        let compacted = store.compacted().expect("compacted");
        assert!(
            compacted > 0 && compacted <= 301 - 100,
            "compacted at {compacted}"
        );
        assert!(matches!(store.history(0, 301), Err(ReadError::Compacted { .. })));
        let tail = store.history(compacted, 301).expect("retained");
        assert_eq!(tail.first().map(|r| r.revision), Some(compacted + 1));
        assert_eq!(tail.len() as u64, 301 - compacted);
    }

    /// A snapshot's data, read from the start.
    async fn snapshot_bytes(mut data: Box<tokio::fs::File>) -> Vec<u8> {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        data.seek(std::io::SeekFrom::Start(0)).await.expect("seek");
        let mut bytes = Vec::new();
        data.read_to_end(&mut bytes).await.expect("read");
        bytes
    }

    /// The state machine's current snapshot; there must be one.
    async fn current_snapshot(sm: &mut StateMachine) -> Snapshot {
        sm.get_current_snapshot()
            .await
            .expect("read the current snapshot")
            .expect("a current snapshot")
    }

    /// The names of the files in the snapshot directory.
    fn snapshot_files(db: &DB) -> Vec<std::ffi::OsString> {
        std::fs::read_dir(snapshot_dir(db))
            .expect("snapshot dir")
            .map(|e| e.expect("entry").file_name())
            .collect()
    }

    /// A second replica's state machine, on its own database, with `snap`
    /// installed the way a transfer installs it: written into the file
    /// `begin_receiving_snapshot` gives, in chunks that arrive out of
    /// order, then installed.
    async fn installed_on_a_new_replica(snap: Snapshot) -> (tempfile::TempDir, StateMachine, ObjectStore) {
        let (dir, sm, store, _) = installed_on_a_new_replica_watched(snap).await;
        (dir, sm, store)
    }

    /// The same, with the replica's live feed as subscribed to before the
    /// install.
    async fn installed_on_a_new_replica_watched(
        snap: Snapshot,
    ) -> (
        tempfile::TempDir,
        StateMachine,
        ObjectStore,
        broadcast::Receiver<Arc<AppliedBatch>>,
    ) {
        use tokio::io::{AsyncSeekExt, AsyncWriteExt};
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let (mut sm, store) =
            StateMachine::open(db.clone(), 2, 1000, LogDurability::everything()).expect("sm");
        let live = store.subscribe();
        let bytes = snapshot_bytes(snap.snapshot).await;
        let half = bytes.len() / 2;
        let mut receiving = sm.begin_receiving_snapshot().await.expect("receive");
        receiving
            .seek(std::io::SeekFrom::Start(half as u64))
            .await
            .expect("seek");
        receiving.write_all(&bytes[half..]).await.expect("write");
        receiving.seek(std::io::SeekFrom::Start(0)).await.expect("seek");
        receiving.write_all(&bytes[..half]).await.expect("write");
        sm.install_snapshot(&snap.meta, receiving).await.expect("install");
        let current = current_snapshot(&mut sm).await;
        assert_eq!(snapshot_bytes(current.snapshot).await, bytes);
        let files = snapshot_files(&db);
        assert_eq!(files.len(), 1, "only the installed snapshot's file: {files:?}");
        (dir, sm, store, live)
    }

    /// The files in the snapshot directory whose names start with `prefix`.
    fn snapshot_files_named(db: &DB, prefix: &str) -> usize {
        snapshot_files(db)
            .iter()
            .filter(|n| n.to_string_lossy().starts_with(prefix))
            .count()
    }

    #[tokio::test]
    async fn a_transfer_given_up_leaves_its_file_only_until_the_next_begins() {
        let (_dir, mut sm, _) = machine_with_default_namespace().await;
        let db = sm.db.clone();
        let _abandoned = sm.begin_receiving_snapshot().await.expect("receive");
        assert_eq!(snapshot_files_named(&db, RECEIVING_PREFIX), 1);
        let _next = sm.begin_receiving_snapshot().await.expect("receive");
        assert_eq!(
            snapshot_files_named(&db, RECEIVING_PREFIX),
            1,
            "only the current transfer's"
        );
    }

    #[tokio::test]
    async fn a_snapshot_handed_in_another_file_is_copied_and_the_receiving_file_removed() {
        use tokio::io::AsyncWriteExt;
        let (_src, snap) = snapshot_of_b().await;
        let bytes = snapshot_bytes(snap.snapshot).await;
        let (_dir, mut sm, store) = machine_with_default_namespace().await;
        let db = sm.db.clone();
        let _unused = sm.begin_receiving_snapshot().await.expect("receive");
        let other = tempfile::tempfile().expect("tmp");
        let mut other = tokio::fs::File::from_std(other);
        other.write_all(&bytes).await.expect("write");
        sm.install_snapshot(&snap.meta, Box::new(other))
            .await
            .expect("install");
        assert!(store.get("configmaps/default/b").expect("read").is_some());
        assert_eq!(snapshot_files_named(&db, RECEIVING_PREFIX), 0);
        assert_eq!(snapshot_files_named(&db, "snapshot-"), 1);
        let current = current_snapshot(&mut sm).await;
        assert_eq!(snapshot_bytes(current.snapshot).await, bytes);
    }

    #[tokio::test]
    async fn snapshot_round_trip_restores_objects_and_revision() {
        let src = tempfile::tempdir().expect("tmp");
        let db = open_db(src.path()).expect("open");
        let (mut sm, _) = StateMachine::open(db, 1, 1000, LogDurability::everything()).expect("sm");
        sm.apply(vec![
            entry(1, create("ns-default")),
            entry(2, create("a")),
            entry(3, create("b")),
        ])
        .await
        .expect("apply");
        let snap = built_snapshot(&mut sm).await;
        let built = snap.meta.last_log_id;
        let (_dst, mut sm2, store2) = installed_on_a_new_replica(snap).await;
        assert_eq!(store2.revision(), 3);
        let (items, _) = store2.list_prefix("configmaps/default/").expect("list");
        assert_eq!(items.len(), 2);
        assert_eq!(current_snapshot(&mut sm2).await.meta.last_log_id, built);
    }

    #[tokio::test]
    async fn an_installing_replica_announces_the_newest_revision_and_keeps_the_whole_history() {
        let src = tempfile::tempdir().expect("tmp");
        let db = open_db(src.path()).expect("open");
        let (mut sm, leader_store) =
            StateMachine::open(db, 1, 1000, LogDurability::everything()).expect("sm");
        sm.apply(vec![
            entry(1, create("ns-default")),
            entry(2, create("a")),
            entry(3, create("b")),
            entry(4, delete("a")),
        ])
        .await
        .expect("apply");
        let snap = built_snapshot(&mut sm).await;
        let (_dst, _sm2, store2, mut live) = installed_on_a_new_replica_watched(snap).await;
        // Only the newest revision is announced: a watcher behind it sees
        // the gap and reads the rest from the installed history.
        let notice = live.try_recv().expect("the install is announced");
        let announced: Vec<u64> = notice.revisions.iter().map(|r| r.revision).collect();
        assert_eq!(announced, vec![4]);
        assert!(live.try_recv().is_err(), "one notice");
        let as_json = |revs: Vec<RevisionEvents>| -> Vec<String> {
            revs.iter()
                .map(|r| serde_json::to_string(r).expect("encode"))
                .collect()
        };
        let installed = as_json(store2.history(0, 4).expect("installed history"));
        assert_eq!(installed.len(), 4);
        assert_eq!(
            installed,
            as_json(leader_store.history(0, 4).expect("leader history"))
        );
        assert_eq!(
            serde_json::to_string(&notice.revisions[0]).expect("encode"),
            installed[3],
            "the notice is the stored revision"
        );
    }

    #[tokio::test]
    async fn a_snapshot_holds_the_state_its_builder_was_made_at_while_applying_goes_on() {
        let src = tempfile::tempdir().expect("tmp");
        let db = open_db(src.path()).expect("open");
        let (mut sm, _) = StateMachine::open(db, 1, 1000, LogDurability::everything()).expect("sm");
        sm.apply(vec![entry(1, create("ns-default")), entry(2, create("a"))])
            .await
            .expect("apply");
        let mut builder = sm.get_snapshot_builder().await;
        sm.apply(vec![entry(3, create("b"))]).await.expect("apply after");
        let snap = builder.build_snapshot().await.expect("build");
        assert_eq!(snap.meta.last_log_id.map(|l| l.index), Some(2));

        let (_dst, mut sm2, store2) = installed_on_a_new_replica(snap).await;
        assert_eq!(store2.revision(), 2, "the revision of the snapshot's last entry");
        let (items, _) = store2.list_prefix("configmaps/default/").expect("list");
        let names: Vec<&str> = items.iter().map(|o| objects::meta_str(o, "name")).collect();
        assert_eq!(names, ["a"], "b was applied after the builder was made");
        let history = store2.history(0, 10).expect("history");
        assert_eq!(
            history.iter().map(|r| r.revision).collect::<Vec<_>>(),
            [1, 2],
            "the watch history comes along"
        );
        // The entry after the snapshot applies on top of it as it did at
        // the source, with the same revision.
        sm2.apply(vec![entry(3, create("b"))])
            .await
            .expect("apply on the installed snapshot");
        assert_eq!(store2.revision(), 3);
    }

    #[tokio::test]
    async fn only_the_last_snapshot_keeps_a_file_and_it_is_the_one_read_back() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let (mut sm, _) = StateMachine::open(db.clone(), 1, 1000, LogDurability::everything()).expect("sm");
        sm.apply(vec![entry(1, create("ns-default")), entry(2, create("a"))])
            .await
            .expect("apply");
        let first = built_snapshot(&mut sm).await;
        sm.apply(vec![entry(3, create("b"))]).await.expect("apply");
        let second = built_snapshot(&mut sm).await;
        let files = snapshot_files(&db);
        assert_eq!(files.len(), 1, "the first snapshot's file is gone: {files:?}");
        let current = current_snapshot(&mut sm).await;
        assert_eq!(current.meta.snapshot_id, second.meta.snapshot_id);
        assert_ne!(current.meta.snapshot_id, first.meta.snapshot_id);
        assert_eq!(
            snapshot_bytes(current.snapshot).await,
            snapshot_bytes(second.snapshot).await
        );

        // A file no record names (a crash came between writing it and its
        // record) goes when the state machine next opens; the recorded one
        // stays.
        let stray = snapshot_dir(&db).join("snapshot-0000000000000000.json.partial");
        std::fs::write(&stray, b"{}").expect("stray file");
        let (mut reopened, _) =
            StateMachine::open(db.clone(), 1, 1000, LogDurability::everything()).expect("sm");
        assert!(!stray.exists(), "the unrecorded file is gone");
        let current = current_snapshot(&mut reopened).await;
        assert_eq!(current.meta.snapshot_id, second.meta.snapshot_id);
    }

    #[tokio::test]
    async fn a_snapshot_stored_with_its_data_inline_by_an_earlier_version_still_reads() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let (mut sm, _) = StateMachine::open(db.clone(), 1, 1000, LogDurability::everything()).expect("sm");
        let meta = SnapshotMeta {
            last_log_id: Some(LogId::new(CommittedLeaderId::new(1, 1), 7)),
            last_membership: StoredMembership::default(),
            snapshot_id: "7-1".into(),
        };
        let old = serde_json::json!({"meta": meta, "data": b"{}".to_vec()});
        db.put_cf(
            cf(&db, CF_META),
            KEY_SNAPSHOT,
            serde_json::to_vec(&old).expect("encode"),
        )
        .expect("put");
        let current = current_snapshot(&mut sm).await;
        assert_eq!(current.meta.snapshot_id, "7-1");
        assert_eq!(snapshot_bytes(current.snapshot).await, b"{}");
    }

    #[tokio::test]
    async fn the_history_keeps_whole_objects_but_only_the_selectable_part_of_previous_states() {
        let dir = tempfile::tempdir().expect("tmp");
        let db = open_db(dir.path()).expect("open");
        let (mut sm, store) = StateMachine::open(db, 1, 1000, LogDurability::everything()).expect("sm");
        let mut feed = store.subscribe();
        sm.apply(vec![entry(1, create("ns-default")), entry(2, create("a"))])
            .await
            .expect("apply");
        let mut changed = store
            .get("configmaps/default/a")
            .expect("read")
            .expect("a exists");
        changed["metadata"]["labels"] = json!({"app": "web"});
        changed["data"]["k"] = json!("w");
        let update = txn(Op::Update {
            resource: "configmaps".into(),
            object: changed,
            expected_rv: None,
            status: false,
        });
        sm.apply(vec![entry(3, update)]).await.expect("apply");
        let h = store.history(2, 3).expect("history");
        let ev = &h[0].events[0];
        assert_eq!(
            (
                ev.object["data"]["k"].as_str(),
                ev.object["metadata"]["labels"]["app"].as_str()
            ),
            (Some("w"), Some("web"))
        );
        let prev = ev.prev.as_deref().expect("an update keeps its previous state");
        assert_eq!(prev["metadata"]["name"], "a");
        assert!(
            prev.get("data").is_none(),
            "the history's previous state is cut down: {prev}"
        );
        // The live feed keeps the whole previous state for the controllers.
        let mut live_prev = None;
        while let Ok(batch) = feed.try_recv() {
            for r in &batch.revisions {
                if r.revision == 3 {
                    live_prev = r.events[0].prev.clone();
                }
            }
        }
        assert_eq!(
            live_prev.as_deref().map(|p| p["data"]["k"].clone()),
            Some(json!("v"))
        );
    }
}
