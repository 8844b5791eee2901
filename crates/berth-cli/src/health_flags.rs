//! `run` / `create` healthcheck flags (`--health-cmd`, `--health-interval`,
//! `--health-timeout`, `--health-retries`, `--health-start-period`,
//! `--health-start-interval`, `--no-healthcheck`), read as docker/cli's `parse.go` reads
//! them: durations as Go's `time.ParseDuration`, negative ones refused, `--no-healthcheck`
//! alone.

use bollard::models::{ContainerCreateBody, HealthConfig};
use clap::Args;

/// The flags; flattened into `ContainerOptions`.
#[derive(Debug, Clone, Default, Args)]
pub struct HealthFlags {
    /// Command to run to check health
    #[arg(long = "health-cmd", value_name = "string")]
    pub cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 0s)
    #[arg(long = "health-interval", value_name = "duration", value_parser = parse_go_duration, allow_hyphen_values = true)]
    pub interval: Option<i64>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 0s)
    #[arg(long = "health-timeout", value_name = "duration", value_parser = parse_go_duration, allow_hyphen_values = true)]
    pub timeout: Option<i64>,
    /// Consecutive failures needed to report unhealthy
    #[arg(
        long = "health-retries",
        value_name = "int",
        allow_negative_numbers = true
    )]
    pub retries: Option<i64>,
    /// Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-period", value_name = "duration", value_parser = parse_go_duration, allow_hyphen_values = true)]
    pub start_period: Option<i64>,
    /// Time between running the check during the start period (ms|s|m|h) (default 0s)
    #[arg(long = "health-start-interval", value_name = "duration", value_parser = parse_go_duration, allow_hyphen_values = true)]
    pub start_interval: Option<i64>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    pub no_healthcheck: bool,
}

impl HealthFlags {
    /// Writes `Config.Healthcheck` into `body` when a flag asks for one.
    pub fn apply(&self, body: &mut ContainerCreateBody) -> Result<(), String> {
        let nonzero = |v: Option<i64>| v.unwrap_or(0) != 0;
        let have = self.cmd.as_deref().is_some_and(|c| !c.is_empty())
            || nonzero(self.interval)
            || nonzero(self.timeout)
            || nonzero(self.start_period)
            || nonzero(self.retries)
            || nonzero(self.start_interval);
        if self.no_healthcheck {
            if have {
                return Err("--no-healthcheck conflicts with --health-* options".into());
            }
            body.healthcheck = Some(HealthConfig {
                test: Some(vec!["NONE".into()]),
                ..Default::default()
            });
            return Ok(());
        }
        if !have {
            return Ok(());
        }
        for (name, v) in [
            ("interval", self.interval),
            ("timeout", self.timeout),
            ("retries", self.retries),
            ("start-period", self.start_period),
            ("start-interval", self.start_interval),
        ] {
            if v.unwrap_or(0) < 0 {
                return Err(format!("--health-{name} cannot be negative"));
            }
        }
        let test = self
            .cmd
            .as_ref()
            .filter(|c| !c.is_empty())
            .map(|c| vec!["CMD-SHELL".to_string(), c.clone()]);
        body.healthcheck = Some(HealthConfig {
            test,
            interval: Some(self.interval.unwrap_or(0)),
            timeout: Some(self.timeout.unwrap_or(0)),
            retries: Some(self.retries.unwrap_or(0)),
            start_period: Some(self.start_period.unwrap_or(0)),
            start_interval: Some(self.start_interval.unwrap_or(0)),
        });
        Ok(())
    }
}

/// Go's `time.ParseDuration`, in nanoseconds (one home: the Dockerfile's HEALTHCHECK
/// flags are read by the same function).
pub use berth_build::instructions::parse_go_duration;

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(f: impl FnOnce(&mut HealthFlags)) -> HealthFlags {
        let mut h = HealthFlags::default();
        f(&mut h);
        h
    }

    #[test]
    fn durations_parse_as_go() {
        assert_eq!(parse_go_duration("1s"), Ok(1_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_go_duration("2m30s"), Ok(150_000_000_000));
        assert_eq!(parse_go_duration("100ms"), Ok(100_000_000));
        assert_eq!(parse_go_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert!(parse_go_duration("5").unwrap_err().contains("missing unit"));
        assert!(parse_go_duration("5x")
            .unwrap_err()
            .contains("unknown unit"));
        assert!(parse_go_duration("").is_err());
        assert!(parse_go_duration("s").is_err());
    }

    #[test]
    fn flags_make_dockers_healthcheck() {
        let mut body = ContainerCreateBody::default();
        flags(|h| {
            h.cmd = Some("test -f /ok".into());
            h.interval = Some(1_000_000_000);
            h.retries = Some(2);
        })
        .apply(&mut body)
        .unwrap();
        let hc = body.healthcheck.unwrap();
        assert_eq!(
            hc.test,
            Some(vec!["CMD-SHELL".to_string(), "test -f /ok".to_string()])
        );
        assert_eq!(
            (hc.interval, hc.retries, hc.timeout),
            (Some(1_000_000_000), Some(2), Some(0))
        );
        // Only a duration: the image's test is kept (Test left out).
        let mut body = ContainerCreateBody::default();
        flags(|h| h.timeout = Some(5)).apply(&mut body).unwrap();
        assert_eq!(body.healthcheck.unwrap().test, None);
        let mut body = ContainerCreateBody::default();
        flags(|_| {}).apply(&mut body).unwrap();
        assert!(body.healthcheck.is_none());
        let mut body = ContainerCreateBody::default();
        flags(|h| h.no_healthcheck = true).apply(&mut body).unwrap();
        assert_eq!(
            body.healthcheck.unwrap().test,
            Some(vec!["NONE".to_string()])
        );
    }

    #[test]
    fn flags_refused_as_docker_refuses_them() {
        let mut body = ContainerCreateBody::default();
        let err = flags(|h| {
            h.no_healthcheck = true;
            h.cmd = Some("true".into());
        })
        .apply(&mut body)
        .unwrap_err();
        assert_eq!(err, "--no-healthcheck conflicts with --health-* options");
        let err = flags(|h| h.interval = Some(-1))
            .apply(&mut body)
            .unwrap_err();
        assert_eq!(err, "--health-interval cannot be negative");
        let err = flags(|h| h.retries = Some(-2))
            .apply(&mut body)
            .unwrap_err();
        assert_eq!(err, "--health-retries cannot be negative");
    }
}
