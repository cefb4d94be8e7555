//! Cron schedules: the five-field syntax Kubernetes accepts.
//!
//! `minute hour day-of-month month day-of-week`, each field a comma list of
//! `*` (or `?` in the day fields), values, ranges `a-b` and steps (`*/n`,
//! `a-b/n`, `a/n` meaning `a-max/n`). Months and weekdays may be written as
//! names (`JAN`, `mon`); weekday 7 is Sunday, like 0. The descriptors
//! `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight` and
//! `@hourly` stand for their usual expansions.
//!
//! As in Vixie cron (and Kubernetes), when both the day-of-month and the
//! day-of-week fields are restricted a day matches if *either* does; when
//! one of them is `*`, only the other one counts.
//!
//! Time zones: rk ships no time zone database, so a schedule can only be
//! evaluated in UTC or at a fixed offset. [`parse_time_zone`] accepts the
//! UTC aliases (`UTC`, `Etc/UTC`, `GMT`, ...), the fixed-offset IANA zones
//! `Etc/GMT+N`/`Etc/GMT-N` (note the inverted sign: `Etc/GMT+5` is UTC-5)
//! and literal offsets such as `+05:30`; any other zone (e.g.
//! `Europe/Berlin`, whose offset changes with daylight saving) is an
//! [`Error::UnsupportedTimeZone`].

use k8s_openapi::jiff::civil::date;
use k8s_openapi::jiff::tz::Offset;
use k8s_openapi::jiff::Timestamp;

use crate::Error;

/// How many years ahead (or back) a search looks before concluding that a
/// schedule never fires (e.g. `0 0 30 2 *`).
const SEARCH_YEARS: i16 = 5;

/// A parsed schedule, evaluated at a fixed UTC offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// The day-of-month field is unrestricted (`*`/`?`).
    days_star: bool,
    /// The day-of-week field is unrestricted.
    weekdays_star: bool,
    /// Seconds east of UTC at which the fields are read.
    offset_seconds: i32,
}

/// One field's bounds and names.
struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    /// Names of values, case-insensitive; the first name stands for
    /// `name_base`.
    names: &'static [&'static str],
    name_base: u32,
}

const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    name_base: 0,
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    name_base: 0,
};
const DAY: FieldSpec = FieldSpec {
    name: "day of month",
    min: 1,
    max: 31,
    names: &[],
    name_base: 0,
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    name_base: 1,
};
/// Weekdays allow 7 as a second Sunday; it is folded into 0 after parsing.
const WEEKDAY: FieldSpec = FieldSpec {
    name: "day of week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    name_base: 0,
};

impl FieldSpec {
    fn value(&self, s: &str) -> Result<u32, String> {
        let v = match s.parse::<u32>() {
            Ok(v) => v,
            Err(_) => {
                let upper = s.to_ascii_uppercase();
                let pos = self
                    .names
                    .iter()
                    .position(|n| *n == upper)
                    .ok_or_else(|| format!("invalid {} value {s:?}", self.name))?;
                u32::try_from(pos).unwrap_or(0) + self.name_base
            }
        };
        if v < self.min || v > self.max {
            return Err(format!(
                "{} value {v} out of range {}-{}",
                self.name, self.min, self.max
            ));
        }
        Ok(v)
    }

