//! Read-only views: inspect, list (with filters), counts for `/info`, and what the
//! network API needs to know of a container.

use berth_api_types::container::{ContainerStatus, ContainerSummary};
use serde_json::Value;

use std::sync::Arc;

use super::record::Record;
use super::store::Entry;
use super::{list_filters, logs, mounts, now_unix, process, Containers, LogsOptions};
use crate::{Engine, EngineError};

impl Engine {
    /// `GET /containers/{id}/json`.
    /// The `HostConfig` a container was created with, as its request gave it: no default
    /// filled in where inspect shows one (authorization judges an existing container by
    /// what its creator asked for; inspect's default masked paths were asked by nobody).
    pub fn container_host_config_as_created(&self, name: &str) -> Result<Value, EngineError> {
        let rec = self.containers.subject(name)?.rec().clone();
        serde_json::to_value(&rec.host_config).map_err(|e| EngineError::Internal(e.to_string()))
    }

    pub async fn container_inspect(&self, name: &str) -> Result<Value, EngineError> {
        let c = &self.containers;
        let rec = c.subject(name)?.rec().clone();
        let mut v = rec.inspect(&c.data_dir(&rec.id), &c.exec_dir(&rec.id));
        if let Some(ns) = c.networks.inspect_settings(&rec.id, rec.running()) {
            v.network_settings = ns;
        }
        let dir = c.data_dir(&rec.id);
        if let Ok(Value::Array(m)) =
            crate::blocking::spawn(move || mounts::inspect_json(&dir)).await
        {
            v.mounts = m;
        }
        v.exec_ids = c.execs.ids(&rec.id);
        serde_json::to_value(v).map_err(|e| EngineError::Internal(e.to_string()))
    }

    /// `GET /containers/json`, as JSON values (see [`Engine::container_summaries`]).
    pub async fn container_list(
        &self,
        all: bool,
        filters: &berth_api_types::filters::Filters,
    ) -> Result<Vec<Value>, EngineError> {
        (self.container_summaries(all, filters).await?)
            .into_iter()
            .map(|s| serde_json::to_value(s).map_err(|e| EngineError::Internal(e.to_string())))
            .collect()
    }

    /// `GET /containers/json`: the entries, newest first, typed (serialised once, by the
    /// server: a `Value` per entry cost a map per object and a second walk).
    pub async fn container_summaries(
        &self,
        all: bool,
        filters: &berth_api_types::filters::Filters,
    ) -> Result<Vec<ContainerSummary>, EngineError> {
        let mut allowed = vec!["status", "name", "id", "label", "ancestor", "health"];
        allowed.extend(list_filters::NAMES);
        filters.allow_only(&allowed).map_err(EngineError::from)?;
        let more = list_filters::ListFilters::parse(&self.containers, filters)?;
        let health = filters.get("health");
        super::health::check_filter(health)?;
        let now = now_unix();
        // Each entry is judged and summarised under its own lock, its record never copied
        // whole (a copy per container was most of a list's time at 1,000).
        let mut entries: Vec<(String, String, Arc<Entry>)> = (self.containers.entries())
            .into_iter()
            .filter_map(|e| {
                let (created, id) = {
                    let r = e.rec();
                    if r.state.status == ContainerStatus::Removing {
                        return None;
                    }
                    (r.created.clone(), r.id.clone())
                };
                Some((created, id, e))
            })
            .collect();
        entries.sort_by(|a, b| b.0.cmp(&a.0));
        let entries = more.window(entries, |(_, id, _)| id.as_str());
        let mounts = match more.wants_mounts() {
            true => {
                let dirs = (entries.iter())
                    .map(|(_, id, _)| (id.clone(), self.containers.data_dir(id)))
                    .collect();
                list_filters::mounts_of(dirs).await
            }
            false => Default::default(),
        };
        let status = filters.get("status");
        let names = filters.get("name");
        let ids = filters.get("id");
        let labels = filters.get("label");
        let ancestors = filters.get("ancestor");
        let keep = |r: &Record| {
            (all || !status.is_empty() || r.running() || r.restarting())
                && (status.is_empty() || status.iter().any(|s| s == r.status().as_str()))
                && (names.is_empty()
                    || names
                        .iter()
                        .any(|n| r.name.contains(n.trim_start_matches('/'))))
                && (ids.is_empty() || ids.iter().any(|i| r.id.starts_with(i.as_str())))
                && labels.iter().all(|l| {
                    let (k, v) = l
                        .split_once('=')
                        .map_or((l.as_str(), None), |(k, v)| (k, Some(v)));
                    match r.config.labels.get().and_then(|m| m.get(k)) {
                        Some(s) => v.is_none_or(|v| v == s),
                        None => false,
                    }
                })
                && (ancestors.is_empty()
                    || ancestors
                        .iter()
                        .any(|a| *a == r.image || r.image_id.contains(a.as_str())))
                && more.keep_record(r)
                && more.keep_mounts(mounts.get(&r.id).map_or(&[], Vec::as_slice))
                && super::health::filter_matches(r.state.health.as_ref(), health)
        };
        let out = entries
            .into_iter()
            .filter_map(|(_, id, e)| {
                let (mut s, running) = {
                    let r = e.rec();
                    if !keep(&r) {
                        return None;
                    }
                    (r.summary(now), r.running())
                };
                (self.containers.networks).patch_summary(&id, running, &mut s);
                more.keep_summary(&s).then_some(s)
            })
            .collect();
        Ok(out)
    }

