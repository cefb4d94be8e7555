//! The on-disk store: blobs, unpacked layers and the references file.
//!
//! Layout under the root:
//! - `blobs/sha256/<hex>`: compressed layers, configs and manifests, verified before they land;
//! - `layers/<diff_id hex>/`: each layer unpacked once, shared by every image that has it;
//! - `tmp/`: partial downloads, imports and layers being unpacked (emptied at open);
//! - `refs.json`: references and image records, replaced atomically on every change.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::blob::{self, BlobWriter};
use crate::reference::{normalize_reference, validate_digest};
use crate::spec::{ConfigFile, Descriptor, Manifest};
use crate::unpack;
use crate::ImageError;

pub use crate::spec::Platform;

const STATE_VERSION: u32 = 1;

/// The parts of an image's configuration a container runtime needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub user: String,
    /// Ports as the image declares them ("80/tcp").
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub stop_signal: String,
}

impl ImageConfig {
    pub(crate) fn from_config_file(file: &ConfigFile) -> ImageConfig {
        let c = file.config.clone().unwrap_or_default();
        ImageConfig {
            entrypoint: c.entrypoint.unwrap_or_default(),
            cmd: c.cmd.unwrap_or_default(),
            env: c.env.unwrap_or_default(),
            working_dir: c.working_dir.unwrap_or_default(),
            user: c.user.unwrap_or_default(),
            exposed_ports: c
                .exposed_ports
                .map(|p| p.into_keys().collect())
                .unwrap_or_default(),
            labels: c.labels.unwrap_or_default(),
            stop_signal: c.stop_signal.unwrap_or_default(),
        }
    }
}

/// An image ready to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// "sha256:<config digest hex>".
    pub id: String,
    /// Normalized references that name this image, sorted.
    pub references: Vec<String>,
    /// "registry/repository@sha256:<manifest digest>" for each repository this image came
    /// from: what Kubernetes shows as a container's imageID.
    pub repo_digests: Vec<String>,
    pub config: ImageConfig,
    /// Unpacked layer directories, bottom (base) layer first. overlayfs wants them in the
    /// opposite order in `lowerdir=` (top first).
    pub layers: Vec<PathBuf>,
    /// Compressed size: the config and every layer blob, as a registry reports it.
    pub size: u64,
}

/// What `garbage_collect` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub usage_before: u64,
    pub usage_after: u64,
    pub removed_images: Vec<String>,
    pub removed_references: Vec<String>,
    pub removed_blobs: usize,
    pub removed_layers: usize,
    pub bytes_freed: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    version: u32,
    /// Normalized reference → what it resolved to.
    refs: BTreeMap<String, RefEntry>,
    /// Image id → record.
    images: BTreeMap<String, ImageRecord>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct RefEntry {
    image: String,
    /// The digest the reference resolved to at the registry: the image's manifest, or the
    /// index (manifest list) that the manifest was selected from.
    digest: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ImageRecord {
    manifest: String,
    config: ImageConfig,
    config_size: u64,
    layers: Vec<LayerRecord>,
    last_used: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LayerRecord {
    digest: String,
    diff_id: String,
    media_type: String,
    size: u64,
}

/// The image store. Cheap to clone (an `Arc` inside); all methods take `&self`.
#[derive(Clone)]
pub struct ImageStore {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.inner.root)
            .finish()
    }
}

pub(crate) struct Inner {
    root: PathBuf,
    pub(crate) blobs_dir: PathBuf,
    layers_dir: PathBuf,
    pub(crate) tmp_dir: PathBuf,
    state_path: PathBuf,
    state: Mutex<State>,
    /// Digests in use by imports and pulls that have not committed yet; garbage collection
    /// leaves their blobs and layers alone. Held during a sweep so a pull that pins a blob
    /// and then finds it present can rely on it staying.
    pins: Mutex<HashMap<String, usize>>,
    /// One lock per diff_id being unpacked, so concurrent pulls unpack a layer once.
    layer_locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    gc_lock: Mutex<()>,
    clock: AtomicU64,
    pub(crate) blob_downloads: AtomicU64,
}

