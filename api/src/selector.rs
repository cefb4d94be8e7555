//! Label and field selectors.
//!
//! [`LabelSelector`] implements Kubernetes' label-selector string syntax
//! (`app=web,tier in (fe,be),!canary`) as used by `kubectl -l` and the
//! `labelSelector` list parameter, and converts the structured form found in
//! specs (`matchLabels` + `matchExpressions`) into the same representation.
//!
//! [`FieldSelector`] implements the `fieldSelector` list parameter: a
//! conjunction of `field=value` / `field!=value` terms over a small set of
//! supported fields.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;
use serde_json::Value;

use crate::error::ApiError;
use crate::validate::{is_label_value, is_qualified_name};

/// How a label requirement compares a label against its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Operator {
    /// `key=value` or `key==value`: the label is present with that value.
    Equals,
    /// `key!=value`: the label is absent or has another value.
    NotEquals,
    /// `key in (a,b)`: the label is present with one of the values.
    In,
    /// `key notin (a,b)`: the label is absent or has none of the values.
    NotIn,
    /// `key`: the label is present.
    Exists,
    /// `!key`: the label is absent.
    DoesNotExist,
}

/// One term of a label selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The comparison.
    pub operator: Operator,
    /// The values, sorted and deduplicated; exactly one for `Equals` and
    /// `NotEquals`, none for `Exists` and `DoesNotExist`.
    pub values: Vec<String>,
}

impl Requirement {
    /// Whether `labels` satisfy this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        let listed = |v: &String| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(listed),
            Operator::NotEquals | Operator::NotIn => !value.is_some_and(listed),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.first().map(String::as_str).unwrap_or_default();
        match self.operator {
            Operator::Equals => write!(f, "{}={}", self.key, first),
            Operator::NotEquals => write!(f, "{}!={}", self.key, first),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
        }
    }
}

/// Kubernetes label-selector string syntax: `a=b`, `a==b`, `a!=b`,
/// `a in (x,y)`, `a notin (x)`, `a`, `!a`, comma-separated (AND).
///
/// Requirements are kept sorted by key (as Kubernetes does), so the
/// [`Display`](fmt::Display) form is canonical and two selectors written in a
/// different order compare equal. The empty selector matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

/// A token of the label-selector string syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Equals,
    DoubleEquals,
    NotEquals,
    Not,
    LParen,
    RParen,
    Comma,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s) => write!(f, "\"{s}\""),
            Token::Equals => f.write_str("'='"),
            Token::DoubleEquals => f.write_str("'=='"),
            Token::NotEquals => f.write_str("'!='"),
            Token::Not => f.write_str("'!'"),
            Token::LParen => f.write_str("'('"),
            Token::RParen => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
        }
    }
}

fn describe(token: Option<&Token>) -> String {
    token.map_or_else(|| "end of input".to_string(), Token::to_string)
}

/// Split a selector string into tokens. Identifiers run until whitespace or
/// one of the symbols `=`, `!`, `(`, `)`, `,`.
fn lex(s: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' => tokens.push(Token::LParen),
            ')' => tokens.push(Token::RParen),
            ',' => tokens.push(Token::Comma),
            '=' => {
                if chars.next_if_eq(&'=').is_some() {
                    tokens.push(Token::DoubleEquals);
                } else {
                    tokens.push(Token::Equals);
                }
            }
            '!' => {
                if chars.next_if_eq(&'=').is_some() {
                    tokens.push(Token::NotEquals);
                } else {
                    tokens.push(Token::Not);
                }
            }
            c => {
                let mut ident = String::from(c);
                while let Some(n) = chars.next_if(|n| !n.is_whitespace() && !"=!(),".contains(*n)) {
                    ident.push(n);
                }
                tokens.push(Token::Ident(ident));
            }
        }
    }
    tokens
}

