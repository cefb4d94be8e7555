//! Wall-clock time at one-second resolution, the resolution of Kubernetes'
//! timestamps (creationTimestamp, conditions, lastScheduleTime).

use k8s_openapi::jiff::Timestamp;

pub fn now() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `now()` as RFC 3339 (`2026-11-27T06:00:00Z`).
pub fn now_rfc3339() -> String {
    now().to_string()
}