/// Locks a mutex, recovering from poisoning: every critical section leaves the data valid
/// between statements, so a panic elsewhere does not make it unusable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn hex_of(digest: &str) -> Result<&str, ImageError> {
    validate_digest(digest).map_err(|reason| ImageError::invalid("digest", reason))?;
    Ok(&digest["sha256:".len()..])
}

impl ImageStore {
    /// Opens (creating when missing) the store at `root` and loads its references.
    pub fn open(root: &Path) -> Result<ImageStore, ImageError> {
        let blobs_dir = root.join("blobs").join("sha256");
        let layers_dir = root.join("layers");
        let tmp_dir = root.join("tmp");
        for dir in [&blobs_dir, &layers_dir, &tmp_dir] {
            fs::create_dir_all(dir).map_err(ImageError::io("create directory", dir))?;
        }
        // Whatever is in tmp/ was abandoned by a previous process: partial blobs, imports,
        // half-unpacked layers. Nothing refers to it.
        let entries = fs::read_dir(&tmp_dir).map_err(ImageError::io("list", &tmp_dir))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            if let Err(e) = removed {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove stale temporary file");
            }
        }
        let state_path = root.join("refs.json");
        let state = match fs::read(&state_path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes).map_err(|e| {
                    ImageError::invalid(format!("references file {}", state_path.display()), e)
                })?;
                if state.version != STATE_VERSION {
                    return Err(ImageError::Unsupported {
                        what: format!("version of references file {}", state_path.display()),
                        value: state.version.to_string(),
                    });
                }
                state
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => State {
                version: STATE_VERSION,
                ..State::default()
            },
            Err(e) => return Err(ImageError::io("read", &state_path)(e)),
        };
        let clock = state.images.values().map(|r| r.last_used).max().unwrap_or(0);
        Ok(ImageStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                blobs_dir,
                layers_dir,
                tmp_dir,
                state_path,
                state: Mutex::new(state),
                pins: Mutex::new(HashMap::new()),
                layer_locks: Mutex::new(HashMap::new()),
                gc_lock: Mutex::new(()),
                clock: AtomicU64::new(clock),
                blob_downloads: AtomicU64::new(0),
            }),
        })
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// How many blobs pulls have downloaded since the store was opened (for tests and metrics).
    pub fn blobs_downloaded(&self) -> u64 {
        self.inner.blob_downloads.load(Ordering::Relaxed)
    }

    /// Looks an image up by reference ("busybox", "127.0.0.1:5000/x:1", "name@sha256:…") or by
    /// id ("sha256:<hex>"). Marks it used now, for garbage collection's ordering.
    pub fn get(&self, reference: &str) -> Result<Option<Image>, ImageError> {
        let mut state = lock(&self.inner.state);
        let Some(id) = resolve(&state, reference)? else {
            return Ok(None);
        };
        let now = self.inner.tick();
        if let Some(record) = state.images.get_mut(&id) {
            record.last_used = now;
        }
        Ok(self.inner.image_from_state(&state, &id))
    }

    /// Every image in the store, by id.
    pub fn list(&self) -> Result<Vec<Image>, ImageError> {
        let state = lock(&self.inner.state);
        Ok(state
            .images
            .keys()
            .filter_map(|id| self.inner.image_from_state(&state, id))
            .collect())
    }

    /// Removes a reference; the image stays (and becomes collectable once unreferenced).
    /// Returns whether the reference existed.
    pub fn untag(&self, reference: &str) -> Result<bool, ImageError> {
        let key = normalize_reference(reference)?.to_string();
        let mut state = lock(&self.inner.state);
        if state.refs.remove(&key).is_none() {
            return Ok(false);
        }
        self.inner.save(&state)?;
        Ok(true)
    }

    /// Bytes the store occupies on disk (allocated blocks, hard links counted once).
    pub fn disk_usage(&self) -> Result<u64, ImageError> {
        dir_usage(&self.inner.root, &mut HashSet::new())
    }

    /// When the store uses more than `high_water_bytes`, deletes images whose id is not in
    /// `in_use` (references are accepted too), least recently used first, until usage is
    /// below `low_water_bytes`, and removes the blobs and layers no image needs any more.
    pub fn garbage_collect(
        &self,
        in_use: &HashSet<String>,
        high_water_bytes: u64,
        low_water_bytes: u64,
    ) -> Result<GcReport, ImageError> {
        let inner = &self.inner;
        let _gc = lock(&inner.gc_lock);
        let mut report = GcReport {
            usage_before: self.disk_usage()?,
            ..GcReport::default()
        };
        let mut usage = report.usage_before;
        if usage > high_water_bytes {
            let protected: HashSet<String> = {
                let state = lock(&inner.state);
                in_use
                    .iter()
                    .filter_map(|r| resolve(&state, r).ok().flatten())
                    .collect()
            };
            // Leftovers of crashes and untagged content go first: they cost no image.
            let freed = inner.sweep(&mut report)?;
            usage = usage.saturating_sub(freed);
            let mut candidates: Vec<(u64, String)> = {
                let state = lock(&inner.state);
                state
                    .images
                    .iter()
                    .filter(|(id, _)| !protected.contains(*id))
                    .map(|(id, r)| (r.last_used, id.clone()))
                    .collect()
            };
            candidates.sort();
            for (_, id) in candidates {
                if usage < low_water_bytes {
                    break;
                }
                {
                    let mut state = lock(&inner.state);
                    if state.images.remove(&id).is_none() {
                        continue;
                    }
                    let refs: Vec<String> = state
                        .refs
                        .iter()
                        .filter(|(_, e)| e.image == id)
                        .map(|(r, _)| r.clone())
                        .collect();
                    for r in refs {
                        state.refs.remove(&r);
                        report.removed_references.push(r);
                    }
                    inner.save(&state)?;
                }
                tracing::info!(image = %id, "garbage collecting image");
                report.removed_images.push(id);
                let freed = inner.sweep(&mut report)?;
                usage = usage.saturating_sub(freed);
            }
        }
        report.usage_after = self.disk_usage()?;
        report.bytes_freed = report.usage_before.saturating_sub(report.usage_after);
        Ok(report)
    }
}

