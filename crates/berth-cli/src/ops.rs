//! Commands on a running container: `attach`, `exec`, `top`, `stats`, `pause`, `unpause`
//! and `update`, with docker's flags, output and exit statuses (docker/cli
//! `cli/command/container/{attach,exec,top,stats,stats_helpers,pause,unpause,update}.go`,
//! `cli/command/formatter/stats.go`).
//!
//! The numbers `stats` prints are computed here as the docker CLI computes them ([`StatsRow`]),
//! and tested on sample JSON. `attach` to a tty and `exec -t` put the local terminal in raw
//! mode as `run -t` does (`crate::terminal`); typing the detach keys there leaves the
//! process running and fails with docker's "read escape sequence".

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::query_parameters::{
    AttachContainerOptions, ResizeContainerTTYOptions, ResizeExecOptions, WaitContainerOptions,
};
use clap::{Args, Subcommand};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::error::Error;
use crate::host_flags::{parse_ram, parse_swap};
use crate::humanize::{bytes_size, human_size_precision};
use crate::request::{for_each_name, path_escape, query_escape};
use crate::table::render_list;
use crate::{write_out, Session};

/// The top-level commands of this module (`berth exec`, `berth top`, ...).
#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(StatsArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArgs),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArgs),
    /// Update configuration of one or more containers
    Update(UpdateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process (accepted; berth does not forward them)
    #[arg(long, value_name = "bool", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

#[derive(Debug, Clone, Args)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, value_name = "string")]
    pub detach_keys: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env", value_name = "list")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file", value_name = "list")]
    pub env_file: Vec<String>,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Give extended privileges to the command
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]")
    #[arg(short = 'u', long, value_name = "string")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir", value_name = "string")]
    pub workdir: Option<String>,
    /// The container, then the command and its arguments
    #[arg(
        value_name = "CONTAINER COMMAND [ARG...]",
        required = true,
        num_args = 2..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub container_and_command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    /// ps options
    #[arg(
        value_name = "ps OPTIONS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub ps_args: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output using a custom template:
    /// 'table':            Print output in table format with column headers (default)
    /// 'table TEMPLATE':   Print output in table format using the given Go template
    /// 'json':             Print in JSON format
    /// 'TEMPLATE':         Print output using the given Go template
    #[arg(long, value_name = "string", verbatim_doc_comment)]
    pub format: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct ContainersArgs {
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Clone, Default, Args)]
pub struct UpdateArgs {
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "int")]
    pub cpu_period: Option<i64>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub cpu_quota: Option<i64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "int")]
    pub cpu_shares: Option<i64>,
    /// Number of CPUs
    #[arg(long, value_name = "decimal")]
    pub cpus: Option<f64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "string")]
    pub cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short = 'm', long, value_name = "bytes", value_parser = parse_ram)]
    pub memory: Option<i64>,
    /// Memory soft limit
    #[arg(long, value_name = "bytes", value_parser = parse_ram)]
    pub memory_reservation: Option<i64>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, value_name = "bytes", value_parser = parse_swap, allow_negative_numbers = true)]
    pub memory_swap: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "int", allow_negative_numbers = true)]
    pub pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long, value_name = "string")]
    pub restart: Option<String>,
    #[arg(value_name = "CONTAINER", required = true)]
    pub containers: Vec<String>,
}

/// Runs one of this module's commands.
pub async fn run(session: &Session, cmd: &OpsCommand) -> Result<(), Error> {
    match cmd {
        OpsCommand::Attach(a) => attach(session, a).await,
        OpsCommand::Exec(a) => exec(session, a).await,
        OpsCommand::Top(a) => top(session, a).await,
        OpsCommand::Stats(a) => stats(session, a).await,
        OpsCommand::Pause(a) => each(session, &a.containers, "pause").await,
        OpsCommand::Unpause(a) => each(session, &a.containers, "unpause").await,
        OpsCommand::Update(a) => update(session, a).await,
    }
}

// ---------------------------------------------------------------------------------------
// exec

