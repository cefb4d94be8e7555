//! `-o yaml|json|name|wide` printing.

use crate::error::{CliError, Result};
use serde::Serialize;
use serde_json::{json, Value};

/// The output format chosen with `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
}

impl Format {
    pub fn parse(o: Option<&str>) -> Result<Format> {
        Ok(match o.map(str::trim) {
            None | Some("") => Format::Table,
            Some("wide") => Format::Wide,
            Some("yaml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("name") => Format::Name,
            Some(other) => {
                return Err(CliError::local(format!(
                    "unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,name,wide,yaml"
                )))
            }
        })
    }
}

/// An object as YAML.
pub fn to_yaml(v: &Value) -> Result<String> {
    let mut s =
        serde_saphyr::to_string(v).map_err(|e| CliError::local(format!("error printing YAML: {e}")))?;
    if !s.ends_with('\n') {
        s.push('\n');
    }
    Ok(s)
}

/// An object as indented JSON (four spaces, like kubectl), with a newline.
pub fn to_json(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    if v.serialize(&mut ser).is_err() {
        return format!("{v}\n");
    }
    let mut s = String::from_utf8(buf).unwrap_or_default();
    s.push('\n');
    s
}

/// kubectl's wrapper for several objects.
pub fn list_of(items: Vec<Value>) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "List",
        "items": items,
        "metadata": {"resourceVersion": ""},
    })
}

/// The string at `path` in a JSON object, or "" if any step is missing.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .try_fold(v, |cur, p| cur.get(p))
        .and_then(Value::as_str)
        .unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(Format::parse(None).unwrap(), Format::Table);
        assert_eq!(Format::parse(Some("yaml")).unwrap(), Format::Yaml);
        assert!(Format::parse(Some("xml")).is_err());
    }

    #[test]
    fn yaml_and_json() {
        let v = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "labels": {"app": "web"}},
                       "spec": {"containers": [{"name": "c", "image": "nginx", "args": ["-x", "true"]}]}});
        let y = to_yaml(&v).unwrap();
        assert!(y.starts_with("apiVersion: v1\nkind: Pod\n"), "{y}");
        // What is printed reads back as the same object.
        let back: Value = serde_saphyr::from_str(&y).unwrap();
        assert_eq!(back, v);
        let j = to_json(&json!({"a": [1]}));
        assert_eq!(j, "{\n    \"a\": [\n        1\n    ]\n}\n");
        let v = json!({"items": [{"a": "", "b": "line1\nline2\n", "c": "true", "d": 1.5, "e": null}]});
        assert_eq!(
            to_yaml(&v).unwrap(),
            "items:\n- a: \"\"\n  b: |\n    line1\n    line2\n  c: \"true\"\n  d: 1.5\n  e: null\n"
        );
        let l = to_yaml(&list_of(vec![])).unwrap();
        let back: Value = serde_saphyr::from_str(&l).unwrap();
        assert_eq!(back["kind"], "List");
        assert_eq!(back["items"], json!([]));
    }
}
