//! The `GET /containers/json` filters beyond names, IDs, labels, status and ancestors:
//! `before`, `since`, `exited`, `is-task`, `network`, `publish`, `expose` and `volume`,
//! with moby's semantics (`daemon/list.go` `foldFilter`, `includeContainerInList`) and
//! its texts for values that do not read.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use berth_api_types::container::ContainerSummary;
use berth_api_types::filters::Filters;

use super::record::Record;
use super::{mount_file, Containers};
use crate::EngineError;

/// The filter names this module reads.
pub(super) const NAMES: [&str; 8] = [
    "before", "since", "exited", "is-task", "network", "publish", "expose", "volume",
];

/// The parsed filters of one list request.
#[derive(Debug, Default)]
pub(super) struct ListFilters {
    before: Option<String>,
    since: Option<String>,
    exited: Vec<i32>,
    is_task: Option<bool>,
    networks: Vec<String>,
    publish: BTreeSet<String>,
    expose: BTreeSet<String>,
    volumes: Vec<String>,
}

impl ListFilters {
    /// Reads the values, resolving `before` and `since` to container IDs (the last value
    /// of each counts, as moby's walk keeps the last).
    pub(super) fn parse(c: &Containers, f: &Filters) -> Result<Self, EngineError> {
        let mut exited = Vec::new();
        for v in f.get("exited") {
            let code = v.parse::<i32>().map_err(|e| {
                EngineError::InvalidArgument(format!(
                    "invalid filter 'exited={v}': strconv.Atoi: parsing {v:?}: {}",
                    go_num_error(&e)
                ))
            })?;
            exited.push(code);
        }
        let is_task = f.bool_value("is-task").map_err(EngineError::from)?;
        let container = |v: &String| c.get(v).map(|e| e.rec().id.clone());
        let before = f.get("before").iter().map(container).last().transpose()?;
        let since = f.get("since").iter().map(container).last().transpose()?;
        let mut publish = BTreeSet::new();
        for v in f.get("publish") {
            ports("publish", v, &mut publish)?;
        }
        let mut expose = BTreeSet::new();
        for v in f.get("expose") {
            ports("expose", v, &mut expose)?;
        }
        Ok(ListFilters {
            before,
            since,
            exited,
            is_task,
            networks: f.get("network").to_vec(),
            publish,
            expose,
            volumes: f.get("volume").to_vec(),
        })
    }

    /// `before` and `since` over the records, newest first: only those created before
    /// (after) the named container, which is itself left out.
    pub(super) fn window<T>(&self, items: Vec<T>, id: impl Fn(&T) -> &str) -> Vec<T> {
        let mut out = items;
        if let Some(b) = &self.before {
            match out.iter().position(|r| id(r) == b) {
                Some(i) => {
                    out.drain(..=i);
                }
                None => out.clear(),
            }
        }
        if let Some(s) = &self.since {
            if let Some(i) = out.iter().position(|r| id(r) == s) {
                out.truncate(i);
            }
        }
        out
    }

    /// `exited` (a stopped container that once started, with one of the codes) and
    /// `is-task` (no Berth container is a swarm task).
    pub(super) fn keep_record(&self, r: &Record) -> bool {
        if !self.exited.is_empty() {
            let started =
                !r.state.started_at.is_empty() && r.state.started_at != super::record::ZERO_TIME;
            if r.running() || !started || !self.exited.contains(&r.state.exit_code) {
                return false;
            }
        }
        self.is_task != Some(true)
    }

    /// `network` (a name, or a prefix of the network's ID), `publish` and `expose`
    /// (`port[/proto]` or a range) over a container's list entry.
    pub(super) fn keep_summary(&self, s: &ContainerSummary) -> bool {
        let nets = &s.network_settings.networks;
        if !self.networks.is_empty()
            && !self.networks.iter().any(|n| {
                nets.contains_key(n) || nets.values().any(|e| e.network_id.starts_with(n.as_str()))
            })
        {
            return false;
        }
        if !self.publish.is_empty() || !self.expose.is_empty() {
            return s.ports.iter().any(|p| {
                let public = format!("{}/{}", p.public_port.unwrap_or(0), p.kind);
                let private = format!("{}/{}", p.private_port, p.kind);
                self.publish.contains(&public) || self.expose.contains(&private)
            });
        }
        true
    }

