//! Store tests without a registry: archive imports, whiteouts under a real overlayfs mount,
//! digest verification and garbage collection. They run as root (mknod, trusted xattrs, mount).

mod common;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::{busybox_config, busybox_dir, files_dir};
use rk_image::spec::{ConfigFile, Index, Manifest};
use rk_image::{testing, ImageConfig, ImageError, ImageStore};
use sha2::{Digest, Sha256};

#[test]
fn imports_oci_archive_and_normalizes_references() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_dir(tmp.path());
    let archive = tmp.path().join("busybox.tar");
    let id =
        testing::write_oci_archive(&archive, "busybox:1.36", &[&rootfs], &busybox_config()).expect("archive");
    let store = ImageStore::open(&tmp.path().join("store")).expect("open");
    let refs = store.import_archive(&archive).expect("import");
    assert_eq!(refs, vec!["docker.io/library/busybox:1.36".to_string()]);

    let image = store.get("busybox:1.36").expect("get").expect("image present");
    assert_eq!(image.id, id);
    assert_eq!(
        store
            .get("docker.io/library/busybox:1.36")
            .expect("get")
            .map(|i| i.id),
        Some(id.clone())
    );
    assert_eq!(store.get(&id).expect("get by id").map(|i| i.id), Some(id.clone()));
    assert!(
        store.get("busybox").expect("get").is_none(),
        "busybox:latest was never imported"
    );
    assert_eq!(image.config, busybox_config());
    assert_eq!(image.layers.len(), 1);
    let busybox = image.layers[0].join("bin/busybox");
    assert!(busybox.is_file());
    assert_eq!(
        fs::read_link(image.layers[0].join("bin/sh")).expect("sh link"),
        Path::new("busybox")
    );
    assert_eq!(
        fs::read_to_string(image.layers[0].join("etc/passwd"))
            .expect("passwd")
            .lines()
            .next(),
        Some("root:x:0:0:root:/root:/bin/sh")
    );
    assert!(
        image.size > 500_000,
        "size {} counts the compressed layer",
        image.size
    );
    assert_eq!(image.repo_digests.len(), 1);
    assert!(image.repo_digests[0].starts_with("docker.io/library/busybox@sha256:"));

    // A digest reference finds the image through the digest its reference resolved to.
    let digest = image.repo_digests[0].split('@').nth(1).expect("digest");
    assert_eq!(
        store
            .get(&format!("busybox@{digest}"))
            .expect("by digest")
            .map(|i| i.id),
        Some(id.clone())
    );

    // The references survive a restart.
    drop(store);
    let store = ImageStore::open(&tmp.path().join("store")).expect("reopen");
    assert_eq!(store.list().expect("list").len(), 1);
    assert_eq!(store.get("busybox:1.36").expect("get").map(|i| i.id), Some(id));
}

#[test]
fn imports_docker_archive_gzipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rootfs = busybox_dir(tmp.path());
    let extra = files_dir(tmp.path(), "extra", &[("srv/hello.txt", "hello\n")]);
    let archive = tmp.path().join("image.tar");
    let config = ImageConfig {
        entrypoint: vec!["/bin/cat".into()],
        cmd: vec!["/srv/hello.txt".into()],
        ..busybox_config()
    };
    let id = testing::write_docker_archive(&archive, "127.0.0.1:5000/hello:v1", &[&rootfs, &extra], &config)
        .expect("archive");
    // docker save output is often passed around gzip-compressed.
    let gz = tmp.path().join("image.tar.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("gzip -c {} > {}", archive.display(), gz.display()))
        .status()
        .expect("gzip");
    assert!(status.success());
    let store = ImageStore::open(&tmp.path().join("store")).expect("open");
    assert_eq!(
        store.import_archive(&gz).expect("import"),
        vec!["127.0.0.1:5000/hello:v1".to_string()]
    );
    let image = store
        .get("127.0.0.1:5000/hello:v1")
        .expect("get")
        .expect("present");
    assert_eq!(image.id, id);
    assert_eq!(image.config.entrypoint, vec!["/bin/cat".to_string()]);
    assert_eq!(image.layers.len(), 2);
    assert!(image.layers[0].join("bin/busybox").is_file(), "base layer first");
    assert_eq!(
        fs::read_to_string(image.layers[1].join("srv/hello.txt")).expect("file"),
        "hello\n"
    );
}

