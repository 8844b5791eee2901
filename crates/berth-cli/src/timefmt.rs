//! Times as Go prints them in docker's output: `time.Time.String()`, RFC 3339 and
//! `time.Duration.String()` for whole seconds, and the clock they are measured against.

use time::format_description::well_known::Rfc3339;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// Go's `time.Time.String()` of a UTC time, whole seconds.
const GO_STRING: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC");
/// Go's `RFC3339NanoFixed` (always nine fraction digits) of a UTC time.
const RFC3339_NANO_FIXED: &[BorrowedFormatItem<'_>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z");

/// The current time, in whole seconds since the epoch.
pub fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Go's `time.Unix(s, 0).String()` in UTC: `2024-05-01 12:00:00 +0000 UTC`; the number
/// itself when it is out of the printable range.
pub fn go_time_string(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(GO_STRING).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// RFC 3339 in UTC (`2024-05-01T12:00:00Z`), as Go formats `time.RFC3339`; the number
/// itself when it is out of the printable range.
pub fn rfc3339(unix: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Go's `RFC3339NanoFixed` in UTC (`2024-05-01T12:00:00.000000001Z`), as `events` prints
/// times; the number itself when it is out of the printable range.
pub fn rfc3339_nano_fixed(nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(RFC3339_NANO_FIXED).ok())
        .unwrap_or_else(|| nanos.to_string())
}

/// Go's `time.Duration.String()` for whole seconds (`0s`, `45s`, `1m5s`, `2h0m3s`).
pub fn go_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_like_go() {
        assert_eq!(
            go_time_string(1_709_251_199),
            "2024-02-29 23:59:59 +0000 UTC"
        );
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(go_time_string(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano_fixed(1_709_251_199_000_000_007),
            "2024-02-29T23:59:59.000000007Z"
        );
        assert_eq!(rfc3339_nano_fixed(0), "1970-01-01T00:00:00.000000000Z");
        // Out of range: the number, as before.
        assert_eq!(rfc3339(i64::MAX), i64::MAX.to_string());
        assert_eq!(go_time_string(i64::MIN), i64::MIN.to_string());
    }
}
