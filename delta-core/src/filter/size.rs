//! Size predicates: parsing rclone and rsync size values, and the `[min, max]` window.
//!
//! rclone (`fs/sizesuffix.go`): a float with an optional binary suffix `B` (bytes), `K`/`Ki`/
//! `KiB`, `M…`, `G…`, `T…`, `P…`, `E…` (any case, except that `iB` needs a lower-case `i`);
//! **no suffix means KiB**; `off` disables; negative values are refused. `--min-size` drops
//! files with `size < min`, `--max-size` those with `size > max`.
//!
//! rsync (`parse_size_arg()` in `options.c`): a decimal with an optional unit `B K M G T P`;
//! no unit means bytes; a one-letter unit or one followed by `iB` is a power of 1024, one
//! followed by `B` a power of 1000; a trailing `+1`/`-1` adjusts by one byte. rsync's limits
//! are *transfer rules*: they skip the transfer but never hide the file from deletion.

/// Files whose size lies in `[min, max]` (either bound optional).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SizeWindow {
    pub min: Option<u64>,
    pub max: Option<u64>,
}

impl SizeWindow {
    pub(crate) fn contains(&self, size: u64) -> bool {
        self.min.is_none_or(|m| size >= m) && self.max.is_none_or(|m| size <= m)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.min.is_some() || self.max.is_some()
    }
}

/// Parses an rclone size (`--min-size`, `--max-size`); `Ok(None)` for `off`.
pub fn parse_rclone_size(text: &str) -> Result<Option<u64>, &'static str> {
    let b = text.as_bytes();
    if b.is_empty() {
        return Err("empty string");
    }
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let symbol = |c: u8| -> Option<f64> {
        let exp = match c.to_ascii_lowercase() {
            b'k' => 1,
            b'm' => 2,
            b'g' => 3,
            b't' => 4,
            b'p' => 5,
            b'e' => 6,
            _ => return None,
        };
        Some(1024f64.powi(exp))
    };
    let n = b.len();
    let (suffix_len, mult) = match b[n - 1] {
        b'0'..=b'9' | b'.' => (0, 1024.0),
        b'b' | b'B' => {
            if n > 2 && b[n - 2] == b'i' {
                (3, symbol(b[n - 3]).ok_or("bad suffix")?)
            } else {
                (1, 1.0)
            }
        }
        b'i' | b'I' => {
            if n > 1 {
                (2, symbol(b[n - 2]).ok_or("bad suffix")?)
            } else {
                return Err("bad suffix");
            }
        }
        c => (1, symbol(c).ok_or("bad suffix")?),
    };
    let number = &text[..n - suffix_len];
    let value: f64 = parse_decimal(number).ok_or("not a number")?;
    if value < 0.0 {
        return Err("size can't be negative");
    }
    let bytes = value * mult;
    // Go converts to int64: anything from 2^63 up does not fit (NaN is in no range).
    if !(0.0..super::age::TWO_POW_63).contains(&bytes) {
        return Err("too large");
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Some(bytes as u64))
}

/// C's `strtod()` on the leading `[+-]digits[.digits]` of `s` (0 when there is none).
fn strtod_prefix(s: &str) -> f64 {
    let b = s.as_bytes();
    let mut k = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let start_digits = k;
    while k < b.len() && b[k].is_ascii_digit() {
        k += 1;
    }
    if k < b.len() && b[k] == b'.' {
        k += 1;
        while k < b.len() && b[k].is_ascii_digit() {
            k += 1;
        }
    }
    if k == start_digits || &s[start_digits..k] == "." {
        return 0.0;
    }
    s[..k].parse().unwrap_or(0.0)
}

