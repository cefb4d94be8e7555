//! Building test images without the internet: a busybox root filesystem from Debian's
//! busybox-static, OCI layouts and archives, docker archives, and a push client for the
//! distribution API. Used by this crate's tests and by the node agent's.
//!
//! Everything written here is deterministic (uid/gid 0, mtime 0, sorted entries), so the
//! same input gives the same digests.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use reqwest::header::{CONTENT_TYPE, LOCATION};
use reqwest::StatusCode;

use crate::blob::digest_of;
use crate::spec::{self, ConfigFile, ContainerConfig, Descriptor, Index, Manifest, RootFs};
use crate::{ImageConfig, ImageError, Platform, RegistryAuth};

/// Where Debian's busybox-static puts the static binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// Fills `dir` with a minimal busybox root filesystem: /bin/busybox with a symlink per
/// applet, /etc/passwd and /etc/group with root and nobody, and the usual empty directories.
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        fs::create_dir_all(dir.join(sub))?;
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::set_permissions(dir.join("root"), fs::Permissions::from_mode(0o700))?;
    let target = dir.join("bin/busybox");
    fs::copy(BUSYBOX, &target)?;
    fs::set_permissions(&target, fs::Permissions::from_mode(0o755))?;
    let output = std::process::Command::new(BUSYBOX).arg("--list").output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{BUSYBOX} --list failed: {}",
            output.status
        )));
    }
    for applet in String::from_utf8_lossy(&output.stdout).lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        let link = dir.join("bin").join(applet);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("busybox", link)?;
        }
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(dir.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    Ok(())
}

/// A deterministic, uncompressed tar of the contents of `dir` (uid/gid 0, mtime 0, entries
/// sorted, modes kept, symlinks and hard links as such).
pub fn layer_tar(dir: &Path) -> io::Result<Vec<u8>> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut seen_inodes: HashMap<(u64, u64), PathBuf> = HashMap::new();
    append_tree(&mut builder, dir, Path::new(""), &mut seen_inodes)?;
    builder.into_inner()
}

fn base_header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode & 0o7777);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    h
}

fn append_tree(
    builder: &mut tar::Builder<Vec<u8>>,
    root: &Path,
    rel: &Path,
    seen: &mut HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()?;
    names.sort();
    for name in names {
        let rel_path = rel.join(&name);
        let full = root.join(&rel_path);
        let meta = fs::symlink_metadata(&full)?;
        let kind = meta.file_type();
        if kind.is_dir() {
            let mut h = base_header(tar::EntryType::Directory, meta.mode(), 0);
            builder.append_data(&mut h, &rel_path, io::empty())?;
            append_tree(builder, root, &rel_path, seen)?;
        } else if kind.is_symlink() {
            let mut h = base_header(tar::EntryType::Symlink, 0o777, 0);
            builder.append_link(&mut h, &rel_path, fs::read_link(&full)?)?;
        } else if kind.is_file() {
            if meta.nlink() > 1 {
                if let Some(first) = seen.get(&(meta.dev(), meta.ino())) {
                    let mut h = base_header(tar::EntryType::Link, meta.mode(), 0);
                    builder.append_link(&mut h, &rel_path, first)?;
                    continue;
                }
                seen.insert((meta.dev(), meta.ino()), rel_path.clone());
            }
            let mut h = base_header(tar::EntryType::Regular, meta.mode(), meta.len());
            builder.append_data(&mut h, &rel_path, fs::File::open(&full)?)?;
        }
    }
    Ok(())
}

fn gzip(data: &[u8]) -> io::Result<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data)?;
    encoder.finish()
}

fn to_json<T: serde::Serialize>(value: &T) -> io::Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(io::Error::other)
}

