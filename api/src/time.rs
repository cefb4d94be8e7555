//! Wall-clock time at one-second resolution, the resolution of Kubernetes'
//! timestamps (creationTimestamp, conditions, Events), shared by the
//! control plane and the node agent so both write the same shape.

use jiff::Timestamp;

/// The system clock, truncated to whole seconds.
pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// [`now`] as RFC 3339 (`2026-11-27T06:00:00Z`).
pub fn now_rfc3339() -> String {
    now().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_whole_seconds_in_utc() {
        let s = now_rfc3339();
        assert_eq!(s.len(), "2026-11-27T06:00:00Z".len(), "{s}");
        assert!(s.ends_with('Z'), "{s}");
        assert_eq!(now().subsec_nanosecond(), 0);
    }
}
