//! Pulling from an OCI distribution registry (the Docker Registry HTTP API v2).
//!
//! Flow: fetch the manifest by tag or digest (sending every manifest type in `Accept`, or the
//! registry answers 404 for OCI manifests), select the platform from an index, then download
//! the config and the layers that are not already in the store, verifying each blob's sha256
//! while it streams to disk. A 401 answer is met once per challenge: `Bearer` fetches a token
//! from the realm (with the basic credentials when given), `Basic` sends the credentials.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};

use crate::blob::{self, BlobWriter};
use crate::reference::{normalize_reference, validate_digest, Reference};
use crate::spec::{self, Descriptor, Index};
use crate::store::{
    parse_manifest, select_platform, Image, ImageStore, Inner, Pins, Platform, ResolvedManifest,
};
use crate::ImageError;

/// Manifests and indexes are small; anything bigger than this is refused rather than buffered.
const MAX_MANIFEST_BYTES: usize = 8 << 20;
/// Blobs downloaded at once per pull.
const PARALLEL_BLOBS: usize = 3;

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password must never reach a log line.
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl RegistryAuth {
    pub(crate) fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// How to pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registries ("host:port", as in the reference) that are reached over plain HTTP.
    pub insecure_registries: Vec<String>,
    /// Credentials for basic auth, and for the token realm of bearer auth.
    pub auth: Option<RegistryAuth>,
    /// Which image of a multi-platform index to take; the running machine's by default.
    pub platform: Platform,
}

impl ImageStore {
    /// Pulls `reference` from its registry into the store and returns the image.
    pub async fn pull(&self, reference: &str, opts: &PullOptions) -> Result<Image, ImageError> {
        let parsed = normalize_reference(reference)?;
        let session = Session::new(&parsed, opts)?;
        let inner = self.inner.clone();
        let mut pins = Pins::new(&inner);

        let (bytes, digest, served_as) = session.fetch_manifest(parsed.manifest_reference()).await?;
        pins.add(&digest);
        inner.put_blob(&bytes, Some(&digest))?;
        let ref_digest = digest.clone();
        let kind = spec::manifest_kind(&bytes, served_as.as_deref()).ok_or_else(|| {
            ImageError::invalid(
                format!("manifest {digest} of {parsed}"),
                "neither an image manifest nor an index",
            )
        })?;
        let (manifest_digest, manifest_bytes) = if spec::is_index(&kind) {
            let index: Index = serde_json::from_slice(&bytes)
                .map_err(|e| ImageError::invalid(format!("index {digest} of {parsed}"), e))?;
            let chosen = select_platform(&index.manifests, &opts.platform, &parsed.to_string())?;
            validate_digest(&chosen.digest)
                .map_err(|reason| ImageError::invalid(format!("index {digest} of {parsed}"), reason))?;
            tracing::debug!(reference = %parsed, manifest = %chosen.digest, platform = %opts.platform, "selected platform");
            pins.add(&chosen.digest);
            let bytes = if inner.has_blob(&chosen.digest)? {
                inner.read_blob(&chosen.digest)?
            } else {
                let (bytes, _, _) = session.fetch_manifest(&chosen.digest).await?;
                inner.put_blob(&bytes, Some(&chosen.digest))?;
                bytes
            };
            (chosen.digest.clone(), bytes)
        } else {
            (digest, bytes)
        };
        let manifest = parse_manifest(&manifest_bytes, &manifest_digest)?;

        let blobs: Vec<Descriptor> = std::iter::once(manifest.config.clone())
            .chain(manifest.layers.clone())
            .collect();
        for desc in &blobs {
            pins.add(&desc.digest);
        }
        // The futures are built up front: a lazy `map` over borrowed descriptors would make
        // the pull future not `Send` (a higher-ranked lifetime the compiler cannot prove).
        let fetches: Vec<_> = blobs
            .iter()
            .map(|desc| session.fetch_blob(&inner, desc))
            .collect();
        futures::stream::iter(fetches)
            .buffer_unordered(PARALLEL_BLOBS)
            .try_collect::<Vec<()>>()
            .await?;

        let references = vec![(parsed.to_string(), ref_digest)];
        let resolved = ResolvedManifest {
            digest: manifest_digest,
            manifest,
        };
        // Unpacking is blocking disk work; the pins travel along so GC keeps the blobs until
        // the image is recorded.
        tokio::task::spawn_blocking(move || {
            let image = inner.install(&resolved, &references);
            drop(pins);
            image
        })
        .await
        .map_err(|e| ImageError::invalid(format!("unpacking {parsed}"), e))?
    }
}

