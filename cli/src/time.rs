//! Timestamps and kubectl-style human durations.
//!
//! Kubernetes timestamps are RFC 3339 strings (`2024-05-01T12:00:00Z`,
//! sometimes with fractional seconds or an offset). The tables only need
//! differences between instants, so instants are kept as milliseconds since
//! the Unix epoch.

use serde_json::Value;

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// The current time in milliseconds since the Unix epoch.
pub fn now_millis() -> Millis {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(_) => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn num(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an RFC 3339 timestamp into milliseconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let s = s.trim();
    if s.len() < 19 || !s.is_char_boundary(10) || !s.is_char_boundary(19) {
        return None;
    }
    let (date, rest) = s.split_at(10);
    let sep = rest.as_bytes()[0];
    if sep != b'T' && sep != b't' && sep != b' ' {
        return None;
    }
    let time = &rest[1..9];
    let mut tail = &rest[9..];
    let dp: Vec<&str> = date.split('-').collect();
    let tp: Vec<&str> = time.split(':').collect();
    if dp.len() != 3 || tp.len() != 3 {
        return None;
    }
    let (y, mo, d) = (num(dp[0])?, num(dp[1])?, num(dp[2])?);
    let (h, mi, se) = (num(tp[0])?, num(tp[1])?, num(tp[2])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut millis = 0i64;
    if let Some(frac) = tail.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        let digits = &frac[..n];
        let ms = format!("{:0<3}", &digits[..n.min(3)]);
        millis = ms.parse().ok()?;
        tail = &frac[n..];
    }
    let offset_secs = match tail {
        "Z" | "z" => 0,
        _ => {
            let sign = match tail.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let (oh, om) = tail[1..].split_once(':')?;
            sign * (num(oh)? * 3600 + num(om)? * 60)
        }
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset_secs;
    Some(secs * 1000 + millis)
}

/// Reads a timestamp field of an object.
pub fn timestamp(v: &Value) -> Option<Millis> {
    v.as_str().and_then(parse_rfc3339)
}

/// kubectl's human-readable duration (`45s`, `3m2s`, `5m`, `3h`, `2d`).
pub fn human_duration_millis(d: Millis) -> String {
    let secs = d.div_euclid(1000);
    if secs < -1 {
        return "<invalid>".into();
    }
    if secs < 0 {
        return "0s".into();
    }
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            dy => format!("{years}y{dy}d"),
        };
    }
    format!("{years}y")
}

