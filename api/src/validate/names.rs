//! Syntax checks for names, label keys/values and data keys.
//!
//! Each check returns `Err(message)` with the wording the Kubernetes API
//! server uses, so validation errors read the same as kubectl's.

/// Longest DNS-1123 label (RFC 1123).
pub const DNS1123_LABEL_MAX: usize = 63;
/// Longest DNS-1123 subdomain (RFC 1123).
pub const DNS1123_SUBDOMAIN_MAX: usize = 253;
/// Longest label value and longest name part of a qualified name.
pub const LABEL_VALUE_MAX: usize = 63;

const LABEL_FMT: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const SUBDOMAIN_FMT: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const NAME_PART_FMT: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
const LABEL_VALUE_FMT: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const CONFIG_KEY_FMT: &str = "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')";

fn too_long(max: usize) -> String {
    format!("must be no more than {max} characters")
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` without a length limit.
fn is_label_shape(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => edge(first) && edge(last) && b.iter().all(|c| edge(c) || *c == b'-'),
        _ => false,
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` without a length limit.
fn is_name_part_shape(s: &str) -> bool {
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// A DNS-1123 label: at most 63 lowercase alphanumerics or '-', starting
/// and ending with an alphanumeric. Used for namespace and container names.
pub fn is_dns1123_label(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_LABEL_MAX {
        return Err(too_long(DNS1123_LABEL_MAX));
    }
    if !is_label_shape(s) {
        return Err(LABEL_FMT.to_string());
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
/// Used for most object names.
pub fn is_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(too_long(DNS1123_SUBDOMAIN_MAX));
    }
    if !s.split('.').all(is_label_shape) {
        return Err(SUBDOMAIN_FMT.to_string());
    }
    Ok(())
}

/// A qualified name, the syntax of label and annotation keys: an optional
/// DNS-subdomain prefix and '/', then a name part of at most 63 characters.
pub fn is_qualified_name(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("prefix part must be non-empty".to_string());
        }
        is_dns1123_subdomain(prefix).map_err(|e| format!("prefix part {e}"))?;
    }
    if name.is_empty() {
        return Err("name part must be non-empty".to_string());
    }
    if name.len() > LABEL_VALUE_MAX {
        return Err(format!("name part {}", too_long(LABEL_VALUE_MAX)));
    }
    // A second '/' lands in the name part, which the shape check rejects.
    if !is_name_part_shape(name) {
        return Err(NAME_PART_FMT.to_string());
    }
    Ok(())
}

/// A label value: empty, or at most 63 alphanumerics, '-', '_' or '.',
/// starting and ending with an alphanumeric.
pub fn is_label_value(s: &str) -> Result<(), String> {
    if s.len() > LABEL_VALUE_MAX {
        return Err(too_long(LABEL_VALUE_MAX));
    }
    if !s.is_empty() && !is_name_part_shape(s) {
        return Err(LABEL_VALUE_FMT.to_string());
    }
    Ok(())
}

/// A key of ConfigMap/Secret data: alphanumerics, '-', '_' or '.', at most
/// 253 characters, and not `.`, `..` or starting with `..` (it becomes a
/// file name when mounted).
pub fn is_config_map_key(s: &str) -> Result<(), String> {
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        return Err(too_long(DNS1123_SUBDOMAIN_MAX));
    }
    if s.is_empty()
        || !s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    {
        return Err(CONFIG_KEY_FMT.to_string());
    }
    if s == "." {
        return Err("must not be '.'".to_string());
    }
    if s == ".." {
        return Err("must not be '..'".to_string());
    }
    if s.starts_with("..") {
        return Err("must not start with '..'".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_label() {
        let long = "a".repeat(63);
        let too_long = "a".repeat(64);
        let ok = ["a", "abc", "a-b", "0", "123-abc", long.as_str()];
        let bad = ["", "A", "a.b", "-a", "a-", "a_b", "ä", too_long.as_str()];
        for s in ok {
            assert_eq!(is_dns1123_label(s), Ok(()), "{s:?}");
        }
        for s in bad {
            assert!(is_dns1123_label(s).is_err(), "{s:?}");
        }
        assert_eq!(
            is_dns1123_label(&too_long),
            Err("must be no more than 63 characters".to_string())
        );
    }

    #[test]
    fn dns1123_subdomain() {
        let long = format!("{}.{}", "a".repeat(126), "b".repeat(126));
        let too_long = "a".repeat(254);
        let ok = ["a", "a.b", "example.com", "web-1.x", long.as_str()];
        let bad = ["", "a..b", ".a", "a.", "A.b", "a_b", "a.-b", too_long.as_str()];
        for s in ok {
            assert_eq!(is_dns1123_subdomain(s), Ok(()), "{s:?}");
        }
        for s in bad {
            assert!(is_dns1123_subdomain(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn qualified_names() {
        let ok = [
            "app",
            "App_Name.x-1",
            "app.kubernetes.io/name",
            "example.com/A",
            "a/b",
        ];
        let bad = [
            "",
            "/a",
            "a/",
            "a/b/c",
            "-a",
            "a-",
            "Example.com/a",
            "a b",
            "a/-b",
        ];
        for s in ok {
            assert_eq!(is_qualified_name(s), Ok(()), "{s:?}");
        }
        for s in bad {
            assert!(is_qualified_name(s).is_err(), "{s:?}");
        }
        assert!(is_qualified_name(&"a".repeat(64)).is_err());
        assert!(is_qualified_name(&format!("{}/a", "b".repeat(254))).is_err());
    }

    #[test]
    fn label_values() {
        let ok = ["", "a", "MyValue", "my_value", "1.2.3", "a-b"];
        let bad = ["-a", "a-", "a b", "a/b", "_a"];
        for s in ok {
            assert_eq!(is_label_value(s), Ok(()), "{s:?}");
        }
        for s in bad {
            assert!(is_label_value(s).is_err(), "{s:?}");
        }
        assert!(is_label_value(&"a".repeat(64)).is_err());
    }

    #[test]
    fn config_map_keys() {
        for s in ["a", "KEY_NAME", "key-name", "key.name", ".env", "a..b"] {
            assert_eq!(is_config_map_key(s), Ok(()), "{s:?}");
        }
        for s in ["", ".", "..", "..a", "a/b", "a b"] {
            assert!(is_config_map_key(s).is_err(), "{s:?}");
        }
    }
}
