//! Age predicates: rclone `--min-age`/`--max-age` values (durations and dates) and robocopy
//! `/MINAGE:n`/`/MAXAGE:n`, turned into cut-off instants against a [`TimeBase`].
//!
//! rclone (`fs/parseduration.go`, `fs/filter/filter.go`): a value is tried, in order, as a
//! Go duration (`1h30m`, `1.5h`, `300ms`, `-2m`), as a number with a suffix `d` (24 h), `w`
//! (7 d), `M` (30 d), `y` (365 d) or none (seconds), fractions allowed, then as a date in local
//! time: RFC 3339, `2006-01-02T15:04:05`, `2006-01-02 15:04:05`, `2006-01-02`. `off` disables.
//! `--min-age D` keeps files with `mtime <= now - D`, `--max-age D` those with
//! `mtime >= now - D` (rclone excludes `modTime.After(to)` and `modTime.Before(from)`, so both
//! bounds are inclusive, to the nanosecond). A date is used as the cut-off itself.
//!
//! robocopy (`/MINAGE:n`, `/MAXAGE:n`): `n < 1900` is a number of days, exactly
//! `n × 86400` s before the start (not midnight); otherwise `YYYYMMDD`, taken as local midnight
//! starting that day. The boundary inclusivity of robocopy is unverified; we use rclone's
//! (inclusive) so the two dialects agree.
//!
//! Pure: "now" and the local UTC offset come from the caller in a [`TimeBase`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time: seconds and nanoseconds since the Unix epoch (seconds may be negative;
/// `nanos < 1_000_000_000`). Ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime {
    /// Whole seconds since 1970-01-01T00:00:00Z (floor).
    pub secs: i64,
    /// Nanoseconds past `secs`.
    pub nanos: u32,
}

impl UnixTime {
    /// From whole seconds and nanoseconds (nanoseconds above 999 999 999 carry over).
    pub fn new(secs: i64, nanos: u32) -> UnixTime {
        UnixTime {
            secs: secs.saturating_add(i64::from(nanos / 1_000_000_000)),
            nanos: nanos % 1_000_000_000,
        }
    }

    /// From a [`SystemTime`] (saturating far outside ±292 billion years).
    pub fn from_system(t: SystemTime) -> UnixTime {
        match t.duration_since(UNIX_EPOCH) {
            Ok(d) => UnixTime {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(e) => {
                let d = e.duration();
                let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
                if d.subsec_nanos() == 0 {
                    UnixTime {
                        secs: -secs,
                        nanos: 0,
                    }
                } else {
                    UnixTime {
                        secs: -secs - 1,
                        nanos: 1_000_000_000 - d.subsec_nanos(),
                    }
                }
            }
        }
    }

    /// As a [`SystemTime`], if the platform can represent it.
    pub fn to_system(self) -> Option<SystemTime> {
        if self.secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::new(self.secs.unsigned_abs(), self.nanos))
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(Duration::from_nanos(u64::from(self.nanos)))
        }
    }

    fn as_nanos(self) -> i128 {
        i128::from(self.secs) * 1_000_000_000 + i128::from(self.nanos)
    }

    fn from_nanos(n: i128) -> Option<UnixTime> {
        let secs = i64::try_from(n.div_euclid(1_000_000_000)).ok()?;
        let nanos = u32::try_from(n.rem_euclid(1_000_000_000)).ok()?;
        Some(UnixTime { secs, nanos })
    }

    /// `self - nanos` (a negative `nanos` moves forward).
    pub(crate) fn minus_nanos(self, nanos: i128) -> Option<UnixTime> {
        UnixTime::from_nanos(self.as_nanos() - nanos)
    }
}

/// The clock a filter is built against: the instant the run started and the local time zone's
/// offset (east of UTC, in seconds) used to read wall-clock dates such as `2024-01-31`
/// (rclone) or `20240131` (robocopy). The CLI obtains both from the OS; the core does no
/// clock or time-zone I/O of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeBase {
    /// The start of the run.
    pub now: UnixTime,
    /// Local offset from UTC in seconds (e.g. 3600 for CET).
    pub utc_offset_secs: i32,
}

impl TimeBase {
    /// A time base at `now` in the given offset.
    pub fn new(now: SystemTime, utc_offset_secs: i32) -> TimeBase {
        TimeBase {
            now: UnixTime::from_system(now),
            utc_offset_secs,
        }
    }

    /// The current time, with dates read as UTC.
    pub fn now_utc() -> TimeBase {
        TimeBase::new(SystemTime::now(), 0)
    }