#[test]
fn whiteouts_hide_files_under_overlayfs() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let lower = files_dir(
        tmp.path(),
        "lower",
        &[
            ("etc/motd", "welcome\n"),
            ("etc/keep", "kept\n"),
            ("opt/a", "a\n"),
            ("opt/sub/b", "b\n"),
        ],
    );
    // Whiteouts travel in layer tars as plain files with the .wh. prefix.
    let upper = files_dir(
        tmp.path(),
        "upper",
        &[("etc/.wh.motd", ""), ("opt/.wh..wh..opq", ""), ("opt/c", "c\n")],
    );
    let archive = tmp.path().join("wh.tar");
    testing::write_oci_archive(
        &archive,
        "localhost/whiteouts:1",
        &[&lower, &upper],
        &ImageConfig::default(),
    )
    .expect("archive");
    let store = ImageStore::open(&tmp.path().join("store")).expect("open");
    store.import_archive(&archive).expect("import");
    let image = store.get("localhost/whiteouts:1").expect("get").expect("present");
    assert_eq!(image.layers.len(), 2);

    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).expect("mkdir mnt");
    // overlayfs lists lower directories top first.
    let options = format!(
        "lowerdir={}:{}",
        image.layers[1].display(),
        image.layers[0].display()
    );
    let status = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &options])
        .arg(&mnt)
        .status()
        .expect("run mount");
    assert!(status.success(), "mount overlay with {options}");
    let _unmount = Unmount(mnt.clone());

    assert!(!mnt.join("etc/motd").exists(), "whiteout hides etc/motd");
    assert_eq!(fs::read_to_string(mnt.join("etc/keep")).expect("keep"), "kept\n");
    let mut opt: Vec<String> = fs::read_dir(mnt.join("opt"))
        .expect("read opt")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    opt.sort();
    assert_eq!(
        opt,
        vec!["c".to_string()],
        "opaque opt/ shows only the upper layer"
    );
}

struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Builds an OCI layout, then lets `tamper` change it before it is imported as a directory
/// tarball.
fn tampered_layout(tmp: &Path, tamper: impl FnOnce(&Path)) -> std::path::PathBuf {
    let layer = files_dir(tmp, "layer", &[("hello", "hello\n")]);
    let layout = tmp.join("layout");
    testing::write_oci_layout(
        &layout,
        "localhost/tampered:1",
        &[&layer],
        &ImageConfig::default(),
    )
    .expect("layout");
    tamper(&layout);
    let archive = tmp.join("tampered.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&archive)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success());
    archive
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    serde_json::from_slice(&fs::read(path).expect("read json")).expect("parse json")
}

fn blob_path(layout: &Path, digest: &str) -> std::path::PathBuf {
    layout
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"))
}

fn sha(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn assert_store_clean(store_root: &Path) {
    assert_eq!(
        fs::read_dir(store_root.join("layers")).expect("layers").count(),
        0,
        "no layer kept"
    );
    assert_eq!(
        fs::read_dir(store_root.join("tmp")).expect("tmp").count(),
        0,
        "no temporary files left"
    );
}

#[test]
fn tampered_layer_blob_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut layer_digest = String::new();
    let archive = tampered_layout(tmp.path(), |layout| {
        let index: Index = read_json(&layout.join("index.json"));
        let manifest: Manifest = read_json(&blob_path(layout, &index.manifests[0].digest));
        layer_digest = manifest.layers[0].digest.clone();
        let path = blob_path(layout, &layer_digest);
        let mut bytes = fs::read(&path).expect("read layer");
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&path, bytes).expect("write layer");
    });
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).expect("open");
    let err = store
        .import_archive(&archive)
        .expect_err("tampered blob must fail");
    assert!(
        matches!(&err, ImageError::DigestMismatch { expected, .. } if *expected == layer_digest),
        "{err}"
    );
    assert!(
        err.to_string().contains(&layer_digest),
        "error names the digest: {err}"
    );
    assert!(!root
        .join("blobs/sha256")
        .join(layer_digest.trim_start_matches("sha256:"))
        .exists());
    assert!(store.get("localhost/tampered:1").expect("get").is_none());
    assert_store_clean(&root);
}