struct Session {
    client: reqwest::Client,
    base: String,
    secure: bool,
    registry: String,
    repository: String,
    reference: String,
    auth: Option<RegistryAuth>,
    /// The `Authorization` header that the last challenge asked for.
    authorization: Mutex<Option<String>>,
}

impl Session {
    fn new(reference: &Reference, opts: &PullOptions) -> Result<Session, ImageError> {
        let insecure = opts
            .insecure_registries
            .iter()
            .any(|h| h == &reference.registry || h == reference.api_host());
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(Duration::from_secs(15))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("rk-image/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ImageError::Network {
                registry: reference.registry.clone(),
                message: error_chain(&e),
            })?;
        Ok(Session {
            client,
            base: format!(
                "{}://{}",
                if insecure { "http" } else { "https" },
                reference.api_host()
            ),
            secure: !insecure,
            registry: reference.registry.clone(),
            repository: reference.repository.clone(),
            reference: reference.to_string(),
            auth: opts.auth.clone(),
            authorization: Mutex::new(None),
        })
    }

    fn network_error(&self, url: &str, e: reqwest::Error) -> ImageError {
        let hint = if self.secure && (e.is_connect() || e.is_request()) {
            " (the registry was reached over HTTPS with certificate verification; if it serves plain HTTP or \
             a certificate the system does not trust, list it in insecure_registries)"
        } else {
            ""
        };
        ImageError::Network {
            registry: self.registry.clone(),
            message: format!("GET {url}: {}{hint}", error_chain(&e.without_url())),
        }
    }

    fn current_authorization(&self) -> Option<String> {
        self.authorization
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// GETs `url`, answering one authentication challenge if the registry sends one.
    async fn get(&self, url: &str, accept: Option<&str>) -> Result<Response, ImageError> {
        let mut challenged = false;
        loop {
            let mut request = self.client.get(url);
            if let Some(accept) = accept {
                request = request.header(ACCEPT, accept);
            }
            let sent_auth = self.current_authorization();
            if let Some(value) = &sent_auth {
                request = request.header(AUTHORIZATION, value);
            }
            let response = request.send().await.map_err(|e| self.network_error(url, e))?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            if !challenged {
                challenged = true;
                // Another download of this pull may have answered a challenge meanwhile.
                if self.current_authorization() == sent_auth {
                    self.authenticate(response.headers()).await?;
                }
                continue;
            }
            let detail = registry_message(response).await;
            return Err(self.unauthorized(if self.auth.is_some() {
                format!("credentials rejected: {detail}")
            } else {
                format!("no credentials given: {detail}")
            }));
        }
    }

    fn unauthorized(&self, message: String) -> ImageError {
        ImageError::Unauthorized {
            registry: self.registry.clone(),
            reference: self.reference.clone(),
            message,
        }
    }

    /// Answers a `WWW-Authenticate` challenge by setting the header later requests send.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), ImageError> {
        let challenge = headers
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_string();
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge.as_str(), ""));
        let params = parse_challenge_params(params);
        if scheme.eq_ignore_ascii_case("basic") {
            let Some(auth) = &self.auth else {
                return Err(self.unauthorized(
                    "the registry requires basic authentication and no credentials were given".into(),
                ));
            };
            *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(auth.basic_header());
            return Ok(());
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(self.unauthorized(format!("unsupported authentication challenge {challenge:?}")));
        }
        let Some(realm) = params.iter().find(|(k, _)| k == "realm").map(|(_, v)| v.clone()) else {
            return Err(self.unauthorized(format!("bearer challenge without realm: {challenge:?}")));
        };
        let mut query: Vec<(String, String)> = Vec::new();
        if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
            query.push(("service".into(), service.clone()));
        }
        let scope = params
            .iter()
            .find(|(k, _)| k == "scope")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
        query.push(("scope".into(), scope));
        let mut request = self.client.get(&realm).query(&query);
        if let Some(auth) = &self.auth {
            request = request.header(AUTHORIZATION, auth.basic_header());
        }
        let response = request.send().await.map_err(|e| self.network_error(&realm, e))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let detail = registry_message(response).await;
            return Err(self.unauthorized(format!("token service {realm} refused: {status} {detail}")));
        }
        if !status.is_success() {
            let detail = registry_message(response).await;
            return Err(self.registry_error(format!("token service {realm} answered {status}: {detail}")));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| self.network_error(&realm, e))?;
        let token: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            self.registry_error(format!("token service {realm} sent an unreadable answer: {e}"))
        })?;
        let Some(token) = token.token.or(token.access_token).filter(|t| !t.is_empty()) else {
            return Err(self.registry_error(format!("token service {realm} sent no token")));
        };
        *self.authorization.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("Bearer {token}"));
        Ok(())
    }

    fn registry_error(&self, message: String) -> ImageError {
        ImageError::Registry {
            registry: self.registry.clone(),
            reference: self.reference.clone(),
            message,
        }
    }

    /// Fetches a manifest or index by tag or digest; returns its bytes, its verified digest and
    /// the media type it was served as.
    async fn fetch_manifest(
        &self,
        tag_or_digest: &str,
    ) -> Result<(Vec<u8>, String, Option<String>), ImageError> {
        let url = format!("{}/v2/{}/manifests/{}", self.base, self.repository, tag_or_digest);
        let response = self.get(&url, Some(spec::MANIFEST_ACCEPT)).await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            return Err(ImageError::NotFound {
                reference: self.reference.clone(),
            });
        }
        if status == StatusCode::FORBIDDEN {
            let detail = registry_message(response).await;
            return Err(self.unauthorized(format!("access denied: {detail}")));
        }
        if !status.is_success() {
            let detail = registry_message(response).await;
            return Err(self.registry_error(format!("GET {url} answered {status}: {detail}")));
        }
        let served_as = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.network_error(&url, e))?;
            if bytes.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(self.registry_error(format!(
                    "manifest {tag_or_digest} is larger than {MAX_MANIFEST_BYTES} bytes"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let actual = blob::digest_of(&bytes);
        // A digest reference pins the content; for a tag the registry's own header must agree.
        let expected = if tag_or_digest.starts_with("sha256:") {
            Some(tag_or_digest.to_string())
        } else {
            header_digest.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(expected) = expected {
            if expected != actual {
                return Err(ImageError::DigestMismatch {
                    what: format!("manifest {tag_or_digest} of {}", self.reference),
                    expected,
                    actual,
                });
            }
        }
        Ok((bytes, actual, served_as))
    }

    /// Downloads one blob into the store unless it is already there, verifying its digest
    /// and size while it streams.
    async fn fetch_blob(&self, inner: &Arc<Inner>, desc: &Descriptor) -> Result<(), ImageError> {
        if inner.has_blob(&desc.digest)? {
            return Ok(());
        }
        let url = format!("{}/v2/{}/blobs/{}", self.base, self.repository, desc.digest);
        let response = self.get(&url, None).await?;
        let status = response.status();
        if !status.is_success() {
            let detail = registry_message(response).await;
            return Err(self.registry_error(format!("blob {} answered {status}: {detail}", desc.digest)));
        }
        let mut writer = BlobWriter::create(&inner.tmp_dir)?;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| self.network_error(&url, e))?;
            if writer.written() + chunk.len() as u64 > desc.size {
                return Err(ImageError::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected: desc.size,
                    actual: writer.written() + chunk.len() as u64,
                });
            }
            writer.write(&chunk)?;
        }
        writer.commit(&inner.blobs_dir, Some(&desc.digest), Some(desc.size))?;
        inner.blob_downloads.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(reference = %self.reference, blob = %desc.digest, size = desc.size, "downloaded blob");
        Ok(())
    }
}