/// Recursive-descent parser over the token list.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// Whether the current requirement ends here (`,` or end of input).
    fn at_requirement_end(&self) -> bool {
        matches!(self.peek(), None | Some(Token::Comma))
    }

    fn key(&mut self) -> Result<String, String> {
        match self.next() {
            // The key is checked by `Requirement::new` once the operator is known.
            Some(Token::Ident(key)) => Ok(key),
            other => Err(format!(
                "found {}, expected: identifier",
                describe(other.as_ref())
            )),
        }
    }

    /// A single value after `=`, `==` or `!=`; nothing before `,` or the end
    /// means the empty value, as in Kubernetes (`tier=` selects `tier: ""`).
    fn single_value(&mut self) -> Result<String, String> {
        if self.at_requirement_end() {
            return Ok(String::new());
        }
        match self.next() {
            Some(Token::Ident(v)) => Ok(v),
            other => Err(format!(
                "found {}, expected: identifier",
                describe(other.as_ref())
            )),
        }
    }

    /// `( v1, v2, ... )`; an empty slot between commas is the empty value.
    fn value_list(&mut self) -> Result<Vec<String>, String> {
        match self.next() {
            Some(Token::LParen) => {}
            other => return Err(format!("found {}, expected: '('", describe(other.as_ref()))),
        }
        let mut values = Vec::new();
        if self.peek() == Some(&Token::RParen) {
            self.pos += 1;
            return Ok(values);
        }
        loop {
            let value = match self.peek() {
                Some(Token::Ident(v)) => {
                    let v = v.clone();
                    self.pos += 1;
                    v
                }
                Some(Token::Comma | Token::RParen) => String::new(),
                other => {
                    return Err(format!(
                        "found {}, expected: ',', ')' or identifier",
                        describe(other)
                    ))
                }
            };
            values.push(value);
            match self.next() {
                Some(Token::Comma) => {}
                Some(Token::RParen) => return Ok(values),
                other => {
                    return Err(format!(
                        "found {}, expected: ',' or ')'",
                        describe(other.as_ref())
                    ))
                }
            }
        }
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            let key = self.key()?;
            return Requirement::new(key, Operator::DoesNotExist, Vec::new());
        }
        let key = self.key()?;
        if self.at_requirement_end() {
            return Requirement::new(key, Operator::Exists, Vec::new());
        }
        let (operator, values) = match self.next() {
            Some(Token::Equals | Token::DoubleEquals) => (Operator::Equals, vec![self.single_value()?]),
            Some(Token::NotEquals) => (Operator::NotEquals, vec![self.single_value()?]),
            Some(Token::Ident(word)) if word == "in" => (Operator::In, self.value_list()?),
            Some(Token::Ident(word)) if word == "notin" => (Operator::NotIn, self.value_list()?),
            other => {
                return Err(format!(
                    "found {} after key \"{key}\", expected: '=', '!=', '==', 'in', 'notin'",
                    describe(other.as_ref())
                ))
            }
        };
        Requirement::new(key, operator, values)
    }
}

impl Requirement {
    /// Build a requirement, checking the key and values and normalizing the
    /// value list (sorted, deduplicated).
    fn new(key: String, operator: Operator, mut values: Vec<String>) -> Result<Self, String> {
        is_qualified_name(&key).map_err(|e| format!("invalid label key \"{key}\": {e}"))?;
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                return Err(format!(
                    "for 'in', 'notin' operators, values set can't be empty (key \"{key}\")"
                ))
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                return Err(format!(
                    "values set must be empty for exists and does not exist (key \"{key}\")"
                ))
            }
            _ => {}
        }
        for v in &values {
            is_label_value(v).map_err(|e| format!("invalid label value \"{v}\": {e}"))?;
        }
        values.sort();
        values.dedup();
        Ok(Requirement {
            key,
            operator,
            values,
        })
    }
}

