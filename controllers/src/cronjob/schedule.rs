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
//! # Time zones and daylight saving time
//!
//! A schedule is read in the local civil time of its time zone
//! ([`parse_time_zone`]: any IANA name, e.g. `Europe/Berlin`, from the
//! tz database compiled into rk, or a fixed offset such as `+05:30`), so
//! `0 9 * * *` in `Europe/Berlin` fires at 08:00 UTC in winter and 07:00
//! UTC in summer. Where the zone's offset changes, some local times do
//! not exist and others exist twice:
//!
//! * **Spring forward** (a gap, e.g. 02:00-02:59 on the last Sunday of
//!   March in Berlin): a local time inside the gap never happens, so it does
//!   not fire that day; `30 2 * * *` next fires at 02:30 the day after.
//!   This is what Kubernetes does: its parser, robfig/cron v3, walks real
//!   time and never meets the missing local hour (robfig/cron pull request
//!   541, which would run such jobs right after the jump as ISC cron does,
//!   was never merged).
//! * **Fall back** (an overlap, e.g. 02:00-02:59 on the last Sunday of
//!   October in Berlin happens first at +02:00, then again at +01:00): a
//!   schedule that names a time of day, whose minute and hour fields both
//!   start with something other than `*` (`30 2 * * *`, `0 1-3 * * *`,
//!   `@daily`), fires once, at the first occurrence. Kubernetes fires such
//!   a schedule at both occurrences (kubernetes/kubernetes issue 121594,
//!   still open), which starts a nightly job twice; rk follows ISC
//!   cron's rule instead. A periodic schedule, whose minute or hour field
//!   starts with `*` (`*/5 * * * *`, `@hourly`), keeps its period in real
//!   time and so fires in both passes, as in Kubernetes and ISC cron:
//!   skipping the second pass would leave an hour without a run.
//!
//! Times are searched per stretch of constant offset between the zone's
//! transitions, so a gap is simply never visited, and an overlap's second
//! pass is recognised by the civil time mapping to two instants.

use jiff::civil::date;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};

use crate::Error;

/// How many years ahead (or back) a search looks before concluding that a
/// schedule never fires (e.g. `0 0 30 2 *`).
const SEARCH_YEARS: i64 = 5;
const SEARCH_SECONDS: i64 = SEARCH_YEARS * 366 * 86_400;

/// A parsed schedule, evaluated in a time zone.
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
    /// The minute or hour field starts with `*`: the schedule is periodic
    /// rather than a time of day, and fires in both passes of a fall-back
    /// overlap (see the module documentation).
    periodic: bool,
    /// The zone whose local civil time the fields are read in.
    tz: TimeZone,
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

