//! Reading manifests: files, directories and stdin; splitting YAML streams
//! into documents with their line numbers; and finding the line a field
//! path points at.

use crate::error::{CliError, Result};
use serde_json::Value;
use std::io::Read;
use std::path::Path;

/// The text of one manifest source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The name used in messages: the path as given, or `STDIN`.
    pub name: String,
    pub text: String,
    /// JSON rather than YAML.
    pub json: bool,
}

/// One document of a YAML stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Doc {
    pub text: String,
    /// The 1-based line in the source where `text` starts.
    pub start_line: usize,
}

/// One object read from a manifest, with what is needed to point back at
/// its source.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub object: Value,
    /// The source's name (file path or `STDIN`).
    pub source: String,
    /// The text of the document the object came from (empty for JSON,
    /// where fields are not located).
    pub doc_text: String,
    /// The 1-based source line where the document starts.
    pub start_line: usize,
    /// For an item of a `List`: `items[N].`, prefixed to field paths when
    /// locating them in the document.
    pub path_prefix: String,
}

impl Manifest {
    /// The source line a field path of this object is on, if it can be
    /// found.
    pub fn line_of(&self, field: &str) -> Option<usize> {
        if self.doc_text.is_empty() {
            return None;
        }
        let path = format!("{}{}", self.path_prefix, field);
        locate(&self.doc_text, &path).map(|l| l + self.start_line - 1)
    }
}

fn is_manifest_file(p: &Path) -> bool {
    matches!(
        p.extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("yaml" | "yml" | "json")
    )
}

fn read_file(path: &Path, name: &str) -> Result<Source> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::local(format!("error reading \"{name}\": {e}")))?;
    let json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    Ok(Source {
        name: name.to_string(),
        text,
        json,
    })
}

/// Reads every `-f` argument: a file, a directory (its `*.yaml`, `*.yml`
/// and `*.json` files, sorted by name) or `-` for stdin. Fails on the first
/// path that cannot be read, before anything is sent to the server.
pub fn read_sources(paths: &[String]) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for p in paths {
        if p == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| CliError::local(format!("error reading STDIN: {e}")))?;
            let json = text.trim_start().starts_with('{');
            out.push(Source {
                name: "STDIN".into(),
                text,
                json,
            });
            continue;
        }
        let path = Path::new(p);
        let meta = std::fs::metadata(path)
            .map_err(|_| CliError::local(format!("the path \"{p}\" does not exist")))?;
        if meta.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| CliError::local(format!("error reading \"{p}\": {e}")))?;
            let mut files: Vec<_> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|f| f.is_file() && is_manifest_file(f))
                .collect();
            files.sort();
            for f in files {
                let name = f.display().to_string();
                out.push(read_file(&f, &name)?);
            }
        } else {
            out.push(read_file(path, p)?);
        }
    }
    Ok(out)
}

fn is_separator(line: &str) -> bool {
    line == "---" || line.starts_with("--- ") || line.starts_with("---\t")
}

/// Splits a YAML stream into documents on lines that are exactly `---` or
/// start with `--- `, keeping each document's starting line. Text after
/// `--- ` on the separator line belongs to the next document. Documents are
/// returned even when empty; see [`is_blank`].
pub fn split_documents(text: &str) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut cur: Vec<&str> = Vec::new();
    let mut start = 1;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if is_separator(line) {
            docs.push(Doc {
                text: join_lines(&cur),
                start_line: start,
            });
            cur.clear();
            start = n;
            // Keep the line count right: the separator line becomes the
            // first line of the next document, holding what follows `---`.
            cur.push(line.get(4..).unwrap_or(""));
        } else if line == "..." {
            cur.push("");
        } else {
            cur.push(line);
        }
    }
    docs.push(Doc {
        text: join_lines(&cur),
        start_line: start,
    });
    docs
}

fn join_lines(lines: &[&str]) -> String {
    let mut s = lines.join("\n");
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// Whether a document holds nothing but blank lines, comments and
/// directives.
pub fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim();
        t.is_empty() || t.starts_with('#') || l.starts_with('%')
    })
}

