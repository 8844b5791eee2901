//! Docker's time arguments (`--since`, `--until`, `until=` filters): Unix seconds with an
//! optional fraction (`1700000000.5`), RFC 3339 dates and their shortened forms
//! (`2024-01-02`, `2024-01-02T15:04`, with `Z` or `±hh:mm`; without a zone they are UTC,
//! the zone of these machines), and Go durations counted back from now (`10m`, `1h30m`),
//! as moby's `api/types/time.GetTimestamp`.

/// Nanoseconds since the epoch of `value`; durations count back from `now_nanos`.
pub fn parse_nanos(value: &str, now_nanos: i64) -> Result<i64, String> {
    let value = value.trim();
    if value != "0" {
        if let Some(d) = parse_duration(value) {
            return Ok(now_nanos - d);
        }
    }
    if value.contains('-') && value.len() >= 10 {
        return parse_rfc3339(value)
            .ok_or_else(|| format!("parsing time {value:?}: cannot parse as a date"));
    }
    parse_unix(value).ok_or_else(|| format!("failed to parse value as time or duration: {value:?}"))
}

/// `sec[.frac]` as the API carries it (`1700000000.000000001`).
pub fn to_wire(nanos: i64) -> String {
    format!(
        "{}.{:09}",
        nanos.div_euclid(1_000_000_000),
        nanos.rem_euclid(1_000_000_000)
    )
}

fn parse_unix(v: &str) -> Option<i64> {
    let (s, frac) = v.split_once('.').unwrap_or((v, ""));
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 9 {
        return None;
    }
    let secs: i64 = s.parse().ok()?;
    let mut ns = 0i64;
    if !frac.is_empty() {
        ns = format!("{frac:0<9}").parse().ok()?;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(ns)
}

/// Go's `time.ParseDuration` (a sign, then `<number><unit>` pairs).
fn parse_duration(v: &str) -> Option<i64> {
    let (neg, mut rest) = match v.as_bytes().first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let n: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += n * scale;
    }
    let d = total as i64;
    Some(if neg { -d } else { d })
}

/// `YYYY-MM-DD[THH[:MM[:SS[.frac]]]][Z|±hh:mm]`.
fn parse_rfc3339(v: &str) -> Option<i64> {
    let num = |s: &str| -> Option<i64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (y, mo, d) = (num(v.get(0..4)?)?, num(v.get(5..7)?)?, num(v.get(8..10)?)?);
    if v.get(4..5)? != "-"
        || v.get(7..8)? != "-"
        || !(1..=12).contains(&mo)
        || !(1..=31).contains(&d)
    {
        return None;
    }
    let mut rest = &v[10..];
    // The zone: a trailing `Z` or `±hh:mm`.
    let mut offset = 0i64;
    if let Some(r) = rest.strip_suffix(['Z', 'z']) {
        rest = r;
    } else if rest.len() >= 6 {
        let (body, zone) = rest.split_at(rest.len() - 6);
        let sign = match zone.as_bytes()[0] {
            b'+' => Some(1),
            b'-' => Some(-1),
            _ => None,
        };
        if let Some(sign) = sign {
            if &zone[3..4] != ":" {
                return None;
            }
            offset = sign * (num(&zone[1..3])? * 3600 + num(&zone[4..6])? * 60);
            rest = body;
        }
    }
    let (mut h, mut mi, mut s, mut ns) = (0, 0, 0, 0);
    if let Some(t) = rest.strip_prefix(['T', 't']) {
        let (hms, frac) = t.split_once('.').unwrap_or((t, ""));
        let parts: Vec<&str> = hms.split(':').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.len() != 2) {
            return None;
        }
        h = num(parts[0])?;
        mi = parts.get(1).map_or(Some(0), |p| num(p))?;
        s = parts.get(2).map_or(Some(0), |p| num(p))?;
        if !frac.is_empty() {
            if parts.len() != 3 || frac.len() > 9 {
                return None;
            }
            ns = num(&format!("{frac:0<9}"))?;
        }
        if h > 23 || mi > 59 || s > 60 {
            return None;
        }
    } else if !rest.is_empty() {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = if y2 >= 0 { y2 } else { y2 - 399 } / 400;
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let secs = days * 86400 + h * 3600 + mi * 60 + s - offset;
    Some(secs * 1_000_000_000 + ns)
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
}