#[test]
fn layer_not_matching_diff_id_is_rejected() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let bogus = format!("sha256:{}", "ab".repeat(32));
    let archive = tampered_layout(tmp.path(), |layout| {
        // Rewrite the config with a wrong diff_id, and the manifest and index to match, so
        // only the uncompressed content check can catch it.
        let index_path = layout.join("index.json");
        let mut index: Index = read_json(&index_path);
        let mut manifest: Manifest = read_json(&blob_path(layout, &index.manifests[0].digest));
        let mut config: ConfigFile = read_json(&blob_path(layout, &manifest.config.digest));
        config.rootfs.diff_ids[0] = bogus.clone();
        let config_bytes = serde_json::to_vec(&config).expect("config json");
        manifest.config.digest = sha(&config_bytes);
        manifest.config.size = config_bytes.len() as u64;
        fs::write(blob_path(layout, &manifest.config.digest), &config_bytes).expect("write config");
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest json");
        index.manifests[0].digest = sha(&manifest_bytes);
        index.manifests[0].size = manifest_bytes.len() as u64;
        fs::write(blob_path(layout, &index.manifests[0].digest), &manifest_bytes).expect("write manifest");
        fs::write(&index_path, serde_json::to_vec(&index).expect("index json")).expect("write index");
    });
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).expect("open");
    let err = store
        .import_archive(&archive)
        .expect_err("wrong diff_id must fail");
    assert!(
        matches!(&err, ImageError::DigestMismatch { expected, .. } if *expected == bogus),
        "{err}"
    );
    assert!(store.get("localhost/tampered:1").expect("get").is_none());
    assert_store_clean(&root);
}

#[test]
fn garbage_collection_removes_unused_images_and_keeps_shared_layers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = busybox_dir(tmp.path());
    let a = files_dir(tmp.path(), "a", &[("a.txt", "a")]);
    let b = files_dir(tmp.path(), "b", &[("b.txt", "b")]);
    let c = files_dir(tmp.path(), "c", &[("c.txt", "c")]);
    let store = ImageStore::open(&tmp.path().join("store")).expect("open");
    for (name, layer) in [
        ("localhost/a:1", &a),
        ("localhost/b:1", &b),
        ("localhost/c:1", &c),
    ] {
        let archive = tmp.path().join(format!("{}.tar", &name[10..11]));
        testing::write_oci_archive(&archive, name, &[&base, layer], &busybox_config()).expect("archive");
        store.import_archive(&archive).expect("import");
    }
    let image_a = store.get("localhost/a:1").expect("get").expect("a");
    let image_b = store.get("localhost/b:1").expect("get").expect("b");
    let image_c = store.get("localhost/c:1").expect("get").expect("c");
    // b was used last of the unused ones: a goes first.
    store.get("localhost/b:1").expect("touch b");
    let in_use: HashSet<String> = [image_c.id.clone()].into();

    // Below the high-water mark nothing happens.
    let usage = store.disk_usage().expect("usage");
    let report = store.garbage_collect(&in_use, usage + 1, 0).expect("gc");
    assert!(report.removed_images.is_empty());
    assert_eq!(store.list().expect("list").len(), 3);

    // Above it, images go oldest first until usage is under the low-water mark: removing a
    // alone frees only its small layer, so ask for just below the current usage.
    let report = store.garbage_collect(&in_use, 0, usage - 1).expect("gc");
    assert_eq!(report.removed_images, vec![image_a.id.clone()]);
    assert_eq!(report.removed_references, vec!["localhost/a:1".to_string()]);
    assert!(report.bytes_freed > 0);
    assert!(!image_a.layers[1].exists(), "a's own layer is removed");
    assert!(
        image_a.layers[0].join("bin/busybox").exists(),
        "the shared base layer stays"
    );
    assert!(store.get("localhost/a:1").expect("get").is_none());

    // Down to zero: everything not in use goes, the image in use stays whole.
    let report = store.garbage_collect(&in_use, 0, 0).expect("gc");
    assert_eq!(report.removed_images, vec![image_b.id.clone()]);
    assert!(!image_b.layers[1].exists());
    let kept = store.get("localhost/c:1").expect("get").expect("c stays");
    assert!(kept.layers.iter().all(|l| l.is_dir()));
    assert!(kept.layers[0].join("bin/busybox").exists());
    assert_eq!(store.list().expect("list").len(), 1);
    // The remaining blobs are exactly c's: manifest, config and two layers.
    assert_eq!(
        fs::read_dir(tmp.path().join("store/blobs/sha256"))
            .expect("blobs")
            .count(),
        4
    );
}

