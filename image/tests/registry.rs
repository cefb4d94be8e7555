//! Pull tests against a real registry: Debian's `docker-registry` (CNCF distribution 2.8) on
//! a free loopback port, with its storage in a tempdir. Images are pushed with
//! `rk_image::testing::push_to_registry`, so no other tool is needed.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{busybox_config, busybox_dir, files_dir};
use rk_image::{testing, ImageConfig, ImageError, ImageStore, Platform, PullOptions, RegistryAuth};

fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A `docker-registry serve` process, killed on drop.
struct Registry {
    child: Child,
    addr: String,
    storage: PathBuf,
}

impl Registry {
    fn start(dir: &Path, htpasswd: Option<&Path>) -> Registry {
        let binary = "docker-registry";
        assert!(
            Command::new("sh")
                .arg("-c")
                .arg(format!("command -v {binary}"))
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success()),
            "the registry tests need Debian's docker-registry package: apt-get install -y docker-registry"
        );
        let storage = dir.join("registry-storage");
        fs::create_dir_all(&storage).expect("storage dir");
        let auth = htpasswd.map_or(String::new(), |p| {
            format!(
                "auth:\n  htpasswd:\n    realm: rk-test\n    path: {}\n",
                p.display()
            )
        });
        // The port is picked free and then bound by the registry; a rare collision with a
        // parallel test is retried with a new port.
        for _ in 0..5 {
            let addr = format!("127.0.0.1:{}", free_port());
            let config = dir.join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    \
                     rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: rk-test-secret\n{auth}",
                    storage.display()
                ),
            )
            .expect("write config");
            let child = Command::new(binary)
                .arg("serve")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start docker-registry");
            let mut registry = Registry {
                child,
                addr,
                storage: storage.clone(),
            };
            if registry.wait_ready() {
                return registry;
            }
        }
        panic!("docker-registry did not start");
    }

    /// Waits until GET /v2/ answers (200, or 401 when auth is on) or the process exits.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut stream) = TcpStream::connect(&self.addr) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let request = format!(
                    "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                let mut answer = String::new();
                let answered = stream.write_all(request.as_bytes()).is_ok()
                    && stream.read_to_string(&mut answer).is_ok();
                if answered && (answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.1 401")) {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Deletes the stored content of every blob except manifests, so any later blob download
    /// from this registry fails.
    fn delete_blob_data(&self, keep: &[&str]) -> usize {
        let mut removed = 0;
        let blobs = self.storage.join("docker/registry/v2/blobs/sha256");
        for prefix in fs::read_dir(&blobs).expect("blobs dir") {
            for blob in fs::read_dir(prefix.expect("prefix").path()).expect("prefix dir") {
                let blob = blob.expect("blob");
                let hex = blob.file_name().to_string_lossy().into_owned();
                if !keep.iter().any(|k| k.ends_with(&hex)) {
                    fs::remove_file(blob.path().join("data")).expect("remove blob data");
                    removed += 1;
                }
            }
        }
        removed
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn insecure(registry: &Registry) -> PullOptions {
    PullOptions {
        insecure_registries: vec![registry.addr.clone()],
        ..PullOptions::default()
    }
}

#[tokio::test]
async fn push_then_pull_over_plain_http() {
    init_tls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(tmp.path(), None);
    let rootfs = busybox_dir(tmp.path());
    let app = files_dir(tmp.path(), "app", &[("srv/index.html", "<h1>hi</h1>\n")]);
    let layout = tmp.path().join("layout");
    let id = testing::write_oci_layout(&layout, "busybox:1.36", &[&rootfs, &app], &busybox_config())
        .expect("layout");
    let pushed = testing::push_to_registry(&registry.addr, "library/busybox", "1.36", &layout, None)
        .await
        .expect("push");

    let store = ImageStore::open(&tmp.path().join("store")).expect("open");
    let reference = format!("{}/library/busybox:1.36", registry.addr);
    let image = store.pull(&reference, &insecure(&registry)).await.expect("pull");
    assert_eq!(image.id, id);
    assert_eq!(image.references, vec![reference.clone()]);
    assert_eq!(
        image.repo_digests,
        vec![format!("{}/library/busybox@{pushed}", registry.addr)]
    );
    assert_eq!(image.config, busybox_config());
    assert_eq!(image.layers.len(), 2);
    assert!(image.layers[0].join("bin/busybox").is_file());
    assert_eq!(
        fs::read_to_string(image.layers[1].join("srv/index.html")).expect("file"),
        "<h1>hi</h1>\n"
    );
    assert_eq!(store.blobs_downloaded(), 3, "config and two layers");
    assert_eq!(
        store.get(&reference).expect("get").map(|i| i.id),
        Some(id.clone())
    );
    assert_eq!(
        store
            .get(&format!("{}/library/busybox@{pushed}", registry.addr))
            .expect("get by digest")
            .map(|i| i.id),
        Some(id.clone())
    );

    // With the registry's layer and config data gone, a second pull still works: it fetches
    // the manifest only.
    assert_eq!(registry.delete_blob_data(&[&pushed]), 3);
    let again = store
        .pull(&reference, &insecure(&registry))
        .await
        .expect("second pull");
    assert_eq!(again.id, id);
    assert_eq!(store.blobs_downloaded(), 3, "no blob downloaded again");

    // A pull by digest works the same way.
    let by_digest = format!("{}/library/busybox@{pushed}", registry.addr);
    assert_eq!(
        store
            .pull(&by_digest, &insecure(&registry))
            .await
            .expect("pull by digest")
            .id,
        id
    );

    // Unknown tags and repositories are NotFound, not a generic failure.
    let missing = store
        .pull(
            &format!("{}/library/busybox:nope", registry.addr),
            &insecure(&registry),
        )
        .await;
    assert!(matches!(missing, Err(ImageError::NotFound { .. })), "{missing:?}");
    let missing = store
        .pull(&format!("{}/nothing/here:1", registry.addr), &insecure(&registry))
        .await;
    assert!(matches!(missing, Err(ImageError::NotFound { .. })), "{missing:?}");
}

#[tokio::test]
async fn plain_http_registry_not_listed_insecure_fails_clearly() {
    init_tls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(tmp.path(), None);
    let store = ImageStore::open(&tmp.path().join("store")).expect("open");
    let err = store
        .pull(
            &format!("{}/library/busybox:1", registry.addr),
            &PullOptions::default(),
        )
        .await
        .expect_err("HTTPS to a plain-HTTP registry must fail");
    let message = err.to_string();
    assert!(matches!(err, ImageError::Network { .. }), "{message}");
    assert!(
        message.contains("insecure_registries") && message.contains("HTTPS"),
        "{message}"
    );

    // Nothing listens here: a network error too, retryable.
    let closed = format!("127.0.0.1:{}", free_port());
    let err = store
        .pull(
            &format!("{closed}/x:1"),
            &PullOptions {
                insecure_registries: vec![closed.clone()],
                ..Default::default()
            },
        )
        .await
        .expect_err("closed port");
    assert!(
        matches!(err, ImageError::Network { .. }) && err.is_transient(),
        "{err}"
    );
}

#[tokio::test]
async fn index_selects_the_requested_platform() {
    init_tls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let registry = Registry::start(tmp.path(), None);
    let layout = tmp.path().join("layout");
    let mut images = Vec::new();
    for arch in ["amd64", "arm64"] {
        let layer = files_dir(tmp.path(), arch, &[("arch", arch)]);
        let config = ImageConfig {
            env: vec![format!("ARCH={arch}")],
            ..ImageConfig::default()
        };
        images.push(
            testing::write_oci_image(&layout, None, &[&layer], &config, &Platform::new("linux", arch))
                .expect("image"),
        );
    }
    testing::write_oci_index(&layout, "multi:1", &images).expect("index");
    let index_digest = testing::push_to_registry(&registry.addr, "multi", "1", &layout, None)
        .await
        .expect("push");

    let reference = format!("{}/multi:1", registry.addr);
    for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
        let store = ImageStore::open(&tmp.path().join(format!("store-{arch}"))).expect("open");
        let opts = PullOptions {
            platform: Platform::new("linux", arch),
            ..insecure(&registry)
        };
        let image = store.pull(&reference, &opts).await.expect("pull");
        assert_eq!(image.id, images[i].id, "{arch}");
        assert_eq!(image.config.env, vec![format!("ARCH={arch}")]);
        assert_eq!(
            fs::read_to_string(image.layers[0].join("arch")).expect("arch file"),
            *arch
        );
        // The reference records the index digest, which is what name@digest refers to.
        assert_eq!(
            image.repo_digests,
            vec![format!("{}/multi@{index_digest}", registry.addr)]
        );
    }
    let store = ImageStore::open(&tmp.path().join("store-s390x")).expect("open");
    let opts = PullOptions {
        platform: Platform::new("linux", "s390x"),
        ..insecure(&registry)
    };
    let err = store.pull(&reference, &opts).await.expect_err("no such platform");
    assert!(matches!(err, ImageError::NoMatchingPlatform { .. }), "{err}");
    assert!(
        err.to_string().contains("linux/amd64") && err.to_string().contains("linux/arm64"),
        "{err}"
    );
}

#[tokio::test]
async fn basic_auth_with_htpasswd() {
    init_tls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let hash = bcrypt::hash("s3cret", 5).expect("bcrypt");
    let htpasswd = tmp.path().join("htpasswd");
    fs::write(&htpasswd, format!("alice:{hash}\n")).expect("htpasswd");
    let registry = Registry::start(tmp.path(), Some(&htpasswd));
    let good = RegistryAuth {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    let bad = RegistryAuth {
        username: "alice".into(),
        password: "wrong".into(),
    };

    let layer = files_dir(tmp.path(), "layer", &[("secret.txt", "classified\n")]);
    let layout = tmp.path().join("layout");
    let id =
        testing::write_oci_layout(&layout, "private:1", &[&layer], &ImageConfig::default()).expect("layout");
    testing::push_to_registry(&registry.addr, "team/private", "1", &layout, Some(&good))
        .await
        .expect("push");

    let store = ImageStore::open(&tmp.path().join("store")).expect("open");
    let reference = format!("{}/team/private:1", registry.addr);
    let err = store
        .pull(&reference, &insecure(&registry))
        .await
        .expect_err("no credentials");
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    let err = store
        .pull(
            &reference,
            &PullOptions {
                auth: Some(bad),
                ..insecure(&registry)
            },
        )
        .await
        .expect_err("wrong password");
    assert!(
        matches!(err, ImageError::Unauthorized { .. }) && !err.is_transient(),
        "{err}"
    );
    assert!(
        !err.to_string().contains("wrong"),
        "the password never appears in errors: {err}"
    );
    let image = store
        .pull(
            &reference,
            &PullOptions {
                auth: Some(good),
                ..insecure(&registry)
            },
        )
        .await
        .expect("pull");
    assert_eq!(image.id, id);
    assert_eq!(
        fs::read_to_string(image.layers[0].join("secret.txt")).expect("file"),
        "classified\n"
    );
}

/// A minimal registry that only speaks the bearer-token handshake: the manifest endpoint
/// demands a token, the token endpoint wants alice's basic credentials and the scope the
/// challenge named, and an authorized manifest request gets MANIFEST_UNKNOWN.
fn start_token_registry() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let realm = format!("http://{addr}/token");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let request = String::from_utf8_lossy(&request).into_owned();
            let target = request.split_whitespace().nth(1).unwrap_or("").to_string();
            let authorization = request
                .lines()
                .find_map(|l| {
                    l.strip_prefix("authorization: ")
                        .or_else(|| l.strip_prefix("Authorization: "))
                })
                .unwrap_or("")
                .trim()
                .to_string();
            let alice = format!("Basic {}", base64_encode("alice:s3cret"));
            let (status, extra, body) = if target.starts_with("/token?") {
                if !target.contains("service=mock")
                    || !target.contains("scope=repository%3Amock%2Frepo%3Apull")
                {
                    ("400 Bad Request", String::new(), "{}".to_string())
                } else if authorization == alice {
                    (
                        "200 OK",
                        String::new(),
                        r#"{"token":"tok-1","expires_in":300}"#.to_string(),
                    )
                } else {
                    (
                        "401 Unauthorized",
                        String::new(),
                        r#"{"details":"bad credentials"}"#.to_string(),
                    )
                }
            } else if authorization == "Bearer tok-1" {
                (
                    "404 Not Found",
                    String::new(),
                    r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.to_string(),
                )
            } else {
                (
                    "401 Unauthorized",
                    format!(
                        "WWW-Authenticate: Bearer realm=\"{realm}\",service=\"mock\",scope=\"repository:mock/repo:pull\"\r\n"
                    ),
                    r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_string(),
                )
            };
            let response = format!(
                "HTTP/1.1 {status}\r\n{extra}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes());
        }
    });
    addr
}

fn base64_encode(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn bearer_token_challenge() {
    init_tls();
    let tmp = tempfile::tempdir().expect("tempdir");
    let addr = start_token_registry();
    let store = ImageStore::open(&tmp.path().join("store")).expect("open");
    let reference = format!("{addr}/mock/repo:1");
    let opts = |auth: Option<RegistryAuth>| PullOptions {
        insecure_registries: vec![addr.clone()],
        auth,
        ..Default::default()
    };

    let good = RegistryAuth {
        username: "alice".into(),
        password: "s3cret".into(),
    };
    let err = store
        .pull(&reference, &opts(Some(good)))
        .await
        .expect_err("the mock has no manifests");
    assert!(
        matches!(err, ImageError::NotFound { .. }),
        "the token was fetched and accepted: {err}"
    );

    let bad = RegistryAuth {
        username: "alice".into(),
        password: "nope".into(),
    };
    let err = store
        .pull(&reference, &opts(Some(bad)))
        .await
        .expect_err("bad credentials");
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
    let err = store.pull(&reference, &opts(None)).await.expect_err("anonymous");
    assert!(matches!(err, ImageError::Unauthorized { .. }), "{err}");
}
