//! The client configuration file (`admin.conf`): a kubeconfig-shaped YAML
//! document naming the servers, the cluster CA and the client identity.
//!
//! ```yaml
//! apiVersion: v1
//! kind: Config
//! clusters:
//! - name: rk
//!   cluster:
//!     server: https://127.0.0.1:7443
//!     servers: [https://127.0.0.1:7443, https://127.0.0.1:7444]
//!     certificate-authority-data: <base64 PEM>
//! users:
//! - name: admin
//!   user:
//!     client-certificate-data: <base64 PEM>
//!     client-key-data: <base64 PEM>
//! contexts:
//! - name: rk
//!   context: {cluster: rk, user: admin}
//! current-context: rk
//! ```

use base64::Engine;
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct ConfigFile {
    #[serde(rename = "apiVersion", default)]
    pub api_version: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub clusters: Vec<NamedCluster>,
    #[serde(default)]
    pub users: Vec<NamedUser>,
    #[serde(default)]
    pub contexts: Vec<NamedContext>,
    #[serde(default)]
    pub current_context: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedCluster {
    pub name: String,
    pub cluster: ClusterEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct ClusterEntry {
    #[serde(default)]
    pub server: String,
    /// Every replica's address; the client fails over among them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    #[serde(default)]
    pub certificate_authority_data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedUser {
    pub name: String,
    pub user: UserEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub struct UserEntry {
    #[serde(default)]
    pub client_certificate_data: String,
    #[serde(default)]
    pub client_key_data: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedContext {
    pub name: String,
    pub context: ContextEntry,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ContextEntry {
    pub cluster: String,
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("error: the config file \"{path}\" could not be read: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("error: the config file \"{path}\" is not valid: {detail}")]
    Parse { path: String, detail: String },
    #[error("error: the config file \"{path}\": {detail}")]
    Incomplete { path: String, detail: String },
}

/// What a client needs to connect, resolved from the current context.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub servers: Vec<String>,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub namespace: String,
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

fn unb64(s: &str) -> Result<String, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

impl ConfigFile {
    /// A single-cluster, single-user config.
    pub fn new(servers: &[String], ca_pem: &str, cert_pem: &str, key_pem: &str) -> Self {
        ConfigFile {
            api_version: "v1".into(),
            kind: "Config".into(),
            clusters: vec![NamedCluster {
                name: "rk".into(),
                cluster: ClusterEntry {
                    server: servers.first().cloned().unwrap_or_default(),
                    servers: servers.to_vec(),
                    certificate_authority_data: b64(ca_pem),
                },
            }],
            users: vec![NamedUser {
                name: "admin".into(),
                user: UserEntry {
                    client_certificate_data: b64(cert_pem),
                    client_key_data: b64(key_pem),
                },
            }],
            contexts: vec![NamedContext {
                name: "rk".into(),
                context: ContextEntry {
                    cluster: "rk".into(),
                    user: "admin".into(),
                    namespace: String::new(),
                },
            }],
            current_context: "rk".into(),
        }
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
            path: p,
            detail: e.to_string(),
        })
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }

    /// Resolves the current context (or `context` if given).
    pub fn resolve(&self, path: &Path, context: Option<&str>) -> Result<Resolved, ConfigError> {
        let p = path.display().to_string();
        let incomplete = |detail: String| ConfigError::Incomplete {
            path: p.clone(),
            detail,
        };
        let want = context.unwrap_or(&self.current_context);
        let ctx = self
            .contexts
            .iter()
            .find(|c| c.name == want)
            .map(|c| c.context.clone())
            .or_else(|| {
                // A file with one cluster and one user needs no context.
                (self.contexts.is_empty() && self.clusters.len() == 1 && self.users.len() == 1).then(|| {
                    ContextEntry {
                        cluster: self.clusters[0].name.clone(),
                        user: self.users[0].name.clone(),
                        namespace: String::new(),
                    }
                })
            })
            .ok_or_else(|| incomplete(format!("context \"{want}\" does not exist")))?;
        let cluster = self
            .clusters
            .iter()
            .find(|c| c.name == ctx.cluster)
            .ok_or_else(|| incomplete(format!("cluster \"{}\" does not exist", ctx.cluster)))?;
        let user = self
            .users
            .iter()
            .find(|u| u.name == ctx.user)
            .ok_or_else(|| incomplete(format!("user \"{}\" does not exist", ctx.user)))?;
        let mut servers = cluster.cluster.servers.clone();
        if servers.is_empty() && !cluster.cluster.server.is_empty() {
            servers.push(cluster.cluster.server.clone());
        }
        if servers.is_empty() {
            return Err(incomplete(format!("cluster \"{}\" has no server", ctx.cluster)));
        }
        let field = |name: &str, v: &str| unb64(v).map_err(|e| incomplete(format!("{name}: {e}")));
        Ok(Resolved {
            servers,
            ca_pem: field(
                "certificate-authority-data",
                &cluster.cluster.certificate_authority_data,
            )?,
            cert_pem: field("client-certificate-data", &user.user.client_certificate_data)?,
            key_pem: field("client-key-data", &user.user.client_key_data)?,
            namespace: if ctx.namespace.is_empty() {
                "default".into()
            } else {
                ctx.namespace
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_yaml() {
        let c = ConfigFile::new(&["https://127.0.0.1:1".into()], "CA", "CERT", "KEY");
        let text = c.to_yaml();
        let back: ConfigFile = serde_saphyr::from_str(&text).expect("parse");
        let r = back.resolve(Path::new("x"), None).expect("resolve");
        assert_eq!(r.servers, vec!["https://127.0.0.1:1".to_string()]);
        assert_eq!(
            (r.ca_pem.as_str(), r.cert_pem.as_str(), r.key_pem.as_str()),
            ("CA", "CERT", "KEY")
        );
        assert_eq!(r.namespace, "default");
    }

    #[test]
    fn missing_context_is_named() {
        let c = ConfigFile::new(&["https://h:1".into()], "CA", "C", "K");
        let err = c.resolve(Path::new("f"), Some("other")).unwrap_err();
        assert!(
            err.to_string().contains("context \"other\" does not exist"),
            "{err}"
        );
    }
}
