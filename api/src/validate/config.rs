//! ConfigMaps and Secrets: key syntax, size limits, Secret `stringData`
//! merging and type defaults, and the `immutable: true` lock.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;

use super::{is_config_map_key, Errs, Rules};

/// Kubernetes limits the data of a ConfigMap or Secret to 1 MiB.
const MAX_DATA_SIZE: usize = 1024 * 1024;

const IMMUTABLE_MSG: &str = "field is immutable when `immutable` is set";

fn check_keys<'a>(keys: impl Iterator<Item = &'a String>, field: &str, errs: &mut Errs) {
    for key in keys {
        if let Err(e) = is_config_map_key(key) {
            errs.invalid(format!("{field}[{key}]"), key, &e);
        }
    }
}

fn check_size(size: usize, field: &str, errs: &mut Errs) {
    if size > MAX_DATA_SIZE {
        errs.push(
            field,
            format!("Too long: must have at most {MAX_DATA_SIZE} bytes"),
        );
    }
}

/// Once the stored object is `immutable: true`, its data and the flag
/// itself are locked.
fn check_locked(
    old_immutable: Option<bool>,
    new_immutable: Option<bool>,
    data_changed: bool,
    errs: &mut Errs,
) {
    if old_immutable != Some(true) {
        return;
    }
    if new_immutable != Some(true) {
        errs.forbidden("immutable", IMMUTABLE_MSG);
    }
    if data_changed {
        errs.forbidden("data", IMMUTABLE_MSG);
    }
}

impl Rules for ConfigMap {
    fn validate(&self, errs: &mut Errs) {
        let empty_str = BTreeMap::new();
        let empty_bin = BTreeMap::new();
        let data = self.data.as_ref().unwrap_or(&empty_str);
        let binary = self.binary_data.as_ref().unwrap_or(&empty_bin);
        check_keys(data.keys(), "data", errs);
        check_keys(binary.keys(), "binaryData", errs);
        for key in data.keys().filter(|k| binary.contains_key(*k)) {
            errs.invalid(
                format!("data[{key}]"),
                key,
                "duplicate of key present in binaryData",
            );
        }
        let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>()
            + binary.iter().map(|(k, v)| k.len() + v.0.len()).sum::<usize>();
        check_size(size, "data", errs);
    }

    fn validate_update(&self, old: &Self, errs: &mut Errs) {
        let changed = self.data != old.data || self.binary_data != old.binary_data;
        check_locked(old.immutable, self.immutable, changed, errs);
    }
}

/// Keys a Secret of a well-known type must carry.
fn required_keys(secret_type: &str) -> &'static [&'static str] {
    match secret_type {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        _ => &[],
    }
}

impl Rules for Secret {
    /// Kubernetes merges the write-only `stringData` into `data` (string
    /// values win) and never stores `stringData`; the type defaults to
    /// `Opaque`.
    fn apply_defaults(&mut self) {
        if let Some(strings) = self.string_data.take() {
            let data = self.data.get_or_insert_with(BTreeMap::new);
            for (key, value) in strings {
                data.insert(key, ByteString(value.into_bytes()));
            }
        }
        if self.type_.as_deref().is_none_or(str::is_empty) {
            self.type_ = Some("Opaque".to_string());
        }
    }

    fn validate(&self, errs: &mut Errs) {
        let empty = BTreeMap::new();
        let data = self.data.as_ref().unwrap_or(&empty);
        check_keys(data.keys(), "data", errs);
        let size: usize = data.iter().map(|(k, v)| k.len() + v.0.len()).sum();
        check_size(size, "data", errs);
        for key in required_keys(self.type_.as_deref().unwrap_or_default()) {
            if !data.contains_key(*key) {
                errs.required(format!("data[{key}]"), "");
            }
        }
    }

