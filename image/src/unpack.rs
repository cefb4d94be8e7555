//! Unpacking one layer tar into its own directory, in the form overlayfs wants for a lower layer.
//!
//! Whiteouts become what overlayfs understands natively: `.wh.NAME` becomes a character device
//! 0/0 named NAME, and `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory. Paths
//! are resolved strictly inside the layer directory: `..` components are refused, and so is any
//! entry whose parent path crosses a symbolic link, so a layer cannot write outside its
//! directory through a link it created itself.

use std::fs;
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::fs::{lchown, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use filetime::FileTime;
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use sha2::{Digest as _, Sha256};
use tar::EntryType;

use crate::spec;
use crate::ImageError;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";
const PAX_XATTR_PREFIX: &str = "SCHILY.xattr.";

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// A reader that hashes everything read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest ("sha256:<hex>") and length of everything read so far.
    pub(crate) fn finish(self) -> (String, u64) {
        (
            format!("sha256:{}", hex::encode(self.hasher.finalize())),
            self.count,
        )
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// Chooses the decompressor from the media type, checked against the blob's magic bytes
/// because docker archives and some registries label layers loosely.
fn detect_compression(media_type: &str, magic: &[u8], layer: &str) -> Result<Compression, ImageError> {
    let known = [
        spec::OCI_LAYER_TAR,
        spec::OCI_LAYER_GZIP,
        spec::OCI_LAYER_ZSTD,
        spec::DOCKER_LAYER_GZIP,
        spec::DOCKER_LAYER_TAR,
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ];
    if !media_type.is_empty() && !known.contains(&media_type) {
        return Err(ImageError::Unsupported {
            what: format!("layer media type of {layer}"),
            value: media_type.to_string(),
        });
    }
    Ok(if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// Unpacks the layer blob at `blob` into the (new, empty) directory `dest` and returns the
/// sha256 digest of the uncompressed tar stream, which the caller compares with the diff_id.
pub(crate) fn unpack_layer(
    blob: &Path,
    media_type: &str,
    dest: &Path,
    layer: &str,
) -> Result<String, ImageError> {
    let file = fs::File::open(blob).map_err(ImageError::io("open layer blob", blob))?;
    let mut buffered = BufReader::with_capacity(256 * 1024, file);
    let magic = buffered
        .fill_buf()
        .map_err(ImageError::io("read layer blob", blob))?
        .to_vec();
    let decompressed: Box<dyn Read> = match detect_compression(media_type, &magic, layer)? {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(buffered)
                .map_err(|e| ImageError::invalid(format!("zstd layer {layer}"), e))?,
        ),
    };
    let mut hashing = HashingReader::new(decompressed);
    unpack_tar(&mut hashing, dest, layer)?;
    // The diff_id covers the whole uncompressed stream, including the tar's end-of-archive
    // padding that the tar reader stops short of.
    io::copy(&mut hashing, &mut io::sink())
        .map_err(|e| ImageError::invalid(format!("layer {layer}"), format!("decompressing: {e}")))?;
    Ok(hashing.finish().0)
}

/// Extracts a tar stream into `dest`, honouring whiteouts. Exposed to the crate for tests.
pub(crate) fn unpack_tar(reader: impl Read, dest: &Path, layer: &str) -> Result<(), ImageError> {
    let bad_tar = |e: io::Error| ImageError::invalid(format!("layer {layer}"), format!("reading tar: {e}"));
    let mut archive = tar::Archive::new(reader);
    // Directory mtimes change while their contents are written, so they are set at the end.
    let mut dir_times: Vec<(PathBuf, FileTime)> = Vec::new();
    for entry in archive.entries().map_err(bad_tar)? {
        let mut entry = entry.map_err(bad_tar)?;
        let raw_path = entry.path().map_err(bad_tar)?.into_owned();
        let unsafe_path = |reason: &str| ImageError::UnsafePath {
            layer: layer.to_string(),
            path: raw_path.display().to_string(),
            reason: reason.to_string(),
        };
        let rel = sanitize(&raw_path).map_err(&unsafe_path)?;
        let parent_rel = rel.parent().map(Path::to_path_buf).unwrap_or_default();
        let name = rel.file_name().and_then(|n| n.to_str()).unwrap_or("");

        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            let parent = make_parents(dest, &parent_rel, layer, &raw_path)?;
            if name == OPAQUE_MARKER {
                xattr::set(&parent, OPAQUE_XATTR, b"y")
                    .map_err(ImageError::io("set opaque xattr on", &parent))?;
            } else {
                if hidden.is_empty() || hidden == "." || hidden == ".." {
                    return Err(unsafe_path("whiteout names no file"));
                }
                let target = parent.join(hidden);
                remove_existing(&target)?;
                mknod(&target, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0))
                    .map_err(|e| ImageError::io("create whiteout", &target)(e.into()))?;
            }
            continue;
        }

        let header = entry.header().clone();
        let kind = header.entry_type();
        let full = if rel.as_os_str().is_empty() {
            // Only a directory entry may describe the layer root itself.
            if kind != EntryType::Directory {
                return Err(unsafe_path("a non-directory entry for the layer root"));
            }
            dest.to_path_buf()
        } else {
            make_parents(dest, &parent_rel, layer, &raw_path)?;
            dest.join(&rel)
        };
        match kind {
            EntryType::Directory => match fs::symlink_metadata(&full) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    remove_existing(&full)?;
                    fs::create_dir(&full).map_err(ImageError::io("create directory", &full))?;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    fs::create_dir(&full).map_err(ImageError::io("create directory", &full))?;
                }
                Err(e) => return Err(ImageError::io("inspect", &full)(e)),
            },
            EntryType::Regular | EntryType::Continuous => {
                remove_existing(&full)?;
                let mut file = fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&full)
                    .map_err(ImageError::io("create file", &full))?;
                io::copy(&mut entry, &mut file).map_err(|e| match e.kind() {
                    io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof => bad_tar(e),
                    _ => ImageError::io("write file", &full)(e),
                })?;
            }
            EntryType::Symlink => {
                let target = header
                    .link_name()
                    .map_err(bad_tar)?
                    .ok_or_else(|| unsafe_path("symbolic link without a target"))?;
                remove_existing(&full)?;
                std::os::unix::fs::symlink(&target, &full)
                    .map_err(ImageError::io("create symlink", &full))?;
            }
            EntryType::Link => {
                let target_raw = header
                    .link_name()
                    .map_err(bad_tar)?
                    .ok_or_else(|| unsafe_path("hard link without a target"))?;
                let target_rel = sanitize(&target_raw).map_err(&unsafe_path)?;
                if target_rel.as_os_str().is_empty() {
                    return Err(unsafe_path("hard link to the layer root"));
                }
                check_parents(dest, target_rel.parent().unwrap_or(Path::new("")))
                    .map_err(|reason| unsafe_path(&format!("hard link target {}", reason)))?;
                let target = dest.join(&target_rel);
                match fs::symlink_metadata(&target) {
                    Ok(meta) if !meta.is_dir() => {}
                    Ok(_) => return Err(unsafe_path("hard link to a directory")),
                    Err(_) => {
                        return Err(unsafe_path(
                            "hard link target does not exist earlier in the layer",
                        ))
                    }
                }
                if target != full {
                    remove_existing(&full)?;
                    fs::hard_link(&target, &full).map_err(ImageError::io("create hard link", &full))?;
                }
                // A hard link shares the inode and so the metadata of its target.
                continue;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let flag = match kind {
                    EntryType::Char => SFlag::S_IFCHR,
                    EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let major = header.device_major().map_err(bad_tar)?.unwrap_or(0);
                let minor = header.device_minor().map_err(bad_tar)?.unwrap_or(0);
                remove_existing(&full)?;
                mknod(&full, flag, Mode::empty(), makedev(major.into(), minor.into()))
                    .map_err(|e| ImageError::io("create device node", &full)(e.into()))?;
            }
            other => {
                return Err(ImageError::Unsupported {
                    what: format!("tar entry type in layer {layer} at {}", raw_path.display()),
                    value: format!("{other:?}"),
                });
            }
        }

        // Ownership first: chown clears set-uid bits, so the mode goes on after it.
        let uid = header.uid().map_err(bad_tar)?;
        let gid = header.gid().map_err(bad_tar)?;
        let (uid, gid) = match (u32::try_from(uid), u32::try_from(gid)) {
            (Ok(u), Ok(g)) => (u, g),
            _ => return Err(unsafe_path("uid or gid out of range")),
        };
        lchown(&full, Some(uid), Some(gid)).map_err(ImageError::io("change owner of", &full))?;
        let mtime = FileTime::from_unix_time(i64::try_from(header.mtime().map_err(bad_tar)?).unwrap_or(0), 0);
        if kind == EntryType::Symlink {
            filetime::set_symlink_file_times(&full, mtime, mtime)
                .map_err(ImageError::io("set times of", &full))?;
            continue;
        }
        let mode = header.mode().map_err(bad_tar)? & 0o7777;
        fs::set_permissions(&full, fs::Permissions::from_mode(mode))
            .map_err(ImageError::io("set mode of", &full))?;
        if let Some(extensions) = entry.pax_extensions().map_err(bad_tar)? {
            for ext in extensions {
                let ext = ext.map_err(bad_tar)?;
                let Ok(key) = ext.key() else { continue };
                if let Some(attr) = key.strip_prefix(PAX_XATTR_PREFIX) {
                    xattr::set(&full, attr, ext.value_bytes())
                        .map_err(ImageError::io("set xattr on", &full))?;
                }
            }
        }
        if kind == EntryType::Directory {
            dir_times.push((full, mtime));
        } else {
            filetime::set_file_times(&full, mtime, mtime).map_err(ImageError::io("set times of", &full))?;
        }
    }
    for (dir, mtime) in dir_times {
        filetime::set_file_times(&dir, mtime, mtime).map_err(ImageError::io("set times of", &dir))?;
    }
    Ok(())
}

