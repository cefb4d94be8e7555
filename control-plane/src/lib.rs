//! rk's control plane: a Raft group whose state machine keeps versioned API
//! objects in RocksDB, served over mutual-TLS gRPC.
//!
//! # Layout
//! - [`store`]: the Raft type config, the RocksDB log and state machine,
//!   and the pure transaction semantics ([`store::objects`]).
//! - [`replica`]: one member: propose (forwarding to the leader) and
//!   linearizable read barriers.
//! - [`network`]: Raft RPCs to other replicas.
//! - [`server`]: the gRPC services (object API, Raft, cluster membership).
//! - [`watch`]: serving watches from history plus the live feed.
//! - [`pki`]: the cluster CA, certificates and join tokens.
//! - [`bootstrap`]: `init`, `join` and `run`: data-dir layout and start-up.
//! - [`controllers`]: the scheduler and controllers, run on the leader only.

pub mod bootstrap;
pub mod clock;
pub mod controllers;
pub mod network;
pub mod pki;
pub mod replica;
pub mod server;
pub mod store;
pub mod watch;
