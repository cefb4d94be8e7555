//! Images for Pods: `imagePullPolicy` over the local store, archive import
//! from `DIR/images/` (the air-gapped path, like k3s's image directory),
//! and garbage collection of images no Pod uses.

use rk_image::{Image, ImageError, ImageStore, PullOptions};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

/// Why an image is not available, in kubelet's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullFailure {
    /// `ErrImagePull`, `ErrImageNeverPull` or `InvalidImageName`.
    pub reason: &'static str,
    pub message: String,
}

pub struct ImageManager {
    store: Arc<ImageStore>,
    store_root: PathBuf,
    opts: PullOptions,
    /// One pull at a time per reference: Pods starting together share it.
    pulls: tokio::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    imported: Mutex<HashMap<PathBuf, (u64, SystemTime)>>,
}

/// Kubernetes' default pull policy: Always for `:latest` or no tag,
/// IfNotPresent otherwise.
pub fn effective_policy(image: &str, policy: Option<&str>) -> String {
    if let Some(p) = policy.filter(|p| !p.is_empty()) {
        return p.to_string();
    }
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent".into();
    }
    match name.split_once(':') {
        Some((_, "latest")) | None => "Always".into(),
        Some(_) => "IfNotPresent".into(),
    }
}

impl ImageManager {
    pub fn new(store: Arc<ImageStore>, store_root: PathBuf, opts: PullOptions) -> Self {
        Self {
            store,
            store_root,
            opts,
            pulls: tokio::sync::Mutex::new(HashMap::new()),
            imported: Mutex::new(HashMap::new()),
        }
    }

    /// The image for a container, pulling it if its policy says so.
    pub async fn ensure(&self, image: &str, policy: Option<&str>) -> Result<Image, PullFailure> {
        let policy = effective_policy(image, policy);
        let local = self.store.get(image).map_err(|e| PullFailure {
            reason: "InvalidImageName",
            message: e.to_string(),
        })?;
        match (policy.as_str(), local) {
            ("Never", Some(img)) | ("IfNotPresent", Some(img)) => return Ok(img),
            ("Never", None) => {
                return Err(PullFailure {
                    reason: "ErrImageNeverPull",
                    message: format!("Container image \"{image}\" is not present with pull policy of Never"),
                })
            }
            _ => {}
        }
        let lock = {
            let mut pulls = self.pulls.lock().await;
            pulls.entry(image.to_string()).or_default().clone()
        };
        let _guard = lock.lock().await;
        if policy == "IfNotPresent" {
            // Another Pod may have pulled it while we waited.
            if let Ok(Some(img)) = self.store.get(image) {
                return Ok(img);
            }
        }
        self.store.pull(image, &self.opts).await.map_err(|e| PullFailure {
            reason: "ErrImagePull",
            message: match e {
                ImageError::NotFound { .. } => format!("failed to pull image \"{image}\": {e}"),
                other => format!("failed to pull and unpack image \"{image}\": {other}"),
            },
        })
    }

    /// Imports archives in `dir` that are new or changed since last seen.
    /// With `settle`, files changed in the last half second are left for
    /// the next pass (they may still be being copied in); at start-up
    /// everything present is imported. Returns the references imported.
    pub fn import_new(&self, dir: &Path, settle: bool) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return vec![];
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !(name.ends_with(".tar") || name.ends_with(".tar.gz") || name.ends_with(".tgz")) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            let stamp = (meta.len(), meta.modified().unwrap_or(SystemTime::UNIX_EPOCH));
            let seen = self
                .imported
                .lock()
                .map(|m| m.get(&path) == Some(&stamp))
                .unwrap_or(false);
            if seen {
                continue;
            }
            // A file still being copied in changes size; wait for it to settle.
            if settle
                && meta
                    .modified()
                    .ok()
                    .and_then(|m| m.elapsed().ok())
                    .is_some_and(|age| age < Duration::from_millis(500))
            {
                continue;
            }
            match self.store.import_archive(&path) {
                Ok(refs) => {
                    tracing::info!(archive = %path.display(), images = ?refs, "imported image archive");
                    out.extend(refs);
                }
                Err(e) => {
                    tracing::warn!(archive = %path.display(), error = %e, "image archive import failed")
                }
            }
            if let Ok(mut m) = self.imported.lock() {
                m.insert(path, stamp);
            }
        }
        out
    }

    /// Watches `dir` for archives until cancelled.
    pub async fn import_loop(self: Arc<Self>, dir: PathBuf, cancel: CancellationToken) {
        loop {
            let me = self.clone();
            let d = dir.clone();
            let _ = tokio::task::spawn_blocking(move || me.import_new(&d, true)).await;
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            }
        }
    }

    /// Removes images no Pod uses when the store's filesystem is fuller
    /// than `high_percent`, down to `low_percent` (kubelet's 85/80).
    pub fn collect_garbage(&self, in_use: &HashSet<String>, high_percent: u64, low_percent: u64) {
        let Some((total, used)) = fs_usage(self.store_root()) else {
            return;
        };
        if total == 0 || used * 100 / total < high_percent {
            return;
        }
        let to_free = used.saturating_sub(total * low_percent / 100);
        let store_usage = self.store.disk_usage().unwrap_or(0);
        let low_water = store_usage.saturating_sub(to_free);
        match self.store.garbage_collect(in_use, 0, low_water) {
            Ok(report) => tracing::info!(?report, "image garbage collection"),
            Err(e) => tracing::warn!(error = %e, "image garbage collection failed"),
        }
    }

    fn store_root(&self) -> &Path {
        &self.store_root
    }
}

/// (total, used) bytes of the filesystem holding `path`.
fn fs_usage(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs fills the zeroed struct; c is a valid NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let total = st.f_blocks as u64 * st.f_frsize as u64;
    let free = st.f_bavail as u64 * st.f_frsize as u64;
    Some((total, total.saturating_sub(free)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_pull_policy_follows_the_tag() {
        assert_eq!(effective_policy("busybox", None), "Always");
        assert_eq!(effective_policy("busybox:latest", None), "Always");
        assert_eq!(effective_policy("busybox:1.36", None), "IfNotPresent");
        assert_eq!(effective_policy("127.0.0.1:5000/busybox", None), "Always");
        assert_eq!(effective_policy("127.0.0.1:5000/busybox:1", None), "IfNotPresent");
        assert_eq!(effective_policy("busybox@sha256:abc", None), "IfNotPresent");
        assert_eq!(effective_policy("busybox", Some("Never")), "Never");
    }
}
