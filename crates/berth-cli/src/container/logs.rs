//! `logs`: the container's output as stored by the daemon, with `--since`/`--until` in
//! whole seconds, `--follow` and `--details`.

use std::io::{self, Write};
use std::time::Duration;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use bollard::BollardRequest;
use futures_util::StreamExt;

use super::LogsArgs;
use crate::error::Error;
use crate::Session;

/// `logs`.
pub async fn logs(session: &Session, args: &LogsArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let mut docker = client
        .docker()
        .clone()
        .with_timeout(Duration::from_secs(365 * 24 * 3600));
    if args.details {
        // bollard's query type has no `details`: added to the request it builds.
        docker = docker.with_request_modifier(|mut req: BollardRequest| {
            if let Some(u) = with_details(&req.uri().to_string()) {
                *req.uri_mut() = u;
            }
            req
        });
    }
    let mut s = docker.logs(
        &args.container,
        Some(LogsOptions {
            follow: args.follow,
            stdout: true,
            stderr: true,
            timestamps: args.timestamps,
            tail: args.tail.clone(),
            since: log_time(args.since.as_deref(), false)?,
            until: log_time(args.until.as_deref(), true)?,
        }),
    );
    while let Some(item) = s.next().await {
        match item.map_err(|e| client.daemon_err(e))? {
            LogOutput::StdErr { message } => {
                let mut e = io::stderr().lock();
                let _ = e.write_all(&message).and_then(|()| e.flush());
            }
            LogOutput::StdOut { message }
            | LogOutput::Console { message }
            | LogOutput::StdIn { message } => {
                let mut o = io::stdout().lock();
                if o.write_all(&message).and_then(|()| o.flush()).is_err() {
                    return Ok(());
                }
            }
        }
    }
    Ok(())
}

/// `uri` with `details=1` added to its query.
fn with_details(uri: &str) -> Option<http::Uri> {
    let sep = if uri.contains('?') { '&' } else { '?' };
    format!("{uri}{sep}details=1").parse().ok()
}

/// `--since`/`--until` of `logs` in whole seconds (bollard's query type); `until` rounds
/// up so that the second it names is included.
fn log_time(value: Option<&str>, round_up: bool) -> Result<i32, Error> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(0);
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    let n = berth_api_types::timestamp::parse_nanos(v, now)
        .map_err(|e| Error::client(e.to_string()))?;
    let mut secs = n.div_euclid(1_000_000_000);
    if round_up && n.rem_euclid(1_000_000_000) != 0 {
        secs += 1;
    }
    Ok(secs.clamp(0, i32::MAX as i64) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_join_the_query() {
        assert_eq!(
            with_details("http://x/v1.50/containers/c/logs?stdout=true")
                .unwrap()
                .to_string(),
            "http://x/v1.50/containers/c/logs?stdout=true&details=1"
        );
        assert_eq!(
            with_details("/containers/c/logs").unwrap().to_string(),
            "/containers/c/logs?details=1"
        );
    }

    #[test]
    fn log_times_are_whole_seconds() {
        assert_eq!(log_time(None, false).unwrap(), 0);
        assert_eq!(
            log_time(Some("1700000000.5"), false).unwrap(),
            1_700_000_000
        );
        assert_eq!(log_time(Some("1700000000.5"), true).unwrap(), 1_700_000_001);
        assert!(log_time(Some("nope"), false).is_err());
    }
}