    /// Parse a field into a bit set (bit `i` = value `i`) and whether it is
    /// unrestricted (`*` or `?` without a step).
    fn parse(&self, field: &str, allow_question: bool) -> Result<(u64, bool), String> {
        let mut bits = 0u64;
        let mut star = false;
        for item in field.split(',') {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => {
                    let step: u32 = s
                        .parse()
                        .map_err(|_| format!("invalid step {s:?} in {} field", self.name))?;
                    if step == 0 {
                        return Err(format!("step of zero in {} field", self.name));
                    }
                    (r, Some(step))
                }
                None => (item, None),
            };
            let (lo, hi) = if range == "*" || (allow_question && range == "?") {
                if step.unwrap_or(1) == 1 {
                    star = true;
                }
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                let (a, b) = (self.value(a)?, self.value(b)?);
                if a > b {
                    return Err(format!("{} range {range} runs backwards", self.name));
                }
                (a, b)
            } else if range.is_empty() {
                return Err(format!("empty item in {} field", self.name));
            } else {
                let a = self.value(range)?;
                // `a/n` means every n-th value from a to the maximum.
                (a, if step.is_some() { self.max } else { a })
            };
            let step = step.unwrap_or(1);
            let mut v = lo;
            while v <= hi {
                bits |= 1 << v;
                v += step;
            }
        }
        Ok((bits, star))
    }
}

/// The seconds east of UTC for a supported time zone (see the module
/// documentation).
pub fn parse_time_zone(tz: &str) -> Result<i32, Error> {
    const UTC_ALIASES: &[&str] = &[
        "UTC",
        "Etc/UTC",
        "Etc/UCT",
        "UCT",
        "Etc/Universal",
        "Universal",
        "Etc/Zulu",
        "Zulu",
        "GMT",
        "Etc/GMT",
        "Etc/GMT0",
        "Etc/GMT+0",
        "Etc/GMT-0",
        "GMT0",
        "GMT+0",
        "GMT-0",
        "Etc/Greenwich",
        "Greenwich",
    ];
    let unsupported = || Error::UnsupportedTimeZone(tz.to_string());
    if UTC_ALIASES.contains(&tz) {
        return Ok(0);
    }
    if let Some(rest) = tz.strip_prefix("Etc/GMT") {
        // POSIX-style sign: Etc/GMT+5 is five hours *behind* UTC.
        let (sign, hours) = match rest.split_at_checked(1) {
            Some(("+", h)) => (-1, h),
            Some(("-", h)) => (1, h),
            _ => return Err(unsupported()),
        };
        let hours: i32 = hours.parse().map_err(|_| unsupported())?;
        let max = if sign < 0 { 12 } else { 14 };
        if !(0..=max).contains(&hours) {
            return Err(unsupported());
        }
        return Ok(sign * hours * 3600);
    }
    let (sign, rest) = match tz.split_at_checked(1) {
        Some(("+", r)) => (1, r),
        Some(("-", r)) => (-1, r),
        _ => return Err(unsupported()),
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return Err(unsupported());
    }
    let (h, m) = digits.split_at(2);
    let hours: i32 = h.parse().map_err(|_| unsupported())?;
    let minutes: i32 = if m.is_empty() {
        0
    } else {
        m.parse().map_err(|_| unsupported())?
    };
    if hours > 14 || minutes > 59 {
        return Err(unsupported());
    }
    Ok(sign * (hours * 3600 + minutes * 60))
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Day of week, 0 = Sunday, for a proleptic Gregorian date.
fn weekday(y: i32, m: u32, d: u32) -> u32 {
    // Days since 1970-01-01 (a Thursday) by the usual civil-to-days
    // conversion on a March-based year.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + i32::try_from(doy).unwrap_or(0);
    let days = era * 146_097 + doe - 719_468;
    u32::try_from((days + 4).rem_euclid(7)).unwrap_or(0)
}

/// A civil minute being searched.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    y: i32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
}

impl Cursor {
    fn from_local_minute(minute: i64) -> Option<Cursor> {
        let ts = Timestamp::from_second(minute.checked_mul(60)?).ok()?;
        let dt = Offset::UTC.to_datetime(ts);
        Some(Cursor {
            y: i32::from(dt.year()),
            mo: u32::try_from(dt.month()).ok()?,
            d: u32::try_from(dt.day()).ok()?,
            h: u32::try_from(dt.hour()).ok()?,
            mi: u32::try_from(dt.minute()).ok()?,
        })
    }