impl LabelSelector {
    /// Parse the string syntax. Errors are `BadRequest` naming the bad part.
    pub fn parse(s: &str) -> Result<LabelSelector, ApiError> {
        let bad = |detail: String| {
            ApiError::bad_request(format!("unable to parse label selector \"{s}\": {detail}"))
        };
        let mut parser = Parser {
            tokens: lex(s),
            pos: 0,
        };
        let mut requirements = Vec::new();
        if parser.tokens.is_empty() {
            return Ok(Self::everything());
        }
        loop {
            requirements.push(parser.requirement().map_err(bad)?);
            match parser.next() {
                None => break,
                Some(Token::Comma) => {}
                Some(other) => return Err(bad(format!("found {other}, expected: ',' or end of input"))),
            }
        }
        Ok(Self::from_requirements(requirements))
    }

    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the selector has no requirements (and so matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// The selector requiring exactly these labels (the `matchLabels` form).
    /// Keys and values are not validated; use [`LabelSelector::parse`] or
    /// [`LabelSelector::from_k8s`] for untrusted input.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        Self::from_requirements(
            labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        )
    }

    fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        // A stable sort keeps the written order among requirements on the
        // same key, so the canonical string is deterministic.
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        LabelSelector { requirements }
    }

    /// From the structured form in specs (matchLabels + matchExpressions
    /// with In/NotIn/Exists/DoesNotExist). An empty structured selector
    /// matches everything.
    pub fn from_k8s(sel: &metav1::LabelSelector) -> Result<LabelSelector, ApiError> {
        from_k8s_causes(sel).map_err(|causes| {
            let (field, detail) = causes.into_iter().next().unwrap_or_default();
            ApiError::bad_request(format!("invalid label selector: {field}: {detail}")).with_field(field)
        })
    }

    /// Same as [`LabelSelector::from_k8s`], from JSON. `null` is treated as
    /// the empty selector; callers for which a missing selector must match
    /// nothing have to check for it themselves.
    pub fn from_json(sel: &Value) -> Result<LabelSelector, ApiError> {
        if sel.is_null() {
            return Ok(Self::everything());
        }
        let typed: metav1::LabelSelector = serde_json::from_value(sel.clone())
            .map_err(|e| ApiError::bad_request(format!("invalid label selector: {e}")))?;
        Self::from_k8s(&typed)
    }
}