fn config_file(config: &ImageConfig, platform: &Platform, diff_ids: Vec<String>) -> ConfigFile {
    let non_empty = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let non_blank = |s: &String| (!s.is_empty()).then(|| s.clone());
    ConfigFile {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: platform.variant.clone(),
        created: Some("1970-01-01T00:00:00Z".into()),
        config: Some(ContainerConfig {
            user: non_blank(&config.user),
            exposed_ports: (!config.exposed_ports.is_empty()).then(|| {
                config
                    .exposed_ports
                    .iter()
                    .map(|p| (p.clone(), serde_json::json!({})))
                    .collect()
            }),
            env: non_empty(&config.env),
            entrypoint: non_empty(&config.entrypoint),
            cmd: non_empty(&config.cmd),
            working_dir: non_blank(&config.working_dir),
            labels: (!config.labels.is_empty()).then(|| config.labels.clone()),
            stop_signal: non_blank(&config.stop_signal),
        }),
        rootfs: RootFs {
            kind: "layers".into(),
            diff_ids,
        },
    }
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Descriptor {
    Descriptor {
        media_type: media_type.into(),
        digest: digest_of(bytes),
        size: bytes.len() as u64,
        platform: None,
        annotations: BTreeMap::new(),
    }
}

/// An OCI image layout held in memory: blobs by hex digest plus index.json.
struct MemLayout {
    blobs: BTreeMap<String, Vec<u8>>,
    index: Index,
}

impl MemLayout {
    fn load(dir: &Path) -> io::Result<MemLayout> {
        let mut layout = MemLayout {
            blobs: BTreeMap::new(),
            index: Index {
                schema_version: 2,
                media_type: Some(spec::OCI_INDEX.into()),
                manifests: Vec::new(),
            },
        };
        if let Ok(bytes) = fs::read(dir.join("index.json")) {
            layout.index = serde_json::from_slice(&bytes).map_err(io::Error::other)?;
        }
        if let Ok(entries) = fs::read_dir(dir.join("blobs/sha256")) {
            for entry in entries {
                let entry = entry?;
                layout.blobs.insert(
                    entry.file_name().to_string_lossy().into_owned(),
                    fs::read(entry.path())?,
                );
            }
        }
        Ok(layout)
    }

    fn add_blob(&mut self, media_type: &str, bytes: Vec<u8>) -> Descriptor {
        let desc = descriptor(media_type, &bytes);
        self.blobs
            .insert(desc.digest["sha256:".len()..].to_string(), bytes);
        desc
    }

    /// Adds (or replaces) the index.json entry named `reference`.
    fn tag(&mut self, mut desc: Descriptor, reference: Option<&str>) -> io::Result<()> {
        if let Some(reference) = reference {
            let parsed = crate::normalize_reference(reference).map_err(io::Error::other)?;
            desc.annotations
                .insert(spec::ANNOTATION_CONTAINERD_NAME.into(), parsed.to_string());
            desc.annotations.insert(
                spec::ANNOTATION_REF_NAME.into(),
                parsed.tag.clone().unwrap_or_else(|| "latest".into()),
            );
            let name = parsed.to_string();
            self.index
                .manifests
                .retain(|d| d.annotations.get(spec::ANNOTATION_CONTAINERD_NAME) != Some(&name));
            self.index.manifests.push(desc);
        }
        Ok(())
    }

    fn files(&self) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut files = vec![
            (
                "oci-layout".to_string(),
                br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
            ),
            ("index.json".to_string(), to_json(&self.index)?),
        ];
        files.extend(
            self.blobs
                .iter()
                .map(|(hex, bytes)| (format!("blobs/sha256/{hex}"), bytes.clone())),
        );
        Ok(files)
    }

    fn save(&self, dir: &Path) -> io::Result<()> {
        for (path, bytes) in self.files()? {
            let full = dir.join(path);
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::write(full, bytes)?;
        }
        Ok(())
    }
}

/// The digests of an image written into a layout.
#[derive(Debug, Clone)]
pub struct BuiltImage {
    /// "sha256:<config digest hex>", the store's image id.
    pub id: String,
    pub manifest: Descriptor,
}

