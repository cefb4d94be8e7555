//! rk's node agent: registers the Node, renews its Lease, and runs the
//! Pods bound to it with the embedded runtime (`rk-runtime`) and image
//! store (`rk-image`). See ARCHITECTURE.md for the bird's-eye view.

pub mod agent;
pub mod config;
pub mod images;
pub mod join;
pub mod manager;
pub mod node;
pub mod pod;
pub mod podspec;
pub mod probe;
pub mod stats;
pub mod status;
pub mod streams;
pub mod volumes;
