//! Importing image archives: OCI archives (a tar of an OCI image layout) and docker archives
//! (`docker save`: manifest.json, config json and layer tars).
//!
//! The archive is first extracted into the store's tmp/ directory (only plain files and
//! directories, at sanitized paths), then its blobs are copied into the store with their
//! digests verified, and each image is installed like a pulled one.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::blob::{self, BlobWriter};
use crate::reference::{normalize_reference, validate_digest, Reference};
use crate::spec::{self, ConfigFile, Descriptor, Index, Manifest};
use crate::store::{parse_manifest, select_platform, Inner, Pins, Platform, RemoveOnDrop, ResolvedManifest};
use crate::ImageError;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    #[serde(default)]
    layers: Vec<String>,
}

pub(crate) fn import_archive(inner: &Arc<Inner>, path: &Path) -> Result<Vec<String>, ImageError> {
    let work = inner.tmp_dir.join(blob::temp_name("import"));
    fs::create_dir(&work).map_err(ImageError::io("create directory", &work))?;
    let _cleanup = RemoveOnDrop(Some(work.clone()));
    extract(path, &work)?;
    let what = format!("image archive {}", path.display());
    if work.join("index.json").is_file()
        && (work.join("oci-layout").is_file() || !work.join("manifest.json").is_file())
    {
        import_oci_layout(inner, &work, &what)
    } else if work.join("manifest.json").is_file() {
        import_docker(inner, &work, &what)
    } else {
        Err(ImageError::invalid(
            what,
            "neither an OCI layout (index.json) nor a docker archive (manifest.json)",
        ))
    }
}

/// Extracts the archive's files and directories into `dest`; symbolic links (docker's legacy
/// format uses them for repeated layers) become copies of their targets inside the archive.
fn extract(path: &Path, dest: &Path) -> Result<(), ImageError> {
    let what = || format!("image archive {}", path.display());
    let file = fs::File::open(path).map_err(ImageError::io("open image archive", path))?;
    let mut buffered = BufReader::new(file);
    let magic = buffered
        .fill_buf()
        .map_err(ImageError::io("read image archive", path))?
        .to_vec();
    let reader: Box<dyn Read> = if magic.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::MultiGzDecoder::new(buffered))
    } else {
        Box::new(buffered)
    };
    let bad = |e: io::Error| ImageError::invalid(what(), e);
    let mut archive = tar::Archive::new(reader);
    let mut links: Vec<(PathBuf, PathBuf)> = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let raw = entry.path().map_err(bad)?.into_owned();
        let Some(rel) = normalize_inside(Path::new(""), &raw) else {
            return Err(ImageError::UnsafePath {
                layer: what(),
                path: raw.display().to_string(),
                reason: "escapes the archive".into(),
            });
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let full = dest.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => {
                fs::create_dir_all(&full).map_err(ImageError::io("create directory", &full))?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(parent) = full.parent() {
                    fs::create_dir_all(parent).map_err(ImageError::io("create directory", parent))?;
                }
                let mut out = fs::File::create(&full).map_err(ImageError::io("create", &full))?;
                io::copy(&mut entry, &mut out).map_err(ImageError::io("write", &full))?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(bad)?
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                // Symlink targets are relative to the link's directory, hard links to the root.
                let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                    rel.parent().map(Path::to_path_buf).unwrap_or_default()
                } else {
                    PathBuf::new()
                };
                let Some(resolved) = normalize_inside(&base, &target) else {
                    return Err(ImageError::UnsafePath {
                        layer: what(),
                        path: raw.display().to_string(),
                        reason: format!("link target {} escapes the archive", target.display()),
                    });
                };
                links.push((rel, resolved));
            }
            _ => {}
        }
    }
    for (link, target) in links {
        let (from, to) = (dest.join(&target), dest.join(&link));
        if let Some(parent) = to.parent() {
            fs::create_dir_all(parent).map_err(ImageError::io("create directory", parent))?;
        }
        if from.is_file() {
            fs::hard_link(&from, &to).map_err(ImageError::io("link", &to))?;
        }
    }
    Ok(())
}

