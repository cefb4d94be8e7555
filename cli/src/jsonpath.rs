//! kubectl's JSONPath templates, for `-o jsonpath=`, `-o custom-columns=`
//! and `--sort-by`.
//!
//! The subset understood: text outside braces is printed as is; inside
//! braces a path (`.a.b`, `$.a`, `@.a`, `.items[*]`, `.items[0]`,
//! `.items[-1]`, `['key.with.dots']`, `.*`, a filter
//! `[?(@.type=="Ready")]` with `==` or `!=`, or just `[?(@.x)]`), a
//! string literal (`{"\n"}`), or `range PATH` ... `end`, whose body is
//! evaluated with each element as the current object. Several results of
//! one path are printed separated by spaces; strings print bare, other
//! values as compact JSON. A path that finds nothing prints nothing, as
//! kubectl's `--allow-missing-template-keys` (on by default) has it.

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Wildcard,
    Index(i64),
    Filter {
        path: Vec<Step>,
        /// `None`: the field merely has to exist.
        cmp: Option<(bool, Value)>,
    },
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Path(Vec<Step>),
    Range(Vec<Step>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    nodes: Vec<Node>,
}

fn err(template: &str, why: &str) -> String {
    format!("error parsing jsonpath {template}, {why}")
}

impl Template {
    /// Parses a template as `-o jsonpath=` takes it.
    pub fn parse(template: &str) -> Result<Template, String> {
        let mut stack: Vec<(Vec<Step>, Vec<Node>)> = Vec::new();
        let mut nodes: Vec<Node> = Vec::new();
        let mut rest = template;
        while !rest.is_empty() {
            let Some(open) = rest.find('{') else {
                nodes.push(Node::Text(rest.to_string()));
                break;
            };
            if open > 0 {
                nodes.push(Node::Text(rest[..open].to_string()));
            }
            let inner_start = &rest[open + 1..];
            let close = find_close(inner_start).ok_or_else(|| err(template, "unclosed action"))?;
            let inner = inner_start[..close].trim();
            rest = &inner_start[close + 1..];
            if let Some(path) = inner.strip_prefix("range ") {
                stack.push((parse_path(path.trim()).map_err(|e| err(template, &e))?, nodes));
                nodes = Vec::new();
            } else if inner == "end" {
                let (path, outer) = stack
                    .pop()
                    .ok_or_else(|| err(template, "not in range, nothing to end"))?;
                let body = std::mem::replace(&mut nodes, outer);
                nodes.push(Node::Range(path, body));
            } else if inner.starts_with('"') || inner.starts_with('\'') {
                nodes.push(Node::Text(
                    unquote(inner).ok_or_else(|| err(template, "bad string literal"))?,
                ));
            } else {
                nodes.push(Node::Path(parse_path(inner).map_err(|e| err(template, &e))?));
            }
        }
        if !stack.is_empty() {
            return Err(err(template, "unclosed range"));
        }
        Ok(Template { nodes })
    }

    /// Parses a template as custom columns and `--sort-by` take it: a bare
    /// path (`.metadata.name`) or one in braces.
    pub fn parse_relaxed(path: &str) -> Result<Template, String> {
        let p = path.trim();
        let p = p.strip_prefix('{').and_then(|p| p.strip_suffix('}')).unwrap_or(p);
        let p = p.strip_prefix('$').unwrap_or(p);
        if p.is_empty() || p.contains(['{', '}']) {
            return Err(format!("unexpected path string, expected a 'name1.name2' or '.name1.name2' or '{{name1.name2}}' or '{{.name1.name2}}', got \"{path}\""));
        }
        if p.starts_with('.') || p.starts_with('[') {
            Template::parse(&format!("{{{p}}}"))
        } else {
            Template::parse(&format!("{{.{p}}}"))
        }
    }

    /// The template rendered against `data`.
    pub fn render(&self, data: &Value) -> String {
        let mut out = String::new();
        render_nodes(&self.nodes, data, &mut out);
        out
    }

