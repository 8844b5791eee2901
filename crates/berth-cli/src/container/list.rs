//! `ps` (`container ls`) and `inspect` (containers and images): `ps` rows and their
//! columns as docker's formatter builds them ([`ps_row`], [`quote_command`]), and the
//! status text a daemon would show ([`status_text`]) for daemons that leave it out.

use std::fmt::Write as _;

use bollard::errors::Error as BollardError;
use bollard::models::{ContainerSummary, PortSummary as Port};
use bollard::query_parameters::ListContainersOptions;
use http::Method;
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::{InspectArgs, PsArgs};
use crate::error::Error;
use crate::humanize::{ellipsis, human_duration, human_size_precision, truncate_id};
use crate::inspect::{inspect_template, print_inspect};
use crate::request::{collect, parse_filters, path_escape, raw_request};
use crate::table::render_list;
use crate::timefmt::go_time_string;
use crate::{write_out, Session};

/// `inspect` and `container inspect`: the daemon's JSON as sent, 4-space indented, or one
/// template rendering per object.
pub async fn inspect(session: &Session, args: &InspectArgs) -> Result<(), Error> {
    let kind = args.kind.as_deref().unwrap_or("");
    if !matches!(kind, "" | "container" | "image") {
        return Err(Error::client(format!(
            "\"{kind}\" is not a valid value for --type"
        )));
    }
    let template = inspect_template(args.format.as_deref())?;
    let client = session.client().await?;
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut errors = Vec::new();
    for name in &args.names {
        let mut kinds: Vec<&str> = Vec::new();
        if kind != "image" {
            kinds.push("container");
        }
        if kind != "container" {
            kinds.push("image");
        }
        let mut got = None;
        for k in kinds {
            let path = if k == "container" {
                format!(
                    "/containers/{}/json{}",
                    path_escape(name),
                    if args.size { "?size=1" } else { "" }
                )
            } else {
                format!("/images/{}/json", path_escape(name))
            };
            match collect(raw_request(client.docker(), Method::GET, path, Vec::new())).await {
                Ok(body) => {
                    got = Some(body);
                    break;
                }
                Err(BollardError::DockerResponseServerError {
                    status_code: 404, ..
                }) if kind.is_empty() => {}
                Err(e) => {
                    errors.push(client.daemon_err(e).to_string());
                    got = Some(Vec::new());
                    break;
                }
            }
        }
        match got {
            Some(b) if b.is_empty() => {}
            Some(b) => found.push(b),
            None => errors.push(format!("Error: No such object: {name}")),
        }
    }
    print_inspect(&found, template.as_ref(), errors)
}

/// `ps` / `container ls`.
pub async fn ps(session: &Session, args: &PsArgs) -> Result<(), Error> {
    let filters = parse_filters(&args.filter, "-f, --filter")?;
    let client = session.client().await?;
    let limit = if args.latest { 1 } else { args.last };
    let opts = ListContainersOptions {
        all: args.all || limit > 0,
        limit: (limit > 0).then_some(limit),
        size: args.size,
        filters: (!filters.is_empty()).then_some(filters),
    };
    let list = client
        .docker()
        .list_containers(Some(opts))
        .await
        .map_err(|e| client.daemon_err(e))?;
    let format = ps_format(args.format.as_deref(), args.quiet, args.size);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let rows: Vec<Value> = list
        .iter()
        .map(|c| ps_row(c, !args.no_trunc, now))
        .collect();
    write_out(&render_list(&format, &ps_headers(), &rows)?)
}

/// The resolved `--format` of `ps` (formatter.NewContainerFormat).
pub fn ps_format(format: Option<&str>, quiet: bool, size: bool) -> String {
    match format {
        None | Some("") | Some("table") if quiet => "{{.ID}}".into(),
        None | Some("") | Some("table") => {
            let mut f = String::from(
                "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
            );
            if size {
                f.push_str("\t{{.Size}}");
            }
            f
        }
        Some(f) => f.into(),
    }
}

/// The `table` header row of `ps`.
pub fn ps_headers() -> Value {
    json!({
        "ID": "CONTAINER ID",
        "Image": "IMAGE",
        "Command": "COMMAND",
        "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED",
        "Ports": "PORTS",
        "State": "STATE",
        "Status": "STATUS",
        "Size": "SIZE",
        "Names": "NAMES",
        "Labels": "LABELS",
        "Mounts": "MOUNTS",
        "Networks": "NETWORKS",
        "LocalVolumes": "LOCAL VOLUMES",
    })
}

