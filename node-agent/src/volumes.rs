//! Pod volumes on the node, prepared before any container starts (the
//! "attach" phase) and bind-mounted into each container that names them
//! (the "mount" phase, done by the runtime).
//!
//! Supported: emptyDir (a directory under the Pod's dir, or a tmpfs-backed
//! one for `medium: Memory` is treated as a plain directory), hostPath,
//! configMap and secret (projected as files, written atomically), and
//! downwardAPI items for labels, annotations, name and namespace.

use crate::podspec::{ConfigError, Refs};
use k8s_openapi::api::core::v1::{Container, Pod, Volume};
use rk_runtime::Mount;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Host paths of the Pod's volumes, by volume name.
pub type Prepared = BTreeMap<String, PathBuf>;

fn write_files(dir: &Path, files: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    let io = |what: &str, p: &Path, e: std::io::Error| ConfigError(format!("{what} {}: {e}", p.display()));
    // Write into a fresh directory and swap it in, so a container never
    // sees a half-updated set of keys.
    let staging = dir.with_extension("new");
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir_all(&staging).map_err(|e| io("create", &staging, e))?;
    for (name, content) in files {
        if name.contains("..") || name.starts_with('/') {
            return Err(ConfigError(format!("invalid key path \"{name}\"")));
        }
        let p = staging.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(|e| io("create", parent, e))?;
        }
        std::fs::write(&p, content).map_err(|e| io("write", &p, e))?;
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staging, dir).map_err(|e| io("rename", dir, e))?;
    Ok(())
}