/// Resolves a reference or image id to an image id present in `state`.
fn resolve(state: &State, reference: &str) -> Result<Option<String>, ImageError> {
    let as_id = if reference.len() == 64 && validate_digest(&format!("sha256:{reference}")).is_ok() {
        Some(format!("sha256:{reference}"))
    } else if validate_digest(reference).is_ok() {
        Some(reference.to_string())
    } else {
        None
    };
    if let Some(id) = as_id {
        return Ok(state.images.contains_key(&id).then_some(id));
    }
    let parsed = normalize_reference(reference)?;
    if let Some(entry) = state.refs.get(&parsed.to_string()) {
        return Ok(Some(entry.image.clone()));
    }
    let Some(digest) = &parsed.digest else {
        return Ok(None);
    };
    // A digest names content: any reference of the same repository that resolved to it, or
    // an image of that repository whose manifest has that digest, is a match.
    let name = parsed.name();
    let same_repo = |r: &str| normalize_reference(r).is_ok_and(|p| p.name() == name);
    for (r, entry) in &state.refs {
        if same_repo(r)
            && (&entry.digest == digest
                || state
                    .images
                    .get(&entry.image)
                    .is_some_and(|i| &i.manifest == digest))
        {
            return Ok(Some(entry.image.clone()));
        }
    }
    Ok(None)
}