    fn local_second(&self) -> Option<i64> {
        let dt = date(
            i16::try_from(self.y).ok()?,
            i8::try_from(self.mo).ok()?,
            i8::try_from(self.d).ok()?,
        )
        .at(i8::try_from(self.h).ok()?, i8::try_from(self.mi).ok()?, 0, 0);
        Some(Offset::UTC.to_timestamp(dt).ok()?.as_second())
    }

    fn next_month(&mut self) {
        (self.d, self.h, self.mi) = (1, 0, 0);
        if self.mo == 12 {
            (self.y, self.mo) = (self.y + 1, 1);
        } else {
            self.mo += 1;
        }
    }

    fn next_day(&mut self) {
        (self.h, self.mi) = (0, 0);
        if self.d >= days_in_month(self.y, self.mo) {
            self.next_month();
        } else {
            self.d += 1;
        }
    }

    fn next_hour(&mut self) {
        self.mi = 0;
        if self.h == 23 {
            self.next_day();
        } else {
            self.h += 1;
        }
    }

    fn next_minute(&mut self) {
        if self.mi == 59 {
            self.next_hour();
        } else {
            self.mi += 1;
        }
    }

    fn prev_month(&mut self) {
        if self.mo == 1 {
            (self.y, self.mo) = (self.y - 1, 12);
        } else {
            self.mo -= 1;
        }
        (self.d, self.h, self.mi) = (days_in_month(self.y, self.mo), 23, 59);
    }

    fn prev_day(&mut self) {
        if self.d == 1 {
            self.prev_month();
        } else {
            (self.d, self.h, self.mi) = (self.d - 1, 23, 59);
        }
    }

    fn prev_hour(&mut self) {
        if self.h == 0 {
            self.prev_day();
        } else {
            (self.h, self.mi) = (self.h - 1, 59);
        }
    }

    fn prev_minute(&mut self) {
        if self.mi == 0 {
            self.prev_hour();
        } else {
            self.mi -= 1;
        }
    }
}

/// Which field of a cursor fails to match, coarsest first.
enum Mismatch {
    Month,
    Day,
    Hour,
    Minute,
}