fn select_items(
    data: &BTreeMap<String, String>,
    items: Option<&Vec<k8s_openapi::api::core::v1::KeyToPath>>,
    what: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, ConfigError> {
    match items {
        None => Ok(data.clone()),
        Some(items) => items
            .iter()
            .map(|i| {
                data.get(&i.key)
                    .map(|v| (i.path.clone(), v.clone()))
                    .ok_or_else(|| ConfigError(format!("couldn't find key {} in {what} {name}", i.key)))
            })
            .collect(),
    }
}

/// Creates every volume of the Pod under `pod_dir/volumes/`.
pub fn prepare(pod: &Pod, pod_dir: &Path, refs: &Refs) -> Result<Prepared, ConfigError> {
    let mut out = Prepared::new();
    let volumes: &[Volume] = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or(&[]);
    for v in volumes {
        let dir = pod_dir.join("volumes").join(&v.name);
        let mkdir = |d: &Path| {
            std::fs::create_dir_all(d).map_err(|e| ConfigError(format!("create {}: {e}", d.display())))
        };
        if v.empty_dir.is_some() {
            mkdir(&dir)?;
            out.insert(v.name.clone(), dir);
        } else if let Some(h) = &v.host_path {
            let p = PathBuf::from(&h.path);
            match h.type_.as_deref().unwrap_or("") {
                "DirectoryOrCreate" => mkdir(&p)?,
                "Directory" if !p.is_dir() => {
                    return Err(ConfigError(format!(
                        "hostPath type check failed: {} is not a directory",
                        h.path
                    )))
                }
                "File" if !p.is_file() => {
                    return Err(ConfigError(format!(
                        "hostPath type check failed: {} is not a file",
                        h.path
                    )))
                }
                "FileOrCreate" if !p.exists() => {
                    std::fs::write(&p, b"").map_err(|e| ConfigError(format!("create {}: {e}", h.path)))?
                }
                _ => {}
            }
            out.insert(v.name.clone(), p);
        } else if let Some(cm) = &v.config_map {
            match refs.config_maps.get(&cm.name) {
                Some(data) => write_files(
                    &dir,
                    &select_items(data, cm.items.as_ref(), "ConfigMap", &cm.name)?,
                )?,
                None if cm.optional.unwrap_or(false) => mkdir(&dir)?,
                None => return Err(ConfigError(format!("configmap \"{}\" not found", cm.name))),
            }
            out.insert(v.name.clone(), dir);
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            match refs.secrets.get(&name) {
                Some(data) => write_files(&dir, &select_items(data, s.items.as_ref(), "Secret", &name)?)?,
                None if s.optional.unwrap_or(false) => mkdir(&dir)?,
                None => return Err(ConfigError(format!("secret \"{name}\" not found"))),
            }
            out.insert(v.name.clone(), dir);
        } else if let Some(d) = &v.downward_api {
            let mut files = BTreeMap::new();
            for item in d.items.iter().flatten() {
                let Some(f) = &item.field_ref else {
                    return Err(ConfigError(format!(
                        "volume {}: only fieldRef items are supported",
                        v.name
                    )));
                };
                let meta = &pod.metadata;
                let kv = |m: &Option<BTreeMap<String, String>>| {
                    m.iter()
                        .flatten()
                        .map(|(k, v)| format!("{k}=\"{v}\"\n"))
                        .collect::<String>()
                };
                let value = match f.field_path.as_str() {
                    "metadata.name" => meta.name.clone().unwrap_or_default(),
                    "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
                    "metadata.uid" => meta.uid.clone().unwrap_or_default(),
                    "metadata.labels" => kv(&meta.labels),
                    "metadata.annotations" => kv(&meta.annotations),
                    other => {
                        return Err(ConfigError(format!(
                            "unsupported downwardAPI fieldPath \"{other}\""
                        )))
                    }
                };
                files.insert(item.path.clone(), value);
            }
            write_files(&dir, &files)?;
            out.insert(v.name.clone(), dir);
        } else {
            return Err(ConfigError(format!(
                "volume \"{}\": unsupported volume type (rk supports emptyDir, hostPath, configMap, secret, downwardAPI)",
                v.name
            )));
        }
    }
    Ok(out)
}

/// The bind mounts of one container, in the order it lists them.
pub fn mounts(c: &Container, prepared: &Prepared) -> Result<Vec<Mount>, ConfigError> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let base = prepared
            .get(&m.name)
            .ok_or_else(|| ConfigError(format!("volumeMount \"{}\": no volume with that name", m.name)))?;
        let source = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) if sub.contains("..") || sub.starts_with('/') => {
                return Err(ConfigError(format!(
                    "volumeMount \"{}\": invalid subPath \"{sub}\"",
                    m.name
                )))
            }
            Some(sub) => {
                let p = base.join(sub);
                if !p.exists() {
                    std::fs::create_dir_all(&p)
                        .map_err(|e| ConfigError(format!("create {}: {e}", p.display())))?;
                }
                p
            }
            None => base.clone(),
        };
        out.push(Mount {
            source,
            destination: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn volumes_are_prepared_and_mounted() {
        let dir = tempfile::tempdir().expect("tmp");
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {"containers": [], "volumes": [
                {"name": "scratch", "emptyDir": {}},
                {"name": "conf", "configMap": {"name": "cm", "items": [{"key": "k", "path": "sub/file"}]}},
                {"name": "info", "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}
            ]}
        }))
        .expect("pod");
        let refs = Refs {
            config_maps: [("cm".to_string(), [("k".to_string(), "v".to_string())].into())].into(),
            ..Default::default()
        };
        let prepared = prepare(&pod, dir.path(), &refs).expect("prepare");
        assert!(prepared["scratch"].is_dir());
        assert_eq!(
            std::fs::read_to_string(prepared["conf"].join("sub/file")).expect("file"),
            "v"
        );
        assert_eq!(
            std::fs::read_to_string(prepared["info"].join("labels")).expect("file"),
            "a=\"b\"\n"
        );
        let c: Container = serde_json::from_value(json!({"name": "c", "volumeMounts": [
            {"name": "conf", "mountPath": "/etc/conf", "readOnly": true}, {"name": "nope", "mountPath": "/x"}]}))
        .expect("c");
        let err = mounts(&c, &prepared).unwrap_err();
        assert!(err.0.contains("nope"), "{err}");
        let missing = Refs::default();
        assert_eq!(
            prepare(&pod, dir.path(), &missing).unwrap_err().0,
            "configmap \"cm\" not found"
        );
    }
}