/// Disk usage of a tree in allocated bytes, hard links counted once.
fn dir_usage(path: &Path, seen: &mut HashSet<(u64, u64)>) -> Result<u64, ImageError> {
    let mut total = 0u64;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = match fs::symlink_metadata(&p) {
            Ok(m) => m,
            // Something removed concurrently (a finished temporary file) costs nothing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(ImageError::io("inspect", &p)(e)),
        };
        if meta.nlink() > 1 && !meta.is_dir() && !seen.insert((meta.dev(), meta.ino())) {
            continue;
        }
        total += meta.blocks() * 512;
        if meta.is_dir() {
            match fs::read_dir(&p) {
                Ok(entries) => stack.extend(entries.flatten().map(|e| e.path())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ImageError::io("list", &p)(e)),
            }
        }
    }
    Ok(total)
}

/// Keeps digests pinned against garbage collection until dropped.
pub(crate) struct Pins {
    inner: Arc<Inner>,
    keys: Vec<String>,
}

impl Pins {
    pub(crate) fn new(inner: &Arc<Inner>) -> Pins {
        Pins {
            inner: inner.clone(),
            keys: Vec::new(),
        }
    }

    pub(crate) fn add(&mut self, digest: &str) {
        let mut pins = lock(&self.inner.pins);
        *pins.entry(digest.to_string()).or_insert(0) += 1;
        self.keys.push(digest.to_string());
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let mut pins = lock(&self.inner.pins);
        for key in &self.keys {
            if let Some(count) = pins.get_mut(key) {
                *count -= 1;
                if *count == 0 {
                    pins.remove(key);
                }
            }
        }
    }
}

/// An image's manifest as stored, with the digest it is known by.
pub(crate) struct ResolvedManifest {
    pub(crate) digest: String,
    pub(crate) manifest: Manifest,
}

