//! rk's OCI image store: turns an image reference into unpacked layer directories for an
//! overlayfs root filesystem, plus the image's configuration.
//!
//! # Layout
//! - `reference`: parsing and normalizing image references (`busybox` →
//!   `docker.io/library/busybox:latest`).
//! - `store`: `ImageStore`, the content-addressed store on disk (blobs, unpacked layers,
//!   references), lookups and garbage collection.
//! - `unpack`: extracting a layer tar with overlayfs whiteouts, refusing paths that escape.
//! - `archive`: importing OCI archives and docker archives.
//! - `registry`: pulling over the distribution API, with bearer and basic auth.
//! - `spec`: the OCI/Docker JSON documents.
//! - `testing`: building images and pushing them to a registry, for tests here and in the
//!   node agent.

mod archive;
mod blob;
mod error;
mod reference;
mod registry;
pub mod spec;
mod store;
pub mod testing;
mod unpack;

use std::path::Path;

pub use error::ImageError;
pub use reference::{normalize_reference, Reference, DEFAULT_REGISTRY};
pub use registry::{PullOptions, RegistryAuth};
pub use store::{GcReport, Image, ImageConfig, ImageStore, Platform};

impl ImageStore {
    /// Imports an OCI archive (a tar of an OCI image layout; names from containerd's
    /// `io.containerd.image.name` annotation or a full reference in
    /// `org.opencontainers.image.ref.name`) or a docker archive (`docker save`), plain or
    /// gzip-compressed. Returns the normalized references now known.
    pub fn import_archive(&self, path: &Path) -> Result<Vec<String>, ImageError> {
        archive::import_archive(&self.inner, path)
    }
}