    /// The current time, with dates read in the local time zone (as rclone and robocopy read
    /// them).
    pub fn now_local() -> TimeBase {
        let now = SystemTime::now();
        TimeBase::new(now, local_utc_offset(now))
    }
}

/// The local time zone's offset from UTC at `t`, in seconds (0 if unknown).
fn local_utc_offset(t: SystemTime) -> i32 {
    let secs = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as libc::time_t,
        Err(_) => return 0,
    };
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are a valid value;
    // localtime_r only writes into it and reads `secs`, both valid for the call, and is
    // thread-safe (unlike localtime).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if ok {
        tm.tm_gmtoff as i32
    } else {
        0
    }
}

/// A parsed rclone age value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcloneAge {
    /// `off`: no limit.
    Off,
    /// A duration before now, in nanoseconds (may be negative: a cut-off in the future).
    Ago(i64),
    /// An absolute date-time.
    At(CivilTime),
}

/// A calendar date and time of day, with an explicit UTC offset or, when `None`, the local one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Seconds since 1970-01-01T00:00:00 of the wall-clock reading.
    pub wall_secs: i64,
    /// Nanoseconds.
    pub nanos: u32,
    /// The offset written in the value (RFC 3339), east of UTC in seconds.
    pub offset_secs: Option<i32>,
}

impl CivilTime {
    /// The instant this wall-clock time denotes.
    pub fn instant(&self, base: &TimeBase) -> UnixTime {
        let off = self.offset_secs.unwrap_or(base.utc_offset_secs);
        UnixTime {
            secs: self.wall_secs - i64::from(off),
            nanos: self.nanos,
        }
    }
}

impl RcloneAge {
    /// Parses an rclone duration or time (see the module docs); the error says why not.
    pub fn parse(text: &str) -> Result<RcloneAge, &'static str> {
        if text == "off" {
            return Ok(RcloneAge::Off);
        }
        if let Some(d) = go_parse_duration(text) {
            return Ok(RcloneAge::Ago(d));
        }
        match parse_duration_suffixes(text) {
            Ok(d) => return Ok(RcloneAge::Ago(d)),
            Err(SuffixError::OutOfRange) => return Err("duration out of range"),
            Err(SuffixError::NotANumber) => {}
        }
        parse_time_dates(text)
            .map(RcloneAge::At)
            .ok_or("not a duration or date")
    }

    /// The cut-off instant: `now - duration`, or the date itself; `None` for `off`.
    pub fn cutoff(&self, base: &TimeBase) -> Option<UnixTime> {
        match *self {
            RcloneAge::Off => None,
            // An i64 of nanoseconds always fits next to an i64 of seconds.
            RcloneAge::Ago(d) => base.now.minus_nanos(i128::from(d)),
            RcloneAge::At(c) => Some(c.instant(base)),
        }
    }
}

/// A parsed robocopy `/MINAGE` or `/MAXAGE` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RobocopyAge {
    /// `n < 1900`: days before the start.
    Days(u32),
    /// `YYYYMMDD`: local midnight starting that day.
    Date(CivilTime),
}

impl RobocopyAge {
    /// Parses `n` (decimal digits only).
    pub fn parse(text: &str) -> Result<RobocopyAge, &'static str> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err("not a number of days or a YYYYMMDD date");
        }
        let digits = text.trim_start_matches('0');
        if digits.len() <= 4 {
            let n: u32 = digits.parse().unwrap_or(0);
            if n < 1900 {
                return Ok(RobocopyAge::Days(n));
            }
        }
        if digits.len() != 8 {
            return Err("not a number of days below 1900 or a YYYYMMDD date");
        }
        let num = |r: std::ops::Range<usize>| digits[r].parse::<i64>().unwrap_or(0);
        let (y, m, d) = (num(0..4), num(4..6), num(6..8));
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return Err("not a valid YYYYMMDD date");
        }
        Ok(RobocopyAge::Date(CivilTime {
            wall_secs: days_from_civil(y, m, d) * 86_400,
            nanos: 0,
            offset_secs: None,
        }))
    }

    /// The cut-off instant.
    pub fn cutoff(&self, base: &TimeBase) -> UnixTime {
        match *self {
            RobocopyAge::Days(n) => UnixTime {
                secs: base.now.secs - i64::from(n) * 86_400,
                nanos: base.now.nanos,
            },
            RobocopyAge::Date(c) => c.instant(base),
        }
    }
}

/// Files whose mtime lies in `[from, to]` (either bound optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TimeWindow {
    pub from: Option<UnixTime>,
    pub to: Option<UnixTime>,
}