fn build_image(
    layout: &mut MemLayout,
    layer_dirs: &[&Path],
    config: &ImageConfig,
    platform: &Platform,
) -> io::Result<BuiltImage> {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for dir in layer_dirs {
        let tar = layer_tar(dir)?;
        diff_ids.push(digest_of(&tar));
        layers.push(layout.add_blob(spec::OCI_LAYER_GZIP, gzip(&tar)?));
    }
    let config_bytes = to_json(&config_file(config, platform, diff_ids))?;
    let config_desc = layout.add_blob(spec::OCI_CONFIG, config_bytes);
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(spec::OCI_MANIFEST.into()),
        config: config_desc.clone(),
        layers,
    };
    let mut manifest_desc = layout.add_blob(spec::OCI_MANIFEST, to_json(&manifest)?);
    manifest_desc.platform = Some(platform.clone());
    Ok(BuiltImage {
        id: config_desc.digest,
        manifest: manifest_desc,
    })
}

/// Adds an image (one gzip layer per directory, bottom first) to the OCI layout in `layout`
/// (created when missing), named `reference` in index.json when given.
pub fn write_oci_image(
    layout: &Path,
    reference: Option<&str>,
    layer_dirs: &[&Path],
    config: &ImageConfig,
    platform: &Platform,
) -> io::Result<BuiltImage> {
    let mut mem = MemLayout::load(layout)?;
    let built = build_image(&mut mem, layer_dirs, config, platform)?;
    mem.tag(built.manifest.clone(), reference)?;
    mem.save(layout)?;
    Ok(built)
}

/// Adds an image index over `images` (already in the layout) named `reference`; returns
/// the index digest.
pub fn write_oci_index(layout: &Path, reference: &str, images: &[BuiltImage]) -> io::Result<String> {
    let mut mem = MemLayout::load(layout)?;
    let index = Index {
        schema_version: 2,
        media_type: Some(spec::OCI_INDEX.into()),
        manifests: images.iter().map(|i| i.manifest.clone()).collect(),
    };
    let desc = mem.add_blob(spec::OCI_INDEX, to_json(&index)?);
    let digest = desc.digest.clone();
    mem.tag(desc, Some(reference))?;
    mem.save(layout)?;
    Ok(digest)
}

/// Writes an OCI layout directory with one image for the running platform; returns its id.
pub fn write_oci_layout(
    layout: &Path,
    reference: &str,
    layer_dirs: &[&Path],
    config: &ImageConfig,
) -> io::Result<String> {
    Ok(write_oci_image(layout, Some(reference), layer_dirs, config, &Platform::host())?.id)
}

/// Writes an OCI archive (a tar of an OCI layout) with one image; returns its id.
pub fn write_oci_archive(
    out: &Path,
    reference: &str,
    layer_dirs: &[&Path],
    config: &ImageConfig,
) -> io::Result<String> {
    let mut mem = MemLayout {
        blobs: BTreeMap::new(),
        index: Index {
            schema_version: 2,
            media_type: Some(spec::OCI_INDEX.into()),
            manifests: Vec::new(),
        },
    };
    let built = build_image(&mut mem, layer_dirs, config, &Platform::host())?;
    mem.tag(built.manifest.clone(), Some(reference))?;
    write_tar(out, &mem.files()?)?;
    Ok(built.id)
}

/// Writes a docker archive (`docker save` format: uncompressed layer tars, the config as
/// `<hex>.json`, manifest.json with RepoTags) with one image; returns its id.
pub fn write_docker_archive(
    out: &Path,
    reference: &str,
    layer_dirs: &[&Path],
    config: &ImageConfig,
) -> io::Result<String> {
    let mut files = Vec::new();
    let mut diff_ids = Vec::new();
    let mut layer_paths = Vec::new();
    for dir in layer_dirs {
        let tar = layer_tar(dir)?;
        let diff_id = digest_of(&tar);
        let path = format!("{}/layer.tar", &diff_id["sha256:".len()..]);
        diff_ids.push(diff_id);
        layer_paths.push(path.clone());
        files.push((path, tar));
    }
    let config_bytes = to_json(&config_file(config, &Platform::host(), diff_ids))?;
    let id = digest_of(&config_bytes);
    let config_path = format!("{}.json", &id["sha256:".len()..]);
    files.push((config_path.clone(), config_bytes));
    let manifest =
        serde_json::json!([{ "Config": config_path, "RepoTags": [reference], "Layers": layer_paths }]);
    files.push(("manifest.json".into(), to_json(&manifest)?));
    write_tar(out, &files)?;
    Ok(id)
}