    /// Whether the `volume` filter needs each container's mounts read.
    pub(super) fn wants_mounts(&self) -> bool {
        !self.volumes.is_empty()
    }

    /// `volume`: a mount destination, or a volume's name (a bind's source).
    pub(super) fn keep_mounts(&self, mounts: &[mount_file::MountEntry]) -> bool {
        if self.volumes.is_empty() {
            return true;
        }
        self.volumes.iter().any(|v| {
            mounts.iter().any(|m| {
                let key = if m.name.is_empty() {
                    &m.source
                } else {
                    &m.name
                };
                &m.destination == v || key == v
            })
        })
    }
}

/// The mounts of each container whose data directory is given, read off the async
/// workers.
pub(super) async fn mounts_of(
    dirs: Vec<(String, PathBuf)>,
) -> HashMap<String, Vec<mount_file::MountEntry>> {
    crate::blocking::spawn(move || {
        dirs.into_iter()
            .map(|(id, d)| (id, mount_file::load(&d)))
            .collect()
    })
    .await
    .unwrap_or_default()
}

/// moby `portOp` over go-connections' `ParsePortRange`: `80`, `80/udp`, `8000-8010/tcp`.
fn ports(key: &str, value: &str, out: &mut BTreeSet<String>) -> Result<(), EngineError> {
    if value.contains(':') {
        return Err(EngineError::InvalidArgument(format!(
            "filter for '{key}' should not contain ':': {value}"
        )));
    }
    let bad = |why: String| {
        EngineError::InvalidArgument(format!("error while looking up for {key} {value}: {why}"))
    };
    let (range, proto) = value.split_once('/').unwrap_or((value, "tcp"));
    let proto = if proto.is_empty() { "tcp" } else { proto };
    if range.is_empty() {
        return Err(bad("Empty string specified for ports.".into()));
    }
    let num = |s: &str| {
        s.parse::<u16>().map_err(|e| {
            bad(format!(
                "strconv.ParseUint: parsing {s:?}: {}",
                go_num_error(&e)
            ))
        })
    };
    let (start, end) = match range.split_once('-') {
        Some((a, b)) => (num(a)?, num(b.split('-').next().unwrap_or(b))?),
        None => {
            let p = num(range)?;
            (p, p)
        }
    };
    if end < start {
        return Err(bad(format!(
            "Invalid range specified for the Port: {range}"
        )));
    }
    for p in start..=end {
        out.insert(format!("{p}/{}", proto.to_ascii_lowercase()));
    }
    Ok(())
}

/// Go's `strconv` reasons: "invalid syntax" or "value out of range".
fn go_num_error(e: &std::num::ParseIntError) -> &'static str {
    use std::num::IntErrorKind;
    match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => "value out of range",
        _ => "invalid syntax",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_values_read_as_moby_reads_them() {
        let mut s = BTreeSet::new();
        ports("publish", "80", &mut s).unwrap();
        ports("publish", "53/UDP", &mut s).unwrap();
        ports("publish", "8000-8002/tcp", &mut s).unwrap();
        let want: BTreeSet<String> = ["80/tcp", "53/udp", "8000/tcp", "8001/tcp", "8002/tcp"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(s, want);
        let err = |v: &str| {
            ports("publish", v, &mut BTreeSet::new())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("80:80"),
            "filter for 'publish' should not contain ':': 80:80"
        );
        assert_eq!(
            err("abc"),
            "error while looking up for publish abc: strconv.ParseUint: parsing \"abc\": invalid syntax"
        );
        assert_eq!(
            err("70000"),
            "error while looking up for publish 70000: strconv.ParseUint: parsing \"70000\": value out of range"
        );
        assert_eq!(
            err("90-80"),
            "error while looking up for publish 90-80: Invalid range specified for the Port: 90-80"
        );
    }
}