/// One `ps` row with docker's field names and renderings.
pub fn ps_row(c: &ContainerSummary, trunc: bool, now: i64) -> Value {
    let id = c.id.clone().unwrap_or_default();
    let id = if trunc { truncate_id(&id) } else { id };
    let mut image = c.image.clone().unwrap_or_default();
    if trunc && image.starts_with("sha256:") {
        image = truncate_id(&image);
    }
    let command = c.command.clone().unwrap_or_default();
    let command = quote_command(&command, trunc);
    let created = c.created.unwrap_or(0);
    let names: Vec<String> = c
        .names
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|n| n.trim_start_matches('/').to_string())
        .filter(|n| !trunc || !n.contains('/'))
        .collect();
    let names = if trunc {
        names.into_iter().next().unwrap_or_default()
    } else {
        names.join(",")
    };
    let mut labels: Vec<String> = c
        .labels
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    labels.sort();
    let networks: Vec<String> = c
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .map(|n| n.keys().cloned().collect())
        .unwrap_or_default();
    // formatter.ContainerContext.Size: always the writable layer, "0B" when not asked.
    let mut size = human_size_precision(c.size_rw.unwrap_or(0) as f64, 3);
    if let Some(root) = c.size_root_fs.filter(|r| *r > 0) {
        let _ = write!(size, " (virtual {})", human_size_precision(root as f64, 3));
    }
    json!({
        "ID": id,
        "Image": image,
        "Command": command,
        "CreatedAt": created_at(created),
        "RunningFor": format!("{} ago", human_duration(now - created)),
        "Platform": null,
        "Ports": display_ports(c.ports.as_deref().unwrap_or_default()),
        "State": c.state.map(|s| s.to_string()).unwrap_or_default(),
        "Status": c.status.clone().unwrap_or_default(),
        "Size": size,
        "Names": names,
        "Labels": labels.join(","),
        "Mounts": "",
        "Networks": networks.join(","),
        "LocalVolumes": "0",
    })
}

/// `CreatedAt`: Go's `time.Time.String()` of the creation time (in UTC here).
pub fn created_at(unix: i64) -> String {
    go_time_string(unix)
}