fn write_tar(out: &Path, files: &[(String, Vec<u8>)]) -> io::Result<()> {
    let mut builder = tar::Builder::new(io::BufWriter::new(fs::File::create(out)?));
    let mut dirs = std::collections::BTreeSet::new();
    for (path, bytes) in files {
        let mut parent = Path::new(path).parent();
        let mut missing = Vec::new();
        while let Some(p) = parent.filter(|p| !p.as_os_str().is_empty()) {
            if dirs.insert(p.to_path_buf()) {
                missing.push(p.to_path_buf());
            }
            parent = p.parent();
        }
        for dir in missing.into_iter().rev() {
            let mut h = base_header(tar::EntryType::Directory, 0o755, 0);
            builder.append_data(&mut h, &dir, io::empty())?;
        }
        let mut h = base_header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        builder.append_data(&mut h, path, &bytes[..])?;
    }
    builder.into_inner()?.flush()
}

/// The files of an OCI layout, from a directory or an (optionally gzip-compressed) archive.
enum LayoutSource {
    Dir(PathBuf),
    Files(HashMap<String, Vec<u8>>),
}

impl LayoutSource {
    fn open(path: &Path) -> io::Result<LayoutSource> {
        if path.is_dir() {
            return Ok(LayoutSource::Dir(path.to_path_buf()));
        }
        let mut reader = BufReader::new(fs::File::open(path)?);
        let gz = reader.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let reader: Box<dyn Read> = if gz {
            Box::new(flate2::read::MultiGzDecoder::new(reader))
        } else {
            Box::new(reader)
        };
        let mut files = HashMap::new();
        for entry in tar::Archive::new(reader).entries()? {
            let mut entry = entry?;
            if entry.header().entry_type().is_file() {
                let name = entry
                    .path()?
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_string();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes)?;
                files.insert(name, bytes);
            }
        }
        Ok(LayoutSource::Files(files))
    }

    fn read(&self, rel: &str) -> io::Result<Vec<u8>> {
        match self {
            LayoutSource::Dir(dir) => fs::read(dir.join(rel)),
            LayoutSource::Files(files) => files
                .get(rel)
                .cloned()
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{rel} not in archive"))),
        }
    }

    fn blob(&self, digest: &str) -> io::Result<Vec<u8>> {
        self.read(&format!("blobs/sha256/{}", digest.trim_start_matches("sha256:")))
    }
}

/// Pushes the image (or index) tagged `tag` in an OCI layout directory or OCI archive to
/// `registry` ("127.0.0.1:PORT", over plain HTTP) as `repository:tag`, with the distribution
/// push API (blob uploads by POST + PUT ?digest=, then the manifest). Returns the digest of
/// the pushed manifest or index.
pub async fn push_to_registry(
    registry: &str,
    repository: &str,
    tag: &str,
    source: &Path,
    auth: Option<&RegistryAuth>,
) -> Result<String, ImageError> {
    let fail = |message: String| ImageError::Registry {
        registry: registry.to_string(),
        reference: format!("{registry}/{repository}:{tag}"),
        message,
    };
    let layout = LayoutSource::open(source).map_err(ImageError::io("read OCI layout", source))?;
    let index: Index = serde_json::from_slice(
        &layout
            .read("index.json")
            .map_err(ImageError::io("read", source))?,
    )
    .map_err(|e| ImageError::invalid(format!("index.json of {}", source.display()), e))?;
    let named = |d: &&Descriptor| {
        d.annotations
            .get(spec::ANNOTATION_REF_NAME)
            .is_some_and(|n| n == tag)
            || d.annotations
                .get(spec::ANNOTATION_CONTAINERD_NAME)
                .is_some_and(|n| n.ends_with(&format!(":{tag}")))
    };
    let desc = match index.manifests.iter().find(named) {
        Some(d) => d.clone(),
        None if index.manifests.len() == 1 => index.manifests[0].clone(),
        None => return Err(fail(format!("no image tagged {tag} in {}", source.display()))),
    };
    let pusher = Pusher {
        client: reqwest::Client::new(),
        base: format!("http://{registry}/v2/{repository}"),
        auth: auth.map(RegistryAuth::basic_header),
        layout,
    };
    pusher.push_manifest(&desc, tag).await.map_err(fail)?;
    Ok(desc.digest)
}