    fn validate_update(&self, old: &Self, errs: &mut Errs) {
        if self.type_ != old.type_ {
            errs.immutable("type", &self.type_);
        }
        check_locked(old.immutable, self.immutable, self.data != old.data, errs);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use serde_json::{json, Value};

    fn cm(data: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": data})
    }

    fn secret(extra: Value) -> Value {
        merge(
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}),
            extra,
        )
    }

    #[test]
    fn configmap_validation() {
        let out = create("configmaps", cm(json!({"a.txt": "x", "KEY_1": "y"})));
        assert_eq!(out["data"]["a.txt"], "x");
        let cases: Vec<(Value, &str, &str)> = vec![
            (cm(json!({"a/b": "x"})), "data[a/b]", "a valid config key"),
            (cm(json!({"..a": "x"})), "data[..a]", "must not start with '..'"),
            (
                merge(cm(json!({"k": "x"})), json!({"binaryData": {"k": "AAEC"}})),
                "data[k]",
                "duplicate of key present in binaryData",
            ),
            (
                merge(cm(json!({})), json!({"binaryData": {"a b": "AAEC"}})),
                "binaryData[a b]",
                "a valid config key",
            ),
            (
                cm(json!({"big": "x".repeat(1024 * 1024 + 1)})),
                "data",
                "Too long",
            ),
        ];
        for (obj, field, needle) in cases {
            let err = create_err("configmaps", obj);
            assert_invalid(&err, field, needle);
        }
        // A ConfigMap has no status; sending one is an unknown field.
        let err = create_err("configmaps", merge(cm(json!({})), json!({"status": {"x": 1}})));
        assert_eq!(err.field.as_deref(), Some("status"));
    }

    #[test]
    fn configmap_immutable() {
        let old = create(
            "configmaps",
            merge(cm(json!({"k": "v"})), json!({"immutable": true})),
        );
        let err = update_err(
            "configmaps",
            &old,
            merge(old.clone(), json!({"data": {"k": "v2"}})),
        );
        assert_invalid(
            &err,
            "data",
            "Forbidden: field is immutable when `immutable` is set",
        );
        let err = update_err(
            "configmaps",
            &old,
            merge(old.clone(), json!({"immutable": false})),
        );
        assert_invalid(&err, "immutable", "Forbidden");
        // Metadata may still change.
        update(
            "configmaps",
            &old,
            merge(old.clone(), json!({"metadata": {"labels": {"a": "b"}}})),
        );
        // A mutable ConfigMap can change and become immutable.
        let mutable = create("configmaps", cm(json!({"k": "v"})));
        update(
            "configmaps",
            &mutable,
            merge(mutable.clone(), json!({"data": {"k": "v2"}, "immutable": true})),
        );
    }

    #[test]
    fn secret_string_data_is_merged() {
        let out = create(
            "secrets",
            secret(json!({"data": {"a": "b2xk", "keep": "eA=="}, "stringData": {"a": "new", "b": "hello"}})),
        );
        assert_eq!(out["data"], json!({"a": "bmV3", "b": "aGVsbG8=", "keep": "eA=="}));
        assert!(out.get("stringData").is_none());
        assert_eq!(out["type"], "Opaque");

        // Only stringData.
        let out = create("secrets", secret(json!({"stringData": {"password": "s3cr3t"}})));
        assert_eq!(out["data"], json!({"password": "czNjcjN0"}));

        // Keys of stringData are validated like data keys.
        let err = create_err("secrets", secret(json!({"stringData": {"bad key": "x"}})));
        assert_invalid(&err, "data[bad key]", "a valid config key");

        // Malformed base64 in data is a decoding error.
        let err = create_err("secrets", secret(json!({"data": {"a": "!!"}})));
        assert_eq!(err.field.as_deref(), Some("data.a"));
    }

    #[test]
    fn secret_types_and_updates() {
        let err = create_err(
            "secrets",
            secret(json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "c"}})),
        );
        assert_invalid(&err, "data[tls.key]", "Required value");
        create(
            "secrets",
            secret(json!({"type": "kubernetes.io/tls", "stringData": {"tls.crt": "c", "tls.key": "k"}})),
        );

        let old = create("secrets", secret(json!({"stringData": {"a": "1"}})));
        let out = update("secrets", &old, secret(json!({"stringData": {"a": "2"}})));
        assert_eq!(out["data"]["a"], "Mg==");
        let err = update_err(
            "secrets",
            &old,
            merge(old.clone(), json!({"type": "example.com/other"})),
        );
        assert_invalid(&err, "type", "field is immutable");

        let locked = create(
            "secrets",
            secret(json!({"stringData": {"a": "1"}, "immutable": true})),
        );
        let err = update_err(
            "secrets",
            &locked,
            merge(locked.clone(), json!({"stringData": {"a": "2"}})),
        );
        assert_invalid(&err, "data", "field is immutable when `immutable` is set");
        update(
            "secrets",
            &locked,
            merge(locked.clone(), json!({"stringData": {"a": "1"}})),
        );
    }
}
