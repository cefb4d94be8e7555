//! rk's embedded container runtime.
//!
//! # Layout
//! - `spec`: the contract with the node agent: the [`Runtime`] trait and its types.
//! - `linux`: [`LinuxRuntime`], the implementation on namespaces, cgroups (v1 and v2),
//!   overlayfs and CNI, with the OS-free parts (cgroup value conversions, CRI log
//!   format, PATH lookup, capability sets, CNI results) in their own modules.
//! - `bin/rk-pause.rs`, `bin/rk-shim.rs`: the helper processes the runtime starts; the
//!   agent ships them next to its own executable and passes that directory as
//!   `RuntimeConfig::helper_dir`.
pub mod linux;
pub mod spec;

pub use linux::{CgroupVersion, CniConfig, LinuxRuntime, RuntimeConfig};
pub use spec::*;