/// Strips a trailing ` at line N, column M` that parsers append.
fn strip_position(msg: &str) -> String {
    let msg = msg.lines().next().unwrap_or("").trim();
    // A hint meant for programmers using the parser, not for users.
    let msg = match msg.find(", set DuplicateKeyPolicy") {
        Some(i) => &msg[..i],
        None => msg,
    };
    for marker in [" at line ", ", line "] {
        if let Some(i) = msg.rfind(marker) {
            let tail = &msg[i + marker.len()..];
            if tail.chars().next().is_some_and(|c| c.is_ascii_digit()) {
                return msg[..i].to_string();
            }
        }
    }
    msg.to_string()
}

/// Parses one YAML document. `Ok(None)` for an empty document; errors carry
/// the line relative to the document's first line (1-based).
pub fn parse_yaml_doc(text: &str) -> std::result::Result<Option<Value>, (Option<usize>, String)> {
    if is_blank(text) {
        return Ok(None);
    }
    match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Null) => Ok(None),
        Ok(v) => Ok(Some(v)),
        Err(e) => {
            let line = e
                .location()
                .map(|l| l.line())
                .filter(|l| *l > 0)
                .and_then(|l| usize::try_from(l).ok());
            Err((line, strip_position(&e.without_snippet().to_string())))
        }
    }
}

fn parse_error(source: &str, line: Option<usize>, detail: &str) -> String {
    match line {
        Some(n) => format!("error: error parsing {source}: line {n}: {detail}"),
        None => format!("error: error parsing {source}: {detail}"),
    }
}

/// The 1-based line of a document's first significant line.
fn first_line(doc: &str) -> Option<usize> {
    significant_lines(doc).first().map(|l| l.no)
}

fn line_at_offset(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// Parsed objects and error lines, in source order.
pub type Parsed = Vec<std::result::Result<Manifest, String>>;

/// Adds an object to `out`, expanding `List`s into their items.
fn push_object(out: &mut Parsed, base: Manifest) {
    let is_list = base
        .object
        .get("kind")
        .and_then(Value::as_str)
        .is_some_and(|k| k.ends_with("List"))
        && base.object.get("items").is_some();
    if !is_list {
        if base.object.is_object() {
            out.push(Ok(base));
        } else {
            let line = base
                .line_of("")
                .or_else(|| first_line(&base.doc_text).map(|l| l + base.start_line - 1));
            out.push(Err(parse_error(
                &base.source,
                line,
                "the document is not an object",
            )));
        }
        return;
    }
    let items = match base.object.get("items") {
        Some(Value::Array(items)) => items.clone(),
        Some(Value::Null) => Vec::new(),
        _ => {
            let line = base.line_of("items").or(Some(base.start_line));
            out.push(Err(parse_error(
                &base.source,
                line,
                "items of a List must be a list",
            )));
            return;
        }
    };
    for (i, item) in items.into_iter().enumerate() {
        let m = Manifest {
            object: item,
            source: base.source.clone(),
            doc_text: base.doc_text.clone(),
            start_line: base.start_line,
            path_prefix: format!("{}items[{i}].", base.path_prefix),
        };
        push_object(out, m);
    }
}

/// Parses a source into objects. Documents that fail to parse are reported
/// in the returned error lines (already formatted for stderr); the other
/// documents are still returned.
pub fn parse_source(src: &Source) -> (Vec<Manifest>, Vec<String>) {
    let mut objs = Vec::new();
    let mut errs = Vec::new();
    for r in parse_source_ordered(src) {
        match r {
            Ok(m) => objs.push(m),
            Err(e) => errs.push(e),
        }
    }
    (objs, errs)
}

/// Like [`parse_source`], keeping objects and errors in document order.
pub fn parse_source_ordered(src: &Source) -> Parsed {
    let mut out = Vec::new();
    if src.json {
        let mut stream = serde_json::Deserializer::from_str(&src.text).into_iter::<Value>();
        loop {
            let before = stream.byte_offset();
            match stream.next() {
                None => break,
                Some(Ok(v)) => {
                    let rest = &src.text[before..];
                    let skipped = rest.len() - rest.trim_start().len();
                    let m = Manifest {
                        object: v,
                        source: src.name.clone(),
                        doc_text: String::new(),
                        start_line: line_at_offset(&src.text, before + skipped),
                        path_prefix: String::new(),
                    };
                    push_object(&mut out, m);
                }
                Some(Err(e)) => {
                    out.push(Err(parse_error(
                        &src.name,
                        Some(e.line()),
                        &strip_position(&e.to_string()),
                    )));
                    break;
                }
            }
        }
        return out;
    }
    for doc in split_documents(&src.text) {
        match parse_yaml_doc(&doc.text) {
            Ok(None) => {}
            Ok(Some(v)) => {
                let m = Manifest {
                    object: v,
                    source: src.name.clone(),
                    doc_text: doc.text,
                    start_line: doc.start_line,
                    path_prefix: String::new(),
                };
                push_object(&mut out, m);
            }
            Err((line, detail)) => {
                let line = line.map(|l| l + doc.start_line - 1);
                out.push(Err(parse_error(&src.name, line, &detail)));
            }
        }
    }
    out
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

/// Splits a Kubernetes field path (`spec.containers[0].image`,
/// `metadata.labels[app.kubernetes.io/name]`) into segments.
pub fn parse_path(path: &str) -> Vec<Segment> {
    let mut segs = Vec::new();
    let mut cur = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => {
                if !cur.is_empty() {
                    segs.push(Segment::Key(std::mem::take(&mut cur)));
                }
            }
            '[' => {
                if !cur.is_empty() {
                    segs.push(Segment::Key(std::mem::take(&mut cur)));
                }
                let mut inner = String::new();
                for c in chars.by_ref() {
                    if c == ']' {
                        break;
                    }
                    inner.push(c);
                }
                match inner.parse::<usize>() {
                    Ok(i) => segs.push(Segment::Index(i)),
                    Err(_) => segs.push(Segment::Key(inner)),
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        segs.push(Segment::Key(cur));
    }
    segs
}

/// A significant line: its number, indentation and text without the
/// indentation.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    no: usize,
    indent: usize,
    text: &'a str,
}

fn significant_lines(doc: &str) -> Vec<Line<'_>> {
    doc.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let text = l.trim_start_matches(' ');
            let t = text.trim();
            if t.is_empty() || t.starts_with('#') {
                return None;
            }
            Some(Line {
                no: i + 1,
                indent: l.len() - text.len(),
                text,
            })
        })
        .collect()
}