/// A decimal float as Go's `ParseFloat` reads it (no hex, no underscores, no inf/NaN).
fn parse_decimal(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// Parses an rsync size (`--min-size`, `--max-size`); the error is rsync's word for it
/// (`invalid` or `too large`).
pub fn parse_rsync_size(text: &str) -> Result<u64, &'static str> {
    const SIZE_MAX: i64 = i64::MAX;
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let mut k = 0;
    while at(k).is_ascii_digit() {
        k += 1;
    }
    if at(k) == b'.' {
        k += 1;
        while at(k).is_ascii_digit() {
            k += 1;
        }
    }
    let unit = if at(k) != 0 && at(k) != b'+' && at(k) != b'-' {
        k += 1;
        at(k - 1)
    } else {
        b'b'
    };
    let reps = match unit.to_ascii_lowercase() {
        b'b' => 0,
        b'k' => 1,
        b'm' => 2,
        b'g' => 3,
        b't' => 4,
        b'p' => 5,
        _ => return Err("invalid"),
    };
    let mult: i64 = if at(k) == b'b' || at(k) == b'B' {
        k += 1;
        1000
    } else if at(k) == 0 || at(k) == b'+' || at(k) == b'-' {
        1024
    } else if b.len() >= k + 2 && b[k..k + 2].eq_ignore_ascii_case(b"ib") {
        k += 2;
        1024
    } else {
        return Err("invalid");
    };
    let mut unit_size: i64 = 1;
    for _ in 0..reps {
        if unit_size > SIZE_MAX / mult {
            return Err("too large");
        }
        unit_size *= mult;
    }
    let dsize = strtod_prefix(text);
    if dsize < 0.0 {
        return Err("too large");
    }
    #[allow(clippy::cast_precision_loss)]
    let limit = SIZE_MAX as f64 / unit_size as f64;
    if dsize >= limit {
        return Err("too large");
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    let mut size = (dsize * unit_size as f64) as i64;
    if (at(k) == b'+' || at(k) == b'-') && at(k + 1) == b'1' && k != 0 {
        if at(k) == b'+' {
            if size == SIZE_MAX {
                return Err("too large");
            }
            size += 1;
        } else {
            size -= 1;
        }
        k += 2;
    }
    if k != b.len() {
        return Err("invalid");
    }
    u64::try_from(size).map_err(|_| "too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rclone_sizes() {
        let ok = |t: &str| parse_rclone_size(t).unwrap().unwrap();
        assert_eq!(ok("10"), 10 * 1024, "default unit is KiB");
        assert_eq!(ok("1.5"), 1536);
        assert_eq!(ok("100B"), 100);
        assert_eq!(ok("100b"), 100);
        assert_eq!(ok("1K"), 1024);
        assert_eq!(ok("1k"), 1024);
        assert_eq!(ok("1Ki"), 1024);
        assert_eq!(ok("1KiB"), 1024);
        assert_eq!(ok("2M"), 2 << 20);
        assert_eq!(ok("1.5G"), 3 << 29);
        assert_eq!(ok("1T"), 1 << 40);
        assert_eq!(ok("1P"), 1 << 50);
        assert_eq!(ok("0"), 0);
        assert_eq!(parse_rclone_size("off"), Ok(None));
        assert_eq!(parse_rclone_size("OFF"), Ok(None));
        assert_eq!(parse_rclone_size(""), Err("empty string"));
        assert_eq!(parse_rclone_size("1x"), Err("bad suffix"));
        assert_eq!(parse_rclone_size("1xiB"), Err("bad suffix"));
        assert_eq!(parse_rclone_size("i"), Err("bad suffix"));
        assert_eq!(parse_rclone_size("-1"), Err("size can't be negative"));
        assert_eq!(
            parse_rclone_size("10MB"),
            Err("not a number"),
            "MB is not accepted"
        );
        assert_eq!(
            parse_rclone_size("1KIB"),
            Err("not a number"),
            "iB needs a lower-case i"
        );
        assert_eq!(parse_rclone_size("8E"), Err("too large"));
    }

    #[test]
    fn rsync_sizes() {
        assert_eq!(parse_rsync_size("100"), Ok(100), "default unit is bytes");
        assert_eq!(parse_rsync_size("1k"), Ok(1024));
        assert_eq!(parse_rsync_size("1K"), Ok(1024));
        assert_eq!(parse_rsync_size("1KiB"), Ok(1024));
        assert_eq!(parse_rsync_size("1kb"), Ok(1000));
        assert_eq!(parse_rsync_size("1.5m"), Ok(1_572_864));
        assert_eq!(parse_rsync_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_rsync_size("1G"), Ok(1 << 30));
        assert_eq!(parse_rsync_size("10k-1"), Ok(10_239));
        assert_eq!(parse_rsync_size("10k+1"), Ok(10_241));
        assert_eq!(parse_rsync_size("1b"), Ok(1));
        assert_eq!(parse_rsync_size(""), Ok(0));
        assert_eq!(parse_rsync_size("1x"), Err("invalid"));
        assert_eq!(parse_rsync_size("1kx"), Err("invalid"));
        assert_eq!(parse_rsync_size("1k+2"), Err("invalid"));
        assert_eq!(
            parse_rsync_size("-1"),
            Err("too large"),
            "rsync's word for it"
        );
        assert_eq!(parse_rsync_size("+1"), Err("invalid"));
        assert_eq!(parse_rsync_size("9000P"), Err("too large"));
    }

    #[test]
    fn window_bounds_are_inclusive() {
        let w = SizeWindow {
            min: Some(10),
            max: Some(20),
        };
        assert!(!w.contains(9));
        assert!(w.contains(10));
        assert!(w.contains(20));
        assert!(!w.contains(21));
        assert!(SizeWindow::default().contains(u64::MAX));
    }
}
