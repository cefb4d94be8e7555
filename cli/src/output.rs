//! `-o yaml|json|name|wide` printing.

use crate::error::{CliError, Result};
use crate::jsonpath::Template;
use serde::Serialize;
use serde_json::{json, Value};

/// The output format chosen with `-o`.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
    /// `-o jsonpath=TEMPLATE`.
    JsonPath(Template),
    /// `-o custom-columns=HEADER:PATH,...`.
    CustomColumns(Vec<(String, Template)>),
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
                if let Some(t) = other.strip_prefix("jsonpath=") {
                    let t = strip_quotes(t);
                    return Template::parse(t).map(Format::JsonPath).map_err(CliError::Local);
                }
                if let Some(spec) = other.strip_prefix("custom-columns=") {
                    return custom_columns(spec).map(Format::CustomColumns);
                }
                if other == "jsonpath" || other == "custom-columns" {
                    return Err(CliError::local(format!(
                        "{other} format specified but no {other} template given"
                    )));
                }
                return Err(CliError::local(format!(
                    "unable to match a printer suitable for the output format \"{other}\", allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"
                )));
            }
        })
    }
}

/// A template in single quotes (a shell quoting mistake kubectl forgives)
/// loses them.
fn strip_quotes(t: &str) -> &str {
    t.strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or(t)
}

/// Parses `HEADER:PATH,HEADER:PATH`.
fn custom_columns(spec: &str) -> Result<Vec<(String, Template)>> {
    let mut cols = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let Some((header, path)) = part.split_once(':') else {
            return Err(CliError::local(format!(
                "unexpected custom-columns spec: {part}, expected <header>:<json-path-expr>"
            )));
        };
        cols.push((
            header.to_string(),
            Template::parse_relaxed(path).map_err(CliError::Local)?,
        ));
    }
    if cols.is_empty() {
        return Err(CliError::local(
            "custom-columns format specified but no custom columns given",
        ));
    }
    Ok(cols)
}

/// The custom-columns table of `objects`: several values of one column
/// are joined with commas, none prints `<none>`.
pub fn custom_columns_table(cols: &[(String, Template)], objects: &[Value]) -> crate::table::Table {
    let rows = objects
        .iter()
        .map(|o| {
            cols.iter()
                .map(|(_, t)| {
                    let vals: Vec<String> = t.values(o).into_iter().map(crate::jsonpath::text_of).collect();
                    if vals.is_empty() {
                        "<none>".to_string()
                    } else {
                        vals.join(",")
                    }
                })
                .collect()
        })
        .collect();
    crate::table::Table {
        headers: cols.iter().map(|(h, _)| h.clone()).collect(),
        rows,
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
        assert!(matches!(
            Format::parse(Some("jsonpath={.a}")),
            Ok(Format::JsonPath(_))
        ));
        assert!(matches!(
            Format::parse(Some("jsonpath='{.a}'")),
            Ok(Format::JsonPath(_))
        ));
        assert!(Format::parse(Some("jsonpath={.a")).is_err());
        assert!(Format::parse(Some("custom-columns=NAME")).is_err());
        let Ok(Format::CustomColumns(cols)) = Format::parse(Some(
            "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[*].image,X:.nope",
        )) else {
            panic!("custom columns");
        };
        let objs =
            [json!({"metadata": {"name": "a"}, "spec": {"containers": [{"image": "i1"}, {"image": "i2"}]}})];
        assert_eq!(
            custom_columns_table(&cols, &objs).render(true),
            "NAME   IMAGE   X\na      i1,i2   <none>\n"
        );
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
