//! `run`, `create` and `start`: the create body docker sends for the flags (pulling the
//! image first when the daemon has none), then attach before start, wait before start,
//! start, copy the output and exit with the container's status; `--restart` checked as
//! docker's CLI checks it. The exit statuses of failed starts are docker's (125/126/127).

use std::collections::HashMap;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, CreateImageOptions, ResizeContainerTTYOptions,
    StartContainerOptions, WaitContainerOptions,
};
use bollard::BollardRequest;
use futures_util::StreamExt;

use berth_api_types::reference::Reference;

use super::{ContainerOptions, CreateArgs, RunArgs, StartArgs};
use crate::connect::Client;
use crate::error::Error;
use crate::image::pull_tag;
use crate::progress::{JsonMessage, ProgressPrinter};
use crate::registry;
use crate::request::path_escape;
use crate::{write_err, write_out, Session};

/// The create request docker's `run`/`create` send for these flags.
pub fn create_body(o: &ContainerOptions, detach: bool) -> ContainerCreateBody {
    let image = o.image_and_command.first().cloned().unwrap_or_default();
    let cmd: Vec<String> = o.image_and_command.iter().skip(1).cloned().collect();
    let attach = !detach;
    let mut labels = HashMap::new();
    for l in &o.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        labels.insert(k.to_string(), v.to_string());
    }
    ContainerCreateBody {
        image: Some(image),
        cmd: (!cmd.is_empty()).then_some(cmd),
        // `--entrypoint ""` resets the image's entrypoint: docker sends [""].
        entrypoint: o.entrypoint.as_ref().map(|e| {
            if e.is_empty() {
                vec![String::new()]
            } else {
                vec![e.clone()]
            }
        }),
        env: (!o.env.is_empty()).then(|| o.env.iter().map(|e| expand_env(e)).collect()),
        working_dir: o.workdir.clone(),
        user: o.user.clone(),
        hostname: o.hostname.clone(),
        tty: Some(o.tty),
        open_stdin: Some(o.interactive),
        stdin_once: Some(o.interactive && attach),
        attach_stdin: Some(o.interactive && attach),
        attach_stdout: Some(attach),
        attach_stderr: Some(attach),
        labels: (!labels.is_empty()).then_some(labels),
        host_config: Some(HostConfig {
            memory: o.memory,
            pids_limit: o.pids_limit,
            network_mode: Some(o.network.clone().unwrap_or_else(|| "default".into())),
            auto_remove: Some(o.rm),
            restart_policy: o.restart.as_deref().and_then(|r| parse_restart(r).ok()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `-e NAME` without `=` takes the client's value, or is dropped when unset (opts.ValidateEnv).
fn expand_env(e: &str) -> String {
    if e.contains('=') {
        e.to_string()
    } else {
        match std::env::var(e) {
            Ok(v) => format!("{e}={v}"),
            Err(_) => e.to_string(),
        }
    }
}

/// docker's `withHelp`: "docker: <err>\n\nRun 'docker run --help' ...".
fn with_help(err: &Error, cmd: &str, code: i32) -> Error {
    Error::Status {
        code,
        message: format!("berth: {err}\n\nRun 'berth {cmd} --help' for more information"),
    }
}

/// docker's `toStatusError` for a failed start: 127 when the command was not found, 126
/// when it could not be invoked, 125 otherwise.
pub fn run_status(message: &str) -> i32 {
    if message.contains("executable file not found")
        || message.contains("no such file or directory")
        || message.contains("system cannot find the file specified")
    {
        127
    } else if message.contains("permission denied") || message.contains("is a directory") {
        126
    } else {
        125
    }
}

/// The image reference docker names in "Unable to find image 'busybox:latest' locally".
pub fn tagged_reference(image: &str) -> String {
    match Reference::parse(image) {
        Ok(r) => r.with_default_tag().familiar_string(),
        Err(_) => image.to_string(),
    }
}

fn is_no_such_image(e: &BollardError) -> bool {
    matches!(e, BollardError::DockerResponseServerError { status_code: 404, message }
        if message.contains("No such image"))
}

/// Creates the container, pulling the image first when the daemon does not have it
/// (docker's `createContainer` with `--pull=missing`); progress goes to stderr.
async fn create_with_pull(
    session: &Session,
    client: &Client,
    opts: &ContainerOptions,
    body: ContainerCreateBody,
) -> Result<String, Error> {
    let f = &opts.fields;
    if let Some(path) = &f.cidfile {
        crate::field_flags::check_cidfile(path).map_err(Error::client)?;
    }
    let create_opts = CreateContainerOptions {
        name: opts.name.clone(),
        platform: f.platform.clone().unwrap_or_default(),
    };
    let docker = client.docker();
    let image = body.image.clone().unwrap_or_default();
    if f.pull == "always" {
        pull_to_stderr(session, client, &image, f.quiet).await?;
    }
    let resp = match docker
        .create_container(Some(create_opts.clone()), body.clone())
        .await
    {
        Ok(r) => r,
        Err(e) if is_no_such_image(&e) && f.pull == "missing" => {
            write_err(&format!(
                "Unable to find image '{}' locally\n",
                tagged_reference(&image)
            ))?;
            pull_to_stderr(session, client, &image, f.quiet).await?;
            docker
                .create_container(Some(create_opts), body)
                .await
                .map_err(|e| client.daemon_err(e))?
        }
        Err(e) => return Err(client.daemon_err(e)),
    };
    for w in resp.warnings {
        write_err(&format!("WARNING: {w}\n"))?;
    }
    if let Some(path) = &f.cidfile {
        crate::field_flags::write_cidfile(path, &resp.id).map_err(Error::client)?;
    }
    Ok(resp.id)
}

async fn pull_to_stderr(
    session: &Session,
    client: &Client,
    image: &str,
    quiet: bool,
) -> Result<(), Error> {
    let reference = Reference::parse(image)?.with_default_tag();
    let auth = registry::auth_header(session, reference.domain())?;
    let opts = CreateImageOptions {
        from_image: Some(reference.full_name()),
        tag: pull_tag(&reference),
        ..Default::default()
    };
    let docker = client
        .docker()
        .clone()
        .with_timeout(Duration::from_secs(24 * 3600))
        .with_request_modifier(move |mut req: BollardRequest| {
            req.headers_mut().insert(auth.0.clone(), auth.1.clone());
            req
        });
    let mut stream = docker.create_image(Some(opts), None, None);
    let terminal = io::stderr().is_terminal();
    let mut printer = ProgressPrinter::new(terminal, 80);
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| client.daemon_err(e))?;
        let jm = JsonMessage::from(info);
        let mut out = String::new();
        let r = printer.message(&jm, &mut out);
        if !quiet {
            write_err(&out)?;
        }
        r.map_err(Error::client)?;
    }
    Ok(())
}

/// `create`.
pub async fn create(session: &Session, args: &CreateArgs) -> Result<(), Error> {
    check_restart(&args.opts).map_err(|e| with_help(&e, "create", 125))?;
    let mut body = create_body(&args.opts, true);
    crate::volume::apply_mount_flags(&args.opts.mounts, &mut body)
        .map_err(|e| with_help(&e, "create", 125))?;
    crate::network::apply_net_flags(&args.opts.net, args.opts.network.as_deref(), &mut body)
        .map_err(|e| with_help(&e, "create", 125))?;
    args.opts
        .host
        .apply(&mut body)
        .map_err(|e| with_help(&Error::client(e), "create", 125))?;
    args.opts
        .health
        .apply(&mut body)
        .map_err(|e| with_help(&Error::client(e), "create", 125))?;
    args.opts
        .fields
        .apply(&mut body)
        .map_err(|e| with_help(&Error::client(e), "create", 125))?;
    let client = session.client().await?;
    let id = create_with_pull(session, &client, &args.opts, body)
        .await
        .map_err(|e| with_help(&e, "create", 125))?;
    write_out(&format!("{id}\n"))
}

/// `run`.
pub async fn run_container(session: &Session, args: &RunArgs) -> Result<(), Error> {
    let o = &args.opts;
    if args.detach && !o.fields.attach.is_empty() {
        return Err(with_help(
            &Error::client("conflicting options: cannot specify both --attach and --detach"),
            "run",
            125,
        ));
    }
    check_restart(o).map_err(|e| with_help(&e, "run", 125))?;
    if !args.detach {
        crate::terminal::check_tty(o.interactive, o.tty)?;
    }
    let mut body = create_body(o, args.detach);
    crate::volume::apply_mount_flags(&o.mounts, &mut body)
        .map_err(|e| with_help(&e, "run", 125))?;
    crate::network::apply_net_flags(&o.net, o.network.as_deref(), &mut body)
        .map_err(|e| with_help(&e, "run", 125))?;
    o.host
        .apply(&mut body)
        .map_err(|e| with_help(&Error::client(e), "run", 125))?;
    o.health
        .apply(&mut body)
        .map_err(|e| with_help(&Error::client(e), "run", 125))?;
    o.fields
        .apply(&mut body)
        .map_err(|e| with_help(&Error::client(e), "run", 125))?;
    let client = session.client().await?;
    let id = create_with_pull(session, &client, o, body)
        .await
        .map_err(|e| with_help(&e, "run", 125))?;
    if args.detach {
        // docker prints the ID before starting (run.go `waitDisplayID`).
        write_out(&format!("{id}\n"))?;
        return start_or_status(&client, &id).await;
    }
    let streams = &o.fields.attach;
    let attach = Attach {
        stdin: o.interactive || crate::field_flags::attaches(streams, "stdin"),
        stdout: streams.is_empty() || crate::field_flags::attaches(streams, "stdout"),
        stderr: streams.is_empty() || crate::field_flags::attaches(streams, "stderr"),
        tty: o.tty,
        removed: o.rm,
        detach_keys: crate::terminal::detach_keys(session, args.detach_keys.as_deref()),
    };
    match attach_start_wait(&client, &id, &attach).await? {
        Some(code) => exit_with(code),
        // docker/cli `run.go`: a detach is not an error.
        None => Ok(()),
    }
}

async fn start_or_status(client: &Client, id: &str) -> Result<(), Error> {
    client
        .docker()
        .start_container(id, None::<StartContainerOptions>)
        .await
        .map_err(|e| {
            let err = client.daemon_err(e);
            let code = run_status(&err.to_string());
            with_help(&err, "run", code)
        })
}

/// How `run` and `start -a` attach.
struct Attach {
    stdin: bool,
    /// The streams asked for (`-a`; both without it).
    stdout: bool,
    stderr: bool,
    tty: bool,
    /// Wait for the removal (`--rm`) rather than the exit.
    removed: bool,
    detach_keys: Option<String>,
}

/// Attach (stdin when asked), register the wait, start, copy the streams; the
/// container's exit status, or `None` when the user detached.
async fn attach_start_wait(client: &Client, id: &str, how: &Attach) -> Result<Option<i64>, Error> {
    let (stdin, tty, removed) = (how.stdin, how.tty, how.removed);
    let docker = client.docker().clone();
    let attach = docker
        .attach_container(
            id,
            Some(AttachContainerOptions {
                stream: true,
                stdin,
                stdout: how.stdout,
                stderr: how.stderr,
                detach_keys: how.detach_keys.clone(),
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| with_help(&client.daemon_err(e), "run", 125))?;
    let condition = if removed { "removed" } else { "next-exit" };
    let waiter = {
        let docker = docker.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut s = docker.wait_container(
                &id,
                Some(WaitContainerOptions {
                    condition: condition.into(),
                }),
            );
            match s.next().await {
                Some(Ok(r)) => Ok(r.status_code),
                Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
                Some(Err(e)) => Err(e),
                None => Ok(0),
            }
        })
    };
    // Let the wait request reach the daemon before the container can exit.
    for _ in 0..8 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(2)).await;

    let raw = if tty && io::stdin().is_terminal() {
        crate::terminal::RawTerminal::enter()
    } else {
        None
    };
    if let Err(e) = docker
        .start_container(id, None::<StartContainerOptions>)
        .await
    {
        drop(raw);
        let err = client.daemon_err(e);
        if removed {
            let _ = tokio::time::timeout(Duration::from_secs(10), waiter).await;
        } else {
            waiter.abort();
        }
        let code = run_status(&err.to_string());
        return Err(with_help(&err, "run", code));
    }
    if tty {
        if let Some((rows, cols)) = crate::terminal::terminal_size() {
            let _ = docker
                .resize_container_tty(
                    id,
                    ResizeContainerTTYOptions {
                        w: i32::from(cols),
                        h: i32::from(rows),
                    },
                )
                .await;
        }
    }
    let input = attach.input;
    let escape = tty.then(|| crate::terminal::escape_bytes(how.detach_keys.as_deref()));
    let stdin_task = stdin.then(|| crate::terminal::pump_stdin(input, escape));
    let mut output = attach.output;
    let ended = crate::terminal::copy_until_detached(&mut output, client, stdin_task).await;
    drop(raw);
    if ended? == crate::terminal::Ended::Detached {
        waiter.abort();
        return Ok(None);
    }
    match tokio::time::timeout(Duration::from_secs(30), waiter).await {
        Ok(Ok(Ok(code))) => Ok(Some(code)),
        Ok(Ok(Err(e))) => Err(client.daemon_err(e)),
        Ok(Err(_)) | Err(_) => {
            // The wait missed the exit: ask for the state instead.
            let v = client.get_json(&format!("/containers/{id}/json")).await?;
            Ok(Some(v["State"]["ExitCode"].as_i64().unwrap_or(0)))
        }
    }
}

/// Leaves with the container's status, as docker does (0 returns normally).
fn exit_with(code: i64) -> Result<(), Error> {
    if code == 0 {
        return Ok(());
    }
    let _ = io::stdout().flush();
    let _ = io::stderr().flush();
    std::process::exit(i32::try_from(code).unwrap_or(1).clamp(0, 255))
}

/// `start`.
pub async fn start(session: &Session, args: &StartArgs) -> Result<(), Error> {
    let client = session.client().await?;
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            return Err(Error::client(
                "you cannot start and attach multiple containers at once",
            ));
        }
        let id = &args.containers[0];
        let v = client
            .get_json(&format!("/containers/{}/json", path_escape(id)))
            .await?;
        let attach = Attach {
            stdin: args.interactive,
            stdout: true,
            stderr: true,
            tty: v["Config"]["Tty"].as_bool().unwrap_or(false),
            removed: false,
            detach_keys: crate::terminal::detach_keys(session, args.detach_keys.as_deref()),
        };
        let code = attach_start_wait(&client, id, &attach)
            .await
            .map_err(|e| match e {
                Error::Status { code, message } => Error::Status {
                    code: if code == 125 { 1 } else { code },
                    message: message
                        .trim_start_matches("berth: ")
                        .split("\n\nRun 'berth")
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                },
                other => other,
            })?;
        // docker/cli `start.go`: a detach is not an error.
        return code.map_or(Ok(()), exit_with);
    }
    let mut failed = Vec::new();
    for c in &args.containers {
        match client
            .docker()
            .start_container(c, None::<StartContainerOptions>)
            .await
        {
            Ok(()) => write_out(&format!("{c}\n"))?,
            Err(e) => {
                write_err(&format!("{}\n", client.daemon_err(e)))?;
                failed.push(c.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Error::client(format!(
            "Error: failed to start containers: {}",
            failed.join(", ")
        )))
    }
}

/// docker's `opts.ParseRestartPolicy`: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
pub fn parse_restart(policy: &str) -> Result<bollard::models::RestartPolicy, String> {
    use bollard::models::RestartPolicyNameEnum as N;
    let (name, count) = match policy.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (policy, None),
    };
    let name = match name {
        "" | "no" => N::NO,
        "always" => N::ALWAYS,
        "unless-stopped" => N::UNLESS_STOPPED,
        "on-failure" => N::ON_FAILURE,
        other => {
            return Err(format!(
                "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
            ))
        }
    };
    let maximum_retry_count = match count {
        None => None,
        Some(_) if name != N::ON_FAILURE => {
            return Err(format!(
                "invalid restart policy format: maximum retry count can only be used with 'on-failure': {policy}"
            ))
        }
        Some(c) => Some(c.parse::<i64>().map_err(|_| {
            format!("invalid restart policy format: maximum retry count must be an integer: {policy}")
        })?),
    };
    Ok(bollard::models::RestartPolicy {
        name: Some(name),
        maximum_retry_count,
    })
}

