//! Storage: Raft log and state machine on RocksDB.

pub mod background_io;
pub mod objects;
pub mod recent;
pub mod rocks;
pub mod snapshot_read;
pub mod types;