/// The time zone `name` stands for: an IANA zone name or a fixed offset
/// (see [`rk_api::validate::resolve_time_zone`], which the API server uses
/// to validate `spec.timeZone`, so a stored CronJob names a known zone).
pub fn parse_time_zone(name: &str) -> Result<TimeZone, Error> {
    rk_api::validate::resolve_time_zone(name).map_err(|detail| Error::UnsupportedTimeZone {
        zone: name.to_string(),
        detail,
    })
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
            // ISC cron's test for a "wildcard" job.
            periodic: minute.starts_with('*') || hour.starts_with('*'),
            tz: TimeZone::UTC,
        })
    }

    /// Parse `expr` and evaluate it in the time zone `tz`, or in UTC when
    /// it is unset (as Kubernetes does, whatever the host's zone).
    pub fn parse_in(expr: &str, tz: Option<&str>) -> Result<Schedule, Error> {
        let s = Schedule::parse(expr)?;
        Ok(match tz {
            Some(tz) => s.in_time_zone(parse_time_zone(tz)?),
            None => s,
        })
    }

    /// The same schedule read in the local time of `tz`.
    pub fn in_time_zone(mut self, tz: TimeZone) -> Schedule {
        self.tz = tz;
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

    /// The first matching civil minute at or after `from` and before
    /// `until`. Civil times are "local seconds": the local date and time
    /// read as if it were UTC.
    fn first_match(&self, from: i64, until: i64) -> Option<i64> {
        let minute = from.div_euclid(60) + i64::from(from.rem_euclid(60) != 0);
        let mut c = Cursor::from_local_minute(minute)?;
        loop {
            let here = c.local_second()?;
            if here >= until {
                return None;
            }
            match self.mismatch(&c) {
                Some(Mismatch::Month) => c.next_month(),
                Some(Mismatch::Day) => c.next_day(),
                Some(Mismatch::Hour) => c.next_hour(),
                Some(Mismatch::Minute) => c.next_minute(),
                None => return Some(here),
            }
        }
    }

    /// The last matching civil minute at or before `from` and at or after
    /// `floor` (local seconds, as in [`Self::first_match`]).
    fn last_match(&self, from: i64, floor: i64) -> Option<i64> {
        let mut c = Cursor::from_local_minute(from.div_euclid(60))?;
        loop {
            let here = c.local_second()?;
            if here < floor {
                return None;
            }
            match self.mismatch(&c) {
                Some(Mismatch::Month) => c.prev_month(),
                Some(Mismatch::Day) => c.prev_day(),
                Some(Mismatch::Hour) => c.prev_hour(),
                Some(Mismatch::Minute) => c.prev_minute(),
                None => return Some(here),
            }
        }
    }

    /// Whether the civil time `local`, reached at `offset`, is the second
    /// occurrence of a time repeated when the clocks went back, which a
    /// time-of-day schedule does not run again (see the module
    /// documentation).
    fn skips(&self, local: i64, offset: Offset) -> bool {
        if self.periodic {
            return false;
        }
        let Ok(ts) = Timestamp::from_second(local) else {
            return false;
        };
        let civil = Offset::UTC.to_datetime(ts);
        matches!(
            self.tz.to_ambiguous_timestamp(civil).offset(),
            AmbiguousOffset::Fold { after, .. } if after == offset
        )
    }

    /// The first time strictly after `t` that the schedule fires, or `None`
    /// if it does not fire within five years (e.g. `0 0 30 2 *`).
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let limit = t.as_second().checked_add(SEARCH_SECONDS)?;
        // Walk the stretches of constant offset between the zone's
        // transitions; within one, civil time runs with real time.
        let mut start = t;
        let mut first = true;
        loop {
            let offset = self.tz.to_offset(start);
            let o = i64::from(offset.seconds());
            let end = self
                .tz
                .following(start)
                .next()
                .map(|tr| tr.timestamp().as_second())
                .filter(|e| *e < limit)
                .unwrap_or(limit);
            let mut from = if first {
                // The minute after the one `t` falls in.
                ((start.as_second() + o).div_euclid(60) + 1) * 60
            } else {
                start.as_second() + o
            };
            while let Some(local) = self.first_match(from, end + o) {
                if !self.skips(local, offset) {
                    return Timestamp::from_second(local - o).ok();
                }
                from = local + 60;
            }
            if end >= limit {
                return None;
            }
            start = Timestamp::from_second(end).ok()?;
            first = false;
        }
    }

    /// The last time at or before `t` that the schedule fired, or `None` if
    /// it did not fire in the five years before.
    pub fn prev_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let floor = t.as_second().checked_sub(SEARCH_SECONDS)?;
        let tick = SignedDuration::from_nanos(1);
        let mut end = t;
        loop {
            let offset = self.tz.to_offset(end);
            let o = i64::from(offset.seconds());
            // The stretch holding `end` began at the last transition at or
            // before it.
            let start = self
                .tz
                .preceding(end.checked_add(tick).ok()?)
                .next()
                .map(|tr| tr.timestamp().as_second())
                .filter(|s| *s > floor)
                .unwrap_or(floor);
            let mut from = end.as_second() + o;
            while let Some(local) = self.last_match(from, start + o) {
                if !self.skips(local, offset) {
                    return Timestamp::from_second(local - o).ok();
                }
                from = local - 60;
            }
            if start <= floor {
                return None;
            }
            end = Timestamp::from_second(start).ok()?.checked_sub(tick).ok()?;
        }
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

    fn sched_in(expr: &str, tz: &str) -> Schedule {
        Schedule::parse_in(expr, Some(tz)).unwrap_or_else(|e| panic!("{expr} in {tz}: {e}"))
    }

    #[test]
    fn time_zone_names() {
        let cases = [
            ("UTC", Some(0)),
            ("Etc/UTC", Some(0)),
            ("GMT", Some(0)),
            ("Etc/GMT+5", Some(-5 * 3600)),
            ("Etc/GMT-14", Some(14 * 3600)),
            ("+05:30", Some(5 * 3600 + 1800)),
            ("-0800", Some(-8 * 3600)),
            ("+02", Some(2 * 3600)),
            // Named zones: their offset in January 2024.
            ("Europe/Berlin", Some(3600)),
            ("America/New_York", Some(-5 * 3600)),
            ("Asia/Kolkata", Some(5 * 3600 + 1800)),
            ("Etc/GMT+13", None),
            ("Mars/Olympus_Mons", None),
            ("europe/berlin", None),
            ("Local", None),
            ("+25:00", None),
            ("", None),
        ];
        let winter = at("2024-01-15T12:00:00Z");
        for (tz, want) in cases {
            let got = parse_time_zone(tz).map(|z| z.to_offset(winter).seconds());
            assert_eq!(got.as_ref().ok().copied(), want, "{tz}: {got:?}");
        }
        match Schedule::parse_in("0 9 * * *", Some("Mars/Olympus_Mons")) {
            Err(e) => assert!(e.to_string().contains("invalid spec.timeZone"), "{e}"),
            Ok(s) => panic!("parsed as {s:?}"),
        }
    }

    /// Firing times in named zones, across daylight saving transitions. In
    /// 2024 Berlin springs forward at 01:00Z on 31 March (02:00 CET becomes
    /// 03:00 CEST) and falls back at 01:00Z on 27 October (03:00 CEST
    /// becomes 02:00 CET); New York springs forward at 07:00Z on 10 March
    /// (02:00 EST becomes 03:00 EDT) and falls back at 06:00Z on 3 November
    /// (02:00 EDT becomes 01:00 EST).
    #[test]
    fn next_times_in_time_zones() {
        let cases: &[(&str, &str, &str, &[&str])] = &[
            // 09:00 local is 08:00Z in winter and 07:00Z in summer.
            (
                "Europe/Berlin",
                "0 9 * * *",
                "2024-01-15T00:00:00Z",
                &["2024-01-15T08:00:00Z", "2024-01-16T08:00:00Z"],
            ),
            (
                "Europe/Berlin",
                "0 9 * * *",
                "2024-07-15T00:00:00Z",
                &["2024-07-15T07:00:00Z"],
            ),
            (
                "Europe/Berlin",
                "0 9 * * *",
                "2024-03-30T09:00:00Z",
                &["2024-03-31T07:00:00Z", "2024-04-01T07:00:00Z"],
            ),
            (
                "America/New_York",
                "0 9 * * *",
                "2024-01-15T00:00:00Z",
                &["2024-01-15T14:00:00Z"],
            ),
            (
                "America/New_York",
                "0 9 * * *",
                "2024-07-15T00:00:00Z",
                &["2024-07-15T13:00:00Z"],
            ),
            // Spring forward: 02:30 does not exist on the day of the jump,
            // so it does not run that day.
            (
                "Europe/Berlin",
                "30 2 * * *",
                "2024-03-30T00:00:00Z",
                &["2024-03-30T01:30:00Z", "2024-04-01T00:30:00Z"],
            ),
            (
                "America/New_York",
                "30 2 * * *",
                "2024-03-09T00:00:00Z",
                &["2024-03-09T07:30:00Z", "2024-03-11T06:30:00Z"],
            ),
            // Fall back: a time of day in the repeated hour runs once, at
            // its first occurrence (02:30 CEST, not again at 02:30 CET).
            (
                "Europe/Berlin",
                "30 2 * * *",
                "2024-10-26T00:00:00Z",
                &[
                    "2024-10-26T00:30:00Z",
                    "2024-10-27T00:30:00Z",
                    "2024-10-28T01:30:00Z",
                ],
            ),
            (
                "America/New_York",
                "30 1 * * *",
                "2024-11-02T00:00:00Z",
                &[
                    "2024-11-02T05:30:00Z",
                    "2024-11-03T05:30:00Z",
                    "2024-11-04T06:30:00Z",
                ],
            ),
            (
                "Europe/Berlin",
                "0,30 2 * * *",
                "2024-10-27T00:10:00Z",
                &["2024-10-27T00:30:00Z", "2024-10-28T01:00:00Z"],
            ),
            // Already in the second pass: 02:45 happened in the first one.
            (
                "Europe/Berlin",
                "45 2 * * *",
                "2024-10-27T01:10:00Z",
                &["2024-10-28T01:45:00Z"],
            ),
            // Periodic schedules keep their period in real time: every 30
            // minutes through both passes of the repeated hour, and
            // straight across the skipped one.
            (
                "Europe/Berlin",
                "*/30 * * * *",
                "2024-10-26T23:45:00Z",
                &[
                    "2024-10-27T00:00:00Z",
                    "2024-10-27T00:30:00Z",
                    "2024-10-27T01:00:00Z",
                    "2024-10-27T01:30:00Z",
                    "2024-10-27T02:00:00Z",
                ],
            ),
            (
                "Europe/Berlin",
                "*/30 * * * *",
                "2024-03-31T00:15:00Z",
                &[
                    "2024-03-31T00:30:00Z",
                    "2024-03-31T01:00:00Z",
                    "2024-03-31T01:30:00Z",
                ],
            ),
            (
                "America/New_York",
                "@hourly",
                "2024-11-03T04:30:00Z",
                &[
                    "2024-11-03T05:00:00Z",
                    "2024-11-03T06:00:00Z",
                    "2024-11-03T07:00:00Z",
                ],
            ),
            // Midnight is untouched by these transitions; the local date
            // decides the day.
            (
                "America/New_York",
                "0 0 1 * *",
                "2024-10-15T00:00:00Z",
                &["2024-11-01T04:00:00Z", "2024-12-01T05:00:00Z"],
            ),
            (
                "Asia/Kolkata",
                "0 9 * * *",
                "2024-01-01T00:00:00Z",
                &["2024-01-01T03:30:00Z"],
            ),
            (
                "+05:30",
                "0 9 * * *",
                "2024-01-01T00:00:00Z",
                &["2024-01-01T03:30:00Z"],
            ),
            (
                "Etc/GMT+5",
                "0 0 1 * *",
                "2024-01-01T04:00:00Z",
                &["2024-01-01T05:00:00Z", "2024-02-01T05:00:00Z"],
            ),
            ("Europe/Berlin", "0 0 30 2 *", "2024-01-01T00:00:00Z", &[]),
        ];
        for (tz, expr, from, want) in cases {
            let got = next_n(&sched_in(expr, tz), from, want.len().max(1));
            assert_eq!(got, *want, "{expr} in {tz} after {from}");
        }
    }

    #[test]
    fn previous_times_in_time_zones() {
        let cases = [
            // Second pass of the repeated hour: the run was the first pass.
            (
                "Europe/Berlin",
                "30 2 * * *",
                "2024-10-27T01:40:00Z",
                Some("2024-10-27T00:30:00Z"),
            ),
            (
                "America/New_York",
                "30 1 * * *",
                "2024-11-03T06:45:00Z",
                Some("2024-11-03T05:30:00Z"),
            ),
            // The day of the gap had no 02:30.
            (
                "Europe/Berlin",
                "30 2 * * *",
                "2024-04-01T00:00:00Z",
                Some("2024-03-30T01:30:00Z"),
            ),
            (
                "Europe/Berlin",
                "*/30 * * * *",
                "2024-10-27T01:10:00Z",
                Some("2024-10-27T01:00:00Z"),
            ),
            (
                "Europe/Berlin",
                "0 9 * * *",
                "2024-07-15T07:00:00Z",
                Some("2024-07-15T07:00:00Z"),
            ),
            (
                "America/New_York",
                "0 9 * * *",
                "2024-01-15T13:59:00Z",
                Some("2024-01-14T14:00:00Z"),
            ),
            ("Europe/Berlin", "0 0 30 2 *", "2024-01-01T00:00:00Z", None),
        ];
        for (tz, expr, from, want) in cases {
            let got = sched_in(expr, tz)
                .prev_at_or_before(at(from))
                .map(|t| t.to_string());
            assert_eq!(got.as_deref(), want, "{expr} in {tz} before {from}");
        }
    }

    /// The controller relies on `prev_at_or_before` and `next_after`
    /// agreeing: walking forward across the 2024 transitions, each firing is
    /// its own previous time, and the one before it precedes it.
    #[test]
    fn next_and_previous_agree_across_transitions() {
        let cases = [
            ("Europe/Berlin", "30 2 * * *"),
            ("Europe/Berlin", "*/20 1-3 * * *"),
            ("Europe/Berlin", "0 * * * *"),
            ("America/New_York", "30 1 * * 0"),
            ("America/New_York", "*/45 * * * *"),
            ("Australia/Lord_Howe", "15,45 1-2 * * *"),
            ("UTC", "0 0 * * 1"),
        ];
        let windows = [
            ("2024-03-01T00:00:00Z", "2024-04-15T00:00:00Z"),
            ("2024-09-25T00:00:00Z", "2024-11-10T00:00:00Z"),
        ];
        for ((tz, expr), (from, to)) in cases.iter().flat_map(|c| windows.iter().map(move |w| (c, w))) {
            let s = sched_in(expr, tz);
            let mut prev: Option<Timestamp> = None;
            let mut t = at(from);
            let end = at(to);
            while let Some(next) = s.next_after(t).filter(|n| *n < end) {
                assert_eq!(s.prev_at_or_before(next), Some(next), "{expr} in {tz}");
                if let Some(p) = prev {
                    assert!(p < next, "{expr} in {tz}: {p} then {next}");
                    let before = next.checked_sub(SignedDuration::from_secs(1)).ok();
                    assert_eq!(
                        before.and_then(|b| s.prev_at_or_before(b)),
                        Some(p),
                        "{expr} in {tz} before {next}"
                    );
                }
                prev = Some(next);
                t = next;
            }
        }
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