impl Schedule {
    /// Parse a five-field expression or descriptor, evaluated in UTC.
    pub fn parse(expr: &str) -> Result<Schedule, Error> {
        let bad = |detail: String| Error::InvalidSchedule {
            schedule: expr.to_string(),
            detail,
        };
        let trimmed = expr.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            d if d.starts_with('@') => return Err(bad(format!("unsupported descriptor {trimmed:?}"))),
            _ => trimmed,
        };
        if expanded.starts_with("TZ=") || expanded.starts_with("CRON_TZ=") {
            return Err(bad(
                "time zones in the schedule are not supported; use spec.timeZone".into(),
            ));
        }
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(bad(format!("expected 5 fields, found {}", fields.len())));
        };
        let (minutes, _) = MINUTE.parse(minute, false).map_err(bad)?;
        let (hours, _) = HOUR.parse(hour, false).map_err(bad)?;
        let (days, days_star) = DAY.parse(day, true).map_err(bad)?;
        let (months, _) = MONTH.parse(month, false).map_err(bad)?;
        let (mut weekdays, weekdays_star) = WEEKDAY.parse(weekday, true).map_err(bad)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f;
        }
        Ok(Schedule {
            minutes,
            hours: u32::try_from(hours).unwrap_or(0),
            days: u32::try_from(days).unwrap_or(0),
            months: u16::try_from(months).unwrap_or(0),
            weekdays: u8::try_from(weekdays).unwrap_or(0),
            days_star,
            weekdays_star,
            offset_seconds: 0,
        })
    }

    /// Parse `expr` and evaluate it in the optional time zone `tz`.
    pub fn parse_in(expr: &str, tz: Option<&str>) -> Result<Schedule, Error> {
        let mut s = Schedule::parse(expr)?;
        if let Some(tz) = tz {
            s.offset_seconds = parse_time_zone(tz)?;
        }
        Ok(s)
    }

    /// The same schedule read at a different UTC offset (seconds east).
    pub fn at_offset(mut self, offset_seconds: i32) -> Schedule {
        self.offset_seconds = offset_seconds;
        self
    }

    fn day_matches(&self, c: &Cursor) -> bool {
        let dom = self.days & (1 << c.d) != 0;
        let dow = self.weekdays & (1 << weekday(c.y, c.mo, c.d)) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    fn mismatch(&self, c: &Cursor) -> Option<Mismatch> {
        if self.months & (1 << c.mo) == 0 {
            Some(Mismatch::Month)
        } else if !self.day_matches(c) {
            Some(Mismatch::Day)
        } else if self.hours & (1 << c.h) == 0 {
            Some(Mismatch::Hour)
        } else if self.minutes & (1 << c.mi) == 0 {
            Some(Mismatch::Minute)
        } else {
            None
        }
    }

    fn to_timestamp(&self, c: &Cursor) -> Option<Timestamp> {
        let local = c.local_second()?;
        Timestamp::from_second(local - i64::from(self.offset_seconds)).ok()
    }

    /// The first time strictly after `t` that the schedule fires, or `None`
    /// if it does not fire within five years (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let local = t.as_second().checked_add(i64::from(self.offset_seconds))?;
        let mut c = Cursor::from_local_minute(local.div_euclid(60) + 1)?;
        let limit = c.y + i32::from(SEARCH_YEARS);
        while c.y <= limit {
            match self.mismatch(&c) {
                Some(Mismatch::Month) => c.next_month(),
                Some(Mismatch::Day) => c.next_day(),
                Some(Mismatch::Hour) => c.next_hour(),
                Some(Mismatch::Minute) => c.next_minute(),
                None => return self.to_timestamp(&c),
            }
        }
        None
    }

    /// The last time at or before `t` that the schedule fired, or `None` if
    /// it did not fire in the five years before.
    pub fn prev_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let local = t.as_second().checked_add(i64::from(self.offset_seconds))?;
        let mut c = Cursor::from_local_minute(local.div_euclid(60))?;
        let limit = c.y - i32::from(SEARCH_YEARS);
        while c.y >= limit {
            match self.mismatch(&c) {
                Some(Mismatch::Month) => c.prev_month(),
                Some(Mismatch::Day) => c.prev_day(),
                Some(Mismatch::Hour) => c.prev_hour(),
                Some(Mismatch::Minute) => c.prev_minute(),
                None => return self.to_timestamp(&c),
            }
        }
        None
    }
}

