//! Image references in Docker's normalized form.
//!
//! `busybox` means `docker.io/library/busybox:latest`; the first path component is a registry
//! only when it looks like a host (it has a `.` or a `:`, or is `localhost`).

use std::fmt;

use crate::ImageError;

/// The registry that short names resolve to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
const DEFAULT_TAG: &str = "latest";

/// A parsed, normalized image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    /// Registry host, with port when given ("docker.io", "127.0.0.1:5000").
    pub registry: String,
    /// Repository path inside the registry ("library/busybox").
    pub repository: String,
    /// Tag; `None` only when the reference names a digest alone.
    pub tag: Option<String>,
    /// Manifest digest ("sha256:<hex>") when pinned.
    pub digest: Option<String>,
}

impl Reference {
    /// The registry and repository, without tag or digest ("docker.io/library/busybox").
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag or digest to ask the registry for: the digest wins when both are present,
    /// because it pins the content.
    pub fn manifest_reference(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }

    /// The host to talk to: Docker Hub's API lives on a different host than its name.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io"
        } else {
            &self.registry
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for Reference {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        normalize_reference(s)
    }
}

/// Parses `s` and fills in the defaults: registry `docker.io`, the `library/` prefix for
/// official Docker Hub images, and tag `latest` when neither tag nor digest is given.
pub fn normalize_reference(s: &str) -> Result<Reference, ImageError> {
    let bad = |reason: &str| ImageError::InvalidReference {
        reference: s.to_string(),
        reason: reason.to_string(),
    };
    if s.is_empty() {
        return Err(bad("empty reference"));
    }
    if s.len() > 4096 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters, or is too long"));
    }
    let (rest, digest) = match s.split_once('@') {
        Some((rest, digest)) => {
            validate_digest(digest).map_err(|reason| bad(&reason))?;
            (rest, Some(digest.to_string()))
        }
        None => (s, None),
    };
    // The tag is after the last ':' of the last path component; a ':' before the last '/'
    // belongs to the registry's port.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(rest[last_slash + i + 1..].to_string()),
        ),
        None => (rest, None),
    };
    if let Some(tag) = &tag {
        if !valid_tag(tag) {
            return Err(bad("invalid tag (want [A-Za-z0-9_][A-Za-z0-9_.-]{0,127})"));
        }
    }
    let (registry, repository) = match name.split_once('/') {
        Some((first, remainder)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            (first.to_string(), remainder.to_string())
        }
        _ => (DEFAULT_REGISTRY.to_string(), name.to_string()),
    };
    let registry = if registry == "index.docker.io" || registry == "registry-1.docker.io" {
        DEFAULT_REGISTRY.to_string()
    } else {
        registry
    };
    if !valid_registry(&registry) {
        return Err(bad("invalid registry host"));
    }
    let repository = if registry == DEFAULT_REGISTRY && !repository.contains('/') {
        format!("library/{repository}")
    } else {
        repository
    };
    if repository.is_empty() || !repository.split('/').all(valid_path_component) {
        return Err(bad(
            "invalid repository name (lowercase letters, digits and single separators '.', '_', '__', '-' between \
             them, components separated by '/')",
        ));
    }
    let tag = match (tag, &digest) {
        (None, None) => Some(DEFAULT_TAG.to_string()),
        (tag, _) => tag,
    };
    Ok(Reference {
        registry,
        repository,
        tag,
        digest,
    })
}

/// Checks that `digest` is `sha256:` followed by 64 lowercase hex digits, the only
/// algorithm this store speaks.
pub(crate) fn validate_digest(digest: &str) -> Result<(), String> {
    let Some(hex) = digest.strip_prefix("sha256:") else {
        return Err(format!(
            "unsupported digest {digest:?} (only sha256 is supported)"
        ));
    };
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(format!(
            "malformed digest {digest:?} (want sha256:<64 lowercase hex digits>)"
        ));
    }
    Ok(())
}

fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphanumeric() || b == b'_' => {}
        _ => return false,
    }
    tag.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
}

fn valid_registry(registry: &str) -> bool {
    let (host, port) = match registry.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (registry, None),
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !host.starts_with('-');
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    host_ok && port_ok
}

/// One repository path component: `[a-z0-9]+` groups joined by '.', '_', '__' or runs of '-'.
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    if bytes.is_empty() || !is_alnum(bytes[0]) || !is_alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if is_alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalization_table() {
        let cases: &[(&str, &str)] = &[
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1", "docker.io/library/busybox:1"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/library/busybox:1", "docker.io/library/busybox:1"),
            ("user/app:v2", "docker.io/user/app:v2"),
            ("quay.io/coreos/etcd:v3.5", "quay.io/coreos/etcd:v3.5"),
            ("127.0.0.1:5000/x:1", "127.0.0.1:5000/x:1"),
            ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest"),
            ("localhost/a/b", "localhost/a/b:latest"),
            ("localhost:5000/a/b:c", "localhost:5000/a/b:c"),
            ("ghcr.io/a/b-c__d.e/f", "ghcr.io/a/b-c__d.e/f:latest"),
        ];
        for (input, want) in cases {
            let got = normalize_reference(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(got.to_string(), *want, "input {input}");
        }
        let pinned = normalize_reference(&format!("busybox@{D}")).expect("digest reference");
        assert_eq!(pinned.to_string(), format!("docker.io/library/busybox@{D}"));
        assert_eq!(pinned.tag, None);
        assert_eq!(pinned.manifest_reference(), D);
        let both = normalize_reference(&format!("127.0.0.1:5000/x:1@{D}")).expect("tag and digest");
        assert_eq!(both.to_string(), format!("127.0.0.1:5000/x:1@{D}"));
        assert_eq!(both.manifest_reference(), D);
        let short = normalize_reference("busybox").expect("short name");
        assert_eq!(short.api_host(), "registry-1.docker.io");
        assert_eq!(short.name(), "docker.io/library/busybox");
    }

    #[test]
    fn invalid_references() {
        for input in [
            "",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "a//b",
            "busybox@sha256:abc",
            "busybox@md5:0123",
            "a b",
            "/busybox",
            "busybox/",
            "a..b",
            "127.0.0.1:port/x",
        ] {
            assert!(
                normalize_reference(input).is_err(),
                "{input:?} should be rejected"
            );
        }
    }
}
