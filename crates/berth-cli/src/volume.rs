//! `berth volume create/ls/inspect/rm/prune`, and the mount flags `run`/`create` take
//! (`-v`, `--mount`, `--tmpfs`, `--volumes-from`, `--read-only`), with docker's output and
//! words (docker/cli `cli/command/volume/*.go`, `opts/mount.go`).

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, Mount, MountBindOptions, MountBindOptionsPropagationEnum,
    MountTmpfsOptions, MountType, MountVolumeOptions, MountVolumeOptionsDriverConfig,
    VolumeCreateRequest,
};
use bollard::query_parameters::{PruneVolumesOptions, RemoveVolumeOptions};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::error::Error;
use crate::inspect::inspect_each;
use crate::request::{for_each_name, list_path, parse_filters};
use crate::table::{list_format, prune_report, render_list};
use crate::{write_out, Session};

/// `berth volume ...`.
#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume
    Create(CreateArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more volumes
    Inspect(InspectArgs),
    /// Remove one or more volumes
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Remove unused local volumes
    Prune(PruneArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// Specify volume driver name
    #[arg(short = 'd', long, value_name = "string", default_value = "local")]
    pub driver: String,
    /// Set driver specific options
    #[arg(short = 'o', long = "opt", value_name = "map")]
    pub opt: Vec<String>,
    /// Set metadata for a volume
    #[arg(long = "label", value_name = "list")]
    pub label: Vec<String>,
    /// Specify volume name
    #[arg(long = "name", value_name = "string", hide = true)]
    pub name_flag: Option<String>,
    #[arg(value_name = "VOLUME")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LsArgs {
    /// Only display volume names
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Provide filter values (e.g. "dangling=true")
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short = 'f', long, value_name = "string")]
    pub format: Option<String>,
    #[arg(value_name = "VOLUME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct RmArgs {
    /// Force the removal of one or more volumes
    #[arg(short = 'f', long)]
    pub force: bool,
    #[arg(value_name = "VOLUME", required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove all unused volumes, not just anonymous ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<label>")
    #[arg(long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
}

/// The mount flags of `run` and `create`.
#[derive(Debug, Clone, Default, Args)]
pub struct MountFlags {
    /// Bind mount a volume
    #[arg(short = 'v', long = "volume", value_name = "list")]
    pub volume: Vec<String>,
    /// Attach a filesystem mount to the container
    #[arg(long = "mount", value_name = "mount")]
    pub mount: Vec<String>,
    /// Mount a tmpfs directory
    #[arg(long = "tmpfs", value_name = "list")]
    pub tmpfs: Vec<String>,
    /// Mount volumes from the specified container(s)
    #[arg(long = "volumes-from", value_name = "list")]
    pub volumes_from: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    pub read_only: bool,
}