/// `COMMAND`: cut to 20 characters with `…` when truncating, then Go's `strconv.Quote`.
pub fn quote_command(command: &str, trunc: bool) -> String {
    let c = if trunc {
        ellipsis(command, 20)
    } else {
        command.to_string()
    };
    go_quote(&c)
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `PORTS`: `0.0.0.0:8080->80/tcp, 53/udp` (formatter.DisplayablePorts, without ranges).
pub fn display_ports(ports: &[Port]) -> String {
    let mut items: Vec<String> = ports
        .iter()
        .map(|p| {
            let proto = p.typ.map(|t| t.to_string()).unwrap_or_else(|| "tcp".into());
            match (p.ip.as_deref(), p.public_port) {
                (Some(ip), Some(public)) if !ip.is_empty() => {
                    let ip = if ip.contains(':') {
                        format!("[{ip}]")
                    } else {
                        ip.to_string()
                    };
                    format!("{ip}:{public}->{}/{proto}", p.private_port)
                }
                _ => format!("{}/{proto}", p.private_port),
            }
        })
        .collect();
    items.dedup();
    items.join(", ")
}

/// The `Status` text dockerd gives a container (container.State.String()), for daemons
/// that leave it out.
pub fn status_text(
    state: &str,
    started: i64,
    finished: i64,
    exit_code: i64,
    health: Option<&str>,
    now: i64,
) -> String {
    match state {
        "running" => {
            let mut s = format!("Up {}", human_duration(now - started));
            if let Some(h) = health.filter(|h| !h.is_empty() && *h != "none") {
                let h = if h == "starting" {
                    "health: starting"
                } else {
                    h
                };
                let _ = write!(s, " ({h})");
            }
            s
        }
        "paused" => format!("Up {} (Paused)", human_duration(now - started)),
        "restarting" => format!(
            "Restarting ({exit_code}) {} ago",
            human_duration(now - finished)
        ),
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        "created" => "Created".into(),
        "exited" if finished <= 0 => String::new(),
        "exited" => format!(
            "Exited ({exit_code}) {} ago",
            human_duration(now - finished)
        ),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use bollard::models::{ContainerSummaryStateEnum, PortSummaryTypeEnum as PortTypeEnum};

    use super::*;

    fn summary(command: &str) -> ContainerSummary {
        ContainerSummary {
            id: Some("c8cf011e7cc9a7e133fa674b1a72251649b2d6d0f58901066b0ee8726107d11b".into()),
            names: Some(vec!["/agitated_bhabha".into()]),
            image: Some("busybox".into()),
            command: Some(command.into()),
            created: Some(1000),
            state: Some(ContainerSummaryStateEnum::EXITED),
            status: Some("Exited (0) Less than a second ago".into()),
            ..Default::default()
        }
    }

    #[test]
    fn ps_table_matches_docker() {
        let rows = vec![
            ps_row(&summary("sh -c 'echo out; echo err >&2'"), true, 1000),
            ps_row(
                &ContainerSummary {
                    id: Some(
                        "c9a027cec6e2e1aeefff85df9427d51d79a3055783dc6844457fb2c77af4cd10".into(),
                    ),
                    names: Some(vec!["/sleeper".into()]),
                    command: Some("sleep 1000".into()),
                    status: Some("Up Less than a second".into()),
                    ..summary("")
                },
                true,
                1000,
            ),
        ];
        let out = render_list(&ps_format(None, false, false), &ps_headers(), &rows).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   IMAGE     COMMAND                  CREATED                  STATUS                              PORTS     NAMES\n\
             c8cf011e7cc9   busybox   \"sh -c 'echo out; ec…\"   Less than a second ago   Exited (0) Less than a second ago             agitated_bhabha\n\
             c9a027cec6e2   busybox   \"sleep 1000\"             Less than a second ago   Up Less than a second                         sleeper\n"
        );
        let q = render_list(&ps_format(None, true, false), &ps_headers(), &rows).unwrap();
        assert_eq!(q, "c8cf011e7cc9\nc9a027cec6e2\n");
    }

    #[test]
    fn empty_ps_prints_the_header() {
        let out = render_list(&ps_format(None, false, false), &ps_headers(), &[]).unwrap();
        assert_eq!(
            out,
            "CONTAINER ID   IMAGE     COMMAND   CREATED   STATUS    PORTS     NAMES\n"
        );
    }

    #[test]
    fn command_truncation_and_quoting() {
        assert_eq!(quote_command("echo hello", true), "\"echo hello\"");
        assert_eq!(
            quote_command("sh -c 'echo out; echo err >&2'", true),
            "\"sh -c 'echo out; ec…\""
        );
        assert_eq!(
            quote_command("sh -c 'echo out; echo err >&2'", false),
            "\"sh -c 'echo out; echo err >&2'\""
        );
        assert_eq!(quote_command("a \"b\"\t\\", true), "\"a \\\"b\\\"\\t\\\\\"");
        assert_eq!(
            quote_command("12345678901234567890", true),
            "\"12345678901234567890\""
        );
    }

    #[test]
    fn status_strings() {
        assert_eq!(status_text("running", 98, 0, 0, None, 100), "Up 2 seconds");
        assert_eq!(
            status_text("running", 100, 0, 0, None, 100),
            "Up Less than a second"
        );
        assert_eq!(
            status_text("exited", 0, 97, 0, None, 100),
            "Exited (0) 3 seconds ago"
        );
        assert_eq!(status_text("exited", 0, 0, 137, None, 7300), "");
        assert_eq!(
            status_text("exited", 0, 100, 137, None, 7300),
            "Exited (137) 2 hours ago"
        );
        assert_eq!(status_text("created", 0, 0, 0, None, 100), "Created");
        assert_eq!(
            status_text("running", 0, 0, 0, Some("healthy"), 100),
            "Up About a minute (healthy)"
        );
        assert_eq!(
            status_text("paused", 40, 0, 0, None, 100),
            "Up About a minute (Paused)"
        );
    }

    #[test]
    fn ports_and_names() {
        let mut c = summary("x");
        c.ports = Some(vec![
            Port {
                ip: Some("0.0.0.0".into()),
                private_port: 80,
                public_port: Some(8080),
                typ: Some(PortTypeEnum::TCP),
            },
            Port {
                ip: None,
                private_port: 53,
                public_port: None,
                typ: Some(PortTypeEnum::UDP),
            },
        ]);
        c.names = Some(vec!["/web".into(), "/other/link".into()]);
        let r = ps_row(&c, true, 1000);
        assert_eq!(r["Ports"], "0.0.0.0:8080->80/tcp, 53/udp");
        assert_eq!(r["Names"], "web");
        let r = ps_row(&c, false, 1000);
        assert_eq!(r["Names"], "web,other/link");
        assert_eq!(r["CreatedAt"], "1970-01-01 00:16:40 +0000 UTC");
    }
}