    /// Counts for `/info`: (all, running, stopped).
    pub fn container_counts(&self) -> (usize, usize, usize) {
        let entries = self.containers.entries();
        // dockerd counts a restarting container as running.
        let running = entries
            .iter()
            .filter(|e| e.rec().running() || e.rec().restarting())
            .count();
        (entries.len(), running, entries.len() - running)
    }

    /// Containers in dockerd's three metric states: (running, restarting counted in;
    /// paused; stopped: the rest).
    pub fn container_state_counts(&self) -> (u64, u64, u64) {
        let (mut running, mut paused, mut stopped) = (0, 0, 0);
        for e in self.containers.entries() {
            match e.rec().status() {
                ContainerStatus::Running | ContainerStatus::Restarting => running += 1,
                ContainerStatus::Paused => paused += 1,
                _ => stopped += 1,
            }
        }
        (running, paused, stopped)
    }

    /// `GET /containers/{id}/logs`: whether it has a tty, and the log bytes as they come.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_logs(
        &self,
        name: &str,
        opts: LogsOptions,
    ) -> Result<(bool, tokio::sync::mpsc::Receiver<bytes::Bytes>), EngineError> {
        let c = &self.containers;
        let entry = c.subject(name)?;
        let (id, tty) = {
            let r = entry.rec();
            if let Some(journal) = logs::journal_readable(&r.host_config) {
                journal?;
                let (id, tty) = (r.id.clone(), r.tty());
                drop(r);
                let running = {
                    let entry = entry.clone();
                    move || entry.rec().running() || entry.rec().restarting()
                };
                let state = entry.events.subscribe();
                return Ok((tty, logs::journal_stream(&id, tty, opts, running, state)?));
            }
            if !logs::readable(&r.host_config) {
                // moby `daemon/logger`: `ErrReadLogsNotSupported`.
                return Err(EngineError::NotImplemented(
                    "configured logging driver does not support reading".into(),
                ));
            }
            (r.id.clone(), r.tty())
        };
        let path = logs::log_file(&entry.rec().host_config, &c.data_dir(&id), &id);
        let running = {
            let entry = entry.clone();
            move || entry.rec().running() || entry.rec().restarting()
        };
        let state = entry.events.subscribe();
        Ok((tty, logs::stream(path, tty, opts, running, state)))
    }
}