impl TimeWindow {
    pub(crate) fn contains(&self, t: UnixTime) -> bool {
        self.from.is_none_or(|from| from <= t) && self.to.is_none_or(|to| t <= to)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.from.is_some() || self.to.is_some()
    }
}

/// Go's `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`. `None` if invalid
/// or out of range.
pub(crate) fn go_parse_duration(text: &str) -> Option<i64> {
    const MAX: u64 = 1 << 63;
    let mut s = text.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first() {
        if c == b'-' || c == b'+' {
            neg = c == b'-';
            s = &s[1..];
        }
    }
    if s == b"0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return None;
        }
        // leadingInt
        let mut v: u64 = 0;
        let mut k = 0;
        while k < s.len() && s[k].is_ascii_digit() {
            if v > MAX / 10 {
                return None;
            }
            v = v * 10 + u64::from(s[k] - b'0');
            if v > MAX {
                return None;
            }
            k += 1;
        }
        let pre = k > 0;
        s = &s[k..];
        // leadingFraction
        let mut post = false;
        let mut f: u64 = 0;
        let mut scale = 1f64;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let mut k = 0;
            let mut overflow = false;
            while k < s.len() && s[k].is_ascii_digit() {
                if !overflow {
                    if f > (MAX - 1) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + u64::from(s[k] - b'0');
                        if y > MAX {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                k += 1;
            }
            post = k > 0;
            s = &s[k..];
        }
        if !pre && !post {
            return None;
        }
        let mut i = 0;
        while i < s.len() && !(s[i] == b'.' || s[i].is_ascii_digit()) {
            i += 1;
        }
        if i == 0 {
            return None;
        }
        let unit: u64 = match &s[..i] {
            b"ns" => 1,
            b"us" => 1_000,
            u if u == "µs".as_bytes() || u == "μs".as_bytes() => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[i..];
        if v > MAX / unit {
            return None;
        }
        v *= unit;
        if f > 0 {
            // Go: v += uint64(float64(f) * (float64(unit) / scale))
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let frac = (f as f64 * (unit as f64 / scale)) as u64;
            v = v.checked_add(frac)?;
            if v > MAX {
                return None;
            }
        }
        d = d.checked_add(v)?;
        if d > MAX {
            return None;
        }
    }
    if neg {
        // d <= 2^63, so -d fits.
        return Some(0i64.wrapping_sub_unsigned(d));
    }
    i64::try_from(d).ok()
}

/// 2^63, exactly representable.
pub(crate) const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

enum SuffixError {
    NotANumber,
    OutOfRange,
}

/// rclone's `parseDurationSuffixes`: the first of `d w M y ""` the text ends with picks the
/// unit; the rest must be a float.
fn parse_duration_suffixes(text: &str) -> Result<i64, SuffixError> {
    const DAY: f64 = 86_400e9;
    let (number, mult) = if let Some(n) = text.strip_suffix('d') {
        (n, DAY)
    } else if let Some(n) = text.strip_suffix('w') {
        (n, 7.0 * DAY)
    } else if let Some(n) = text.strip_suffix('M') {
        (n, 30.0 * DAY)
    } else if let Some(n) = text.strip_suffix('y') {
        (n, 365.0 * DAY)
    } else {
        (text, 1e9)
    };
    let v: f64 = go_parse_float(number).ok_or(SuffixError::NotANumber)?;
    let ns = v * mult;
    // Everything in [-2^63, 2^63) fits an i64 (NaN is in no range).
    if !(-TWO_POW_63..TWO_POW_63).contains(&ns) {
        return Err(SuffixError::OutOfRange);
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(ns as i64)
}

/// Go's `strconv.ParseFloat` for the decimal forms (no hex floats, no underscores); infinities
/// and NaN are refused because rclone cannot use them meaningfully.
fn go_parse_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// rclone's `parseTimeDates`: RFC 3339, `2006-01-02T15:04:05`, `2006-01-02 15:04:05`,
/// `2006-01-02`, the last three in local time.
fn parse_time_dates(text: &str) -> Option<CivilTime> {
    let b = text.as_bytes();
    let (days, rest) = parse_date(b)?;
    if rest.is_empty() {
        return Some(CivilTime {
            wall_secs: days * 86_400,
            nanos: 0,
            offset_secs: None,
        });
    }
    let sep = rest[0];
    if sep != b'T' && sep != b' ' {
        return None;
    }
    let (secs_of_day, nanos, rest) = parse_clock(&rest[1..])?;
    let wall_secs = days * 86_400 + secs_of_day;
    if rest.is_empty() {
        return Some(CivilTime {
            wall_secs,
            nanos,
            offset_secs: None,
        });
    }
    // Only the RFC 3339 layout (with `T`) has a zone.
    if sep != b'T' {
        return None;
    }
    let offset = parse_zone(rest)?;
    Some(CivilTime {
        wall_secs,
        nanos,
        offset_secs: Some(offset),
    })
}

fn digits(b: &[u8], n: usize) -> Option<i64> {
    if b.len() < n || !b[..n].iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        b[..n]
            .iter()
            .fold(0i64, |a, &d| a * 10 + i64::from(d - b'0')),
    )
}

