//! Pure translation of a Pod's containers into what the runtime runs:
//! argv (Kubernetes' command/args over the image's ENTRYPOINT/CMD), the
//! environment (literals, ConfigMap and Secret keys, the downward API,
//! `$(VAR)` references), the user, and cgroup resources.

use k8s_openapi::api::core::v1::{Container, Pod, SecurityContext};
use rk_image::ImageConfig;
use rk_runtime::Resources;
use std::collections::BTreeMap;

/// Why a container cannot be configured; shown as the waiting reason
/// `CreateContainerConfigError` with this message, as kubelet does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The ConfigMaps and Secrets a Pod refers to, fetched before the pure
/// translation runs. Secret values are already decoded.
#[derive(Debug, Default, Clone)]
pub struct Refs {
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
    pub secrets: BTreeMap<String, BTreeMap<String, String>>,
}

/// Kubernetes' `$(VAR)` expansion: defined names are replaced, `$$` is a
/// literal `$`, anything else stays as written.
pub fn expand(s: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' && i + 1 < bytes.len() {
            if bytes[i + 1] == b'$' {
                out.push('$');
                i += 2;
                continue;
            }
            if bytes[i + 1] == b'(' {
                if let Some(end) = s[i + 2..].find(')') {
                    let name = &s[i + 2..i + 2 + end];
                    if let Some(v) = vars.get(name) {
                        out.push_str(v);
                        i += 3 + end;
                        continue;
                    }
                }
            }
        }
        let ch = s[i..].chars().next().unwrap_or('\u{fffd}');
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// The argv: `command` replaces ENTRYPOINT, `args` replaces CMD, and
/// setting `command` alone drops the image's CMD.
pub fn argv(
    c: &Container,
    image: &ImageConfig,
    env: &[(String, String)],
) -> Result<Vec<String>, ConfigError> {
    let vars: BTreeMap<String, String> = env.iter().cloned().collect();
    let command = c.command.clone().unwrap_or_default();
    let args = c.args.clone().unwrap_or_default();
    let mut argv: Vec<String> = match (command.is_empty(), args.is_empty()) {
        (false, _) => command.into_iter().chain(args).collect(),
        (true, false) => image.entrypoint.iter().cloned().chain(args).collect(),
        (true, true) => image.entrypoint.iter().chain(image.cmd.iter()).cloned().collect(),
    };
    argv = argv.iter().map(|a| expand(a, &vars)).collect();
    if argv.is_empty() {
        return Err(ConfigError(format!(
            "container {}: no command specified and the image has no ENTRYPOINT or CMD",
            c.name
        )));
    }
    Ok(argv)
}

/// Values the downward API exposes through `fieldRef`.
pub struct PodFields<'a> {
    pub pod: &'a Pod,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
}

fn field_value(path: &str, f: &PodFields) -> Result<String, ConfigError> {
    let meta = &f.pod.metadata;
    let spec = f.pod.spec.as_ref();
    let in_map = |m: &Option<BTreeMap<String, String>>, prefix: &str| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(m.as_ref().and_then(|m| m.get(key)).cloned().unwrap_or_default())
    };
    let v = match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" => f.pod_ip.to_string(),
        "status.hostIP" => f.host_ip.to_string(),
        _ => {
            if let Some(v) = in_map(&meta.labels, "metadata.labels['") {
                v
            } else if let Some(v) = in_map(&meta.annotations, "metadata.annotations['") {
                v
            } else {
                return Err(ConfigError(format!("unsupported fieldRef fieldPath \"{path}\"")));
            }
        }
    };
    Ok(v)
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty() && !s.contains('=') && !s.contains('\0')
}

