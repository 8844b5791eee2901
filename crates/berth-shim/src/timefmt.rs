//! Timestamps as Docker writes them: RFC 3339 in UTC with nanoseconds, trailing zeros of the
//! fraction trimmed (Go's `time.RFC3339Nano`), e.g. `2024-05-01T12:00:00.1234Z`. Kept here
//! so the shim needs no date crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Formats `t` as Go's `RFC3339Nano` in UTC. Times before 1970 format as the epoch.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    format_unix(d.as_secs(), d.subsec_nanos())
}

/// Formats seconds and nanoseconds since the epoch.
pub fn format_unix(secs: u64, nanos: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn formats_like_go_rfc3339nano() {
        assert_eq!(format_unix(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(format_unix(0, 1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(format_unix(0, 100_000_000), "1970-01-01T00:00:00.1Z");
        assert_eq!(format_unix(951_782_400, 0), "2000-02-29T00:00:00Z");
        assert_eq!(
            format_unix(1_704_067_199, 999_999_999),
            "2023-12-31T23:59:59.999999999Z"
        );
        assert_eq!(
            format_unix(4_102_444_800, 120_000),
            "2100-01-01T00:00:00.00012Z"
        );
    }

    #[test]
    fn before_epoch_clamps() {
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH - Duration::from_secs(5)),
            "1970-01-01T00:00:00Z"
        );
    }
}