/// `YYYY-MM-DD`: days since the epoch and the rest.
fn parse_date(b: &[u8]) -> Option<(i64, &[u8])> {
    let y = digits(b, 4)?;
    if b.get(4) != Some(&b'-') {
        return None;
    }
    let m = digits(&b[5..], 2)?;
    if b.get(7) != Some(&b'-') {
        return None;
    }
    let d = digits(&b[8..], 2)?;
    if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
        return None;
    }
    Some((days_from_civil(y, m, d), &b[10..]))
}

/// `15:04:05[.fraction]` (Go accepts a one-digit hour and any number of fraction digits,
/// keeping nine).
fn parse_clock(b: &[u8]) -> Option<(i64, u32, &[u8])> {
    let hour_len = if b.len() >= 2 && b[1].is_ascii_digit() {
        2
    } else {
        1
    };
    let h = digits(b, hour_len)?;
    let b = &b[hour_len..];
    if b.first() != Some(&b':') {
        return None;
    }
    let mi = digits(&b[1..], 2)?;
    if b.get(3) != Some(&b':') {
        return None;
    }
    let s = digits(&b[4..], 2)?;
    let mut b = &b[6..];
    if h >= 24 || mi >= 60 || s >= 60 {
        return None;
    }
    let mut nanos = 0u32;
    if b.len() >= 2 && (b[0] == b'.' || b[0] == b',') && b[1].is_ascii_digit() {
        let n = b[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        let mut scale = 100_000_000u32;
        for &d in b[1..=n].iter().take(9) {
            nanos += u32::from(d - b'0') * scale;
            scale /= 10;
        }
        b = &b[1 + n..];
    }
    Some((h * 3600 + mi * 60 + s, nanos, b))
}

/// `Z` or `±hh:mm`, and nothing after it.
fn parse_zone(b: &[u8]) -> Option<i32> {
    if b == b"Z" {
        return Some(0);
    }
    if b.len() != 6 || b[3] != b':' {
        return None;
    }
    let sign = match b[0] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let h = digits(&b[1..], 2)?;
    let m = digits(&b[4..], 2)?;
    if h > 24 || m > 60 {
        return None;
    }
    i32::try_from(sign * (h * 3600 + m * 60)).ok()
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000_000;

    fn ago(text: &str) -> i64 {
        match RcloneAge::parse(text) {
            Ok(RcloneAge::Ago(d)) => d,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_parse_duration("0"), Some(0));
        assert_eq!(go_parse_duration("1h30m"), Some(5400 * SEC));
        assert_eq!(go_parse_duration("1.5h"), Some(5400 * SEC));
        assert_eq!(go_parse_duration("300ms"), Some(300_000_000));
        assert_eq!(go_parse_duration("-2m"), Some(-120 * SEC));
        assert_eq!(go_parse_duration("+.5s"), Some(SEC / 2));
        assert_eq!(go_parse_duration("1µs"), Some(1000));
        assert_eq!(
            go_parse_duration("2562047h47m16.854775807s"),
            Some(i64::MAX)
        );
        assert_eq!(
            go_parse_duration("-2562047h47m16.854775808s"),
            Some(i64::MIN)
        );
        assert_eq!(go_parse_duration("2562048h"), None);
        for bad in ["", "1", "1d", ".s", "1x", "-", "h", "1h-2m"] {
            assert_eq!(go_parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn rclone_durations() {
        assert_eq!(ago("86400"), 86_400 * SEC);
        assert_eq!(ago("1d"), 86_400 * SEC);
        assert_eq!(ago("1.5d"), 129_600 * SEC);
        assert_eq!(ago("2w"), 14 * 86_400 * SEC);
        assert_eq!(ago("1M"), 30 * 86_400 * SEC);
        assert_eq!(ago("1y"), 365 * 86_400 * SEC);
        assert_eq!(ago("1m"), 60 * SEC, "m is minutes (Go), M is months");
        assert_eq!(ago("1.5h"), 5400 * SEC);
        assert_eq!(ago("100ms"), 100_000_000);
        assert_eq!(ago("0.5"), SEC / 2);
        assert_eq!(ago("-1d"), -86_400 * SEC);
        assert_eq!(RcloneAge::parse("off"), Ok(RcloneAge::Off));
        for bad in ["", "d", "1x", "1 d", "1dd", "inf", "NaN", "1e400"] {
            assert!(RcloneAge::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(RcloneAge::parse("1000y"), Err("duration out of range"));
    }

    #[test]
    fn rclone_dates() {
        let base = TimeBase {
            now: UnixTime::new(1_700_000_000, 0),
            utc_offset_secs: 3600,
        };
        let at = |t: &str| RcloneAge::parse(t).unwrap().cutoff(&base).unwrap();
        // 2006-01-02 is day 13150; local (UTC+1) midnight is 23:00 the day before in UTC.
        assert_eq!(at("2006-01-02"), UnixTime::new(13_150 * 86_400 - 3600, 0));
        assert_eq!(
            at("2006-01-02 15:04:05"),
            UnixTime::new(13_150 * 86_400 + 15 * 3600 + 4 * 60 + 5 - 3600, 0)
        );
        assert_eq!(at("2006-01-02T15:04:05"), at("2006-01-02 15:04:05"));
        assert_eq!(
            at("2006-01-02T15:04:05Z"),
            UnixTime::new(13_150 * 86_400 + 15 * 3600 + 4 * 60 + 5, 0)
        );
        assert_eq!(
            at("2006-01-02T15:04:05.25-07:00"),
            UnixTime::new(13_150 * 86_400 + 22 * 3600 + 4 * 60 + 5, 250_000_000)
        );
        assert_eq!(
            at("2006-01-02T15:04:05.1234567891Z").nanos,
            123_456_789,
            "fraction truncated to ns"
        );
        assert_eq!(at("2024-02-29"), UnixTime::new(19_782 * 86_400 - 3600, 0));
        for bad in [
            "2006-1-02",
            "2006-01-32",
            "2023-02-29",
            "2006-13-01",
            "2006-01-02T24:00:00",
            "2006-01-02 15:04:05Z",
            "2006-01-02T15:04",
            "2006-01-02x",
            "2006-01-02T15:04:05+0700",
        ] {
            assert!(RcloneAge::parse(bad).is_err(), "{bad}");
        }
        // A relative value counts back from now.
        assert_eq!(at("1d"), UnixTime::new(1_700_000_000 - 86_400, 0));
        assert_eq!(at("-1s"), UnixTime::new(1_700_000_001, 0));
    }

    #[test]
    fn robocopy_ages() {
        let base = TimeBase {
            now: UnixTime::new(1_700_000_000, 5),
            utc_offset_secs: -3600,
        };
        assert_eq!(RobocopyAge::parse("1"), Ok(RobocopyAge::Days(1)));
        assert_eq!(
            RobocopyAge::parse("1").unwrap().cutoff(&base),
            UnixTime::new(1_700_000_000 - 86_400, 5),
            "n days = n x 86400 s before the start, not midnight"
        );
        assert_eq!(RobocopyAge::parse("1899"), Ok(RobocopyAge::Days(1899)));
        assert_eq!(
            RobocopyAge::parse("20060102").unwrap().cutoff(&base),
            UnixTime::new(13_150 * 86_400 + 3600, 0)
        );
        for bad in [
            "", "1900", "x", "-1", "2006010", "20061301", "20060230", "1.5",
        ] {
            assert!(RobocopyAge::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_time_round_trip() {
        for (s, n) in [(0, 0), (1, 5), (-1, 999_999_999), (-86_400, 0)] {
            let t = UnixTime::new(s, n);
            assert_eq!(UnixTime::from_system(t.to_system().unwrap()), t);
        }
        assert!(UnixTime::new(-1, 0) < UnixTime::new(-1, 1));
        assert!(UnixTime::new(-1, 999_999_999) < UnixTime::new(0, 0));
    }

    #[test]
    fn window_is_inclusive() {
        let w = TimeWindow {
            from: Some(UnixTime::new(10, 0)),
            to: Some(UnixTime::new(20, 0)),
        };
        assert!(w.contains(UnixTime::new(10, 0)));
        assert!(w.contains(UnixTime::new(20, 0)));
        assert!(!w.contains(UnixTime::new(9, 999_999_999)));
        assert!(!w.contains(UnixTime::new(20, 1)));
        assert!(TimeWindow::default().contains(UnixTime::new(i64::MIN, 0)));
    }

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