fn key_values(list: &[String]) -> HashMap<String, String> {
    list.iter()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// docker's `--mount` CSV (`type=bind,src=/a,dst=/b,readonly`).
pub fn parse_mount(spec: &str) -> Result<Mount, String> {
    let mut m = Mount {
        typ: Some(MountType::VOLUME),
        ..Default::default()
    };
    let mut bind = MountBindOptions::default();
    let mut vol = MountVolumeOptions::default();
    let mut tmpfs = MountTmpfsOptions::default();
    let mut labels = HashMap::new();
    let mut driver_opts = HashMap::new();
    let truthy = |v: Option<&str>| !matches!(v, Some("false") | Some("0"));
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v)),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let val = || {
            v.map(str::to_string)
                .ok_or(format!("invalid field '{field}' must be a key=value pair"))
        };
        match k.as_str() {
            "type" => {
                m.typ = Some(match val()?.as_str() {
                    "bind" => MountType::BIND,
                    "volume" => MountType::VOLUME,
                    "tmpfs" => MountType::TMPFS,
                    other => return Err(format!("invalid mount type: {other}")),
                })
            }
            "source" | "src" => m.source = Some(val()?),
            "target" | "dst" | "destination" => m.target = Some(val()?),
            "readonly" | "ro" => m.read_only = Some(truthy(v)),
            "bind-propagation" => {
                bind.propagation = Some(match val()?.as_str() {
                    "private" => MountBindOptionsPropagationEnum::PRIVATE,
                    "rprivate" => MountBindOptionsPropagationEnum::RPRIVATE,
                    "shared" => MountBindOptionsPropagationEnum::SHARED,
                    "rshared" => MountBindOptionsPropagationEnum::RSHARED,
                    "slave" => MountBindOptionsPropagationEnum::SLAVE,
                    "rslave" => MountBindOptionsPropagationEnum::RSLAVE,
                    other => return Err(format!("invalid bind-propagation: {other}")),
                })
            }
            "bind-create-mountpoint" => bind.create_mountpoint = Some(truthy(v)),
            "volume-nocopy" => vol.no_copy = Some(truthy(v)),
            "volume-label" => {
                let (a, b) = val()?
                    .split_once('=')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .unwrap_or((val()?, String::new()));
                labels.insert(a, b);
            }
            "volume-driver" => {}
            "volume-opt" => {
                let s = val()?;
                let (a, b) = s.split_once('=').unwrap_or((&s, ""));
                driver_opts.insert(a.to_string(), b.to_string());
            }
            "tmpfs-size" => tmpfs.size_bytes = Some(parse_size(&val()?)?),
            "tmpfs-mode" => {
                tmpfs.mode = Some(
                    i64::from_str_radix(&val()?, 8)
                        .map_err(|_| format!("invalid value for tmpfs-mode: {field}"))?,
                )
            }
            _ => return Err(format!("unexpected key '{k}' in '{field}'")),
        }
    }
    if bind != MountBindOptions::default() {
        m.bind_options = Some(bind);
    }
    if !labels.is_empty() {
        vol.labels = Some(labels);
    }
    if !driver_opts.is_empty() {
        vol.driver_config = Some(MountVolumeOptionsDriverConfig {
            name: None,
            options: Some(driver_opts),
        });
    }
    if vol != MountVolumeOptions::default() {
        m.volume_options = Some(vol);
    }
    if tmpfs != MountTmpfsOptions::default() {
        m.tmpfs_options = Some(tmpfs);
    }
    Ok(m)
}

/// `1m`, `512k`, `1g`, plain bytes (go-units `RAMInBytes`).
fn parse_size(s: &str) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<f64>()
        .map(|n| (n * mult as f64) as i64)
        .map_err(|_| format!("invalid size: '{s}'"))
}

/// Puts the mount flags into a create request, as docker's `parse` does: `-v /path`
/// becomes `Config.Volumes`, other `-v` entries `HostConfig.Binds`.
pub fn apply_mount_flags(f: &MountFlags, body: &mut ContainerCreateBody) -> Result<(), Error> {
    let hc = body.host_config.get_or_insert_with(Default::default);
    let mut binds = Vec::new();
    let mut anon = Vec::new();
    for v in &f.volume {
        if v.starts_with('/') && !v.contains(':') {
            anon.push(v.clone());
        } else {
            binds.push(v.clone());
        }
    }
    if !binds.is_empty() {
        hc.binds = Some(binds);
    }
    if !anon.is_empty() {
        body.volumes = Some(anon);
    }
    let mut mounts = Vec::new();
    for m in &f.mount {
        mounts.push(parse_mount(m).map_err(|e| Error::Status {
            code: 125,
            message: format!("invalid argument \"{m}\" for \"--mount\" flag: {e}"),
        })?);
    }
    if !mounts.is_empty() {
        hc.mounts = Some(mounts);
    }
    if !f.tmpfs.is_empty() {
        hc.tmpfs = Some(
            f.tmpfs
                .iter()
                .map(|t| {
                    let (d, o) = t.split_once(':').unwrap_or((t, ""));
                    (d.to_string(), o.to_string())
                })
                .collect(),
        );
    }
    if !f.volumes_from.is_empty() {
        hc.volumes_from = Some(f.volumes_from.clone());
    }
    if f.read_only {
        hc.readonly_rootfs = Some(true);
    }
    Ok(())
}