/// Convert a structured selector, reporting every problem as a
/// `(field, detail)` pair with the field relative to the selector, so that
/// object validation can prefix it with e.g. `spec.selector`.
pub(crate) fn from_k8s_causes(sel: &metav1::LabelSelector) -> Result<LabelSelector, Vec<(String, String)>> {
    let mut requirements = Vec::new();
    let mut causes = Vec::new();
    for (key, value) in sel.match_labels.iter().flatten() {
        if let Err(e) = is_qualified_name(key) {
            causes.push((
                "matchLabels".to_string(),
                format!("Invalid value: \"{key}\": {e}"),
            ));
            continue;
        }
        if let Err(e) = is_label_value(value) {
            causes.push((
                format!("matchLabels.{key}"),
                format!("Invalid value: \"{value}\": {e}"),
            ));
            continue;
        }
        requirements.push(Requirement {
            key: key.clone(),
            operator: Operator::Equals,
            values: vec![value.clone()],
        });
    }
    for (i, expr) in sel.match_expressions.iter().flatten().enumerate() {
        let path = format!("matchExpressions[{i}]");
        let operator = match expr.operator.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                causes.push((
                    format!("{path}.operator"),
                    format!("Unsupported value: \"{other}\": supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\""),
                ));
                continue;
            }
        };
        let values = expr.values.clone().unwrap_or_default();
        if let Err(e) = is_qualified_name(&expr.key) {
            causes.push((
                format!("{path}.key"),
                format!("Invalid value: \"{}\": {e}", expr.key),
            ));
            continue;
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                causes.push((
                    format!("{path}.values"),
                    "Required value: must be specified when `operator` is 'In' or 'NotIn'".to_string(),
                ));
                continue;
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                causes.push((
                    format!("{path}.values"),
                    "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                        .to_string(),
                ));
                continue;
            }
            _ => {}
        }
        match Requirement::new(expr.key.clone(), operator, values) {
            Ok(r) => requirements.push(r),
            Err(e) => causes.push((format!("{path}.values"), format!("Invalid value: {e}"))),
        }
    }
    if causes.is_empty() {
        Ok(LabelSelector::from_requirements(requirements))
    } else {
        Err(causes)
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

/// Labels of a JSON object (metadata.labels), empty if none. Non-string
/// values are skipped.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// What label and field selectors can see of `obj`: metadata's name,
/// namespace, uid, resourceVersion and labels, and every path of
/// [`SUPPORTED_FIELDS`] the object has. Any selector matches the result
/// exactly as it matches `obj`, at a fraction of the size; the watch
/// history keeps previous states in this form, since all it needs them for
/// is telling whether an object stopped matching.
pub fn selectable(obj: &Value) -> Value {
    selectable_view(obj).0.to_value()
}

/// [`selectable`] without copying: a view of `obj` that encodes to exactly
/// the JSON of `selectable(obj)`, for writers that only encode the
/// projection (the watch history, which keeps one for every update).
pub fn selectable_view(obj: &Value) -> SelectableView<'_> {
    let mut top = BTreeMap::new();
    let mut meta = BTreeMap::new();
    for field in ["name", "namespace", "uid", "resourceVersion", "labels"] {
        if let Some(v) = obj.get("metadata").and_then(|m| m.get(field)) {
            meta.insert(field, ViewNode::Leaf(v));
        }
    }
    top.insert("metadata", ViewNode::Map(meta));
    for path in SUPPORTED_FIELDS {
        let mut segments = path.split('.').peekable();
        let mut src = obj;
        let mut dst = &mut top;
        while let Some(segment) = segments.next() {
            let Some(next) = src.get(segment) else { break };
            if segments.peek().is_none() {
                dst.insert(segment, ViewNode::Leaf(next));
                break;
            }
            // Only objects lead further; a scalar in the way means the
            // path is absent, as `field_value` reads it.
            if !next.is_object() {
                break;
            }
            src = next;
            let entry = dst
                .entry(segment)
                .or_insert_with(|| ViewNode::Map(BTreeMap::new()));
            let ViewNode::Map(map) = entry else { break };
            dst = map;
        }
    }
    SelectableView(ViewNode::Map(top))
}

/// What [`selectable_view`] returns: serialize it.
#[derive(Debug)]
pub struct SelectableView<'a>(ViewNode<'a>);

#[derive(Debug)]
enum ViewNode<'a> {
    Leaf(&'a Value),
    /// Keys sort as `serde_json::Map`'s do, so the encoding matches.
    Map(BTreeMap<&'static str, ViewNode<'a>>),
}

impl ViewNode<'_> {
    fn to_value(&self) -> Value {
        match self {
            ViewNode::Leaf(v) => (*v).clone(),
            ViewNode::Map(m) => Value::Object(m.iter().map(|(k, v)| (k.to_string(), v.to_value())).collect()),
        }
    }
}

impl serde::Serialize for SelectableView<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(serializer)
    }
}

impl serde::Serialize for ViewNode<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            ViewNode::Leaf(v) => v.serialize(serializer),
            ViewNode::Map(m) => serializer.collect_map(m),
        }
    }
}

/// The field paths a field selector may use. Kubernetes supports a
/// per-kind set; rk accepts the union and evaluates any of them on any
/// object (a field the object lacks counts as "").
pub const SUPPORTED_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.unschedulable",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "type",
];

/// How a field requirement compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOperator {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRequirement {
    /// A dotted field path from [`SUPPORTED_FIELDS`].
    pub field: String,
    /// The comparison.
    pub operator: FieldOperator,
    /// The value compared against (unescaped).
    pub value: String,
}

