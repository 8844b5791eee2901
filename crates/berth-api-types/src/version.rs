//! API versions: the range Berth serves and parsing of the `/vX.Y` path prefix.
//!
//! We advertise 1.50 (what docker CLI 28 asks for) and accept 1.24 upwards: docker-py uses
//! the server's version verbatim and docker-compose 1.x pins old ones (DESIGN.md).

use std::fmt;
use std::str::FromStr;

/// A Docker API version `MAJOR.MINOR`, ordered numerically (1.9 < 1.24).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    pub major: u16,
    pub minor: u16,
}

impl ApiVersion {
    /// The version Berth advertises in `/_ping`'s `Api-Version` header and `/version`.
    pub const CURRENT: ApiVersion = ApiVersion::new(1, 50);
    /// The oldest version a client may ask for.
    pub const MIN: ApiVersion = ApiVersion::new(1, 24);

    pub const fn new(major: u16, minor: u16) -> Self {
        Self { major, minor }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// Why a version string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseApiVersionError(pub String);

impl fmt::Display for ParseApiVersionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid API version {:?}", self.0)
    }
}

impl std::error::Error for ParseApiVersionError {}

impl FromStr for ApiVersion {
    type Err = ParseApiVersionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseApiVersionError(s.to_string());
        let (major, minor) = s.split_once('.').ok_or_else(err)?;
        let digits =
            |p: &str| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(major) || !digits(minor) {
            return Err(err());
        }
        Ok(ApiVersion::new(
            major.parse().map_err(|_| err())?,
            minor.parse().map_err(|_| err())?,
        ))
    }
}

/// A requested version outside the served range, with dockerd's exact error texts
/// (moby `api/server/middleware/version.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnsupportedVersion {
    #[error("client version {0} is too new. Maximum supported API version is {max}", max = ApiVersion::CURRENT)]
    TooNew(ApiVersion),
    #[error("client version {0} is too old. Minimum supported API version is {min}, please upgrade your client to a newer version", min = ApiVersion::MIN)]
    TooOld(ApiVersion),
}

/// Checks a requested version against the served range.
pub fn check_supported(v: ApiVersion) -> Result<(), UnsupportedVersion> {
    if v > ApiVersion::CURRENT {
        return Err(UnsupportedVersion::TooNew(v));
    }
    if v < ApiVersion::MIN {
        return Err(UnsupportedVersion::TooOld(v));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_numerically() {
        let v: ApiVersion = "1.9".parse().unwrap();
        let w: ApiVersion = "1.24".parse().unwrap();
        assert!(v < w);
        assert_eq!("1.50".parse::<ApiVersion>().unwrap(), ApiVersion::CURRENT);
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "", "1", "1.", ".1", "a.b", "1.2.3", "-1.2", "1.+2", "99999.1",
        ] {
            assert!(bad.parse::<ApiVersion>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn range_errors_match_dockerd() {
        assert_eq!(
            check_supported("1.51".parse().unwrap())
                .unwrap_err()
                .to_string(),
            "client version 1.51 is too new. Maximum supported API version is 1.50"
        );
        assert_eq!(
            check_supported("1.23".parse().unwrap())
                .unwrap_err()
                .to_string(),
            "client version 1.23 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
        assert!(check_supported(ApiVersion::MIN).is_ok());
        assert!(check_supported(ApiVersion::CURRENT).is_ok());
    }
}
