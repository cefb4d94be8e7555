//! Shell completion: `rkctl completion bash|zsh|fish` prints a script, and
//! the hidden `rkctl __complete WORDS... PARTIAL` lists candidates fetched
//! from the cluster, as kubectl's (cobra's) `__complete` does.
//!
//! The scripts are clap_complete's, which know the commands and flags, with
//! a wrapper in front: for every word it first asks `rkctl __complete`, and
//! only when that prints nothing falls back to clap's static completion.
//! Deciding what the word under the cursor is (a kind, a name, a node)
//! happens here in Rust, where it can be tested, rather than in three shell
//! dialects.

use crate::args::resolve_kind;
use crate::Ctx;
use rk_api::resources::{self, ResourceKind};
use rk_client::ListParams;
use std::io::Write;

/// The name of the hidden subcommand the scripts call.
pub const HIDDEN: &str = "__complete";

/// The shells a script can be printed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The completion script for `shell`.
pub fn script(shell: Shell, mut cmd: clap::Command) -> String {
    let mut buf = Vec::new();
    match shell {
        Shell::Bash => clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "rkctl", &mut buf),
        Shell::Zsh => clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "rkctl", &mut buf),
        Shell::Fish => clap_complete::generate(clap_complete::Shell::Fish, &mut cmd, "rkctl", &mut buf),
    }
    let static_part = String::from_utf8_lossy(&buf).into_owned();
    match shell {
        Shell::Bash => format!("{static_part}\n{BASH}"),
        Shell::Zsh => {
            // clap's script ends by running `_rkctl` (when autoloaded from
            // $fpath) or registering it with compdef; both are pointed at
            // the wrapper, defined just before.
            let tail = "if [ \"$funcstack[1]\" = \"_rkctl\" ]; then\n    _rkctl \"$@\"\nelse\n    compdef _rkctl rkctl";
            match static_part.find(tail) {
                Some(at) => {
                    let ending = static_part[at..]
                        .replacen("    _rkctl \"$@\"", "    _rkctl_dynamic \"$@\"", 1)
                        .replacen("compdef _rkctl rkctl", "compdef _rkctl_dynamic rkctl", 1);
                    format!("{}{ZSH}\n{ending}", &static_part[..at])
                }
                None => format!("{static_part}\n{ZSH}compdef _rkctl_dynamic rkctl\n"),
            }
        }
        Shell::Fish => format!("{static_part}\n{FISH}"),
    }
}

