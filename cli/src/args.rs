//! Resource arguments: `KIND [NAME...]`, `KIND1,KIND2 [NAME...]` and
//! `KIND/NAME ...`.

use crate::error::{CliError, Result};
use rk_api::resources::{self, ResourceKind};

/// The objects of one kind that a command is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: &'static ResourceKind,
    /// Empty: every object of the kind (subject to selectors).
    pub names: Vec<String>,
}

/// Resolves a kind as typed by a user.
pub fn resolve_kind(name: &str) -> Result<&'static ResourceKind> {
    resources::lookup(name)
        .ok_or_else(|| CliError::local(format!("the server doesn't have a resource type \"{name}\"")))
}

/// Parses the positional arguments of `get` and `delete`.
pub fn parse_targets(args: &[String]) -> Result<Vec<Target>> {
    let Some(first) = args.first() else {
        return Err(CliError::local("Required resource not specified."));
    };
    if first.contains('/') {
        let mut out: Vec<Target> = Vec::new();
        for a in args {
            let Some((kind, name)) = a.split_once('/') else {
                return Err(CliError::local(format!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'rkctl get resource/<resource_name>' instead of 'rkctl get resource resource/<resource_name>'), got \"{a}\""
                )));
            };
            if kind.is_empty() || name.is_empty() || name.contains('/') {
                return Err(CliError::local(format!(
                    "arguments in resource/name form must have a single resource and name, got \"{a}\""
                )));
            }
            let kind = resolve_kind(kind)?;
            match out.last_mut() {
                Some(t) if t.kind == kind => t.names.push(name.to_string()),
                _ => out.push(Target {
                    kind,
                    names: vec![name.to_string()],
                }),
            }
        }
        return Ok(out);
    }
    let names: Vec<String> = args[1..].to_vec();
    if let Some(bad) = names.iter().find(|n| n.contains('/')) {
        return Err(CliError::local(format!(
            "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'rkctl get resource/<resource_name>' instead of 'rkctl get resource resource/<resource_name>'), got \"{bad}\""
        )));
    }
    let mut out: Vec<Target> = Vec::new();
    for k in first.split(',').filter(|k| !k.is_empty()) {
        let kind = resolve_kind(k)?;
        if out.iter().any(|t| t.kind == kind) {
            continue;
        }
        out.push(Target {
            kind,
            names: names.clone(),
        });
    }
    if out.is_empty() {
        return Err(CliError::local("Required resource not specified."));
    }
    Ok(out)
}

/// How kubectl names an object's kind in `created`/`deleted` lines and
/// `-o name`: `deployment.apps`, `pod`.
pub fn kind_ref(kind: &ResourceKind) -> String {
    if kind.group.is_empty() {
        kind.singular.to_string()
    } else {
        format!("{}.{}", kind.singular, kind.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    fn summary(t: &[Target]) -> Vec<(String, Vec<String>)> {
        t.iter()
            .map(|t| (t.kind.kind.to_string(), t.names.clone()))
            .collect()
    }

    #[test]
    fn kind_then_names() {
        for k in ["pods", "pod", "po", "Pod", "pods.v1"] {
            let t = parse_targets(&args(&[k, "a", "b"])).unwrap();
            assert_eq!(summary(&t), vec![("Pod".into(), args(&["a", "b"]))]);
        }
        for k in ["deploy", "deployments.apps", "deployment", "Deployment"] {
            let t = parse_targets(&args(&[k])).unwrap();
            assert_eq!(summary(&t), vec![("Deployment".into(), vec![])]);
        }
    }

    #[test]
    fn kind_slash_name() {
        let t = parse_targets(&args(&["pod/a", "po/b", "deploy/web", "pods/c"])).unwrap();
        assert_eq!(
            summary(&t),
            vec![
                ("Pod".into(), args(&["a", "b"])),
                ("Deployment".into(), args(&["web"])),
                ("Pod".into(), args(&["c"])),
            ]
        );
        assert!(parse_targets(&args(&["pod/a", "b"])).is_err());
        assert!(parse_targets(&args(&["pods", "pod/a"])).is_err());
        assert!(parse_targets(&args(&["pod/"])).is_err());
    }

    #[test]
    fn comma_separated_kinds() {
        let t = parse_targets(&args(&["pods,deploy,po"])).unwrap();
        assert_eq!(
            summary(&t),
            vec![("Pod".into(), vec![]), ("Deployment".into(), vec![])]
        );
    }

    #[test]
    fn unknown_and_missing() {
        assert_eq!(
            parse_targets(&args(&["foo"])).unwrap_err(),
            CliError::local("the server doesn't have a resource type \"foo\"")
        );
        assert_eq!(
            parse_targets(&args(&["foo/x"])).unwrap_err(),
            CliError::local("the server doesn't have a resource type \"foo\"")
        );
        assert!(parse_targets(&[]).is_err());
    }

    #[test]
    fn kind_refs() {
        assert_eq!(kind_ref(resolve_kind("deploy").unwrap()), "deployment.apps");
        assert_eq!(kind_ref(resolve_kind("po").unwrap()), "pod");
        assert_eq!(
            kind_ref(resolve_kind("lease").unwrap()),
            "lease.coordination.k8s.io"
        );
    }
}