/// The container's environment: the image's, then envFrom, then env, later
/// entries overriding earlier ones; `$(VAR)` in values refers to entries
/// defined before them.
pub fn environment(
    c: &Container,
    image: &ImageConfig,
    refs: &Refs,
    fields: &PodFields,
) -> Result<Vec<(String, String)>, ConfigError> {
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        if let Some(slot) = env.iter_mut().find(|(n, _)| *n == k) {
            slot.1 = v;
        } else {
            env.push((k, v));
        }
    };
    for e in &image.env {
        if let Some((k, v)) = e.split_once('=') {
            set(&mut env, k.to_string(), v.to_string());
        }
    }
    for src in c.env_from.iter().flatten() {
        let prefix = src.prefix.clone().unwrap_or_default();
        let (data, what, name, optional) = if let Some(r) = &src.config_map_ref {
            (
                refs.config_maps.get(&r.name),
                "configmap",
                r.name.clone(),
                r.optional.unwrap_or(false),
            )
        } else if let Some(r) = &src.secret_ref {
            (
                refs.secrets.get(&r.name),
                "secret",
                r.name.clone(),
                r.optional.unwrap_or(false),
            )
        } else {
            continue;
        };
        match data {
            Some(d) => {
                for (k, v) in d {
                    let key = format!("{prefix}{k}");
                    if is_env_name(&key) {
                        set(&mut env, key, v.clone());
                    }
                }
            }
            None if optional => {}
            None => return Err(ConfigError(format!("{what} \"{name}\" not found"))),
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_value(&f.field_path, fields)?
            } else if let Some(r) = &from.config_map_key_ref {
                match refs.config_maps.get(&r.name) {
                    Some(d) => match d.get(&r.key) {
                        Some(v) => v.clone(),
                        None if r.optional.unwrap_or(false) => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in ConfigMap {}",
                                r.key, r.name
                            )))
                        }
                    },
                    None if r.optional.unwrap_or(false) => continue,
                    None => return Err(ConfigError(format!("configmap \"{}\" not found", r.name))),
                }
            } else if let Some(r) = &from.secret_key_ref {
                match refs.secrets.get(&r.name) {
                    Some(d) => match d.get(&r.key) {
                        Some(v) => v.clone(),
                        None if r.optional.unwrap_or(false) => continue,
                        None => {
                            return Err(ConfigError(format!(
                                "couldn't find key {} in Secret {}",
                                r.key, r.name
                            )))
                        }
                    },
                    None if r.optional.unwrap_or(false) => continue,
                    None => return Err(ConfigError(format!("secret \"{}\" not found", r.name))),
                }
            } else if let Some(r) = &from.resource_field_ref {
                resource_field(c, &r.resource)?
            } else {
                return Err(ConfigError(format!("env {}: valueFrom has no source", e.name)));
            }
        } else {
            let vars: BTreeMap<String, String> = env.iter().cloned().collect();
            expand(e.value.as_deref().unwrap_or(""), &vars)
        };
        set(&mut env, e.name.clone(), value);
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(
            0,
            (
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            ),
        );
    }
    if !env.iter().any(|(k, _)| k == "HOSTNAME") {
        let host = fields.pod.metadata.name.clone().unwrap_or_default();
        env.push(("HOSTNAME".into(), host));
    }
    Ok(env)
}

fn quantity(c: &Container, which: &str, resource: &str) -> Option<String> {
    let r = c.resources.as_ref()?;
    let m = if which == "limits" {
        r.limits.as_ref()
    } else {
        r.requests.as_ref()
    }?;
    m.get(resource).map(|q| q.0.clone())
}

fn resource_field(c: &Container, field: &str) -> Result<String, ConfigError> {
    let (which, res) = field
        .split_once('.')
        .ok_or_else(|| ConfigError(format!("unsupported resourceFieldRef \"{field}\"")))?;
    let q = quantity(c, which, res).unwrap_or_else(|| "0".into());
    let v = if res == "cpu" {
        // Kubernetes rounds cpu up to whole cores with the default divisor of 1.
        let milli = rk_api::quantity::parse_milli(&q).map_err(|e| ConfigError(e.to_string()))?;
        ((milli + 999) / 1000).to_string()
    } else {
        rk_api::quantity::parse_value(&q)
            .map_err(|e| ConfigError(e.to_string()))?
            .to_string()
    };
    Ok(v)
}

/// cgroup limits from requests and limits. A limit without a request
/// implies the request, as Kubernetes defaults it.
pub fn resources(c: &Container) -> Resources {
    let milli = |which: &str| {
        quantity(c, which, "cpu")
            .and_then(|q| rk_api::quantity::parse_milli(&q).ok())
            .map(|v| v.max(0) as u64)
    };
    let bytes = |which: &str| {
        quantity(c, which, "memory")
            .and_then(|q| rk_api::quantity::parse_value(&q).ok())
            .map(|v| v.max(0) as u64)
    };
    Resources {
        cpu_request_millis: milli("requests").or_else(|| milli("limits")),
        cpu_limit_millis: milli("limits"),
        memory_limit_bytes: bytes("limits"),
        pids_limit: Some(4096),
    }
}

