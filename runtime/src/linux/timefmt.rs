//! Time formatting without a calendar crate: RFC 3339 with nanoseconds in UTC,
//! the way Go's `time.RFC3339Nano` prints it (trailing zeros of the fraction
//! trimmed), because the CRI log format and its readers (kubelet, `kubectl logs`)
//! expect exactly that shape.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Converts days since 1970-01-01 into a (year, month, day) civil date.
/// This is Howard Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Formats a time as `2006-01-02T15:04:05.999999999Z` (fraction trimmed of
/// trailing zeros and omitted when zero). Times before 1970 are clamped to the epoch,
/// which never happens for timestamps this runtime takes from the clock.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs() as i64;
    let nanos = d.subsec_nanos();
    let (y, mo, da) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let (h, mi, s) = (sod / 3600, (sod % 3600) / 60, sod % 60);
    let mut out = format!("{y:04}-{mo:02}-{da:02}T{h:02}:{mi:02}:{s:02}");
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Nanoseconds since the epoch, the form times are stored in on disk.
pub fn to_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

pub fn from_nanos(n: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(rfc3339_nano(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2006-01-02T15:04:05Z is 1136214245 seconds after the epoch.
        let t = UNIX_EPOCH + Duration::new(1_136_214_245, 999_999_999);
        assert_eq!(rfc3339_nano(t), "2006-01-02T15:04:05.999999999Z");
        let t = UNIX_EPOCH + Duration::new(1_136_214_245, 120_000_000);
        assert_eq!(rfc3339_nano(t), "2006-01-02T15:04:05.12Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339_nano(t), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn nanos_round_trip() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123);
        assert_eq!(from_nanos(to_nanos(t)), t);
    }
}