/// The first time strictly after `t` that `schedule` fires.
pub fn next_after(schedule: &Schedule, t: Timestamp) -> Option<Timestamp> {
    schedule.next_after(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn sched(s: &str) -> Schedule {
        Schedule::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// The next `n` firing times after `from`.
    fn next_n(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        let mut t = at(from);
        let mut out = Vec::new();
        for _ in 0..n {
            match s.next_after(t) {
                Some(next) => {
                    out.push(next.to_string());
                    t = next;
                }
                None => break,
            }
        }
        out
    }

    #[test]
    fn next_times() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "* * * * *",
                "2024-01-01T00:00:00Z",
                &["2024-01-01T00:01:00Z", "2024-01-01T00:02:00Z"],
            ),
            ("* * * * *", "2024-01-01T00:00:30Z", &["2024-01-01T00:01:00Z"]),
            (
                "*/15 * * * *",
                "2024-01-01T00:07:00Z",
                &[
                    "2024-01-01T00:15:00Z",
                    "2024-01-01T00:30:00Z",
                    "2024-01-01T00:45:00Z",
                    "2024-01-01T01:00:00Z",
                ],
            ),
            (
                "0 0 31 * *",
                "2024-01-31T00:00:00Z",
                &[
                    "2024-03-31T00:00:00Z",
                    "2024-05-31T00:00:00Z",
                    "2024-07-31T00:00:00Z",
                    "2024-08-31T00:00:00Z",
                ],
            ),
            ("0 0 29 2 *", "2024-03-01T00:00:00Z", &["2028-02-29T00:00:00Z"]),
            ("0 0 30 2 *", "2024-01-01T00:00:00Z", &[]),
            (
                // Weekdays 09:00-17:45 every quarter hour: Friday evening
                // rolls over to Monday morning.
                "*/15 9-17 * * 1-5",
                "2024-03-08T17:40:00Z",
                &[
                    "2024-03-08T17:45:00Z",
                    "2024-03-11T09:00:00Z",
                    "2024-03-11T09:15:00Z",
                ],
            ),
            (
                // Both day fields restricted: the 13th OR any Friday.
                "0 0 13 * 5",
                "2024-09-01T00:00:00Z",
                &[
                    "2024-09-06T00:00:00Z",
                    "2024-09-13T00:00:00Z",
                    "2024-09-20T00:00:00Z",
                ],
            ),
            (
                // Day of month unrestricted: only the weekday counts.
                "0 12 * * SUN",
                "2024-09-01T12:00:00Z",
                &["2024-09-08T12:00:00Z", "2024-09-15T12:00:00Z"],
            ),
            ("0 12 ? * 7", "2024-09-01T12:00:00Z", &["2024-09-08T12:00:00Z"]),
            (
                "30 6 1 jan,Jul *",
                "2024-02-01T00:00:00Z",
                &["2024-07-01T06:30:00Z", "2025-01-01T06:30:00Z"],
            ),
            (
                "5/20 * * * *",
                "2024-01-01T00:00:00Z",
                &[
                    "2024-01-01T00:05:00Z",
                    "2024-01-01T00:25:00Z",
                    "2024-01-01T00:45:00Z",
                    "2024-01-01T01:05:00Z",
                ],
            ),
            (
                "0 0 1-10/3 * *",
                "2024-01-01T00:00:00Z",
                &[
                    "2024-01-04T00:00:00Z",
                    "2024-01-07T00:00:00Z",
                    "2024-01-10T00:00:00Z",
                    "2024-02-01T00:00:00Z",
                ],
            ),
            ("@hourly", "2024-12-31T23:30:00Z", &["2025-01-01T00:00:00Z"]),
            ("@daily", "2024-02-28T10:00:00Z", &["2024-02-29T00:00:00Z"]),
            ("@weekly", "2024-09-04T00:00:00Z", &["2024-09-08T00:00:00Z"]),
            ("@monthly", "2024-12-15T00:00:00Z", &["2025-01-01T00:00:00Z"]),
            ("@yearly", "2024-06-01T00:00:00Z", &["2025-01-01T00:00:00Z"]),
            ("@annually", "2024-06-01T00:00:00Z", &["2025-01-01T00:00:00Z"]),
            ("@midnight", "2024-06-01T00:00:00Z", &["2024-06-02T00:00:00Z"]),
            (
                "0 0 * * 5-7",
                "2024-09-05T00:00:00Z",
                &[
                    "2024-09-06T00:00:00Z",
                    "2024-09-07T00:00:00Z",
                    "2024-09-08T00:00:00Z",
                    "2024-09-13T00:00:00Z",
                ],
            ),
        ];
        for (expr, from, want) in cases {
            let got = next_n(&sched(expr), from, want.len().max(1));
            assert_eq!(got, *want, "{expr} after {from}");
        }
    }

    #[test]
    fn previous_times() {
        let cases = [
            (
                "*/15 * * * *",
                "2024-01-01T00:07:00Z",
                Some("2024-01-01T00:00:00Z"),
            ),
            (
                "*/15 * * * *",
                "2024-01-01T00:15:00Z",
                Some("2024-01-01T00:15:00Z"),
            ),
            ("0 0 31 * *", "2024-05-01T00:00:00Z", Some("2024-03-31T00:00:00Z")),
            ("0 0 29 2 *", "2027-01-01T00:00:00Z", Some("2024-02-29T00:00:00Z")),
            (
                "*/15 9-17 * * 1-5",
                "2024-03-10T12:00:00Z",
                Some("2024-03-08T17:45:00Z"),
            ),
            ("0 0 30 2 *", "2024-01-01T00:00:00Z", None),
        ];
        for (expr, from, want) in cases {
            let got = sched(expr).prev_at_or_before(at(from)).map(|t| t.to_string());
            assert_eq!(got.as_deref(), want, "{expr} before {from}");
        }
    }

    #[test]
    fn time_zones() {
        let cases = [
            ("UTC", Ok(0)),
            ("Etc/UTC", Ok(0)),
            ("GMT", Ok(0)),
            ("Etc/GMT+5", Ok(-5 * 3600)),
            ("Etc/GMT-14", Ok(14 * 3600)),
            ("+05:30", Ok(5 * 3600 + 1800)),
            ("-0800", Ok(-8 * 3600)),
            ("+02", Ok(2 * 3600)),
            ("Europe/Berlin", Err(())),
            ("Etc/GMT+13", Err(())),
            ("+25:00", Err(())),
            ("", Err(())),
        ];
        for (tz, want) in cases {
            assert_eq!(parse_time_zone(tz).map_err(|_| ()), want, "{tz}");
        }
        let err = parse_time_zone("America/New_York")
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert!(err.is_err_and(|e| e.contains("no time zone database")));
        // 09:00 at UTC+05:30 is 03:30 UTC.
        let s = Schedule::parse_in("0 9 * * *", Some("+05:30")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.next_after(at("2024-01-01T00:00:00Z"))
                .map(|t| t.to_string())
                .as_deref(),
            Some("2024-01-01T03:30:00Z")
        );
        // Midnight at UTC-5 is 05:00 UTC, and the local date decides the day.
        let s = Schedule::parse_in("0 0 1 * *", Some("Etc/GMT+5")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.next_after(at("2024-01-01T04:00:00Z"))
                .map(|t| t.to_string())
                .as_deref(),
            Some("2024-01-01T05:00:00Z")
        );
    }

    #[test]
    fn parse_errors() {
        let cases = [
            ("", "expected 5 fields"),
            ("* * * *", "expected 5 fields"),
            ("* * * * * *", "expected 5 fields"),
            ("60 * * * *", "out of range"),
            ("* 24 * * *", "out of range"),
            ("* * 0 * *", "out of range"),
            ("* * * 13 *", "out of range"),
            ("* * * * 8", "out of range"),
            ("*/0 * * * *", "step of zero"),
            ("5-1 * * * *", "backwards"),
            ("? * * * *", "invalid minute"),
            ("* * * FOO *", "invalid month"),
            ("1,,2 * * * *", "empty item"),
            ("@every 5m", "unsupported descriptor"),
            ("TZ=UTC * * * * *", "spec.timeZone"),
        ];
        for (expr, needle) in cases {
            match Schedule::parse(expr) {
                Ok(s) => panic!("{expr:?} parsed as {s:?}"),
                Err(e) => assert!(e.to_string().contains(needle), "{expr:?}: {e}"),
            }
        }
    }

    #[test]
    fn weekday_formula() {
        let cases = [
            (1970, 1, 1, 4),
            (2000, 2, 29, 2),
            (2024, 9, 8, 0),
            (1969, 12, 31, 3),
            (2100, 3, 1, 1),
        ];
        for (y, m, d, want) in cases {
            assert_eq!(weekday(y, m, d), want, "{y}-{m}-{d}");
        }
    }
}