/// The Pod's cgroup limits: the sum over its containers when every one of
/// them sets that limit, otherwise unlimited at the Pod level.
pub fn pod_resources(containers: &[Container]) -> Resources {
    let each: Vec<Resources> = containers.iter().map(resources).collect();
    let sum = |f: &dyn Fn(&Resources) -> Option<u64>| -> Option<u64> {
        each.iter().map(f).try_fold(0u64, |acc, v| v.map(|v| acc + v))
    };
    Resources {
        cpu_request_millis: sum(&|r| r.cpu_request_millis.or(Some(0))),
        cpu_limit_millis: sum(&|r| r.cpu_limit_millis),
        memory_limit_bytes: sum(&|r| r.memory_limit_bytes),
        pids_limit: None,
    }
}

/// uid, gid and supplementary groups: the container's securityContext over
/// the Pod's, over the image's USER (numeric, or a name looked up in the
/// image's /etc/passwd and /etc/group).
pub fn user(
    pod_sc: Option<&k8s_openapi::api::core::v1::PodSecurityContext>,
    sc: Option<&SecurityContext>,
    image_user: &str,
    layers: &[std::path::PathBuf],
) -> Result<(u32, u32, Vec<u32>), ConfigError> {
    let (img_user, img_group) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let lookup = |file: &str, name: &str| -> Option<(u32, u32)> {
        // The top-most layer holding the file wins, as in the overlay.
        let text = layers
            .iter()
            .rev()
            .find_map(|l| std::fs::read_to_string(l.join(file)).ok())?;
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.first() == Some(&name) && f.len() > 3)
                .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
                .flatten()
        })
    };
    let (mut uid, mut gid) = (0u32, 0u32);
    if !img_user.is_empty() {
        if let Ok(n) = img_user.parse() {
            uid = n;
            gid = lookup_gid_of_uid(layers, n).unwrap_or(0);
        } else {
            let (u, g) = lookup("etc/passwd", img_user).ok_or_else(|| {
                ConfigError(format!(
                    "unable to find user {img_user}: no matching entries in passwd file"
                ))
            })?;
            uid = u;
            gid = g;
        }
    }
    if let Some(g) = img_group.filter(|g| !g.is_empty()) {
        gid = match g.parse() {
            Ok(n) => n,
            Err(_) => {
                lookup_group(layers, g).ok_or_else(|| ConfigError(format!("unable to find group {g}")))?
            }
        };
    }
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or(pod_sc.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or(pod_sc.and_then(|s| s.run_as_group));
    if let Some(u) = run_as_user {
        uid = u32::try_from(u).map_err(|_| ConfigError(format!("runAsUser {u} is out of range")))?;
        if run_as_group.is_none() {
            gid = lookup_gid_of_uid(layers, uid).unwrap_or(gid);
        }
    }
    if let Some(g) = run_as_group {
        gid = u32::try_from(g).map_err(|_| ConfigError(format!("runAsGroup {g} is out of range")))?;
    }
    if sc
        .and_then(|s| s.run_as_non_root)
        .or(pod_sc.and_then(|s| s.run_as_non_root))
        == Some(true)
        && uid == 0
    {
        return Err(ConfigError(
            "container has runAsNonRoot and image will run as root".into(),
        ));
    }
    let groups = pod_sc
        .and_then(|s| s.supplemental_groups.clone())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| u32::try_from(g).ok())
        .collect();
    Ok((uid, gid, groups))
}

fn lookup_group(layers: &[std::path::PathBuf], name: &str) -> Option<u32> {
    let text = layers
        .iter()
        .rev()
        .find_map(|l| std::fs::read_to_string(l.join("etc/group")).ok())?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 2 && f[0] == name).then(|| f[2].parse().ok()).flatten()
    })
}

