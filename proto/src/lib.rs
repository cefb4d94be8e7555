//! rk's wire contract: the protobuf messages and tonic services generated
//! from `proto/rk.proto`.
//!
//! Only this crate knows the protobuf shapes; everything else converts to
//! its own types at the edge (objects are JSON documents on the wire).

#![allow(clippy::all)]

pub mod v1 {
    tonic::include_proto!("rk.v1");
}

/// The `Bytes` type of `bytes` fields configured as such in `build.rs`
/// (`SnapshotChunk.data`), for callers that build those messages.
pub use prost::bytes;