/// What the network API needs to know of a container.
#[derive(Debug)]
pub(crate) struct ContainerBrief {
    pub id: String,
    pub running: bool,
    /// The init process of a running container (`None` when it is not the recorded one).
    pub process: Option<berth_sys::pidfd::ProcessHandle>,
}

impl Engine {
    /// ID, running state and init process of a container, by any of its names.
    pub(crate) fn container_brief(&self, name: &str) -> Result<ContainerBrief, EngineError> {
        let r = self.containers.subject(name)?.rec().clone();
        Ok(ContainerBrief {
            running: r.running(),
            process: r.running().then(|| process::of_record(&r).ok()).flatten(),
            id: r.id,
        })
    }
}

/// For `--network container:<id>`: that container's init pid, hosts and resolv.conf.
pub(crate) fn net_peer(
    c: &Containers,
    id: &str,
) -> Option<(berth_sys::pidfd::ProcessHandle, String, String)> {
    let r = c.get(id).ok()?.rec().clone();
    let handle = process::of_record(&r).ok()?;
    let dir = c.data_dir(&r.id);
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    Some((handle, read("hosts"), read("resolv.conf")))
}

/// The `Mounts` of listed containers, read once per container (`mounts.json`).
impl Engine {
    /// Fills a `GET /containers/json` item's `Mounts` (inspect's shape, as dockerd).
    pub async fn container_add_mounts(&self, items: &mut [Value]) {
        let ids: Vec<Option<String>> = (items.iter())
            .map(|item| item["Id"].as_str().map(str::to_string))
            .collect();
        for (item, m) in items.iter_mut().zip(self.list_mounts(ids).await) {
            if let Some(m) = m {
                item["Mounts"] = m;
            }
        }
    }

    /// [`Engine::container_add_mounts`] for typed entries.
    pub async fn container_summaries_add_mounts(&self, items: &mut [ContainerSummary]) {
        let ids = items.iter().map(|s| Some(s.id.clone())).collect();
        for (item, m) in items.iter_mut().zip(self.list_mounts(ids).await) {
            if let Some(Value::Array(m)) = m {
                item.mounts = m;
            }
        }
    }

    /// The `Mounts` of each container of `ids` (`None` for one that is gone): from each
    /// entry's copy, read once (the file is written at create and never changes); the
    /// files not read yet are read on one blocking thread.
    async fn list_mounts(&self, ids: Vec<Option<String>>) -> Vec<Option<Value>> {
        let c = &self.containers;
        let mut out: Vec<Option<Value>> = vec![None; ids.len()];
        let mut unread: Vec<(usize, Arc<Entry>, std::path::PathBuf)> = Vec::new();
        {
            let map = c.map.lock().unwrap_or_else(|e| e.into_inner());
            for (i, id) in ids.iter().enumerate() {
                let Some(entry) = id.as_deref().and_then(|id| map.get(id)) else {
                    continue;
                };
                match (entry.mounts.get(), out.get_mut(i)) {
                    (Some(m), Some(slot)) => *slot = Some(m.clone()),
                    _ => {
                        let dir = c.data_dir(&entry.rec().id);
                        unread.push((i, entry.clone(), dir));
                    }
                }
            }
        }
        if unread.is_empty() {
            return out;
        }
        let Ok(read) = crate::blocking::spawn(move || {
            unread
                .into_iter()
                .map(|(i, entry, dir)| {
                    let m = super::mount_file::stored_json(&dir);
                    (i, entry, m)
                })
                .collect::<Vec<_>>()
        })
        .await
        else {
            return out;
        };
        for (i, entry, m) in read {
            let m = match m {
                Some(m) => entry.mounts.get_or_init(|| m).clone(),
                // No file yet (or none readable): what inspect shows then.
                None => Value::Array(Vec::new()),
            };
            if let Some(slot) = out.get_mut(i) {
                *slot = Some(m);
            }
        }
        out
    }
}
