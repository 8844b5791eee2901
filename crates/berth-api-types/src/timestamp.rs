//! Docker's time arguments (`--since`, `--until`, `until=` filters): Unix seconds with an
//! optional fraction (`1700000000.5`), RFC 3339 dates and their shortened forms
//! (`2024-01-02`, `2024-01-02T15:04`, with `Z` or `±hh:mm`; without a zone they are UTC,
//! the zone of these machines), and Go durations counted back from now (`10m`, `1h30m`),
//! as moby's `api/types/time.GetTimestamp`; and the one place times are formatted as
//! RFC 3339 ([`format_rfc3339`], [`rfc3339_nano`]). The calendar maths is the `time`
//! crate's.
//!
//! Every function here is total: the input is a client's, so it is read byte by byte (no
//! slicing that could land inside a multi-byte character), with checked arithmetic. A
//! duration past Go's range (±2^63 ns) is refused as Go refuses it; a well-formed time
//! outside the range of `i64` nanoseconds (before 1677 or after 2262) saturates, which
//! orders it correctly against every representable time.

use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// `secs` and `nanos` since the epoch as a UTC time, clamped to the years RFC 3339 can
/// write: 0000-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
fn utc(secs: i64, nanos: u32) -> OffsetDateTime {
    const FIRST: i128 = -62_167_219_200 * NANOS_PER_SEC as i128;
    const LAST: i128 = 253_402_300_800 * NANOS_PER_SEC as i128 - 1;
    let nanos = i128::from(secs) * i128::from(NANOS_PER_SEC) + i128::from(nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos.clamp(FIRST, LAST))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2024-01-02T03:04:05.123456789Z`.
const NINE_DIGITS: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");
/// `2024-01-02T03:04:05.1Z`: as many digits as the fraction needs.
const TRIMMED: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:1+]Z");
/// `2024-01-02T03:04:05Z`.
const WHOLE: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// `t` in `layout`. Formatting a clamped UTC time into a string cannot fail (the layouts
/// name only what an `OffsetDateTime` has, and years 0000-9999 fit them).
fn format_utc(t: OffsetDateTime, layout: &[BorrowedFormatItem<'_>]) -> String {
    t.format(layout).unwrap_or_default()
}

/// RFC 3339 in UTC with all nine digits of nanoseconds (`2024-01-02T03:04:05.123456789Z`),
/// as Berth writes times in records and API answers. Times outside years 0000–9999 are
/// clamped to them.
pub fn format_rfc3339(secs: i64, nanos: u32) -> String {
    format_utc(utc(secs, nanos), NINE_DIGITS)
}

/// The current time as [`format_rfc3339`] writes it.
pub fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc();
    format_rfc3339(now.unix_timestamp(), now.nanosecond())
}

/// Go's `time.RFC3339Nano` in UTC: the fraction's trailing zeros dropped, no fraction when
/// it is zero (`2024-05-01T12:00:00.1234Z`), as dockerd's shim writes exit and log times.
/// Times before 1970 format as the epoch.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let t = utc(
        i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        d.subsec_nanos(),
    );
    match t.nanosecond() {
        0 => format_utc(t, WHOLE),
        _ => format_utc(t, TRIMMED),
    }
}

/// Whole seconds since the epoch as RFC 3339 UTC without a fraction
/// (`2024-01-02T03:04:05Z`), clamped as [`format_rfc3339`] clamps.
pub fn format_rfc3339_secs(secs: i64) -> String {
    format_utc(utc(secs, 0), WHOLE)
}

/// The UTC calendar fields of `secs` since the epoch, for formats RFC 3339 does not
/// cover (syslog's): (year, month 1-12, day, hour, minute, second), clamped as above.
pub fn utc_fields(secs: i64) -> (i32, u8, u8, u8, u8, u8) {
    let t = utc(secs, 0);
    (
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    )
}

/// Why a time argument is refused: dockerd's texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampError {
    /// Looks like a date (a `-`, ten characters or more) but is none.
    #[error("parsing time {0:?}: cannot parse as a date")]
    Date(String),
    #[error("failed to parse value as time or duration: {0:?}")]
    Value(String),
}

/// Nanoseconds since the epoch of `value`; durations count back from `now_nanos`.
pub fn parse_nanos(value: &str, now_nanos: i64) -> Result<i64, TimestampError> {
    let value = value.trim();
    if value != "0" {
        if let Some(d) = parse_duration(value) {
            return Ok(now_nanos.saturating_sub(d));
        }
    }
    if value.contains('-') && value.len() >= 10 {
        return parse_rfc3339(value)
            .map(|t| saturating_i128(t.unix_timestamp_nanos()))
            .ok_or_else(|| TimestampError::Date(value.to_string()));
    }
    parse_unix(value).ok_or_else(|| TimestampError::Value(value.to_string()))
}

/// `sec[.frac]` as the API carries it (`1700000000.000000001`).
pub fn to_wire(nanos: i64) -> String {
    format!(
        "{}.{:09}",
        nanos.div_euclid(NANOS_PER_SEC),
        nanos.rem_euclid(NANOS_PER_SEC)
    )
}

/// Nanoseconds as `i64`, saturating at its ends.
fn saturating_i128(nanos: i128) -> i64 {
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

/// `secs` seconds and `frac` nanoseconds as nanoseconds, saturating at the ends of `i64`.
fn saturating_nanos(secs: i64, frac: i64) -> i64 {
    secs.saturating_mul(NANOS_PER_SEC).saturating_add(frac)
}

/// The value of a run of ASCII digits, `None` when empty, not all digits, or too large.
fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0i64, |acc, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(i64::from(c - b'0'))
    })
}

/// A fraction of a second (`5` in `1.5`) as nanoseconds: digits past the ninth are
/// dropped, as Go drops them.
fn fraction_nanos(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut ns = 0i64;
    for i in 0..9 {
        ns = ns * 10 + b.get(i).map_or(0, |c| i64::from(c - b'0'));
    }
    Some(ns)
}

/// `sec[.frac]`, as moby's `parseTimestamp`.
fn parse_unix(v: &str) -> Option<i64> {
    let b = v.as_bytes();
    let (s, frac) = match b.iter().position(|&c| c == b'.') {
        Some(dot) => (&b[..dot], Some(&b[dot + 1..])),
        None => (b, None),
    };
    let secs = digits(s)?;
    let ns = match frac {
        None => 0,
        Some(f) => fraction_nanos(f)?,
    };
    Some(saturating_nanos(secs, ns))
}

/// Go's `time.ParseDuration` (a sign, then `<number><unit>` pairs), in nanoseconds;
/// `None` where Go answers an error, overflow past ±2^63 ns included.
fn parse_duration(v: &str) -> Option<i64> {
    const LIMIT: u64 = 1 << 63;
    let b = v.as_bytes();
    let (neg, mut b) = match b.first()? {
        b'-' => (true, &b[1..]),
        b'+' => (false, &b[1..]),
        _ => (false, b),
    };
    if b == b"0" {
        return Some(0);
    }
    if b.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !b.is_empty() {
        // The integer part: overflow is an error.
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &c in &b[..int_len] {
            whole = whole.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
            if whole > LIMIT {
                return None;
            }
        }
        b = &b[int_len..];
        // The fraction: digits past what fits are ignored (Go's `leadingFraction`).
        let (mut frac, mut scale, mut frac_len, mut full) = (0u64, 1f64, 0usize, false);
        if b.first() == Some(&b'.') {
            b = &b[1..];
            frac_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
            for &c in &b[..frac_len] {
                if full {
                    continue;
                }
                match frac.checked_mul(10).map(|x| x + u64::from(c - b'0')) {
                    Some(y) if y <= LIMIT => {
                        frac = y;
                        scale *= 10.0;
                    }
                    _ => full = true,
                }
            }
            b = &b[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return None;
        }
        let unit_len = b
            .iter()
            .take_while(|&&c| c != b'.' && !c.is_ascii_digit())
            .count();
        let unit: u64 = match &b[..unit_len] {
            b"ns" => 1,
            // `µs` (U+00B5) and `μs` (U+03BC), as Go accepts both.
            b"us" | [0xC2, 0xB5, b's'] | [0xCE, 0xBC, b's'] => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => return None,
        };
        b = &b[unit_len..];
        let mut part = whole.checked_mul(unit).filter(|&p| p <= LIMIT)?;
        if frac > 0 {
            // Below 2^63 * 3600e9 / 10, so finite; `as` saturates.
            part = part.checked_add((frac as f64 * (unit as f64 / scale)) as u64)?;
            if part > LIMIT {
                return None;
            }
        }
        total = total.checked_add(part).filter(|&t| t <= LIMIT)?;
    }
    if neg {
        // -2^63 is the one value whose magnitude does not fit in i64.
        Some(0i64.checked_sub_unsigned(total).unwrap_or(i64::MIN))
    } else {
        i64::try_from(total).ok()
    }
}

/// An RFC 3339 time or a shortened form of it, `YYYY-MM-DD[THH[:MM[:SS[.frac]]]][Z|±hh:mm]`
/// (no zone is UTC); `None` for anything else. Total: every input gives an answer.
pub fn parse_rfc3339(v: &str) -> Option<OffsetDateTime> {
    let b = v.as_bytes();
    let (y, mo, d) = (
        digits(b.get(0..4)?)?,
        digits(b.get(5..7)?)?,
        digits(b.get(8..10)?)?,
    );
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    // Four digits each way, so these conversions cannot fail; the day is checked
    // against the month (and leap years) here.
    let month = Month::try_from(u8::try_from(mo).ok()?).ok()?;
    let date =
        Date::from_calendar_date(i32::try_from(y).ok()?, month, u8::try_from(d).ok()?).ok()?;
    let mut rest = b.get(10..)?;
    // The zone: a trailing `Z` or `±hh:mm`.
    let mut offset = 0i64;
    if let Some((b'Z' | b'z', body)) = rest.split_last() {
        rest = body;
    } else if let Some(at) = rest.len().checked_sub(6) {
        let (body, zone) = rest.split_at(at);
        let sign = match zone.first() {
            Some(b'+') => Some(1),
            Some(b'-') => Some(-1),
            _ => None,
        };
        if let Some(sign) = sign {
            let (zh, zm) = (digits(zone.get(1..3)?)?, digits(zone.get(4..6)?)?);
            if zone.get(3) != Some(&b':') || zh > 24 || zm > 59 {
                return None;
            }
            offset = sign * (zh * 3600 + zm * 60);
            rest = body;
        }
    }
    let (mut h, mut mi, mut s, mut ns) = (0, 0, 0, 0);
    if let Some((b'T' | b't', t)) = rest.split_first() {
        let (hms, frac) = match t.iter().position(|&c| c == b'.') {
            Some(dot) => (&t[..dot], Some(&t[dot + 1..])),
            None => (t, None),
        };
        let parts: Vec<&[u8]> = hms.split(|&c| c == b':').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
            return None;
        }
        let part = |i: usize| parts.get(i).map_or(Some(0), |p| digits(p));
        (h, mi, s) = (part(0)?, part(1)?, part(2)?);
        if let Some(frac) = frac {
            if parts.len() != 3 {
                return None;
            }
            ns = fraction_nanos(frac)?;
        }
        if h > 23 || mi > 59 || s > 59 {
            return None;
        }
    } else if !rest.is_empty() {
        return None;
    }
    let time = Time::from_hms_nano(
        u8::try_from(h).ok()?,
        u8::try_from(mi).ok()?,
        u8::try_from(s).ok()?,
        u32::try_from(ns).ok()?,
    )
    .ok()?;
    let offset = UtcOffset::from_whole_seconds(i32::try_from(offset).ok()?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_offset(offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;
    const NOW: i64 = 1_700_000_000 * S;

    #[test]
    fn unix_seconds_and_fractions() {
        assert_eq!(parse_nanos("1700000000", NOW), Ok(1_700_000_000 * S));
        assert_eq!(
            parse_nanos("1700000000.5", NOW),
            Ok(1_700_000_000 * S + S / 2)
        );
        assert_eq!(
            parse_nanos("1700000000.000000001", NOW),
            Ok(1_700_000_000 * S + 1)
        );
        assert_eq!(parse_nanos("0", NOW), Ok(0));
        assert_eq!(to_wire(1_700_000_000 * S + 1), "1700000000.000000001");
    }

    #[test]
    fn durations_count_back() {
        assert_eq!(parse_nanos("10m", NOW), Ok(NOW - 600 * S));
        assert_eq!(parse_nanos("1h30m", NOW), Ok(NOW - 5400 * S));
        assert_eq!(parse_nanos("1.5s", NOW), Ok(NOW - 3 * S / 2));
        assert_eq!(parse_nanos("250ms", NOW), Ok(NOW - S / 4));
    }

    #[test]
    fn dates() {
        assert_eq!(parse_nanos("2023-11-14T22:13:20Z", NOW), Ok(NOW));
        assert_eq!(parse_nanos("2023-11-14T22:13:20.25Z", NOW), Ok(NOW + S / 4));
        assert_eq!(parse_nanos("2023-11-14T23:13:20+01:00", NOW), Ok(NOW));
        assert_eq!(parse_nanos("2023-11-14T22:13:20", NOW), Ok(NOW));
        assert_eq!(parse_nanos("2023-11-14T22:13", NOW), Ok(NOW - 20 * S));
        assert_eq!(parse_nanos("2023-11-14", NOW), Ok(NOW - 80000 * S));
        assert_eq!(parse_nanos("1970-01-01T00:00:00Z", NOW), Ok(0));
    }

    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "abc",
            "10x",
            "2023-13-01",
            "2023-11-14T25:00",
            "1.2.3",
            "-",
            "2023-11-14X",
        ] {
            assert!(parse_nanos(bad, NOW).is_err(), "{bad:?}");
        }
    }

    /// Each of these panicked (slicing inside a character, or overflow in debug builds).
    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        for bad in [
            "2024-01-01T00:00:00+0é:0",
            "2024-01-01T00:00:00.éééééé",
            "2024-01-01Té+00:00",
            "é",
            "2024-é-01",
            "2023-02-29",
            "2024-01-01T00:00:00.",
            "2024-01-01T00:00:60Z",
            "2024-01-01T00:00:00+25:00",
        ] {
            assert!(parse_nanos(bad, NOW).is_err(), "{bad:?}");
        }
        assert_eq!(parse_nanos("2024-02-29", NOW), Ok(1_709_164_800 * S));
    }

    #[test]
    fn out_of_range_times_saturate() {
        assert_eq!(parse_nanos("9999-12-31T23:59:59Z", NOW), Ok(i64::MAX));
        assert_eq!(parse_nanos("0000-01-01", NOW), Ok(i64::MIN));
        assert_eq!(parse_nanos("99999999999999", NOW), Ok(i64::MAX));
        assert_eq!(parse_nanos("-2562047h", NOW), Ok(i64::MAX));
        assert_eq!(parse_nanos("2562047h", i64::MIN), Ok(i64::MIN));
    }

    #[test]
    fn durations_follow_go() {
        // Past Go's ±2^63 ns: `time: invalid duration`, so not a duration at all.
        for bad in [
            "99999999999999999h",
            "-99999999999h",
            "9223372036854775808ns",
            "1e3h",
            "NaNh",
            "infh",
            ".h",
            "1",
            "1hh",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
        assert_eq!(parse_duration("-9223372036854775808ns"), Some(i64::MIN));
        assert_eq!(parse_duration("9223372036854775807ns"), Some(i64::MAX));
        assert_eq!(parse_duration("+0"), Some(0));
        assert_eq!(parse_duration(".5s"), Some(S / 2));
        assert_eq!(parse_duration("5.s"), Some(5 * S));
        assert_eq!(parse_duration("1.5µs"), Some(1500));
        assert_eq!(parse_duration("1h1m1s1ms1us1ns"), Some(3_661_001_001_001));
        // A fraction longer than fits is read as far as it fits.
        assert_eq!(parse_duration(&format!("1.{}s", "0".repeat(100))), Some(S));
        assert_eq!(parse_duration(&format!("0.{}1s", "0".repeat(40))), Some(0));
    }

    #[test]
    fn formats_with_nanoseconds_and_odd_years() {
        assert_eq!(format_rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            format_rfc3339(1_704_164_645, 123_456_789),
            "2024-01-02T03:04:05.123456789Z"
        );
        assert_eq!(
            format_rfc3339(1_709_251_199, 5),
            "2024-02-29T23:59:59.000000005Z"
        );
        assert_eq!(
            format_rfc3339(951_782_400, 0),
            "2000-02-29T00:00:00.000000000Z"
        );
        // 1900 is not a leap year: the day after 28 February is 1 March.
        assert_eq!(
            format_rfc3339(-2_203_891_200, 0),
            "1900-03-01T00:00:00.000000000Z"
        );
        assert_eq!(
            format_rfc3339(-1, 999_999_999),
            "1969-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            format_rfc3339(-62_167_219_200, 0),
            "0000-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            format_rfc3339(253_402_300_799, 999_999_999),
            "9999-12-31T23:59:59.999999999Z"
        );
        // Beyond what RFC 3339 can write: clamped, never a panic.
        assert_eq!(
            format_rfc3339(i64::MAX, 999_999_999),
            "9999-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            format_rfc3339(i64::MIN, 0),
            "0000-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            format_rfc3339(0, u32::MAX),
            "1970-01-01T00:00:04.294967295Z"
        );
    }

    #[test]
    fn go_rfc3339_nano_trims_the_fraction() {
        use std::time::Duration;
        let at = |s: u64, n: u32| rfc3339_nano(UNIX_EPOCH + Duration::new(s, n));
        assert_eq!(at(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(at(0, 1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(at(0, 100_000_000), "1970-01-01T00:00:00.1Z");
        assert_eq!(at(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(
            at(1_704_067_199, 999_999_999),
            "2023-12-31T23:59:59.999999999Z"
        );
        assert_eq!(at(4_102_444_800, 120_000), "2100-01-01T00:00:00.00012Z");
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }

    #[test]
    fn round_trips_with_nanoseconds_and_odd_years() {
        for (secs, nanos) in [
            (0, 0),
            (1_704_164_645, 123_456_789),
            (-1, 999_999_999),
            (-2_203_891_200, 1),
            (951_782_400, 500),
            (-62_167_219_200, 0),
            (253_402_300_799, 999_999_999),
        ] {
            let text = format_rfc3339(secs, nanos);
            let t = parse_rfc3339(&text).unwrap();
            assert_eq!(
                (t.unix_timestamp(), t.nanosecond()),
                (secs, nanos),
                "{text}"
            );
        }
        let t = parse_rfc3339("2024-03-01T01:59:59.5+02:00").unwrap();
        assert_eq!(
            (t.unix_timestamp(), t.nanosecond()),
            (1_709_251_199, 500_000_000)
        );
        assert_eq!(parse_rfc3339("1900-02-29"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn long_fractions_are_truncated() {
        assert_eq!(
            parse_nanos(&format!("1700000000.{}", "9".repeat(50)), NOW),
            Ok(1_700_000_000 * S + 999_999_999)
        );
        assert_eq!(
            parse_nanos("2023-11-14T22:13:20.1234567891Z", NOW),
            Ok(NOW + 123_456_789)
        );
    }

    #[test]
    fn seconds_and_calendar_fields() {
        assert_eq!(format_rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_secs(1_795_877_950), "2026-11-28T14:59:10Z");
        assert_eq!(utc_fields(19_782 * 86_400 + 3_661), (2024, 2, 29, 1, 1, 1));
        assert_eq!(utc_fields(-1), (1969, 12, 31, 23, 59, 59));
    }
}