impl Inner {
    /// A strictly increasing "last used" stamp (nanoseconds since the epoch, bumped on ties).
    fn tick(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut prev = self.clock.load(Ordering::Relaxed);
        loop {
            let next = now.max(prev + 1);
            match self
                .clock
                .compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return next,
                Err(actual) => prev = actual,
            }
        }
    }

    fn save(&self, state: &State) -> Result<(), ImageError> {
        let bytes = serde_json::to_vec_pretty(state)
            .map_err(|e| ImageError::invalid(format!("references file {}", self.state_path.display()), e))?;
        blob::write_atomic(&self.state_path, &bytes)
    }

    pub(crate) fn blob_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.blobs_dir.join(hex_of(digest)?))
    }

    pub(crate) fn has_blob(&self, digest: &str) -> Result<bool, ImageError> {
        Ok(self.blob_path(digest)?.is_file())
    }

    pub(crate) fn read_blob(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(ImageError::io("read blob", path))
    }

    /// Stores `bytes` as a blob (verified against `expected` when given); returns its digest.
    pub(crate) fn put_blob(&self, bytes: &[u8], expected: Option<&str>) -> Result<String, ImageError> {
        let digest = blob::digest_of(bytes);
        if let Some(expected) = expected {
            if expected != digest {
                return Err(ImageError::DigestMismatch {
                    what: format!("blob {expected}"),
                    expected: expected.to_string(),
                    actual: digest,
                });
            }
        }
        if self.has_blob(&digest)? {
            return Ok(digest);
        }
        let mut writer = BlobWriter::create(&self.tmp_dir)?;
        writer.write(bytes)?;
        writer.commit(&self.blobs_dir, Some(&digest), None)
    }

    /// Unpacks the layer blob `digest` into `layers/<diff_id hex>` unless already there, and
    /// checks that its uncompressed content hashes to `diff_id`.
    fn ensure_layer(&self, digest: &str, media_type: &str, diff_id: &str) -> Result<PathBuf, ImageError> {
        let diff_hex = hex_of(diff_id)?;
        let dest = self.layers_dir.join(diff_hex);
        let layer_lock = lock(&self.layer_locks)
            .entry(diff_id.to_string())
            .or_default()
            .clone();
        let _unpacking = lock(&layer_lock);
        if dest.is_dir() {
            return Ok(dest);
        }
        let blob = self.blob_path(digest)?;
        // A layer is unpacked beside its final place and renamed into it, so a crash never
        // leaves a partial layer that looks complete; tmp/ is on the same filesystem.
        let temp = self
            .tmp_dir
            .join(blob::temp_name(&format!("layer-{}", &diff_hex[..12])));
        fs::create_dir(&temp).map_err(ImageError::io("create directory", &temp))?;
        let cleanup = RemoveOnDrop(Some(temp.clone()));
        tracing::debug!(layer = %diff_id, blob = %digest, "unpacking layer");
        let actual = unpack::unpack_layer(&blob, media_type, &temp, diff_id)?;
        if actual != diff_id {
            return Err(ImageError::DigestMismatch {
                what: format!("uncompressed layer {digest} (config rootfs.diff_ids)"),
                expected: diff_id.to_string(),
                actual,
            });
        }
        let dir = fs::File::open(&temp).map_err(ImageError::io("open", &temp))?;
        nix::unistd::syncfs(&dir).map_err(|e| ImageError::io("sync filesystem of", &temp)(e.into()))?;
        fs::rename(&temp, &dest).map_err(ImageError::io("move layer into place", &dest))?;
        cleanup.disarm();
        blob::sync_dir(&self.layers_dir)?;
        Ok(dest)
    }

    /// Turns a stored manifest (blobs all present) into an image: unpacks its layers, records
    /// it and points `references` (normalized, with the digest each resolved to) at it.
    pub(crate) fn install(
        &self,
        resolved: &ResolvedManifest,
        references: &[(String, String)],
    ) -> Result<Image, ImageError> {
        let manifest = &resolved.manifest;
        let config_bytes = self.read_blob(&manifest.config.digest)?;
        let config: ConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| ImageError::invalid(format!("image config {}", manifest.config.digest), e))?;
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::invalid(
                format!("image config {}", manifest.config.digest),
                format!(
                    "{} rootfs.diff_ids for {} layers in manifest {}",
                    config.rootfs.diff_ids.len(),
                    manifest.layers.len(),
                    resolved.digest
                ),
            ));
        }
        let mut layers = Vec::with_capacity(manifest.layers.len());
        for (layer, diff_id) in manifest.layers.iter().zip(&config.rootfs.diff_ids) {
            self.ensure_layer(&layer.digest, &layer.media_type, diff_id)?;
            layers.push(LayerRecord {
                digest: layer.digest.clone(),
                diff_id: diff_id.clone(),
                media_type: layer.media_type.clone(),
                size: layer.size,
            });
        }
        let id = manifest.config.digest.clone();
        let record = ImageRecord {
            manifest: resolved.digest.clone(),
            config: ImageConfig::from_config_file(&config),
            config_size: config_bytes.len() as u64,
            layers,
            last_used: self.tick(),
        };
        let mut state = lock(&self.state);
        state.images.insert(id.clone(), record);
        for (reference, digest) in references {
            state.refs.insert(
                reference.clone(),
                RefEntry {
                    image: id.clone(),
                    digest: digest.clone(),
                },
            );
        }
        self.save(&state)?;
        self.image_from_state(&state, &id).ok_or_else(|| {
            ImageError::invalid("image store", format!("image {id} vanished while being recorded"))
        })
    }

    fn image_from_state(&self, state: &State, id: &str) -> Option<Image> {
        let record = state.images.get(id)?;
        let mut references = Vec::new();
        let mut repo_digests = BTreeSet::new();
        for (r, entry) in state.refs.iter().filter(|(_, e)| e.image == id) {
            references.push(r.clone());
            if let Ok(parsed) = normalize_reference(r) {
                repo_digests.insert(format!("{}@{}", parsed.name(), entry.digest));
            }
        }
        Some(Image {
            id: id.to_string(),
            references,
            repo_digests: repo_digests.into_iter().collect(),
            config: record.config.clone(),
            layers: record
                .layers
                .iter()
                .map(|l| self.layers_dir.join(l.diff_id.trim_start_matches("sha256:")))
                .collect(),
            size: record.config_size + record.layers.iter().map(|l| l.size).sum::<u64>(),
        })
    }

    /// Deletes blobs and layers that no image or reference needs and nothing has pinned.
    /// Returns the bytes freed.
    fn sweep(&self, report: &mut GcReport) -> Result<u64, ImageError> {
        let pins = lock(&self.pins);
        let mut keep: HashSet<String> = pins
            .keys()
            .map(|d| d.trim_start_matches("sha256:").to_string())
            .collect();
        {
            let state = lock(&self.state);
            for (id, record) in &state.images {
                keep.insert(id.trim_start_matches("sha256:").to_string());
                keep.insert(record.manifest.trim_start_matches("sha256:").to_string());
                for layer in &record.layers {
                    keep.insert(layer.digest.trim_start_matches("sha256:").to_string());
                    keep.insert(layer.diff_id.trim_start_matches("sha256:").to_string());
                }
            }
            for entry in state.refs.values() {
                keep.insert(entry.digest.trim_start_matches("sha256:").to_string());
            }
        }
        let mut freed = 0;
        for (dir, is_layer) in [(&self.blobs_dir, false), (&self.layers_dir, true)] {
            let entries = fs::read_dir(dir).map_err(ImageError::io("list", dir))?;
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if keep.contains(&name) {
                    continue;
                }
                let path = entry.path();
                freed += dir_usage(&path, &mut HashSet::new())?;
                if is_layer {
                    fs::remove_dir_all(&path).map_err(ImageError::io("remove layer", &path))?;
                    report.removed_layers += 1;
                } else {
                    fs::remove_file(&path).map_err(ImageError::io("remove blob", &path))?;
                    report.removed_blobs += 1;
                }
            }
        }
        drop(pins);
        Ok(freed)
    }
}