fn lookup_gid_of_uid(layers: &[std::path::PathBuf], uid: u32) -> Option<u32> {
    let text = layers
        .iter()
        .rev()
        .find_map(|l| std::fs::read_to_string(l.join("etc/passwd")).ok())?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[2].parse() == Ok(uid))
            .then(|| f[3].parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).expect("container")
    }

    fn image(entrypoint: &[&str], cmd: &[&str]) -> ImageConfig {
        ImageConfig {
            entrypoint: entrypoint.iter().map(|s| s.to_string()).collect(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            env: vec!["PATH=/bin".into(), "FROM_IMAGE=1".into()],
            ..Default::default()
        }
    }

    #[test]
    fn command_and_args_follow_kubernetes() {
        let img = image(&["/ep"], &["cmd-arg"]);
        let env = vec![("X".to_string(), "x".to_string())];
        let a = |v| argv(&container(v), &img, &env).expect("argv");
        assert_eq!(a(json!({"name":"c"})), ["/ep", "cmd-arg"]);
        assert_eq!(a(json!({"name":"c","args":["a1"]})), ["/ep", "a1"]);
        assert_eq!(a(json!({"name":"c","command":["/bin/sh"]})), ["/bin/sh"]);
        assert_eq!(
            a(json!({"name":"c","command":["/bin/sh"],"args":["-c","echo $(X) $$(X) $(Y)"]})),
            ["/bin/sh", "-c", "echo x $(X) $(Y)"]
        );
        let none = ImageConfig::default();
        assert!(argv(&container(json!({"name":"c"})), &none, &env).is_err());
    }

    #[test]
    fn environment_layers_image_envfrom_env_and_downward_api() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": []}
        }))
        .expect("pod");
        let refs = Refs {
            config_maps: [(
                "cm".to_string(),
                [
                    ("A".to_string(), "from-cm".to_string()),
                    ("bad=key".to_string(), "x".to_string()),
                ]
                .into(),
            )]
            .into(),
            secrets: [(
                "s".to_string(),
                [("pw".to_string(), "hunter2".to_string())].into(),
            )]
            .into(),
        };
        let c = container(
            json!({"name": "c", "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
            "env": [
                {"name": "FROM_IMAGE", "value": "2"},
                {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "s", "key": "pw"}}},
                {"name": "BOTH", "value": "$(POD)-$(CM_A)"}
            ]}),
        );
        let fields = PodFields {
            pod: &pod,
            pod_ip: "10.88.0.5",
            host_ip: "10.0.0.1",
        };
        let env = environment(&c, &image(&[], &[]), &refs, &fields).expect("env");
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/bin"));
        assert_eq!(get("FROM_IMAGE"), Some("2"));
        assert_eq!(get("CM_A"), Some("from-cm"));
        assert_eq!(get("CM_bad=key"), None);
        assert_eq!(get("POD"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.88.0.5"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("BOTH"), Some("p-from-cm"));
        let missing = container(
            json!({"name": "c", "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}]}),
        );
        let err = environment(&missing, &image(&[], &[]), &refs, &fields).unwrap_err();
        assert_eq!(err.0, "configmap \"nope\" not found");
    }

    #[test]
    fn resources_from_requests_and_limits() {
        let c = container(json!({"name":"c","resources":{"limits":{"cpu":"500m","memory":"64Mi"}}}));
        let r = resources(&c);
        assert_eq!(r.cpu_request_millis, Some(500));
        assert_eq!(r.cpu_limit_millis, Some(500));
        assert_eq!(r.memory_limit_bytes, Some(64 * 1024 * 1024));
        let other = container(json!({"name":"d","resources":{"requests":{"cpu":"1"}}}));
        let p = pod_resources(&[c, other]);
        assert_eq!(p.cpu_request_millis, Some(1500));
        assert_eq!(p.memory_limit_bytes, None);
    }

    #[test]
    fn users_from_image_and_security_context() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(dir.path().join("etc")).expect("etc");
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1001::/:/bin/sh\n",
        )
        .expect("passwd");
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").expect("group");
        let layers = vec![dir.path().to_path_buf()];
        assert_eq!(user(None, None, "", &layers).expect("u"), (0, 0, vec![]));
        assert_eq!(user(None, None, "app", &layers).expect("u"), (1000, 1001, vec![]));
        assert_eq!(
            user(None, None, "app:staff", &layers).expect("u"),
            (1000, 50, vec![])
        );
        assert_eq!(
            user(None, None, "1000", &layers).expect("u"),
            (1000, 1001, vec![])
        );
        let sc: SecurityContext =
            serde_json::from_value(json!({"runAsUser": 7, "runAsGroup": 8})).expect("sc");
        assert_eq!(user(None, Some(&sc), "app", &layers).expect("u"), (7, 8, vec![]));
        assert!(user(None, None, "nosuch", &layers).is_err());
        let nonroot: SecurityContext = serde_json::from_value(json!({"runAsNonRoot": true})).expect("sc");
        assert!(user(None, Some(&nonroot), "", &layers).is_err());
    }
}
