//! `rk-controllers`: the decisions of rk's scheduler and workload controllers.
//!
//! Every function here is pure: it takes the objects a controller has read
//! (typed `k8s-openapi` structs) and the current time as parameters, and
//! returns what should change. There is no IO, no async code and no clock
//! read, so each decision can be table-tested and replayed exactly. The
//! control plane runs these functions from leader-only loops and turns their
//! plans into Raft writes.
//!
//! - [`scheduler`]: picks a node for a pod (filters, then weighted scores).
//! - [`replicaset`]: how many pods to create, which to delete, adopt or
//!   release, and the ReplicaSet status.
//! - [`daemonset`]: which nodes get a daemon pod, rolling updates within
//!   `maxUnavailable`, status and ControllerRevision history.
//! - [`deployment`]: pod-template hashing, rolling-update and recreate
//!   steps, Deployment status and revision history.
//! - [`job`]: pods to create or delete for a Job, its status and TTL.
//! - [`cronjob`]: cron schedules and when a CronJob should start a Job.
//! - [`podutil`]: small facts about pods and owners shared by the others.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod error;
pub mod job;
pub mod podutil;
pub mod replicaset;
pub mod scheduler;

pub use error::Error;