#[test]
fn concurrent_imports_unpack_each_layer_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = busybox_dir(tmp.path());
    let archive = tmp.path().join("busybox.tar");
    testing::write_oci_archive(&archive, "busybox:1", &[&base], &busybox_config()).expect("archive");
    let store = ImageStore::open(&tmp.path().join("store")).expect("open");
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| store.import_archive(&archive)))
            .collect();
        for h in handles {
            h.join().expect("thread").expect("import");
        }
    });
    assert_eq!(
        fs::read_dir(tmp.path().join("store/layers"))
            .expect("layers")
            .count(),
        1
    );
    assert_eq!(store.list().expect("list").len(), 1);
}

#[test]
fn archive_with_escaping_layer_path_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let archive = tampered_layout(tmp.path(), |layout| {
        // Replace the layer with a tar holding "../escape", keeping digests consistent.
        let index_path = layout.join("index.json");
        let mut index: Index = read_json(&index_path);
        let mut manifest: Manifest = read_json(&blob_path(layout, &index.manifests[0].digest));
        let mut header = tar::Header::new_old();
        header.as_old_mut().name[..9].copy_from_slice(b"../escape");
        header.set_entry_type(tar::EntryType::Regular);
        header.set_size(0);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        let mut layer = header.as_bytes().to_vec();
        layer.extend([0u8; 1024]);
        let mut config: ConfigFile = read_json(&blob_path(layout, &manifest.config.digest));
        config.rootfs.diff_ids[0] = sha(&layer);
        let config_bytes = serde_json::to_vec(&config).expect("config");
        manifest.config.digest = sha(&config_bytes);
        manifest.config.size = config_bytes.len() as u64;
        fs::write(blob_path(layout, &manifest.config.digest), &config_bytes).expect("write config");
        manifest.layers[0].media_type = rk_image::spec::OCI_LAYER_TAR.into();
        manifest.layers[0].digest = sha(&layer);
        manifest.layers[0].size = layer.len() as u64;
        fs::write(blob_path(layout, &manifest.layers[0].digest), &layer).expect("write layer");
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest");
        index.manifests[0].digest = sha(&manifest_bytes);
        index.manifests[0].size = manifest_bytes.len() as u64;
        fs::write(blob_path(layout, &index.manifests[0].digest), &manifest_bytes).expect("write manifest");
        fs::write(&index_path, serde_json::to_vec(&index).expect("index")).expect("write index");
    });
    let root = tmp.path().join("store");
    let store = ImageStore::open(&root).expect("open");
    let err = store
        .import_archive(&archive)
        .expect_err("escaping path must fail");
    assert!(matches!(err, ImageError::UnsafePath { .. }), "{err}");
    assert!(!root.join("escape").exists() && !root.join("tmp/escape").exists());
    assert_store_clean(&root);
}

/// The node agent shares one store between tasks and spawns pulls: the store must be
/// `Send + Sync` and the pull future `Send`.
#[test]
fn store_and_pull_future_are_send() {
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    fn assert_send<T: Send>(_: &T) {}
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = ImageStore::open(tmp.path()).expect("open");
    assert_send_sync(&store);
    let opts = rk_image::PullOptions::default();
    let pull = store.pull("busybox", &opts);
    assert_send(&pull);
}