/// `--restart` checks docker's `run`/`create` make before calling the daemon.
fn check_restart(o: &ContainerOptions) -> Result<(), Error> {
    let Some(r) = o.restart.as_deref() else {
        return Ok(());
    };
    parse_restart(r).map_err(Error::client)?;
    if o.rm && !matches!(r, "" | "no") {
        return Err(Error::client(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::container::ContainerShortcut;

    #[test]
    fn exit_statuses_of_failed_starts() {
        assert_eq!(
            run_status("exec: \"nonexist\": executable file not found in $PATH: unknown"),
            127
        );
        assert_eq!(
            run_status("exec: \"/etc\": permission denied: unknown"),
            126
        );
        assert_eq!(run_status("something else"), 125);
    }

    #[test]
    fn image_references() {
        assert_eq!(tagged_reference("busybox"), "busybox:latest");
        assert_eq!(tagged_reference("nosuchimg"), "nosuchimg:latest");
        assert_eq!(tagged_reference("a/b:1"), "a/b:1");
    }

    #[test]
    fn run_flags_stop_at_the_image() {
        let cli = Cli::try_parse_from([
            "berth",
            "run",
            "--rm",
            "-e",
            "A=1",
            "-h",
            "box",
            "--network",
            "none",
            "busybox",
            "sh",
            "-c",
            "echo -e x",
            "--rm",
        ])
        .unwrap();
        let Some(Command::ContainerShortcut(ContainerShortcut::Run(r))) = cli.command else {
            panic!("not run");
        };
        assert!(r.opts.rm);
        assert_eq!(r.opts.hostname.as_deref(), Some("box"));
        assert_eq!(
            r.opts.image_and_command,
            ["busybox", "sh", "-c", "echo -e x", "--rm"]
        );
        let body = create_body(&r.opts, false);
        assert_eq!(body.image.as_deref(), Some("busybox"));
        assert_eq!(body.env, Some(vec!["A=1".to_string()]));
        let hc = body.host_config.unwrap();
        assert_eq!(hc.network_mode.as_deref(), Some("none"));
        assert_eq!(hc.auto_remove, Some(true));
    }

    #[test]
    fn restart_policies_parse_like_docker() {
        use bollard::models::RestartPolicyNameEnum as N;
        assert_eq!(parse_restart("always").unwrap().name, Some(N::ALWAYS));
        let p = parse_restart("on-failure:2").unwrap();
        assert_eq!(
            (p.name, p.maximum_retry_count),
            (Some(N::ON_FAILURE), Some(2))
        );
        assert_eq!(parse_restart("no").unwrap().name, Some(N::NO));
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("always:3").is_err());
        assert!(parse_restart("on-failure:x").is_err());
    }
}