    /// Every value the template's paths find in `data`, in order (text is
    /// left out).
    pub fn values<'a>(&self, data: &'a Value) -> Vec<&'a Value> {
        let mut out = Vec::new();
        for n in &self.nodes {
            if let Node::Path(p) = n {
                out.extend(eval(p, data));
            }
        }
        out
    }
}

/// The index of the `}` closing an action, skipping quoted strings.
fn find_close(s: &str) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '}' => return Some(i),
            None => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let q = s.chars().next()?;
    let body = s.strip_prefix(q)?.strip_suffix(q)?;
    let mut out = String::new();
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            other => out.push(other),
        }
    }
    Some(out)
}

fn parse_path(s: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    let mut rest = s.strip_prefix('$').or_else(|| s.strip_prefix('@')).unwrap_or(s);
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.') {
            if let Some(r) = r.strip_prefix('*') {
                steps.push(Step::Wildcard);
                rest = r;
                continue;
            }
            let end = r.find(['.', '[']).unwrap_or(r.len());
            if end > 0 {
                steps.push(Step::Key(r[..end].to_string()));
            }
            rest = &r[end..];
        } else if let Some(r) = rest.strip_prefix('[') {
            let close = find_bracket(r).ok_or_else(|| format!("unterminated array in {s}"))?;
            steps.push(parse_bracket(r[..close].trim())?);
            rest = &r[close + 1..];
        } else {
            // A leading name without a dot (`metadata.name`).
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            steps.push(Step::Key(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    Ok(steps)
}

/// The index of the `]` closing a bracket, skipping quotes and nested
/// brackets inside filters.
fn find_bracket(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '"' | '\'' => quote = Some(c),
                '[' => depth += 1,
                ']' if depth == 0 => return Some(i),
                ']' => depth -= 1,
                _ => {}
            },
        }
    }
    None
}

fn parse_bracket(b: &str) -> Result<Step, String> {
    if b == "*" {
        return Ok(Step::Wildcard);
    }
    if b.starts_with('\'') || b.starts_with('"') {
        return unquote(b).map(Step::Key).ok_or_else(|| format!("bad key [{b}]"));
    }
    if let Some(f) = b.strip_prefix("?(").and_then(|f| f.strip_suffix(')')) {
        let f = f.trim();
        for (op, eq) in [("==", true), ("!=", false)] {
            if let Some((l, r)) = f.split_once(op) {
                let r = r.trim();
                let lit = if r.starts_with('"') || r.starts_with('\'') {
                    Value::String(unquote(r).ok_or_else(|| format!("bad literal {r}"))?)
                } else {
                    serde_json::from_str(r).map_err(|_| format!("bad literal {r}"))?
                };
                return Ok(Step::Filter {
                    path: parse_path(l.trim())?,
                    cmp: Some((eq, lit)),
                });
            }
        }
        return Ok(Step::Filter {
            path: parse_path(f)?,
            cmp: None,
        });
    }
    b.parse::<i64>()
        .map(Step::Index)
        .map_err(|_| format!("unsupported array index [{b}]"))
}

