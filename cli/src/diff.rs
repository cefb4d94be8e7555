//! `rkctl diff -f FILE|DIR|-`: what `apply` would change, as a unified diff
//! of YAML between the live object and the object apply would write.
//!
//! The merged object is computed as `apply` computes it (the same three-way
//! merge) and then sent to the server as a dry run, so server defaults and
//! validation show up as they would. Fields the server maintains on its own
//! (resourceVersion, generation, uid, creationTimestamp, managedFields,
//! status) are left out of both sides. The exit status follows kubectl: 0
//! without differences, 1 with differences, 2 when something failed.

use crate::apply::{merge_into_live, resolve};
use crate::error::{CliError, Result};
use crate::manifest::{parse_source_ordered, read_sources};
use crate::merge::with_last_applied;
use crate::output::to_yaml;
use crate::Ctx;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// A manifest file, a directory of them, or - for stdin (repeatable).
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub files: Vec<String>,
}

/// The exit status of a failed diff: kubectl keeps 1 for "differences".
const FAILED: i32 = 2;

pub async fn run(ctx: &mut Ctx<'_>, a: DiffArgs) -> Result<()> {
    match diff(ctx, a).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(CliError::Exit(1)),
        Err(e) => {
            ctx.flush();
            ctx.report(&e);
            Err(CliError::Exit(FAILED))
        }
    }
}

/// Prints the diffs; returns whether there were any.
async fn diff(ctx: &mut Ctx<'_>, a: DiffArgs) -> Result<bool> {
    if a.files.is_empty() {
        return Err(CliError::local("must specify -f"));
    }
    let sources = read_sources(&a.files)?;
    let parsed: Vec<_> = sources.iter().flat_map(parse_source_ordered).collect();
    if parsed.is_empty() {
        return Err(CliError::local("no objects passed to diff"));
    }
    let mut manifests = Vec::new();
    for item in parsed {
        match item {
            Ok(m) => manifests.push(m),
            Err(line) => return Err(CliError::local(line)),
        }
    }
    let client = ctx.client()?;
    let ns = ctx.namespace();
    let explicit = ctx.namespace_flag.is_some();
    let mut differs = false;
    for m in &manifests {
        let r = resolve(m, &ns, explicit)?;
        let resource = r.kind.group_resource();
        let (live, merged) = match client.get(&resource, &r.ns, &r.name).await {
            Ok(live) => {
                let merged = merge_into_live(&r, &live);
                let after = if merged.unchanged {
                    live.clone()
                } else {
                    client
                        .update_opts(&resource, &merged.desired, false, true)
                        .await?
                };
                (Some(live), after)
            }
            Err(e) if e.reason == rk_api::Reason::NotFound => {
                let obj = with_last_applied(&r.obj);
                (None, client.create_opts(&resource, &obj, true).await?)
            }
            Err(e) => return Err(e.into()),
        };
        let before = match &live {
            Some(l) => to_yaml(&without_noise(l))?,
            None => String::new(),
        };
        let after = to_yaml(&without_noise(&merged))?;
        let api_version = r.kind.api_version().replace('/', ".");
        let file = [api_version.as_str(), r.kind.kind, &r.ns, &r.name]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(".");
        let text = unified(
            &before,
            &after,
            &format!("live/{file}"),
            &format!("merged/{file}"),
        );
        if !text.is_empty() {
            differs = true;
            ctx.print(&text);
        }
    }
    Ok(differs)
}

/// The object without what the server maintains by itself.
fn without_noise(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(map) = v.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "resourceVersion",
                "generation",
                "managedFields",
                "creationTimestamp",
                "uid",
                "selfLink",
            ] {
                meta.remove(k);
            }
        }
    }
    v
}

/// One line of an edit script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Del,
    Add,
}

/// The shortest edit script between two lists of lines, from a longest
/// common subsequence table. Objects are a few hundred lines at most, so
/// the quadratic table is cheap.
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<(Op, &'a str)> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(n + m);
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((Op::Keep, a[i]));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Deletions first, as diff(1) prints them.
            out.push((Op::Del, a[i]));
            i += 1;
        } else {
            out.push((Op::Add, b[j]));
            j += 1;
        }
    }
    out
}

/// A unified diff (three lines of context) between two texts, with `---`
/// and `+++` headers; empty when the texts are equal.
pub fn unified(before: &str, after: &str, from: &str, to: &str) -> String {
    const CONTEXT: usize = 3;
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let script = edit_script(&a, &b);
    if script.iter().all(|(op, _)| *op == Op::Keep) {
        return String::new();
    }
    let mut out = format!("--- {from}\n+++ {to}\n");
    // Group changes whose context overlaps into hunks.
    let changes: Vec<usize> = (0..script.len()).filter(|&k| script[k].0 != Op::Keep).collect();
    let mut k = 0;
    while k < changes.len() {
        let start = changes[k].saturating_sub(CONTEXT);
        let mut end = changes[k];
        while k < changes.len() && changes[k] <= end + 2 * CONTEXT {
            end = changes[k];
            k += 1;
        }
        let end = (end + CONTEXT + 1).min(script.len());
        // Line numbers (1-based) where the hunk starts on each side.
        let a_before = script[..start].iter().filter(|(op, _)| *op != Op::Add).count();
        let b_before = script[..start].iter().filter(|(op, _)| *op != Op::Del).count();
        let hunk = &script[start..end];
        let a_len = hunk.iter().filter(|(op, _)| *op != Op::Add).count();
        let b_len = hunk.iter().filter(|(op, _)| *op != Op::Del).count();
        let a_start = if a_len == 0 { a_before } else { a_before + 1 };
        let b_start = if b_len == 0 { b_before } else { b_before + 1 };
        out.push_str(&format!("@@ -{a_start},{a_len} +{b_start},{b_len} @@\n"));
        for (op, line) in hunk {
            let sign = match op {
                Op::Keep => ' ',
                Op::Del => '-',
                Op::Add => '+',
            };
            out.push(sign);
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_make_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y"), "");
        assert_eq!(unified("", "", "x", "y"), "");
    }

    #[test]
    fn hunks_with_context() {
        let before = "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n14\n15\n";
        let after = "1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13\n15\n16\n";
        let d = unified(before, after, "live/x", "merged/x");
        assert_eq!(
            d,
            "--- live/x\n+++ merged/x\n@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+three\n 4\n 5\n 6\n\
             @@ -11,5 +11,5 @@\n 11\n 12\n 13\n-14\n 15\n+16\n"
        );
        let d = unified("", "a: 1\n", "live/x", "merged/x");
        assert_eq!(d, "--- live/x\n+++ merged/x\n@@ -0,0 +1,1 @@\n+a: 1\n");
    }

    #[test]
    fn noise_is_left_out() {
        let v = serde_json::json!({"metadata": {"name": "a", "uid": "u", "resourceVersion": "3", "generation": 2,
            "creationTimestamp": "t", "managedFields": []}, "spec": {"x": 1}, "status": {"y": 2}});
        assert_eq!(
            without_noise(&v),
            serde_json::json!({"metadata": {"name": "a"}, "spec": {"x": 1}})
        );
    }
}