/// Field selector: `metadata.name=x,metadata.namespace!=y,spec.nodeName=n`
/// (`=`, `==`, `!=`). Values may escape `,`, `=` and `\` with a backslash.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Split `s` at unescaped commas.
fn split_unescaped_commas(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

/// Resolve backslash escapes in a field selector value.
fn unescape_value(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => out.push(e),
                Some(e) => return Err(format!("invalid escape sequence '\\{e}'")),
                None => return Err("trailing backslash".to_string()),
            },
            // An unescaped '=' in the value is ambiguous (was "a==b" meant
            // as field "a", value "=b"?), so Kubernetes rejects it.
            '=' => return Err("unescaped '=' in value".to_string()),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl FieldSelector {
    /// Parse the string syntax. Unsupported field paths are rejected with
    /// `field label not supported: X`.
    pub fn parse(s: &str) -> Result<FieldSelector, ApiError> {
        let mut requirements = Vec::new();
        if s.trim().is_empty() {
            return Ok(Self::everything());
        }
        for part in split_unescaped_commas(s) {
            let bad =
                |detail: &str| ApiError::bad_request(format!("invalid field selector: '{part}': {detail}"));
            let (field, operator, raw) = if let Some((f, v)) = part.split_once("!=") {
                (f, FieldOperator::NotEquals, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, FieldOperator::Equals, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, FieldOperator::Equals, v)
            } else {
                return Err(bad("expected 'field=value', 'field==value' or 'field!=value'"));
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(bad("missing field name"));
            }
            if !SUPPORTED_FIELDS.contains(&field) {
                return Err(
                    ApiError::bad_request(format!("field label not supported: {field}")).with_field(field),
                );
            }
            let value = unescape_value(raw.trim()).map_err(|e| bad(&e))?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// The selector that matches every object.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements in the order written.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value an `Equals` requirement demands for `field`, if any; lets a
    /// server use an index (e.g. pods by `spec.nodeName`) instead of a scan.
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Evaluate on a JSON object; a missing field counts as "" (Kubernetes
    /// semantics: `spec.nodeName=` matches unbound pods). Booleans and
    /// numbers compare by their JSON text (`spec.unschedulable=true`).
    pub fn matches(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            match r.operator {
                FieldOperator::Equals => actual == r.value,
                FieldOperator::NotEquals => actual != r.value,
            }
        })
    }
}

/// The string value of a dotted field path in `obj`, "" if missing.
fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for segment in path.split('.') {
        match cur.get(segment) {
            Some(next) => cur = next,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        // Objects and arrays are never selectable; they compare as "".
        Value::Object(_) | Value::Array(_) => String::new(),
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.operator {
                FieldOperator::Equals => "=",
                FieldOperator::NotEquals => "!=",
            };
            write!(f, "{}{}{}", r.field, op, escape_value(&r.value))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reason;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_canonical_forms() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("   ", ""),
            ("a=b", "a=b"),
            ("a==b", "a=b"),
            ("a = b", "a=b"),
            ("a!=b", "a!=b"),
            ("a", "a"),
            ("!a", "!a"),
            ("! a", "!a"),
            ("a in (y,x)", "a in (x,y)"),
            ("a in(x, y, x)", "a in (x,y)"),
            ("a notin (x)", "a notin (x)"),
            ("b=1,a=2", "a=2,b=1"),
            ("tier=", "tier="),
            ("a in (x,)", "a in (,x)"),
            (
                "app.kubernetes.io/name=web,env in (prod)",
                "app.kubernetes.io/name=web,env in (prod)",
            ),
            ("in=x", "in=x"),
            ("x,!y,z=1", "x,!y,z=1"),
        ];
        for (input, canonical) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("parse {input:?}: {e}"));
            assert_eq!(sel.to_string(), *canonical, "{input:?}");
            // The canonical form parses back to the same selector.
            assert_eq!(LabelSelector::parse(canonical).ok(), Some(sel), "{canonical:?}");
        }
    }

    #[test]
    fn parse_errors_name_bad_part() {
        let cases: &[(&str, &str)] = &[
            ("a=b,", "end of input"),
            (",a", "','"),
            ("a b", "\"b\""),
            ("a in x", "expected: '('"),
            ("a in ()", "values set can't be empty"),
            ("a in (x", "end of input"),
            ("a in (x y)", "\"y\""),
            ("a=b=c", "'='"),
            ("!a=b", "'='"),
            ("a!b", "'!'"),
            ("=b", "expected: identifier"),
            ("A B/c=d", "\"B/c\""),
            ("a/b/c=d", "invalid label key \"a/b/c\""),
            ("a=b c", "\"c\""),
            ("a=-x", "invalid label value \"-x\""),
            ("a in (ok,b@d)", "invalid label value \"b@d\""),
            ("(a)", "'('"),
        ];
        for (input, needle) in cases {
            let err = match LabelSelector::parse(input) {
                Ok(sel) => panic!("{input:?} parsed as {sel}"),
                Err(e) => e,
            };
            assert_eq!(err.reason, Reason::BadRequest, "{input:?}");
            assert!(
                err.message.contains(needle),
                "{input:?}: {} does not contain {needle}",
                err.message
            );
        }
    }

    #[test]
    fn matching() {
        let l = labels(&[("app", "web"), ("tier", "fe"), ("empty", "")]);
        let cases: &[(&str, bool)] = &[
            ("", true),
            ("app=web", true),
            ("app==web", true),
            ("app=db", false),
            ("app!=db", true),
            ("app!=web", false),
            ("missing!=x", true),
            ("app in (web,db)", true),
            ("app in (db)", false),
            ("missing in (x)", false),
            ("app notin (db)", true),
            ("app notin (web)", false),
            ("missing notin (x)", true),
            ("app", true),
            ("missing", false),
            ("!app", false),
            ("!missing", true),
            ("app=web,tier=fe", true),
            ("app=web,tier=be", false),
            ("empty=", true),
            ("empty", true),
            ("missing=", false),
        ];
        for (input, want) in cases {
            let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.matches(&l), *want, "{input:?}");
        }
        assert!(LabelSelector::everything().matches(&BTreeMap::new()));
        assert!(LabelSelector::everything().is_empty());
        assert!(!LabelSelector::parse("a").map(|s| s.is_empty()).unwrap_or(true));
    }

    #[test]
    fn structured_selectors() {
        let sel = LabelSelector::from_json(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["fe", "be"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "team", "operator": "Exists"}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            sel.to_string(),
            "app=web,!canary,env notin (dev),team,tier in (be,fe)"
        );
        assert!(sel.matches(&labels(&[("app", "web"), ("tier", "fe"), ("team", "x")])));
        assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!sel.matches(&labels(&[
            ("app", "web"),
            ("tier", "fe"),
            ("team", "x"),
            ("canary", "1")
        ])));

        assert_eq!(
            LabelSelector::from_json(&Value::Null),
            Ok(LabelSelector::everything())
        );
        assert_eq!(
            LabelSelector::from_json(&json!({})),
            Ok(LabelSelector::everything())
        );
        assert_eq!(
            LabelSelector::from_labels(&labels(&[("b", "2"), ("a", "1")])).to_string(),
            "a=1,b=2"
        );

        let bad: &[(Value, &str)] = &[
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}),
                "matchExpressions[0].operator",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
                "matchExpressions[0].values",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
                "matchExpressions[0].values",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
                "matchExpressions[0].values",
            ),
            (
                json!({"matchExpressions": [{"key": "-a", "operator": "Exists"}]}),
                "matchExpressions[0].key",
            ),
            (
                json!({"matchExpressions": [{"key": "a", "operator": "In", "values": ["a b"]}]}),
                "matchExpressions[0].values",
            ),
            (json!({"matchLabels": {"a b": "x"}}), "matchLabels"),
            (json!({"matchLabels": {"a": "-x"}}), "matchLabels.a"),
        ];
        for (input, field) in bad {
            let err = match LabelSelector::from_json(input) {
                Ok(sel) => panic!("{input} accepted as {sel}"),
                Err(e) => e,
            };
            assert_eq!(err.reason, Reason::BadRequest);
            assert_eq!(err.field.as_deref(), Some(*field), "{input}: {}", err.message);
        }
        let err = LabelSelector::from_json(&json!({"matchLabels": "x"}));
        assert_eq!(err.map_err(|e| e.reason), Err(Reason::BadRequest));
    }

    #[test]
    fn labels_of_objects() {
        let obj = json!({"metadata": {"labels": {"a": "1", "b": 2}}});
        assert_eq!(labels_of(&obj), labels(&[("a", "1")]));
        assert!(labels_of(&json!({})).is_empty());
        assert!(labels_of(&json!({"metadata": {"labels": null}})).is_empty());
    }

    #[test]
    fn field_selector_parse() {
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("metadata.name=x", "metadata.name=x"),
            ("metadata.name==x", "metadata.name=x"),
            ("metadata.namespace!=y", "metadata.namespace!=y"),
            ("spec.nodeName=", "spec.nodeName="),
            (
                "spec.nodeName=n,status.phase=Running",
                "spec.nodeName=n,status.phase=Running",
            ),
            (" status.phase = Running ", "status.phase=Running"),
            ("involvedObject.name=a\\,b", "involvedObject.name=a\\,b"),
            ("reason=x\\=y", "reason=x\\=y"),
            ("type=Warning", "type=Warning"),
        ];
        for (input, canonical) in cases {
            let sel = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.to_string(), *canonical, "{input:?}");
            assert_eq!(FieldSelector::parse(canonical).ok(), Some(sel));
        }
        let sel = FieldSelector::parse("involvedObject.name=a\\,b").unwrap_or_default();
        assert_eq!(sel.requirements()[0].value, "a,b");
        assert_eq!(
            FieldSelector::parse("spec.nodeName=n1")
                .ok()
                .and_then(|s| s.required_value("spec.nodeName").map(str::to_string)),
            Some("n1".to_string())
        );
    }

    #[test]
    fn field_selector_errors() {
        let cases: &[(&str, &str)] = &[
            ("spec.foo=x", "field label not supported: spec.foo"),
            ("metadata.labels=x", "field label not supported: metadata.labels"),
            ("metadata.name", "expected 'field=value'"),
            ("=x", "missing field name"),
            ("metadata.name=a=b", "unescaped '='"),
            ("metadata.name=a\\x", "invalid escape"),
            ("metadata.name=x,", "expected 'field=value'"),
        ];
        for (input, needle) in cases {
            let err = match FieldSelector::parse(input) {
                Ok(sel) => panic!("{input:?} parsed as {sel}"),
                Err(e) => e,
            };
            assert_eq!(err.reason, Reason::BadRequest);
            assert!(err.message.contains(needle), "{input:?}: {}", err.message);
        }
    }

    #[test]
    fn field_selector_matching() {
        let bound = json!({"metadata": {"name": "p1", "namespace": "default"},
                           "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let unbound = json!({"metadata": {"name": "p2", "namespace": "kube-system"}, "spec": {}});
        let node = json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
        let event = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p1"}, "type": "Warning", "reason": "BackOff"});
        let cases: &[(&str, &Value, bool)] = &[
            ("", &bound, true),
            ("metadata.name=p1", &bound, true),
            ("metadata.name=p2", &bound, false),
            ("metadata.namespace!=kube-system", &bound, true),
            ("metadata.namespace!=kube-system", &unbound, false),
            ("spec.nodeName=", &unbound, true),
            ("spec.nodeName=", &bound, false),
            ("spec.nodeName!=", &bound, true),
            ("spec.nodeName=n1,status.phase=Running", &bound, true),
            ("spec.nodeName=n1,status.phase=Pending", &bound, false),
            ("status.phase=", &unbound, true),
            ("spec.unschedulable=true", &node, true),
            ("spec.unschedulable=true", &bound, false),
            ("involvedObject.kind=Pod,involvedObject.name=p1", &event, true),
            ("type=Warning,reason=BackOff", &event, true),
            ("involvedObject.namespace=", &event, true),
        ];
        for (input, obj, want) in cases {
            let sel = FieldSelector::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
            assert_eq!(sel.matches(obj), *want, "{input:?} on {obj}");
        }
    }

    #[test]
    fn the_selectable_view_encodes_exactly_as_the_selectable_copy() {
        use serde_json::json;
        let objects = [
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "web-1", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                             "labels": {"app": "web", "tier": "front"}, "annotations": {"big": "x"}},
                "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "s",
                         "containers": [{"name": "c", "image": "i"}]},
                "status": {"phase": "Running", "podIP": "10.0.0.2", "conditions": [{"type": "Ready"}]}}),
            json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "d"},
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "d", "uid": "u", "fieldPath": "x"},
                "reason": "Scheduled", "type": "Normal", "message": "m"}),
            json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"unschedulable": true, "taints": []},
                "status": {}}),
            json!({"kind": "Odd", "metadata": "not an object", "spec": "scalar", "status": {"phase": null},
                "involvedObject": 3, "reason": {"nested": true}}),
            json!({"spec": {}}),
            json!({}),
            json!("not even an object"),
        ];
        for obj in &objects {
            assert_eq!(
                serde_json::to_string(&selectable_view(obj)).expect("view"),
                serde_json::to_string(&selectable(obj)).expect("copy"),
                "{obj}"
            );
        }
        // The walk itself, on the shapes that stop it: a scalar on the way
        // ends a path, a scalar at its end is kept, an empty object stays.
        let encoded = |obj: &Value| serde_json::to_string(&selectable_view(obj)).expect("view");
        assert_eq!(
            encoded(&objects[3]),
            r#"{"metadata":{},"reason":{"nested":true},"status":{"phase":null}}"#
        );
        assert_eq!(encoded(&objects[4]), r#"{"metadata":{},"spec":{}}"#);
        assert_eq!(encoded(&objects[6]), r#"{"metadata":{}}"#);
        assert_eq!(
            encoded(&objects[1]),
            r#"{"involvedObject":{"fieldPath":"x","kind":"Pod","name":"p","namespace":"d","uid":"u"},"metadata":{"name":"e","namespace":"d"},"reason":"Scheduled","type":"Normal"}"#
        );
    }

    #[test]
    fn the_selectable_part_of_an_object_matches_every_selector_as_the_object_does() {
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": "shop", "uid": "u", "resourceVersion": "7",
                         "labels": {"app": "web", "tier": "front"}, "annotations": {"big": "x"}},
            "spec": {"nodeName": "n1", "restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.2", "conditions": [{"type": "Ready"}]}});
        let small = selectable(&pod);
        assert!(small["spec"].get("containers").is_none() && small["metadata"].get("annotations").is_none());
        assert!(small["status"].get("conditions").is_none());
        for (labels, fields) in [
            ("app=web", ""),
            ("app=db", ""),
            ("tier in (front,back)", "spec.nodeName=n1"),
            ("", "spec.nodeName=n2"),
            ("", "status.phase=Running,metadata.namespace=shop"),
            ("", "status.podIP=10.0.0.2,metadata.name!=web-1"),
            ("!app", "spec.restartPolicy=Always"),
            ("", "spec.unschedulable="),
        ] {
            let l = LabelSelector::parse(labels).expect("labels");
            let f = FieldSelector::parse(fields).expect("fields");
            assert_eq!(
                l.matches(&labels_of(&small)) && f.matches(&small),
                l.matches(&labels_of(&pod)) && f.matches(&pod),
                "{labels} / {fields}"
            );
        }
    }
}