const BASH: &str = r#"# Names from the cluster first (rkctl __complete), then clap's completion.
_rkctl_dynamic() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    local -a found
    # mapfile rather than a changed IFS, which clap's function would inherit.
    mapfile -t found < <(rkctl __complete "${COMP_WORDS[@]:1:$((COMP_CWORD-1))}" "$cur" 2>/dev/null)
    if [[ ${#found[@]} -gt 0 ]]; then
        COMPREPLY=("${found[@]}")
        return 0
    fi
    _rkctl "$@"
}
if [[ "${BASH_VERSINFO[0]}" -eq 4 && "${BASH_VERSINFO[1]}" -ge 4 || "${BASH_VERSINFO[0]}" -gt 4 ]]; then
    complete -F _rkctl_dynamic -o nosort -o bashdefault -o default rkctl
else
    complete -F _rkctl_dynamic -o bashdefault -o default rkctl
fi
"#;

const ZSH: &str = r#"# Names from the cluster first (rkctl __complete), then clap's completion.
_rkctl_dynamic() {
    local -a found
    found=("${(@f)$(rkctl __complete "${(@)words[2,CURRENT-1]}" "${words[CURRENT]}" 2>/dev/null)}")
    found=(${found:#})
    if (( ${#found} )); then
        compadd -a found
        return
    fi
    _rkctl "$@"
}
"#;

const FISH: &str = r#"# Names from the cluster (rkctl __complete), next to clap's completions.
complete -c rkctl -f -a '(rkctl __complete (commandline -opc)[2..-1] (commandline -ct) 2>/dev/null)'
"#;

/// Flags whose value is the next word (unless given as `--flag=value`).
/// `-f` is `--follow` for logs, a switch; everywhere else it names a file.
fn takes_value(flag: &str, verb: &str) -> bool {
    match flag {
        "-f" => verb != "logs",
        "-o" | "--output" | "-l" | "--selector" | "--field-selector" | "-c" | "--container"
        | "--replicas" | "--current-replicas" | "--timeout" | "--filename" | "--grace-period" | "--since"
        | "--tail" | "--to-revision" | "--sort-by" | "--pod-selector" | "--resource-version" | "-n"
        | "--namespace" | "--config" | "--context" => true,
        _ => false,
    }
}

/// What the word under the cursor is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// A kind: `get <TAB>`.
    Kind,
    /// A name of this kind; `slash` when the word is written `kind/name`.
    Name {
        kind: &'static ResourceKind,
        slash: Option<String>,
    },
    Nothing,
}

/// The words typed so far, read the way the shell sees them.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Words {
    pub config: Option<String>,
    pub context: Option<String>,
    pub namespace: Option<String>,
    pub verb: Option<String>,
    /// The positional words after the verb.
    pub positionals: Vec<String>,
}

pub(crate) fn read_words(words: &[String]) -> Words {
    let mut w = Words::default();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        i += 1;
        if word == "--" {
            // What follows is exec's command, never a name.
            w.positionals.push("--".into());
            break;
        }
        if let Some(flag) = word.strip_prefix('-').filter(|f| !f.is_empty()) {
            let (name, inline) = match word.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None if !flag.starts_with('-') && flag.len() > 1 && flag.starts_with('n') => {
                    ("-n".to_string(), Some(flag[1..].to_string()))
                }
                None => (word.clone(), None),
            };
            let verb = w.verb.as_deref().unwrap_or("");
            let value = match inline {
                Some(v) => Some(v),
                None if takes_value(&name, verb) => {
                    i += 1;
                    words.get(i - 1).cloned()
                }
                None => None,
            };
            match name.as_str() {
                "--config" => w.config = value,
                "--context" => w.context = value,
                "-n" | "--namespace" => w.namespace = value,
                _ => {}
            }
            continue;
        }
        if w.verb.is_none() {
            w.verb = Some(word.clone());
        } else {
            w.positionals.push(word.clone());
        }
    }
    w
}

/// Decides what to complete for `partial`, given the words before it.
pub(crate) fn want(w: &Words, partial: &str) -> Want {
    let Some(verb) = w.verb.as_deref() else {
        return Want::Nothing;
    };
    let mut pos: &[String] = &w.positionals;
    if pos.iter().any(|p| p == "--") {
        return Want::Nothing;
    }
    let kind_of = |k: &str| resolve_kind(k.split(',').next().unwrap_or("")).ok();
    let slash = |partial: &str| -> Want {
        match partial.split_once('/') {
            Some((k, _)) => match kind_of(k) {
                Some(kind) => Want::Name {
                    kind,
                    slash: Some(k.to_string()),
                },
                None => Want::Nothing,
            },
            None => Want::Kind,
        }
    };
    match verb {
        "cordon" | "uncordon" | "drain" => match resolve_kind("nodes") {
            Ok(kind) => Want::Name { kind, slash: None },
            Err(_) => Want::Nothing,
        },
        "logs" | "exec" => {
            if !pos.is_empty() {
                return Want::Nothing;
            }
            if partial.contains('/') {
                return slash(partial);
            }
            match resolve_kind("pods") {
                Ok(kind) => Want::Name { kind, slash: None },
                Err(_) => Want::Nothing,
            }
        }
        // `top node|pod NAME`: clap completes the subverb.
        "top" => match pos {
            [what] => match kind_of(what) {
                Some(kind) if matches!(kind.kind, "Node" | "Pod") => Want::Name { kind, slash: None },
                _ => Want::Nothing,
            },
            _ => Want::Nothing,
        },
        // `explain KIND[.FIELD...]`: the kind; fields are left to the user.
        "explain" if pos.is_empty() && !partial.contains('.') => Want::Kind,
        "get" | "describe" | "delete" | "scale" | "label" | "annotate" | "rollout" => {
            if verb == "rollout" {
                // `rollout SUBVERB KIND NAME`: clap completes the subverb.
                let Some((_, rest)) = pos.split_first() else {
                    return Want::Nothing;
                };
                pos = rest;
            }
            match pos.first() {
                None => slash(partial),
                // `KIND/NAME` arguments continue in that form.
                Some(first) if first.contains('/') => {
                    if partial.contains('/') {
                        slash(partial)
                    } else {
                        Want::Nothing
                    }
                }
                Some(first) => match kind_of(first) {
                    Some(kind) => Want::Name { kind, slash: None },
                    None => Want::Nothing,
                },
            }
        }
        _ => Want::Nothing,
    }
}

/// Prints the candidates for `args` (the words so far, then the partial
/// word), one per line. Errors print nothing: a completion that fails
/// should leave the prompt alone.
pub async fn names(args: &[String], out: &mut dyn Write) {
    let (partial, words) = match args.split_last() {
        Some((p, w)) => (p.as_str(), w),
        None => ("", args),
    };
    let w = read_words(words);
    let candidates: Vec<String> = match want(&w, partial) {
        Want::Nothing => Vec::new(),
        Want::Kind => {
            let mut kinds: Vec<String> = resources::all().iter().map(|k| k.plural.to_string()).collect();
            kinds.sort();
            kinds
        }
        Want::Name { kind, slash } => {
            let mut sink = std::io::sink();
            let mut quiet = std::io::sink();
            let mut ctx = Ctx {
                out: &mut sink,
                err: &mut quiet,
                config: w.config.clone().map(Into::into),
                context: w.context.clone(),
                namespace_flag: w.namespace.clone(),
                client: None,
                term: Default::default(),
            };
            let Ok(client) = ctx.client() else { return };
            let params = ListParams {
                namespace: kind.namespaced.then(|| ctx.namespace()),
                ..Default::default()
            };
            let Ok((items, _)) = client.list(&kind.group_resource(), &params).await else {
                return;
            };
            items
                .iter()
                .filter_map(|o| o.get("metadata")?.get("name")?.as_str())
                .map(|n| match &slash {
                    Some(k) => format!("{k}/{n}"),
                    None => n.to_string(),
                })
                .collect()
        }
    };
    for c in candidates.iter().filter(|c| c.starts_with(partial)) {
        let _ = writeln!(out, "{c}");
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Words {
        read_words(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    fn name_of(w: Want) -> Option<(&'static str, Option<String>)> {
        match w {
            Want::Name { kind, slash } => Some((kind.plural, slash)),
            _ => None,
        }
    }

    #[test]
    fn reads_global_flags_anywhere() {
        let w = words("--config /c get -n prod pods -o wide --context=x");
        assert_eq!(w.config.as_deref(), Some("/c"));
        assert_eq!(w.context.as_deref(), Some("x"));
        assert_eq!(w.namespace.as_deref(), Some("prod"));
        assert_eq!(w.verb.as_deref(), Some("get"));
        assert_eq!(w.positionals, ["pods"]);
        assert_eq!(
            words("get -nkube-system pods").namespace.as_deref(),
            Some("kube-system")
        );
        // logs -f follows; it takes no value.
        assert_eq!(words("logs -f web").positionals, ["web"]);
        assert_eq!(words("delete -f x.yaml").positionals, Vec::<String>::new());
    }

    #[test]
    fn decides_what_to_complete() {
        assert_eq!(want(&words("get"), ""), Want::Kind);
        assert_eq!(name_of(want(&words("get pods"), "w")), Some(("pods", None)));
        assert_eq!(
            name_of(want(&words("get deploy,rs"), "")),
            Some(("deployments", None))
        );
        assert_eq!(
            name_of(want(&words("describe"), "deploy/w")),
            Some(("deployments", Some("deploy".into())))
        );
        assert_eq!(name_of(want(&words("logs -c x"), "")), Some(("pods", None)));
        assert_eq!(want(&words("logs web"), ""), Want::Nothing);
        assert_eq!(want(&words("exec web --"), ""), Want::Nothing);
        assert_eq!(name_of(want(&words("drain --force"), "")), Some(("nodes", None)));
        assert_eq!(want(&words("rollout"), ""), Want::Nothing);
        assert_eq!(
            name_of(want(&words("rollout status deploy"), "")),
            Some(("deployments", None))
        );
        assert_eq!(name_of(want(&words("top pod"), "")), Some(("pods", None)));
        assert_eq!(
            name_of(want(&words("top nodes --sort-by cpu"), "")),
            Some(("nodes", None))
        );
        assert_eq!(want(&words("top"), ""), Want::Nothing);
        assert_eq!(want(&words("top pod web"), ""), Want::Nothing);
        assert_eq!(want(&words("top deploy"), ""), Want::Nothing);
        assert_eq!(want(&words("explain"), "dep"), Want::Kind);
        assert_eq!(want(&words("explain"), "pod.sp"), Want::Nothing);
        assert_eq!(want(&words("get widgets"), ""), Want::Nothing);
        assert_eq!(want(&words("apply -f"), ""), Want::Nothing);
        assert_eq!(want(&words(""), ""), Want::Nothing);
    }
}
