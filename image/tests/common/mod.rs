//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use rk_image::testing;
use rk_image::ImageConfig;

pub fn busybox_config() -> ImageConfig {
    ImageConfig {
        cmd: vec!["/bin/sh".into()],
        env: vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()],
        working_dir: "/".into(),
        exposed_ports: vec!["8080/tcp".into()],
        ..ImageConfig::default()
    }
}

/// A busybox rootfs directory under `base`.
pub fn busybox_dir(base: &Path) -> PathBuf {
    let dir = base.join("busybox-rootfs");
    fs::create_dir_all(&dir).expect("create rootfs dir");
    testing::busybox_rootfs(&dir).expect("build busybox rootfs");
    dir
}

/// A directory with the given files (path, content) under `base/name`.
pub fn files_dir(base: &Path, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = base.join(name);
    fs::create_dir_all(&dir).expect("create layer dir");
    for (path, content) in files {
        let full = dir.join(path);
        fs::create_dir_all(full.parent().expect("parent")).expect("create parent");
        fs::write(full, content).expect("write file");
    }
    dir
}