/// The registry's error codes and messages from an error response, or its status text.
async fn registry_message(response: Response) -> String {
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(serde::Deserialize)]
    struct ErrorEntry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(errors) = serde_json::from_slice::<Errors>(&body) {
        if !errors.errors.is_empty() {
            return errors
                .errors
                .iter()
                .map(|e| format!("{}: {}", e.code, e.message))
                .collect::<Vec<_>>()
                .join("; ");
        }
    }
    let text = String::from_utf8_lossy(&body);
    let text = text.trim();
    if text.is_empty() {
        status.to_string()
    } else {
        text.chars().take(300).collect()
    }
}

/// The error and its sources, joined: reqwest's top-level message alone hides the cause
/// ("error sending request"), which is what a user needs (connection refused, TLS failure).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// Parses `key="value",key=value` challenge parameters (quoted values may hold commas).
fn parse_challenge_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remainder) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (quoted[..end].to_string(), &quoted[end + 1..]),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (after[..end].trim().to_string(), &after[end..]),
                None => (after.trim().to_string(), ""),
            }
        };
        out.push((key, value));
        rest = remainder.trim_start().trim_start_matches(',').trim_start();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_params() {
        let p = parse_challenge_params(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(
            p,
            vec![
                ("realm".to_string(), "https://auth.docker.io/token".to_string()),
                ("service".to_string(), "registry.docker.io".to_string()),
                (
                    "scope".to_string(),
                    "repository:library/busybox:pull,push".to_string()
                ),
            ]
        );
        let p = parse_challenge_params("realm=x, error=invalid_token");
        assert_eq!(
            p,
            vec![
                ("realm".into(), "x".into()),
                ("error".into(), "invalid_token".into())
            ]
        );
    }
}