fn eval<'a>(steps: &[Step], data: &'a Value) -> Vec<&'a Value> {
    let mut cur = vec![data];
    for step in steps {
        let mut next = Vec::new();
        for v in cur {
            match step {
                Step::Key(k) => next.extend(v.get(k.as_str())),
                Step::Wildcard => match v {
                    Value::Array(a) => next.extend(a.iter()),
                    Value::Object(m) => next.extend(m.values()),
                    _ => {}
                },
                Step::Index(i) => {
                    if let Value::Array(a) = v {
                        let idx = if *i < 0 { a.len() as i64 + i } else { *i };
                        if let Some(e) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                            next.push(e);
                        }
                    }
                }
                Step::Filter { path, cmp } => {
                    let items: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        other => vec![other],
                    };
                    for item in items {
                        let found = eval(path, item);
                        let keep = match cmp {
                            None => !found.is_empty(),
                            Some((eq, lit)) => found.iter().any(|f| same(f, lit)) == *eq,
                        };
                        if keep {
                            next.push(item);
                        }
                    }
                }
            }
        }
        cur = next;
    }
    cur
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// How a found value prints: strings bare, anything else as compact JSON.
pub fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn render_nodes(nodes: &[Node], data: &Value, out: &mut String) {
    for n in nodes {
        match n {
            Node::Text(t) => out.push_str(t),
            Node::Path(p) => {
                let found: Vec<String> = eval(p, data).into_iter().map(text_of).collect();
                out.push_str(&found.join(" "));
            }
            Node::Range(p, body) => {
                for v in eval(p, data) {
                    render_nodes(body, v, out);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list() -> Value {
        json!({"kind": "List", "items": [
            {"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "x"}},
             "spec": {"containers": [{"name": "c1", "image": "i1"}, {"name": "c2", "image": "i2"}]},
             "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}, {"type": "X", "status": "False"}]}},
            {"metadata": {"name": "b"}, "status": {"phase": "Pending", "restarts": 3}}]})
    }

    fn render(t: &str, v: &Value) -> String {
        Template::parse(t).unwrap().render(v)
    }

    #[test]
    fn common_templates() {
        let l = list();
        let a = &l["items"][0];
        assert_eq!(render("{.metadata.name}", a), "a");
        assert_eq!(render("{.status.phase}", a), "Running");
        assert_eq!(render("{.items[*].metadata.name}", &l), "a b");
        assert_eq!(
            render(r#"{range .items[*]}{.metadata.name}{"\n"}{end}"#, &l),
            "a\nb\n"
        );
        assert_eq!(
            render(
                r#"{range .items[*]}{.metadata.name}{"\t"}{.status.phase}{"\n"}{end}"#,
                &l
            ),
            "a\tRunning\nb\tPending\n"
        );
        assert_eq!(render("name={$.items[0].metadata.name}", &l), "name=a");
        assert_eq!(render("{.items[-1].status.restarts}", &l), "3");
        assert_eq!(render("{.spec.containers[*].image}", a), "i1 i2");
        assert_eq!(render("{.metadata.labels['app.kubernetes.io/name']}", a), "x");
        assert_eq!(
            render(r#"{.status.conditions[?(@.type=="Ready")].status}"#, a),
            "True"
        );
        assert_eq!(
            render(r#"{.status.conditions[?(@.status!="True")].type}"#, a),
            "X"
        );
        assert_eq!(render("{.items[?(@.status.restarts)].metadata.name}", &l), "b");
        assert_eq!(render("{.metadata.nope}", a), "");
        assert_eq!(
            render("{.metadata.labels}", a),
            r#"{"app.kubernetes.io/name":"x"}"#
        );
        assert_eq!(render("{.items[*].metadata.name}{\"}\"}", &l), "a b}");
    }

    #[test]
    fn parse_errors() {
        assert!(Template::parse("{.a").is_err());
        assert!(Template::parse("{range .items[*]}{.a}").is_err());
        assert!(Template::parse("{end}").is_err());
        assert!(Template::parse("{.a[x]}").is_err());
        assert!(Template::parse_relaxed("").is_err());
        assert!(Template::parse_relaxed("{.a}{.b}").is_err());
        assert_eq!(
            Template::parse_relaxed("metadata.name")
                .unwrap()
                .render(&list()["items"][1]),
            "b"
        );
        let t = Template::parse_relaxed("{.metadata.name}").unwrap();
        assert_eq!(t.render(&list()["items"][1]), "b");
        let t = Template::parse_relaxed(".status.restarts").unwrap();
        assert_eq!(t.values(&list()["items"][1]), [&json!(3)]);
    }
}