/// Turns a tar path into a relative path of plain components: leading `/` and `.` are
/// dropped (tars are relative to the layer root either way), `..` is refused.
fn sanitize(path: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err("path contains '..'"),
            Component::Prefix(_) => return Err("path has a prefix"),
        }
    }
    Ok(out)
}

/// Checks that every component of `parent_rel` under `dest` is a real directory (or missing),
/// never a symbolic link or a file.
fn check_parents(dest: &Path, parent_rel: &Path) -> Result<(), String> {
    let mut current = dest.to_path_buf();
    for component in parent_rel.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                return Err(format!("crosses the symbolic link {}", current.display()))
            }
            Ok(_) => return Err(format!("goes through the non-directory {}", current.display())),
            Err(_) => {
                return Err(format!(
                    "goes through the missing directory {}",
                    current.display()
                ))
            }
        }
    }
    Ok(())
}

/// Creates the missing directories of `parent_rel` under `dest` (mode 0755, as tar does for
/// implied parents) and returns the full parent path; refuses to cross symbolic links.
fn make_parents(dest: &Path, parent_rel: &Path, layer: &str, raw: &Path) -> Result<PathBuf, ImageError> {
    let mut current = dest.to_path_buf();
    for component in parent_rel.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) => {
                let reason = if meta.file_type().is_symlink() {
                    format!("parent {} is a symbolic link", current.display())
                } else {
                    format!("parent {} is not a directory", current.display())
                };
                return Err(ImageError::UnsafePath {
                    layer: layer.to_string(),
                    path: raw.display().to_string(),
                    reason,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&current).map_err(ImageError::io("create directory", &current))?;
                fs::set_permissions(&current, fs::Permissions::from_mode(0o755))
                    .map_err(ImageError::io("set mode of", &current))?;
            }
            Err(e) => return Err(ImageError::io("inspect", &current)(e)),
        }
    }
    Ok(current)
}

