//! The commands that change a container's state or name: `stop`, `kill`, `rm`, `wait`,
//! `restart`, `rename` and `container prune`, each applied to every name given with
//! docker's per-name error reporting.

use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::query_parameters::{
    KillContainerOptions, RemoveContainerOptions, StopContainerOptions, WaitContainerOptions,
};
use futures_util::StreamExt;

use super::{ContainerPruneArgs, KillArgs, RenameArgs, RestartArgs, RmArgs, StopArgs, WaitArgs};
use crate::error::Error;
use crate::prompt::confirm;
use crate::request::{for_each_name, parse_filters};
use crate::table::prune_report;
use crate::{write_out, Session};

/// Runs `f` with the daemon's client on each of `names`, reporting per name as docker
/// does; `long`: no request timeout short of a day (a stop waits for the container).
async fn each<F, Fut>(session: &Session, names: &[String], long: bool, f: F) -> Result<(), Error>
where
    F: Fn(bollard::Docker, String) -> Fut,
    Fut: std::future::Future<Output = Result<(), BollardError>>,
{
    let client = session.client().await?;
    let mut docker = client.docker().clone();
    if long {
        docker = docker.with_timeout(Duration::from_secs(24 * 3600));
    }
    for_each_name(names, &client, |c| f(docker.clone(), c)).await
}

/// `stop`.
pub async fn stop(session: &Session, args: &StopArgs) -> Result<(), Error> {
    each(session, &args.containers, true, |docker, c| {
        let opts = StopContainerOptions {
            signal: args.signal.clone(),
            t: args.timeout,
        };
        async move { docker.stop_container(&c, Some(opts)).await }
    })
    .await
}

/// `kill`.
pub async fn kill(session: &Session, args: &KillArgs) -> Result<(), Error> {
    each(session, &args.containers, false, |docker, c| {
        let opts = KillContainerOptions {
            signal: args.signal.clone().unwrap_or_else(|| "KILL".into()),
        };
        async move { docker.kill_container(&c, Some(opts)).await }
    })
    .await
}

/// `rm`.
pub async fn rm(session: &Session, args: &RmArgs) -> Result<(), Error> {
    each(session, &args.containers, false, |docker, c| {
        let opts = RemoveContainerOptions {
            v: args.volumes,
            force: args.force,
            link: args.link,
        };
        async move { docker.remove_container(&c, Some(opts)).await }
    })
    .await
}

/// `wait`: prints each container's exit status.
pub async fn wait(session: &Session, args: &WaitArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let mut errors = Vec::new();
    for c in &args.containers {
        let mut s = client.docker().wait_container(
            c,
            Some(WaitContainerOptions {
                condition: "not-running".into(),
            }),
        );
        match s.next().await {
            Some(Ok(r)) => write_out(&format!("{}\n", r.status_code))?,
            Some(Err(BollardError::DockerContainerWaitError { code, .. })) => {
                write_out(&format!("{code}\n"))?
            }
            Some(Err(e)) => errors.push(client.daemon_err(e).to_string()),
            None => write_out("0\n")?,
        }
    }
    Error::from_each(errors)
}

/// `restart`.
pub async fn restart(session: &Session, args: &RestartArgs) -> Result<(), Error> {
    each(session, &args.containers, true, |docker, c| {
        let opts = bollard::query_parameters::RestartContainerOptions {
            signal: args.signal.clone(),
            t: args.timeout,
        };
        async move { docker.restart_container(&c, Some(opts)).await }
    })
    .await
}

/// `rename`.
pub async fn rename(session: &Session, args: &RenameArgs) -> Result<(), Error> {
    let new_name = args.new_name.trim();
    if args.container.trim().is_empty() || new_name.is_empty() {
        return Err(Error::client(
            "Error: Neither old nor new names may be empty",
        ));
    }
    let client = session.client().await?;
    client
        .docker()
        .rename_container(
            &args.container,
            bollard::query_parameters::RenameContainerOptions {
                name: new_name.to_string(),
            },
        )
        .await
        .map_err(|e| client.daemon_err(e))
}

/// `container prune`.
pub async fn prune(session: &Session, args: &ContainerPruneArgs) -> Result<(), Error> {
    let filters = parse_filters(&args.filter, "--filter")?;
    if !args.force
        && !confirm(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?",
        )?
    {
        return Ok(());
    }
    let client = session.client().await?;
    let report = client
        .docker()
        .prune_containers(Some(bollard::query_parameters::PruneContainersOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| client.daemon_err(e))?;
    let deleted = report.containers_deleted.unwrap_or_default();
    let reclaimed = if deleted.is_empty() {
        0
    } else {
        report.space_reclaimed.unwrap_or(0)
    };
    write_out(&render_prune(&deleted, reclaimed))
}

/// docker's `container prune` output.
pub fn render_prune(deleted: &[String], reclaimed: i64) -> String {
    prune_report("Containers", deleted, Some(reclaimed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prune_output() {
        assert_eq!(render_prune(&[], 0), "Total reclaimed space: 0B\n");
        assert_eq!(
            render_prune(&["abc".into()], 2048),
            "Deleted Containers:\nabc\n\nTotal reclaimed space: 2.048kB\n"
        );
    }
}
