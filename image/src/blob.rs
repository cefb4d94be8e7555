//! Writing content-addressed blobs: hashed as they are written, verified, then renamed into
//! place, so `blobs/sha256/<hex>` only ever holds complete, correct content.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

use crate::ImageError;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique name for a temporary file or directory of this process.
pub(crate) fn temp_name(prefix: &str) -> String {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The sha256 digest of `bytes` as "sha256:<hex>".
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A blob being written to a temporary file; removed on drop unless committed.
pub(crate) struct BlobWriter {
    file: Option<fs::File>,
    temp: PathBuf,
    hasher: Sha256,
    written: u64,
}

impl BlobWriter {
    pub(crate) fn create(temp_dir: &Path) -> Result<BlobWriter, ImageError> {
        let temp = temp_dir.join(temp_name("blob"));
        let file = fs::File::create(&temp).map_err(ImageError::io("create temporary blob", &temp))?;
        Ok(BlobWriter {
            file: Some(file),
            temp,
            hasher: Sha256::new(),
            written: 0,
        })
    }

    pub(crate) fn write(&mut self, data: &[u8]) -> Result<(), ImageError> {
        self.hasher.update(data);
        self.written += data.len() as u64;
        let temp = &self.temp;
        match self.file.as_mut() {
            Some(file) => file
                .write_all(data)
                .map_err(ImageError::io("write temporary blob", temp)),
            None => Err(ImageError::io("write temporary blob", temp)(io::Error::other(
                "already closed",
            ))),
        }
    }

    /// Copies all of `reader` into the blob.
    pub(crate) fn copy_from(&mut self, mut reader: impl Read, source: &Path) -> Result<(), ImageError> {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf).map_err(ImageError::io("read", source))?;
            if n == 0 {
                return Ok(());
            }
            self.write(&buf[..n])?;
        }
    }

    pub(crate) fn written(&self) -> u64 {
        self.written
    }

    /// Verifies the content against `expected` (digest, and size when known), makes it
    /// durable and moves it to `blobs_dir/<hex>`. Returns the digest.
    pub(crate) fn commit(
        mut self,
        blobs_dir: &Path,
        expected: Option<&str>,
        expected_size: Option<u64>,
    ) -> Result<String, ImageError> {
        let actual = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        if let Some(expected) = expected {
            if expected != actual {
                return Err(ImageError::DigestMismatch {
                    what: format!("blob {expected}"),
                    expected: expected.to_string(),
                    actual,
                });
            }
        }
        if let Some(size) = expected_size {
            if size != self.written {
                return Err(ImageError::SizeMismatch {
                    digest: actual,
                    expected: size,
                    actual: self.written,
                });
            }
        }
        if let Some(file) = self.file.take() {
            file.sync_all()
                .map_err(ImageError::io("sync temporary blob", &self.temp))?;
        }
        let hex = &actual["sha256:".len()..];
        let dest = blobs_dir.join(hex);
        fs::rename(&self.temp, &dest).map_err(ImageError::io("move blob into place", &dest))?;
        sync_dir(blobs_dir)?;
        Ok(actual)
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // Committed blobs were renamed away; anything left here is a failed or abandoned write.
        let _ = fs::remove_file(&self.temp);
    }
}

/// Makes a rename or creation in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), ImageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ImageError::io("sync directory", dir))
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, fsync, rename,
/// fsync of the directory.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ImageError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let temp = dir.join(temp_name(".tmp-state"));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(ImageError::io("write", path)(e));
    }
    sync_dir(dir)
}
