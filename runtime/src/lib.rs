//! The embedded container runtime (being written).
pub mod spec;
pub use spec::*;