/// The age of a timestamp field relative to `now`; `<unknown>` when the
/// field is missing or unreadable.
pub fn age(v: &Value, now: Millis) -> String {
    match timestamp(v) {
        Some(t) => human_duration_millis(now - t),
        None => "<unknown>".into(),
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (the
/// inverse of `days_from_civil`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Splits an instant into (year, month, day, hour, minute, second, weekday
/// with 0 = Sunday), in UTC.
fn fields(t: Millis) -> (i64, i64, i64, i64, i64, i64, i64) {
    let secs = t.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60, weekday)
}

/// An instant as an RFC 3339 UTC timestamp with whole seconds, the form
/// Kubernetes writes (`2024-03-01T12:00:00Z`).
pub fn format_rfc3339(t: Millis) -> String {
    let (y, mo, d, h, mi, s, _) = fields(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// An instant as kubectl describe prints it (Go's RFC 1123 with a numeric
/// zone, in UTC): `Fri, 01 Mar 2024 12:00:00 +0000`.
pub fn format_rfc1123z(t: Millis) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = fields(t);
    let month = MONTHS[((mo - 1).clamp(0, 11)) as usize];
    let day = DAYS[wd.clamp(0, 6) as usize];
    format!("{day}, {d:02} {month} {y:04} {h:02}:{mi:02}:{s:02} +0000")
}

/// Parses a `--timeout` value (`30s`, `5m`, `1h30m`, `500ms`; a bare
/// number is seconds). `0` means no limit: `None`.
pub fn parse_timeout(flag: &str, s: &str) -> Result<Option<std::time::Duration>, String> {
    let bad = || format!("invalid argument \"{s}\" for \"{flag}\": use a duration like 30s, 5m or 1h");
    let text = s.trim();
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(n) = text.parse::<u64>() {
        return Ok((n > 0).then(|| std::time::Duration::from_secs(n)));
    }
    let mut total_ms: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(|b| b.is_ascii_alphabetic()).count();
        let unit_ms = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        rest = &rest[unit_len..];
        total_ms = n
            .checked_mul(unit_ms)
            .and_then(|x| total_ms.checked_add(x))
            .ok_or_else(bad)?;
    }
    Ok((total_ms > 0).then(|| std::time::Duration::from_millis(total_ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_timestamps() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("1970-01-02T00:00:01Z"), Some(86_401_000));
        assert_eq!(parse_rfc3339("2024-03-01T00:00:00Z"), Some(1_709_251_200_000));
        assert_eq!(
            parse_rfc3339("2024-03-01T00:00:00.250000Z"),
            Some(1_709_251_200_250)
        );
        assert_eq!(
            parse_rfc3339("2024-03-01T02:00:00+02:00"),
            Some(1_709_251_200_000)
        );
        assert_eq!(parse_rfc3339("2024-03-01"), None);
        assert_eq!(parse_rfc3339("garbage-that-is-long-enough"), None);
        assert_eq!(parse_rfc3339("2024-03-01T00:00:00"), None);
    }

    #[test]
    fn human_durations() {
        let s = 1000;
        let cases = [
            (-5 * s, "<invalid>"),
            (-500, "0s"),
            (0, "0s"),
            (45 * s, "45s"),
            (119 * s, "119s"),
            (120 * s, "2m"),
            (182 * s, "3m2s"),
            (300 * s, "5m"),
            (65 * 60 * s, "65m"),
            (3 * 3600 * s, "3h"),
            (3 * 3600 * s + 60 * s, "3h1m"),
            (10 * 3600 * s, "10h"),
            (2 * 86_400 * s, "2d"),
            (2 * 86_400 * s + 3 * 3600 * s, "2d3h"),
            (30 * 86_400 * s, "30d"),
            (800 * 86_400 * s, "2y70d"),
            (3000 * 86_400 * s, "8y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration_millis(d), want, "{d}");
        }
    }

    #[test]
    fn formats_timestamps() {
        let t = parse_rfc3339("2024-03-01T12:34:56Z").unwrap_or_default();
        assert_eq!(format_rfc3339(t), "2024-03-01T12:34:56Z");
        assert_eq!(format_rfc1123z(t), "Fri, 01 Mar 2024 12:34:56 +0000");
        assert_eq!(format_rfc1123z(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        let t = parse_rfc3339("2000-02-29T23:59:59Z").unwrap_or_default();
        assert_eq!(format_rfc3339(t), "2000-02-29T23:59:59Z");
        assert_eq!(format_rfc1123z(t), "Tue, 29 Feb 2000 23:59:59 +0000");
    }

    #[test]
    fn timeouts() {
        use std::time::Duration;
        assert_eq!(parse_timeout("--timeout", "0"), Ok(None));
        assert_eq!(parse_timeout("--timeout", "0s"), Ok(None));
        assert_eq!(
            parse_timeout("--timeout", "30"),
            Ok(Some(Duration::from_secs(30)))
        );
        assert_eq!(
            parse_timeout("--timeout", "1m30s"),
            Ok(Some(Duration::from_secs(90)))
        );
        assert_eq!(
            parse_timeout("--timeout", "250ms"),
            Ok(Some(Duration::from_millis(250)))
        );
        assert!(parse_timeout("--timeout", "soon").is_err());
        assert!(parse_timeout("--timeout", "5d").is_err());
    }

    #[test]
    fn ages() {
        let now = parse_rfc3339("2024-03-01T00:01:00Z").unwrap_or_default();
        assert_eq!(age(&Value::from("2024-03-01T00:00:15Z"), now), "45s");
        assert_eq!(age(&Value::Null, now), "<unknown>");
    }
}