/// Removes whatever is at `path` (a later tar entry replaces an earlier one).
fn remove_existing(path: &Path) -> Result<(), ImageError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path).map_err(ImageError::io("remove", path)),
        Ok(_) => fs::remove_file(path).map_err(ImageError::io("remove", path)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(ImageError::io("inspect", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{FileTypeExt, MetadataExt};

    fn header(kind: EntryType, path: &str, size: u64, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_path(path).expect("set path");
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h
    }

    /// Builds a tar from (kind, path, link target or content).
    fn build_tar(entries: &[(EntryType, &str, &str)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (kind, path, data) in entries {
            match kind {
                EntryType::Regular => {
                    let mut h = header(*kind, "placeholder", data.len() as u64, 0o644);
                    builder
                        .append_data(&mut h, path, data.as_bytes())
                        .expect("append file");
                }
                EntryType::Directory => {
                    let mut h = header(*kind, "placeholder", 0, 0o755);
                    builder
                        .append_data(&mut h, path, io::empty())
                        .expect("append dir");
                }
                EntryType::Symlink | EntryType::Link => {
                    let mut h = header(*kind, "placeholder", 0, 0o777);
                    builder.append_link(&mut h, path, data).expect("append link");
                }
                _ => unreachable!("test helper"),
            }
        }
        builder.into_inner().expect("finish tar")
    }

    /// Writes the raw bytes of a path into a header, bypassing the tar crate's own checks,
    /// to build the malicious archives a hostile registry could serve.
    fn raw_entry(kind: EntryType, path: &str, link: &str) -> Vec<u8> {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(0);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_cksum();
        h.as_bytes().to_vec()
    }

    #[test]
    fn whiteouts_become_overlay_markers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let tar = build_tar(&[
            (EntryType::Directory, "etc/", ""),
            (EntryType::Regular, "etc/.wh.motd", ""),
            (EntryType::Directory, "opt/", ""),
            (EntryType::Regular, "opt/.wh..wh..opq", ""),
            (EntryType::Regular, "opt/new", "new"),
            (EntryType::Symlink, "bin/sh", "/bin/busybox"),
            (EntryType::Link, "opt/new2", "opt/new"),
        ]);
        unpack_tar(&tar[..], dir.path(), "test").expect("unpack");
        let wh = fs::symlink_metadata(dir.path().join("etc/motd")).expect("whiteout exists");
        assert!(wh.file_type().is_char_device());
        assert_eq!(wh.rdev(), 0);
        assert!(!dir.path().join("etc/.wh.motd").exists());
        let opaque = xattr::get(dir.path().join("opt"), OPAQUE_XATTR).expect("xattr");
        assert_eq!(opaque.as_deref(), Some(&b"y"[..]));
        assert!(!dir.path().join("opt/.wh..wh..opq").exists());
        assert_eq!(
            fs::read_link(dir.path().join("bin/sh")).expect("symlink"),
            Path::new("/bin/busybox")
        );
        let a = fs::metadata(dir.path().join("opt/new")).expect("file");
        let b = fs::metadata(dir.path().join("opt/new2")).expect("hard link");
        assert_eq!(a.ino(), b.ino());
        assert_eq!(a.mode() & 0o7777, 0o644);
    }

    #[test]
    fn path_traversal_is_refused() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("dot-dot", raw_entry(EntryType::Regular, "../escape", "")),
            (
                "nested dot-dot",
                raw_entry(EntryType::Regular, "a/../../escape", ""),
            ),
            (
                "hard link out",
                raw_entry(EntryType::Link, "x", "../../../etc/passwd"),
            ),
            ("whiteout out", raw_entry(EntryType::Regular, "../.wh.victim", "")),
            ("absolute symlink traversal", {
                let mut t = raw_entry(EntryType::Symlink, "evil", "/tmp");
                t.extend(raw_entry(EntryType::Regular, "evil/planted", ""));
                t
            }),
            ("relative symlink traversal", {
                let mut t = raw_entry(EntryType::Symlink, "up", "../..");
                t.extend(raw_entry(EntryType::Regular, "up/planted", ""));
                t
            }),
        ];
        for (name, mut tar) in cases {
            tar.extend([0u8; 1024]);
            let root = tempfile::tempdir().expect("tempdir");
            let dest = root.path().join("a/b/layer");
            fs::create_dir_all(&dest).expect("mkdir");
            let err = unpack_tar(&tar[..], &dest, "evil").expect_err(name);
            assert!(matches!(err, ImageError::UnsafePath { .. }), "{name}: {err}");
            assert!(!root.path().join("a/b/escape").exists(), "{name}");
            assert!(!root.path().join("a/escape").exists(), "{name}");
            assert!(!root.path().join("a/planted").exists(), "{name}");
        }
    }

    #[test]
    fn zstd_layer_unpacks_and_hashes_uncompressed_content() {
        let tar = build_tar(&[(EntryType::Regular, "hello", "zstd\n")]);
        let compressed =
            ruzstd::encoding::compress_to_vec(&tar[..], ruzstd::encoding::CompressionLevel::Fastest);
        let dir = tempfile::tempdir().expect("tempdir");
        let blob = dir.path().join("blob");
        fs::write(&blob, compressed).expect("write blob");
        let dest = dir.path().join("layer");
        fs::create_dir(&dest).expect("mkdir");
        let diff_id = unpack_layer(&blob, spec::OCI_LAYER_ZSTD, &dest, "zstd").expect("unpack");
        assert_eq!(diff_id, crate::blob::digest_of(&tar));
        assert_eq!(fs::read_to_string(dest.join("hello")).expect("file"), "zstd\n");
    }

    #[test]
    fn unknown_media_type_and_zstd_magic() {
        assert!(matches!(
            detect_compression("application/vnd.oci.image.layer.v1.tar+encrypted", b"", "l"),
            Err(ImageError::Unsupported { .. })
        ));
        assert_eq!(
            detect_compression(spec::OCI_LAYER_ZSTD, &[0x28, 0xb5, 0x2f, 0xfd], "l").ok(),
            Some(Compression::Zstd)
        );
        assert_eq!(
            detect_compression("", &[0x1f, 0x8b], "l").ok(),
            Some(Compression::Gzip)
        );
        assert_eq!(
            detect_compression(spec::DOCKER_LAYER_GZIP, b"ustar", "l").ok(),
            Some(Compression::None)
        );
    }
}
