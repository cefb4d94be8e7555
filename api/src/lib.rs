//! `rk-api`: the API model of rk.
//!
//! Objects travel through rk as `serde_json::Value` in the Kubernetes JSON
//! shape. This crate knows which kinds exist ([`resources`]), how to strictly
//! decode, default and validate them ([`validate`]), how to evaluate label and
//! field selectors ([`selector`]), how to read resource quantities
//! ([`quantity`]), how errors are reported in Kubernetes' vocabulary
//! ([`error`]), and what an Event looks like ([`events`]).
//!
//! The crate is a pure library: it performs no IO and has no async code, so
//! every component (API server, controllers, node agent, CLI) can share it.

pub mod error;
pub mod events;
pub mod quantity;
pub mod resources;
pub mod selector;
pub mod time;
pub mod validate;

pub use error::{ApiError, Reason};