/// Joins `path` onto `base` lexically (`..` pops a component) and returns the result if it
/// stays inside the root.
fn normalize_inside(base: &Path, path: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = if path.is_absolute() {
        Vec::new()
    } else {
        base.iter().collect::<Vec<_>>()
    };
    for component in path.components() {
        match component {
            Component::Normal(c) => parts.push(c),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::CurDir => {}
            Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// Copies the blob `desc` from an extracted layout into the store, verifying digest and size.
fn import_blob(
    inner: &Inner,
    layout_blobs: &Path,
    desc: &Descriptor,
    pins: &mut Pins,
) -> Result<(), ImageError> {
    validate_digest(&desc.digest).map_err(|reason| ImageError::invalid("descriptor digest", reason))?;
    pins.add(&desc.digest);
    if inner.has_blob(&desc.digest)? {
        return Ok(());
    }
    let src = layout_blobs.join(&desc.digest["sha256:".len()..]);
    let file = fs::File::open(&src).map_err(ImageError::io("open archive blob", &src))?;
    let mut writer = BlobWriter::create(&inner.tmp_dir)?;
    writer.copy_from(file, &src)?;
    writer.commit(&inner.blobs_dir, Some(&desc.digest), Some(desc.size))?;
    Ok(())
}

/// The references an OCI index entry names: containerd's full-name annotation, else the
/// `ref.name` annotation when it is a full reference (a bare tag names no repository).
fn oci_names(desc: &Descriptor, what: &str) -> Vec<Reference> {
    let name = desc
        .annotations
        .get(spec::ANNOTATION_CONTAINERD_NAME)
        .or_else(|| desc.annotations.get(spec::ANNOTATION_REF_NAME));
    match name.map(|n| normalize_reference(n)) {
        Some(Ok(r)) => vec![r],
        Some(Err(e)) => {
            tracing::warn!(archive = what, error = %e, "ignoring unusable image name in archive");
            Vec::new()
        }
        None => Vec::new(),
    }
}

fn import_oci_layout(inner: &Arc<Inner>, dir: &Path, what: &str) -> Result<Vec<String>, ImageError> {
    let index_path = dir.join("index.json");
    let index_bytes = fs::read(&index_path).map_err(ImageError::io("read", &index_path))?;
    let index: Index = serde_json::from_slice(&index_bytes)
        .map_err(|e| ImageError::invalid(format!("index.json of {what}"), e))?;
    let blobs = dir.join("blobs").join("sha256");
    let mut names = Vec::new();
    for desc in &index.manifests {
        let mut pins = Pins::new(inner);
        import_blob(inner, &blobs, desc, &mut pins)?;
        let bytes = inner.read_blob(&desc.digest)?;
        let kind = spec::manifest_kind(&bytes, Some(&desc.media_type)).unwrap_or_default();
        let manifest_desc = if spec::is_index(&kind) {
            let nested: Index = serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::invalid(format!("index {} in {what}", desc.digest), e))?;
            let chosen = select_platform(&nested.manifests, &Platform::host(), what)?.clone();
            import_blob(inner, &blobs, &chosen, &mut pins)?;
            chosen
        } else {
            desc.clone()
        };
        let manifest = parse_manifest(&inner.read_blob(&manifest_desc.digest)?, &manifest_desc.digest)?;
        import_blob(inner, &blobs, &manifest.config, &mut pins)?;
        for layer in &manifest.layers {
            import_blob(inner, &blobs, layer, &mut pins)?;
        }
        let refs: Vec<Reference> = oci_names(desc, what);
        let pairs: Vec<(String, String)> = refs
            .iter()
            .map(|r| (r.to_string(), desc.digest.clone()))
            .collect();
        let image = inner.install(
            &ResolvedManifest {
                digest: manifest_desc.digest.clone(),
                manifest,
            },
            &pairs,
        )?;
        if pairs.is_empty() {
            tracing::warn!(archive = what, image = %image.id, "imported an image without a name");
        }
        names.extend(pairs.into_iter().map(|(r, _)| r));
    }
    Ok(names)
}

fn import_docker(inner: &Arc<Inner>, dir: &Path, what: &str) -> Result<Vec<String>, ImageError> {
    let manifest_path = dir.join("manifest.json");
    let bytes = fs::read(&manifest_path).map_err(ImageError::io("read", &manifest_path))?;
    let entries: Vec<DockerManifestEntry> = serde_json::from_slice(&bytes)
        .map_err(|e| ImageError::invalid(format!("manifest.json of {what}"), e))?;
    let file_in = |name: &str| -> Result<PathBuf, ImageError> {
        normalize_inside(Path::new(""), Path::new(name))
            .map(|rel| dir.join(rel))
            .ok_or_else(|| ImageError::UnsafePath {
                layer: what.to_string(),
                path: name.to_string(),
                reason: "escapes the archive".into(),
            })
    };
    let mut names = Vec::new();
    for entry in entries {
        let mut pins = Pins::new(inner);
        let config_path = file_in(&entry.config)?;
        let config_bytes = fs::read(&config_path).map_err(ImageError::io("read", &config_path))?;
        let config_digest = blob::digest_of(&config_bytes);
        pins.add(&config_digest);
        inner.put_blob(&config_bytes, None)?;
        // Only checks that the config parses; install reads it again from the store.
        let _: ConfigFile = serde_json::from_slice(&config_bytes)
            .map_err(|e| ImageError::invalid(format!("image config {} in {what}", entry.config), e))?;
        let mut layers = Vec::new();
        let mut layer_digests: HashMap<PathBuf, Descriptor> = HashMap::new();
        for layer in &entry.layers {
            let path = file_in(layer)?;
            if let Some(desc) = layer_digests.get(&path) {
                layers.push(desc.clone());
                continue;
            }
            let mut file =
                BufReader::new(fs::File::open(&path).map_err(ImageError::io("open layer", &path))?);
            let magic = file
                .fill_buf()
                .map_err(ImageError::io("read layer", &path))?
                .to_vec();
            let media_type = if magic.starts_with(&[0x1f, 0x8b]) {
                spec::OCI_LAYER_GZIP
            } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
                spec::OCI_LAYER_ZSTD
            } else {
                spec::OCI_LAYER_TAR
            };
            let mut writer = BlobWriter::create(&inner.tmp_dir)?;
            writer.copy_from(file, &path)?;
            let size = writer.written();
            let digest = writer.commit(&inner.blobs_dir, None, None)?;
            pins.add(&digest);
            let desc = Descriptor {
                media_type: media_type.to_string(),
                digest,
                size,
                platform: None,
                annotations: Default::default(),
            };
            layer_digests.insert(path, desc.clone());
            layers.push(desc);
        }
        // The store keeps every image as a manifest, so a docker archive gets one written
        // for it (OCI, describing the blobs as they are).
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(spec::OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: spec::OCI_CONFIG.to_string(),
                digest: config_digest,
                size: config_bytes.len() as u64,
                platform: None,
                annotations: Default::default(),
            },
            layers,
        };
        let manifest_bytes = serde_json::to_vec(&manifest)
            .map_err(|e| ImageError::invalid(format!("manifest for {what}"), e))?;
        let manifest_digest = blob::digest_of(&manifest_bytes);
        pins.add(&manifest_digest);
        inner.put_blob(&manifest_bytes, None)?;
        let mut pairs = Vec::new();
        for tag in entry.repo_tags.unwrap_or_default() {
            match normalize_reference(&tag) {
                Ok(r) => pairs.push((r.to_string(), manifest_digest.clone())),
                Err(e) => tracing::warn!(archive = what, error = %e, "ignoring unusable RepoTag"),
            }
        }
        inner.install(
            &ResolvedManifest {
                digest: manifest_digest,
                manifest,
            },
            &pairs,
        )?;
        names.extend(pairs.into_iter().map(|(r, _)| r));
    }
    Ok(names)
}
