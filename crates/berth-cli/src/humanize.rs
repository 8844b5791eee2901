//! Go's and go-units' human renderings that docker's tables print: sizes (`1.98MB`,
//! `23.54GiB`), durations (`About an hour`), truncated ids and ellipsized cells, with Go's
//! `%g` number formatting under them. Pure functions, no I/O.

/// docker's `stringid.TruncateID`: without `sha256:`, 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, hex)| hex);
    id.chars().take(12).collect()
}

/// formatter.Ellipsis: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// go-units `HumanDuration` of `seconds`.
pub fn human_duration(seconds: i64) -> String {
    let hours_f = seconds as f64 / 3600.0;
    let minutes = seconds / 60;
    let hours = (hours_f + 0.5) as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours_f as i64 / 24 / 365)
    }
}

const BINARY_UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
const DECIMAL_UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];

/// go-units `BytesSize`: binary units, 4 significant digits (`23.54GiB`), as
/// `docker info` prints Total Memory.
pub fn bytes_size(size: f64) -> String {
    custom_size(size, 1024.0, &BINARY_UNITS, 4)
}

/// go-units `HumanSize`: decimal units, 4 significant digits (`1.23MB`), as docker prints
/// image and container sizes.
pub fn human_size(size: f64) -> String {
    custom_size(size, 1000.0, &DECIMAL_UNITS, 4)
}

/// go-units `HumanSizeWithPrecision`: decimal units, `precision` significant digits
/// (`%.3g`), as `docker images` prints sizes (`1.98MB`).
pub fn human_size_precision(size: f64, precision: usize) -> String {
    custom_size(size, 1000.0, &DECIMAL_UNITS, precision)
}

/// go-units `CustomSize` with `%.<precision>g`.
fn custom_size(mut size: f64, base: f64, units: &[&str], precision: usize) -> String {
    let mut i = 0;
    while size >= base && i < units.len() - 1 {
        size /= base;
        i += 1;
    }
    format!("{}{}", go_g(size, precision.max(1)), units[i])
}

/// Go's `%.<p>g`.
fn go_g(x: f64, p: usize) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sci = format!("{x:.*e}", p - 1);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exp.abs());
    }
    let decimals = usize::try_from(p as i32 - 1 - exp).unwrap_or(0);
    trim(&format!("{x:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_go_units() {
        for (secs, want) in [
            (-5, "Less than a second"),
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (180, "3 minutes"),
            (3599, "59 minutes"),
            (3600, "About an hour"),
            (5399, "About an hour"),
            (5400, "2 hours"),
            (47 * 3600, "47 hours"),
            (48 * 3600, "2 days"),
            (13 * 86400, "13 days"),
            (14 * 86400, "2 weeks"),
            (59 * 86400, "8 weeks"),
            (60 * 86400, "2 months"),
            (729 * 86400, "24 months"),
            (730 * 86400, "2 years"),
            (56 * 366 * 86400, "56 years"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn sizes_with_precision_3_match_go_units() {
        for (n, want) in [
            (0.0, "0B"),
            (999.0, "999B"),
            (1000.0, "1kB"),
            (1_982_256.0, "1.98MB"),
            (1_234_567.0, "1.23MB"),
            (12_345_678.0, "12.3MB"),
            (123_456_789.0, "123MB"),
            (999_999.0, "1e+03kB"),
            (5.6e9, "5.6GB"),
            (104_857_600.0, "105MB"),
        ] {
            assert_eq!(human_size_precision(n, 3), want, "{n}");
        }
    }

    #[test]
    fn ids_are_truncated_and_cells_ellipsized() {
        const ID1: &str = "sha256:48cc1df219fb4c46289da11365d73a5b9c43adf5131e38b15735cafbfa6f5b7a";
        assert_eq!(truncate_id(ID1), "48cc1df219fb");
        assert_eq!(truncate_id("48cc1df219fb4c46"), "48cc1df219fb");
        assert_eq!(truncate_id("<missing>"), "<missing>");
        assert_eq!(ellipsis("abc", 3), "abc");
        assert_eq!(ellipsis("abcd", 3), "ab…");
    }

    #[test]
    fn sizes_match_go_units() {
        assert_eq!(bytes_size(25276510208.0), "23.54GiB");
        assert_eq!(bytes_size(0.0), "0B");
        assert_eq!(bytes_size(1023.0), "1023B");
        assert_eq!(bytes_size(1024.0), "1KiB");
        assert_eq!(bytes_size(1536.0), "1.5KiB");
        assert_eq!(bytes_size(1048575.0), "1024KiB");
        assert_eq!(bytes_size(2147483648.0), "2GiB");
        assert_eq!(human_size(1234567.0), "1.235MB");
        assert_eq!(human_size(999.0), "999B");
        assert_eq!(human_size(1000.0), "1kB");
        assert_eq!(human_size(5.6e9), "5.6GB");
    }

    #[test]
    fn go_g_edges() {
        assert_eq!(go_g(0.5, 4), "0.5");
        assert_eq!(go_g(0.00012345, 4), "0.0001234");
        assert_eq!(go_g(0.000012345, 4), "1.234e-05");
        assert_eq!(go_g(12345.0, 4), "1.234e+04");
        assert_eq!(go_g(9999.4, 4), "9999");
        assert_eq!(go_g(100.0, 4), "100");
    }
}