/// Removes a directory when dropped unless disarmed: the clean-up for failed unpacks/imports.
pub(crate) struct RemoveOnDrop(pub(crate) Option<PathBuf>);

impl RemoveOnDrop {
    pub(crate) fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Parses a manifest document, checking its schema and that every digest in it is sha256.
pub(crate) fn parse_manifest(bytes: &[u8], digest: &str) -> Result<Manifest, ImageError> {
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| ImageError::invalid(format!("manifest {digest}"), e))?;
    if manifest.schema_version != 2 {
        return Err(ImageError::Unsupported {
            what: format!("schemaVersion of manifest {digest}"),
            value: manifest.schema_version.to_string(),
        });
    }
    for d in std::iter::once(&manifest.config).chain(&manifest.layers) {
        validate_digest(&d.digest)
            .map_err(|reason| ImageError::invalid(format!("manifest {digest}"), reason))?;
    }
    Ok(manifest)
}

/// Picks the manifest for `platform` from an index: same os and architecture, and the same
/// variant when one is asked for (an entry without a variant matches any).
pub(crate) fn select_platform<'a>(
    manifests: &'a [Descriptor],
    platform: &Platform,
    reference: &str,
) -> Result<&'a Descriptor, ImageError> {
    let candidates: Vec<&Descriptor> = manifests
        .iter()
        .filter(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == platform.os && p.architecture == platform.architecture)
        })
        .collect();
    let variant_of = |d: &Descriptor| d.platform.as_ref().and_then(|p| p.variant.clone());
    let chosen = match &platform.variant {
        Some(v) => candidates
            .iter()
            .find(|d| variant_of(d).as_ref() == Some(v))
            .or_else(|| candidates.iter().find(|d| variant_of(d).is_none())),
        None => candidates
            .iter()
            .find(|d| variant_of(d).is_none())
            .or(candidates.first()),
    };
    chosen.copied().ok_or_else(|| ImageError::NoMatchingPlatform {
        reference: reference.to_string(),
        platform: platform.to_string(),
        available: manifests
            .iter()
            .filter_map(|d| d.platform.as_ref())
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    })
}