struct Pusher {
    client: reqwest::Client,
    base: String,
    auth: Option<String>,
    layout: LayoutSource,
}

impl Pusher {
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url);
        match &self.auth {
            Some(auth) => request.header(reqwest::header::AUTHORIZATION, auth),
            None => request,
        }
    }

    /// Pushes a manifest's blobs (or an index's manifests) and then the document itself.
    async fn push_manifest(&self, desc: &Descriptor, reference: &str) -> Result<(), String> {
        let bytes = self
            .layout
            .blob(&desc.digest)
            .map_err(|e| format!("reading {}: {e}", desc.digest))?;
        let kind = spec::manifest_kind(&bytes, Some(&desc.media_type))
            .ok_or_else(|| format!("{} is neither a manifest nor an index", desc.digest))?;
        if spec::is_index(&kind) {
            let index: Index = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            for child in &index.manifests {
                Box::pin(self.push_manifest(child, &child.digest)).await?;
            }
        } else {
            let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
            for blob in std::iter::once(&manifest.config).chain(&manifest.layers) {
                self.push_blob(&blob.digest).await?;
            }
        }
        let url = format!("{}/manifests/{reference}", self.base);
        let response = self
            .request(reqwest::Method::PUT, &url)
            .header(CONTENT_TYPE, kind)
            .body(bytes)
            .send()
            .await
            .map_err(|e| format!("PUT {url}: {e}"))?;
        expect_status(response, StatusCode::CREATED, &url).await
    }

    async fn push_blob(&self, digest: &str) -> Result<(), String> {
        let url = format!("{}/blobs/{digest}", self.base);
        let head = self
            .request(reqwest::Method::HEAD, &url)
            .send()
            .await
            .map_err(|e| format!("HEAD {url}: {e}"))?;
        if head.status() == StatusCode::OK {
            return Ok(());
        }
        let bytes = self
            .layout
            .blob(digest)
            .map_err(|e| format!("reading {digest}: {e}"))?;
        let start = format!("{}/blobs/uploads/", self.base);
        let response = self
            .request(reqwest::Method::POST, &start)
            .send()
            .await
            .map_err(|e| format!("POST {start}: {e}"))?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(format!("POST {start} answered {}", response.status()));
        }
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("POST {start} answered without Location"))?;
        // The location may be relative to the registry.
        let mut upload = response
            .url()
            .join(location)
            .map_err(|e| format!("bad upload location {location}: {e}"))?;
        upload.query_pairs_mut().append_pair("digest", digest);
        let response = self
            .request(reqwest::Method::PUT, upload.as_str())
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .map_err(|e| format!("PUT {upload}: {e}"))?;
        expect_status(response, StatusCode::CREATED, upload.as_str()).await
    }
}

async fn expect_status(response: reqwest::Response, want: StatusCode, url: &str) -> Result<(), String> {
    let status = response.status();
    if status == want {
        return Ok(());
    }
    let body = response.text().await.unwrap_or_default();
    Err(format!("{url} answered {status}: {}", body.trim()))
}