/// `exec`: docker's order (create, start attached or detached, copy, inspect for the exit
/// code); the exit status is the process's.
pub async fn exec(session: &Session, args: &ExecArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let docker = client.docker().clone();
    let (container, cmd) = args
        .container_and_command
        .split_first()
        .ok_or_else(|| Error::client("exec needs a container and a command"))?;
    let attach = !args.detach;
    if attach {
        crate::terminal::check_tty(args.interactive, args.tty)?;
    }
    let detach_keys = crate::terminal::detach_keys(session, args.detach_keys.as_deref());
    // docker's `ReadKVEnvStrings`: the files' variables, then `-e`.
    let mut env = Vec::new();
    for f in &args.env_file {
        env.extend(crate::field_flags::read_kv_file(f, true).map_err(Error::client)?);
    }
    env.extend(args.env.iter().cloned());
    let created = docker
        .create_exec(
            container,
            CreateExecOptions {
                attach_stdin: Some(attach && args.interactive),
                attach_stdout: Some(attach),
                attach_stderr: Some(attach),
                tty: Some(args.tty),
                detach_keys: detach_keys.clone(),
                env: (!env.is_empty()).then_some(env),
                cmd: Some(cmd.to_vec()),
                privileged: Some(args.privileged),
                user: args.user.clone(),
                working_dir: args.workdir.clone(),
            },
        )
        .await
        .map_err(|e| client.daemon_err(e))?;
    let id = created.id;
    let started = docker
        .start_exec(
            &id,
            Some(StartExecOptions {
                detach: args.detach,
                tty: args.tty,
                output_capacity: None,
            }),
        )
        .await
        .map_err(|e| client.daemon_err(e))?;
    let StartExecResults::Attached { mut output, input } = started else {
        return Ok(());
    };
    let raw = if args.tty && io::stdin().is_terminal() {
        crate::terminal::RawTerminal::enter()
    } else {
        None
    };
    if args.tty {
        if let Some((rows, cols)) = crate::terminal::terminal_size() {
            // docker/cli `initTtySize`: the process may not exist yet; retry a few times.
            for attempt in 1..=10u64 {
                let size = ResizeExecOptions {
                    h: i32::from(rows),
                    w: i32::from(cols),
                };
                if docker.resize_exec(&id, size).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
        }
    }
    let escape = args
        .tty
        .then(|| crate::terminal::escape_bytes(detach_keys.as_deref()));
    let stdin_task = args
        .interactive
        .then(|| crate::terminal::pump_stdin(input, escape));
    let ended = crate::terminal::copy_until_detached(&mut output, &client, stdin_task).await;
    drop(raw);
    if ended? == crate::terminal::Ended::Detached {
        return Err(Error::client(crate::terminal::DETACHED));
    }
    let inspected = docker
        .inspect_exec(&id)
        .await
        .map_err(|e| client.daemon_err(e))?;
    let code = inspected.exit_code.unwrap_or(0);
    if code != 0 {
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        std::process::exit(i32::try_from(code).unwrap_or(1).clamp(0, 255));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// attach

/// docker/cli `inspectContainerAndCheckState`: only a running container can be attached.
fn attachable(v: &Value) -> Result<(), Error> {
    let state = &v["State"];
    let is = |k: &str| state[k].as_bool().unwrap_or(false);
    if !is("Running") {
        return Err(Error::client(
            "You cannot attach to a stopped container, start it first",
        ));
    }
    if is("Paused") {
        return Err(Error::client(
            "You cannot attach to a paused container, unpause it first",
        ));
    }
    if is("Restarting") {
        return Err(Error::client(
            "You cannot attach to a restarting container, wait until it is running",
        ));
    }
    Ok(())
}

/// `attach`: docker's order (wait registered, state checked, attach, state checked again,
/// resize, copy); the exit status is the container's, or 1 with "read escape sequence"
/// when the user detaches.
pub async fn attach(session: &Session, args: &AttachArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let docker = client.docker().clone();
    let path = format!("/containers/{}/json", path_escape(&args.container));
    let v = client.get_json(&path).await?;
    attachable(&v)?;
    let id = v["Id"].as_str().unwrap_or(&args.container).to_string();
    let tty = v["Config"]["Tty"].as_bool().unwrap_or(false);
    crate::terminal::check_tty(!args.no_stdin, tty)?;
    let stdin = !args.no_stdin && v["Config"]["OpenStdin"].as_bool().unwrap_or(false);
    let detach_keys = crate::terminal::detach_keys(session, args.detach_keys.as_deref());
    let waiter = {
        let docker = docker.clone();
        let id = id.clone();
        tokio::spawn(async move {
            let opts = WaitContainerOptions {
                condition: "not-running".into(),
            };
            match docker.wait_container(&id, Some(opts)).next().await {
                Some(Ok(r)) => Ok(r.status_code),
                Some(Err(BollardError::DockerContainerWaitError { code, .. })) => Ok(code),
                Some(Err(e)) => Err(e),
                None => Ok(0),
            }
        })
    };
    let attached = docker
        .attach_container(
            &id,
            Some(AttachContainerOptions {
                stream: true,
                stdin,
                stdout: true,
                stderr: true,
                detach_keys: detach_keys.clone(),
                ..Default::default()
            }),
        )
        .await
        .map_err(|e| client.daemon_err(e))?;
    // The container may have stopped between the check and the attach.
    attachable(&client.get_json(&path).await?)?;
    let raw = if tty && stdin && io::stdin().is_terminal() {
        crate::terminal::RawTerminal::enter()
    } else {
        None
    };
    if tty && io::stdout().is_terminal() {
        if let Some((rows, cols)) = crate::terminal::terminal_size() {
            // docker/cli `resizeTTY`: one off first, so that a shell redraws its prompt.
            for (h, w) in [(rows + 1, cols + 1), (rows, cols)] {
                let size = ResizeContainerTTYOptions {
                    h: i32::from(h),
                    w: i32::from(w),
                };
                let _ = docker.resize_container_tty(&id, size).await;
            }
        }
    }
    let escape = tty.then(|| crate::terminal::escape_bytes(detach_keys.as_deref()));
    let input = stdin.then(|| crate::terminal::pump_stdin(attached.input, escape));
    let mut output = attached.output;
    let ended = crate::terminal::copy_until_detached(&mut output, &client, input).await;
    drop(raw);
    if ended? == crate::terminal::Ended::Detached {
        waiter.abort();
        return Err(Error::client(crate::terminal::DETACHED));
    }
    let code = match waiter.await {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => return Err(client.daemon_err(e)),
        Err(_) => 0,
    };
    if code != 0 {
        let _ = io::stdout().flush();
        let _ = io::stderr().flush();
        std::process::exit(i32::try_from(code).unwrap_or(1).clamp(0, 255));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// top, pause, unpause

/// `top`: the daemon's titles and rows, aligned as docker's tabwriter (20, 1, 3).
pub async fn top(session: &Session, args: &TopArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let mut path = format!("/containers/{}/top", path_escape(&args.container));
    if !args.ps_args.is_empty() {
        path = format!("{path}?ps_args={}", query_escape(&args.ps_args.join(" ")));
    }
    let v = client.get_json(&path).await?;
    write_out(&top_table(&v))
}

/// The `top` table from the daemon's answer.
pub fn top_table(v: &Value) -> String {
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .map(|s| s.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut text = strs(&v["Titles"]).join("\t");
    text.push('\n');
    for row in v["Processes"].as_array().into_iter().flatten() {
        text.push_str(&strs(row).join("\t"));
        text.push('\n');
    }
    crate::table::tabwrite(&text, 20, 3)
}

/// `pause` / `unpause` each container, printing its name; errors joined as docker does.
async fn each(session: &Session, containers: &[String], op: &str) -> Result<(), Error> {
    let client = session.client().await?;
    for_each_name(containers, &client, |c| {
        let docker = client.docker().clone();
        async move {
            match op {
                "pause" => docker.pause_container(&c).await,
                _ => docker.unpause_container(&c).await,
            }
        }
    })
    .await
}

// ---------------------------------------------------------------------------------------
// update

/// docker/cli `opts.ParseRestartPolicy`: `name[:max-retries]`.
pub fn parse_restart(s: &str) -> Result<Value, Error> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (
            n,
            c.parse::<i64>().map_err(|_| {
                Error::client(format!(
                    "invalid restart policy format: maximum retry count must be an integer: {c}"
                ))
            })?,
        ),
        None => (s, 0),
    };
    Ok(json!({"Name": name, "MaximumRetryCount": count}))
}

/// The body of `POST /containers/{id}/update` for `args`.
pub fn update_body(args: &UpdateArgs) -> Result<Value, Error> {
    let mut b = serde_json::Map::new();
    let mut set = |k: &str, v: Value| {
        b.insert(k.to_string(), v);
    };
    if let Some(v) = args.cpu_period {
        set("CpuPeriod", json!(v));
    }
    if let Some(v) = args.cpu_quota {
        set("CpuQuota", json!(v));
    }
    if let Some(v) = args.cpu_shares {
        set("CpuShares", json!(v));
    }
    if let Some(v) = args.cpus {
        set("NanoCpus", json!((v * 1e9).round() as i64));
    }
    if let Some(v) = &args.cpuset_cpus {
        set("CpusetCpus", json!(v));
    }
    if let Some(v) = &args.cpuset_mems {
        set("CpusetMems", json!(v));
    }
    if let Some(v) = args.memory {
        set("Memory", json!(v));
    }
    if let Some(v) = args.memory_reservation {
        set("MemoryReservation", json!(v));
    }
    if let Some(v) = args.memory_swap {
        set("MemorySwap", json!(v));
    }
    if let Some(v) = args.pids_limit {
        set("PidsLimit", json!(v));
    }
    if let Some(r) = &args.restart {
        set("RestartPolicy", parse_restart(r)?);
    }
    if b.is_empty() {
        return Err(Error::client(
            "you must provide one or more flags when using this command",
        ));
    }
    Ok(Value::Object(b))
}

/// `update`: each container's name on success.
pub async fn update(session: &Session, args: &UpdateArgs) -> Result<(), Error> {
    let body = update_body(args)?;
    let client = session.client().await?;
    let mut errors = Vec::new();
    for c in &args.containers {
        let config: bollard::models::ContainerUpdateBody = serde_json::from_value(body.clone())
            .map_err(|e| Error::client(format!("cannot encode the update: {e}")))?;
        match client.docker().update_container(c, config).await {
            Ok(_) => write_out(&format!("{c}\n"))?,
            Err(e) => errors.push(client.daemon_err(e).to_string()),
        }
    }
    Error::from_each(errors)
}

// ---------------------------------------------------------------------------------------
// stats

const STATS_TABLE: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

/// One line of `docker stats`, computed from the daemon's stats JSON as docker/cli's
/// `stats_helpers.go` does.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsRow {
    pub id: String,
    pub name: String,
    pub cpu_percent: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percent: f64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: u64,
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

impl StatsRow {
    pub fn from_stats(v: &Value) -> StatsRow {
        let cpu = &v["cpu_stats"];
        let pre = &v["precpu_stats"];
        let cpu_delta =
            num(&cpu["cpu_usage"]["total_usage"]) - num(&pre["cpu_usage"]["total_usage"]);
        let sys_delta = num(&cpu["system_cpu_usage"]) - num(&pre["system_cpu_usage"]);
        let mut online = num(&cpu["online_cpus"]);
        if online == 0.0 {
            online = cpu["cpu_usage"]["percpu_usage"]
                .as_array()
                .map_or(0.0, |a| a.len() as f64);
        }
        let cpu_percent = if sys_delta > 0.0 && cpu_delta > 0.0 {
            cpu_delta / sys_delta * online * 100.0
        } else {
            0.0
        };
        let mem = &v["memory_stats"];
        let usage = num(&mem["usage"]);
        // docker/cli `calculateMemUsageUnixNoCache`: v1 total_inactive_file, v2 inactive_file.
        let stats = &mem["stats"];
        let cache = if let Some(x) = stats.get("total_inactive_file").and_then(Value::as_f64) {
            x
        } else {
            stats
                .get("inactive_file")
                .and_then(Value::as_f64)
                .unwrap_or(0.0)
        };
        let memory = if cache < usage { usage - cache } else { usage };
        let memory_limit = num(&mem["limit"]);
        let memory_percent = if memory_limit > 0.0 {
            memory / memory_limit * 100.0
        } else {
            0.0
        };
        let (mut rx, mut tx) = (0.0, 0.0);
        if let Some(nets) = v["networks"].as_object() {
            for n in nets.values() {
                rx += num(&n["rx_bytes"]);
                tx += num(&n["tx_bytes"]);
            }
        }
        let (mut br, mut bw) = (0.0, 0.0);
        for e in v["blkio_stats"]["io_service_bytes_recursive"]
            .as_array()
            .into_iter()
            .flatten()
        {
            match e["op"].as_str().unwrap_or("").to_ascii_lowercase().as_str() {
                "read" => br += num(&e["value"]),
                "write" => bw += num(&e["value"]),
                _ => {}
            }
        }
        StatsRow {
            id: v["id"].as_str().unwrap_or("").to_string(),
            name: v["name"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_string(),
            cpu_percent,
            memory,
            memory_limit,
            memory_percent,
            net_rx: rx,
            net_tx: tx,
            block_read: br,
            block_write: bw,
            pids: v["pids_stats"]["current"].as_u64().unwrap_or(0),
        }
    }

    /// The template fields docker's stats formatter offers.
    pub fn to_json(&self, trunc: bool) -> Value {
        let id = if trunc {
            self.id.chars().take(12).collect()
        } else {
            self.id.clone()
        };
        json!({
            "ID": id,
            "Container": id,
            "Name": self.name,
            "CPUPerc": format!("{:.2}%", self.cpu_percent),
            "MemUsage": format!("{} / {}", bytes_size(self.memory), bytes_size(self.memory_limit)),
            "MemPerc": format!("{:.2}%", self.memory_percent),
            "NetIO": format!("{} / {}", human_size_precision(self.net_rx, 3), human_size_precision(self.net_tx, 3)),
            "BlockIO": format!("{} / {}", human_size_precision(self.block_read, 3), human_size_precision(self.block_write, 3)),
            "PIDs": self.pids.to_string(),
        })
    }
}

fn stats_headers() -> Value {
    json!({
        "ID": "CONTAINER ID", "Container": "CONTAINER", "Name": "NAME", "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %", "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O", "PIDs": "PIDS",
    })
}

/// `stats`: one table (`--no-stream`) or one a second, redrawn in place.
pub async fn stats(session: &Session, args: &StatsArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let format = match args.format.as_deref() {
        None | Some("") | Some("table") => STATS_TABLE.to_string(),
        Some(f) => f.to_string(),
    };
    let names: Vec<String> = if args.containers.is_empty() {
        let all = if args.all { "?all=1" } else { "" };
        let list = client.get_json(&format!("/containers/json{all}")).await?;
        list.as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["Id"].as_str().map(String::from))
            .collect()
    } else {
        args.containers.clone()
    };
    loop {
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for n in &names {
            match client
                .get_json(&format!(
                    "/containers/{}/stats?stream=false",
                    path_escape(n)
                ))
                .await
            {
                Ok(v) => rows.push(StatsRow::from_stats(&v).to_json(!args.no_trunc)),
                Err(e) => errors.push(e.to_string()),
            }
        }
        if !errors.is_empty() {
            return Err(Error::client(errors.join("\n")));
        }
        let text = render_list(&format, &stats_headers(), &rows)?;
        if args.no_stream {
            return write_out(&text);
        }
        // docker's live view: clear the screen, draw, wait for the next sample (the
        // daemon's answer already takes about a second).
        write_out(&format!("\x1b[2J\x1b[H{text}"))?;
        if names.is_empty() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_numbers_as_docker_computes_them() {
        let v = json!({
            "id": "0123456789abcdef", "name": "/web",
            "cpu_stats": {"cpu_usage": {"total_usage": 300}, "system_cpu_usage": 2000, "online_cpus": 2},
            "precpu_stats": {"cpu_usage": {"total_usage": 100}, "system_cpu_usage": 1000},
            "memory_stats": {"usage": 10 * 1024 * 1024, "limit": 64 * 1024 * 1024,
                             "stats": {"total_inactive_file": 2 * 1024 * 1024}},
            "networks": {"eth0": {"rx_bytes": 1500, "tx_bytes": 20}, "eth1": {"rx_bytes": 500, "tx_bytes": 0}},
            "blkio_stats": {"io_service_bytes_recursive": [
                {"op": "Read", "value": 4096}, {"op": "write", "value": 1}, {"op": "Total", "value": 4097}]},
            "pids_stats": {"current": 3},
        });
        let r = StatsRow::from_stats(&v);
        assert_eq!(r.cpu_percent, 40.0);
        assert_eq!(r.memory, 8.0 * 1024.0 * 1024.0);
        let j = r.to_json(true);
        assert_eq!(j["ID"], "0123456789ab");
        assert_eq!(j["Name"], "web");
        assert_eq!(j["CPUPerc"], "40.00%");
        assert_eq!(j["MemUsage"], "8MiB / 64MiB");
        assert_eq!(j["MemPerc"], "12.50%");
        assert_eq!(j["NetIO"], "2kB / 20B");
        assert_eq!(j["BlockIO"], "4.1kB / 1B");
        assert_eq!(j["PIDs"], "3");
        // A stopped container's zeros.
        let z = StatsRow::from_stats(&json!({"id": "x", "name": "/z"})).to_json(false);
        assert_eq!(
            (z["CPUPerc"].as_str(), z["MemUsage"].as_str()),
            (Some("0.00%"), Some("0B / 0B"))
        );
        // Go's %.3g goes to an exponent when rounding reaches 1000: docker prints 1e+03kB.
        let big = json!({"id": "x", "name": "/b",
            "networks": {"eth0": {"rx_bytes": 999_999, "tx_bytes": 999_500}}});
        let b = StatsRow::from_stats(&big).to_json(false);
        assert_eq!(b["NetIO"], "1e+03kB / 1e+03kB");
    }

    #[test]
    fn update_bodies_and_restart_policies() {
        let a = UpdateArgs {
            memory: Some(1 << 27),
            cpus: Some(0.5),
            restart: Some("on-failure:3".into()),
            containers: vec!["c".into()],
            ..Default::default()
        };
        let b = update_body(&a).unwrap();
        assert_eq!(b["Memory"], 1 << 27);
        assert_eq!(b["NanoCpus"], 500_000_000);
        assert_eq!(
            b["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert!(b.get("CpuShares").is_none());
        let none = UpdateArgs {
            containers: vec!["c".into()],
            ..Default::default()
        };
        assert!(update_body(&none)
            .unwrap_err()
            .to_string()
            .contains("one or more flags"));
        assert!(parse_restart("always:x").is_err());
        assert_eq!(parse_swap("-1"), Ok(-1));
    }

    #[test]
    fn top_table_aligns_columns() {
        assert_eq!(query_escape("-o pid,comm"), "-o%20pid%2Ccomm");
        let v = json!({"Titles": ["PID", "CMD"], "Processes": [["1", "sleep 10"], ["22", "sh"]]});
        let t = top_table(&v);
        assert_eq!(
            t,
            "PID                 CMD\n1                   sleep 10\n22                  sh\n"
        );
    }
}