/// Runs `berth volume ...`.
pub async fn run(session: &Session, cmd: &VolumeCommand) -> Result<(), Error> {
    let client = session.client().await?;
    match cmd {
        VolumeCommand::Create(a) => {
            let name = a
                .name
                .clone()
                .or_else(|| a.name_flag.clone())
                .unwrap_or_default();
            let req = VolumeCreateRequest {
                name: Some(name),
                driver: Some(a.driver.clone()),
                driver_opts: Some(key_values(&a.opt)),
                labels: Some(key_values(&a.label)),
                ..Default::default()
            };
            let v = client
                .docker()
                .create_volume(req)
                .await
                .map_err(|e| client.explain(e))?;
            write_out(&format!("{}\n", v.name))
        }
        VolumeCommand::Ls(a) => {
            let list = client.get_json(&list_path("/volumes", &a.filter)?).await?;
            let vols = list["Volumes"].as_array().cloned().unwrap_or_default();
            let default = "table {{.Driver}}\t{{.Name}}";
            let format = list_format(a.format.as_deref(), a.quiet, "{{.Name}}", default);
            let headers = json!({"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
                                 "Mountpoint": "MOUNTPOINT", "Labels": "LABELS"});
            write_out(&render_list(&format, &headers, &vols)?)
        }
        VolumeCommand::Inspect(a) => {
            inspect_each(&client, "/volumes", &a.names, a.format.as_deref()).await
        }
        VolumeCommand::Rm(a) => {
            let docker = client.docker().clone();
            for_each_name(&a.names, &client, |n| {
                let docker = docker.clone();
                let opts = RemoveVolumeOptions { force: a.force };
                async move { docker.remove_volume(&n, Some(opts)).await }
            })
            .await
        }
        VolumeCommand::Prune(a) => {
            let mut filters = parse_filters(&a.filter, "--filter")?;
            if a.all {
                filters.insert("all".into(), vec!["true".into()]);
            }
            let opts = PruneVolumesOptions {
                filters: Some(filters),
            };
            let r = client
                .docker()
                .prune_volumes(Some(opts))
                .await
                .map_err(|e| client.explain(e))?;
            write_out(&render_prune(
                &r.volumes_deleted.unwrap_or_default(),
                r.space_reclaimed.unwrap_or(0),
            ))
        }
    }
}

/// `volume prune`'s report (cli/command/volume/prune.go).
pub fn render_prune(deleted: &[String], reclaimed: i64) -> String {
    prune_report("Volumes", deleted, Some(reclaimed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_flag_parses_like_docker() {
        let m = parse_mount("type=bind,src=/a,dst=/b,readonly").unwrap();
        assert_eq!(m.typ, Some(MountType::BIND));
        assert_eq!(
            (m.source.as_deref(), m.target.as_deref(), m.read_only),
            (Some("/a"), Some("/b"), Some(true))
        );
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1777").unwrap();
        let t = m.tmpfs_options.unwrap();
        assert_eq!((t.size_bytes, t.mode), (Some(1 << 20), Some(0o1777)));
        let m = parse_mount("src=v,dst=/d,volume-nocopy,volume-label=a=b").unwrap();
        let v = m.volume_options.unwrap();
        assert_eq!(v.no_copy, Some(true));
        assert_eq!(v.labels.unwrap()["a"], "b");
        assert!(parse_mount("type=weird,dst=/x").is_err());
        assert!(parse_mount("bogus=1").is_err());
    }

    #[test]
    fn volume_flags_split_binds_from_anonymous() {
        let f = MountFlags {
            volume: vec!["/anon".into(), "named:/d:ro".into(), "/h:/x".into()],
            tmpfs: vec!["/t:size=1m".into()],
            read_only: true,
            ..Default::default()
        };
        let mut body = ContainerCreateBody::default();
        apply_mount_flags(&f, &mut body).unwrap();
        let hc = body.host_config.unwrap();
        assert_eq!(hc.binds.unwrap(), vec!["named:/d:ro", "/h:/x"]);
        assert_eq!(body.volumes.unwrap(), vec!["/anon"]);
        assert_eq!(hc.tmpfs.unwrap()["/t"], "size=1m");
        assert_eq!(hc.readonly_rootfs, Some(true));
        assert_eq!(render_prune(&[], 0), "Total reclaimed space: 0B\n");
    }
}
