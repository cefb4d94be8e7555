//! The one error type of the image store.

use std::path::PathBuf;

/// Everything that can go wrong while resolving, fetching, importing or storing an image.
///
/// The node agent tells the pull failures apart: `NotFound` and `Unauthorized` are what the
/// user must fix (wrong name, missing credentials), `Network` and `Registry` may heal with a retry.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },

    #[error("image {reference} not found")]
    NotFound { reference: String },

    #[error("not authorized to pull {reference} from {registry}: {message}")]
    Unauthorized {
        registry: String,
        reference: String,
        message: String,
    },

    #[error("cannot reach registry {registry}: {message}")]
    Network { registry: String, message: String },

    #[error("registry {registry} failed for {reference}: {message}")]
    Registry {
        registry: String,
        reference: String,
        message: String,
    },

    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },

    #[error("size mismatch for blob {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },

    #[error("unsupported {what}: {value}")]
    Unsupported { what: String, value: String },

    #[error("no manifest for platform {platform} in {reference} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        platform: String,
        available: String,
    },

    #[error("invalid {what}: {message}")]
    Invalid { what: String, message: String },

    #[error("unsafe path {path:?} in layer {layer}: {reason}")]
    UnsafePath {
        layer: String,
        path: String,
        reason: String,
    },

    #[error("{context} {path}: {source}")]
    Io {
        context: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ImageError {
    /// Wraps an IO error with the action and the file it concerned.
    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> ImageError {
        let path = path.into();
        move |source| ImageError::Io {
            context,
            path,
            source,
        }
    }

    pub(crate) fn invalid(what: impl Into<String>, message: impl std::fmt::Display) -> ImageError {
        ImageError::Invalid {
            what: what.into(),
            message: message.to_string(),
        }
    }

    /// True for errors a retry may fix (the network or the registry itself), false for
    /// errors that need a change by the user (name, credentials, corrupt content).
    pub fn is_transient(&self) -> bool {
        matches!(self, ImageError::Network { .. } | ImageError::Registry { .. })
    }
}