fn is_dash(text: &str) -> bool {
    text == "-" || text.starts_with("- ") || text.starts_with("-\t")
}

/// The key of a `key: value` line and what follows the colon.
fn split_key(text: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(q @ ('"' | '\'')) = text.chars().next() {
        let end = text[1..].find(q)? + 1;
        let rest = text[end + 1..].trim_start().strip_prefix(':')?;
        (text[1..end].to_string(), rest)
    } else {
        let mut idx = None;
        for (i, c) in text.char_indices() {
            if c == ':' {
                let next = text[i + 1..].chars().next();
                if next.is_none_or(|n| n == ' ' || n == '\t') {
                    idx = Some(i);
                    break;
                }
            }
        }
        let i = idx?;
        (text[..i].trim_end().to_string(), &text[i + 1..])
    };
    if !rest.is_empty() && !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some((key, rest))
}

/// Whether what follows a key's colon leaves the value to the next lines
/// (nothing, a comment, an anchor or a tag).
fn value_is_block(rest: &str) -> bool {
    rest.split_whitespace()
        .take_while(|w| !w.starts_with('#'))
        .all(|w| w.starts_with('&') || w.starts_with('!'))
}

/// Finds the 1-based line of `doc` that a field path such as
/// `spec.template.spec.containers[0].image` points at, walking block
/// mappings by indentation and counting `- ` items for list indices. When
/// the full path is not in the document (a required field is missing, or
/// the value is written in flow style) the line of the deepest part found
/// is returned; `None` when not even the first segment is found.
pub fn locate(doc: &str, path: &str) -> Option<usize> {
    let segs = parse_path(path);
    let all = significant_lines(doc);
    let mut cur: Vec<Line<'_>> = all;
    let mut found = None;
    for seg in &segs {
        let Some(first) = cur.first().copied() else {
            break;
        };
        let ind = first.indent;
        match seg {
            Segment::Key(k) => {
                let hit = cur
                    .iter()
                    .enumerate()
                    .find(|(_, l)| l.indent == ind && split_key(l.text).is_some_and(|(key, _)| key == *k));
                let Some((idx, line)) = hit else {
                    break;
                };
                found = Some(line.no);
                let rest = split_key(line.text).map(|(_, r)| r).unwrap_or("");
                if !value_is_block(rest) {
                    cur = Vec::new();
                    continue;
                }
                cur = cur[idx + 1..]
                    .iter()
                    .take_while(|l| l.indent > ind || (l.indent == ind && is_dash(l.text)))
                    .copied()
                    .collect();
            }
            Segment::Index(n) => {
                if !is_dash(first.text) {
                    break;
                }
                let starts: Vec<usize> = cur
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.indent == ind && is_dash(l.text))
                    .map(|(i, _)| i)
                    .collect();
                let Some(&s) = starts.get(*n) else {
                    break;
                };
                let line = cur[s];
                found = Some(line.no);
                let mut item = Vec::new();
                let after = &line.text[1..];
                let content = after.trim_start_matches([' ', '\t']);
                if !content.is_empty() && !content.starts_with('#') {
                    item.push(Line {
                        no: line.no,
                        indent: ind + 1 + (after.len() - content.len()),
                        text: content,
                    });
                }
                item.extend(cur[s + 1..].iter().take_while(|l| l.indent > ind).copied());
                cur = item;
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 2
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: sidecar
        image: busybox
      - name: app
        # the main container
        image: nginx
        imagee: typo
        ports:
          - containerPort: 80
          - containerPort: 443
      nodeSelector:
        \"disk.type/x\": ssd
";

    #[test]
    fn locate_nested_paths() {
        assert_eq!(locate(WEB, "kind"), Some(2));
        assert_eq!(locate(WEB, "metadata.name"), Some(4));
        assert_eq!(locate(WEB, "metadata.labels.app"), Some(6));
        assert_eq!(locate(WEB, "spec.replicas"), Some(8));
        assert_eq!(locate(WEB, "spec.template.spec.containers"), Some(13));
    }

    #[test]
    fn locate_list_indices() {
        assert_eq!(locate(WEB, "spec.template.spec.containers[0]"), Some(14));
        assert_eq!(locate(WEB, "spec.template.spec.containers[0].name"), Some(14));
        assert_eq!(locate(WEB, "spec.template.spec.containers[0].image"), Some(15));
        assert_eq!(locate(WEB, "spec.template.spec.containers[1].image"), Some(18));
        assert_eq!(locate(WEB, "spec.template.spec.containers[1].imagee"), Some(19));
        assert_eq!(
            locate(WEB, "spec.template.spec.containers[1].ports[1].containerPort"),
            Some(22)
        );
        assert_eq!(locate(WEB, "spec.template.spec.containers[1].ports[0]"), Some(21));
        assert_eq!(
            locate(WEB, "spec.template.spec.nodeSelector[disk.type/x]"),
            Some(24)
        );
    }

    #[test]
    fn locate_falls_back_to_deepest_found() {
        // Missing leaf: the parent's line.
        assert_eq!(locate(WEB, "spec.selector"), Some(7));
        assert_eq!(locate(WEB, "spec.template.spec.containers[5].image"), Some(13));
        // Flow-style values cannot be entered.
        assert_eq!(locate(WEB, "spec.template.metadata.labels.app"), Some(11));
        assert_eq!(locate(WEB, "status"), None);
        assert_eq!(locate("", "spec"), None);
    }

    #[test]
    fn locate_does_not_match_deeper_keys() {
        let doc = "a:\n  b:\n    name: deep\nname: top\n";
        assert_eq!(locate(doc, "name"), Some(4));
        assert_eq!(locate(doc, "a.name"), Some(1));
    }

    #[test]
    fn locate_nested_lists() {
        let doc = "args:\n- - a\n  - b\n- - c\n";
        assert_eq!(locate(doc, "args[0][1]"), Some(3));
        assert_eq!(locate(doc, "args[1][0]"), Some(4));
    }

    #[test]
    fn path_segments() {
        assert_eq!(
            parse_path("spec.containers[0].env[a.b]"),
            vec![
                Segment::Key("spec".into()),
                Segment::Key("containers".into()),
                Segment::Index(0),
                Segment::Key("env".into()),
                Segment::Key("a.b".into()),
            ]
        );
    }

    #[test]
    fn splits_documents_with_lines() {
        let text = "a: 1\n---\n# only a comment\n---\nb: 2\nc: 3\n--- \nd: 4\n---\n";
        let docs = split_documents(text);
        let starts: Vec<usize> = docs.iter().map(|d| d.start_line).collect();
        assert_eq!(starts, vec![1, 2, 4, 7, 9]);
        assert_eq!(docs[0].text, "a: 1\n");
        assert!(is_blank(&docs[1].text));
        assert_eq!(docs[2].text, "\nb: 2\nc: 3\n");
        assert!(is_blank(&docs[4].text));
        // A `---` that is not the whole line (or followed by a space) does
        // not separate documents.
        assert_eq!(split_documents("a: ---\nb: '---x'\n").len(), 1);
    }

    fn src(text: &str) -> Source {
        Source {
            name: "web.yaml".into(),
            text: text.into(),
            json: false,
        }
    }

    #[test]
    fn parses_multi_document_streams() {
        let (objs, errs) = parse_source(&src("---\nkind: A\n---\n\n---\nkind: B\nx: [1, 2]\n"));
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[0].object["kind"], "A");
        assert_eq!(objs[1].object["x"][1], 2);
        assert_eq!(objs[1].start_line, 5);
        assert_eq!(objs[1].line_of("x"), Some(7));
    }

    #[test]
    fn reports_parse_errors_with_file_and_line() {
        let text = "kind: A\n---\nkind: B\nmetadata:\n  name: [unclosed\n  x: 1\n---\nkind: C\n";
        let (objs, errs) = parse_source(&src(text));
        let kinds: Vec<&Value> = objs.iter().map(|o| &o.object["kind"]).collect();
        assert_eq!(kinds, vec!["A", "C"]);
        assert_eq!(errs.len(), 1);
        let e = &errs[0];
        assert!(e.starts_with("error: error parsing web.yaml: line "), "{e}");
        let line: usize = e["error: error parsing web.yaml: line ".len()..]
            .split(':')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        assert!((5..=7).contains(&line), "{e}");
        assert!(!e.contains('\n'));

        let (_, errs) = parse_source(&src("a: 1\n---\nb: 2\n  c: 3\n"));
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("error: error parsing web.yaml: line 4: "),
            "{errs:?}"
        );
    }

    #[test]
    fn expands_lists() {
        let text = "apiVersion: v1\nkind: List\nitems:\n- kind: A\n  metadata:\n    name: a\n- kind: B\n";
        let (objs, errs) = parse_source(&src(text));
        assert!(errs.is_empty());
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].path_prefix, "items[1].");
        assert_eq!(objs[0].line_of("metadata.name"), Some(6));
        assert_eq!(objs[1].line_of("kind"), Some(7));
    }

    #[test]
    fn parses_json_streams() {
        let s = Source {
            name: "x.json".into(),
            text: "{\"kind\": \"A\"}\n\n{\"kind\": \"B\"}\n{\"kind\": \n".into(),
            json: true,
        };
        let (objs, errs) = parse_source(&s);
        assert_eq!(objs.len(), 2);
        assert_eq!(objs[1].start_line, 3);
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with("error: error parsing x.json: line "),
            "{errs:?}"
        );
    }

    #[test]
    fn reads_directories_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.yml"), "kind: B\n").unwrap();
        std::fs::write(dir.path().join("a.yaml"), "kind: A\n").unwrap();
        std::fs::write(dir.path().join("c.json"), "{\"kind\": \"C\"}").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let srcs = read_sources(&[dir.path().display().to_string()]).unwrap();
        let names: Vec<String> = srcs
            .iter()
            .map(|s| {
                Path::new(&s.name)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        assert_eq!(names, vec!["a.yaml", "b.yml", "c.json"]);
        assert!(srcs[2].json);
        let missing = dir.path().join("nope.yaml").display().to_string();
        let err = read_sources(std::slice::from_ref(&missing)).unwrap_err();
        assert_eq!(
            err,
            CliError::local(format!("the path \"{missing}\" does not exist"))
        );
    }
}
