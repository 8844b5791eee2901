//! `docker update`: resource limits and the restart policy of a container, checked as
//! dockerd checks them (moby `daemon/update.go`, `daemon/daemon_unix.go`
//! `verifyPlatformContainerResources`, `container/container_unix.go` `UpdateContainer`),
//! written into the running container's cgroup, then persisted in its `HostConfig`.

use berth_api_types::container::{ContainerUpdate, HostConfig, RestartPolicy, RestartPolicyName};
use berth_api_types::field::Field;
use berth_cgroups::{self as cgroup, Dirs, Limits};
use serde_json::{Map, Value};

use crate::{Engine, EngineError};

/// moby `linuxMinMemory`.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;

/// What a `POST /containers/{id}/update` body asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Update {
    pub memory: i64,
    pub memory_swap: i64,
    pub memory_reservation: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub pids_limit: Option<i64>,
    pub restart_policy: Option<(String, i64)>,
}

/// `NanoCpus` within `0..=ncpu * 10^9`, with dockerd's message (create and update).
pub(crate) fn check_nano_cpus(nano_cpus: i64, ncpu: u64) -> Result<(), EngineError> {
    let max = i64::try_from(ncpu)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000_000);
    if !(0..=max).contains(&nano_cpus) {
        return Err(bad(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    Ok(())
}

fn bad(msg: impl Into<String>) -> EngineError {
    EngineError::InvalidArgument(msg.into())
}

impl Update {
    pub(crate) fn from_body(b: &Map<String, Value>) -> Result<Update, EngineError> {
        let body: ContainerUpdate = serde_json::from_value(Value::Object(b.clone()))
            .map_err(|e| bad(format!("invalid update: {e}")))?;
        let int = |f: &Field<i64>, k: &str| -> Result<i64, EngineError> {
            match f {
                Field::Absent | Field::Null => Ok(0),
                Field::Set(v) => Ok(*v),
                Field::Invalid(_) => Err(bad(format!("{k}: expected an integer"))),
            }
        };
        let string = |f: &Field<String>, k: &str| -> Result<String, EngineError> {
            match f {
                Field::Absent | Field::Null => Ok(String::new()),
                Field::Set(s) => Ok(s.clone()),
                Field::Invalid(_) => Err(bad(format!("{k}: expected a string"))),
            }
        };
        let r = &body.resources;
        let pids_limit = match &r.pids_limit {
            Field::Absent | Field::Null => None,
            _ => Some(int(&r.pids_limit, "PidsLimit")?),
        };
        let restart_policy = match &body.restart_policy {
            Field::Absent | Field::Null => None,
            Field::Set(p) => {
                let name = p.name.get().map_or("", RestartPolicyName::as_str);
                let count = p.maximum_retry_count.get().copied().unwrap_or(0);
                // An empty policy in an update means "leave it" (the CLI sends one).
                (!name.is_empty() || count != 0).then(|| (name.to_string(), count))
            }
            Field::Invalid(_) => return Err(bad("RestartPolicy: expected an object")),
        };
        Ok(Update {
            memory: int(&r.memory, "Memory")?,
            memory_swap: int(&r.memory_swap, "MemorySwap")?,
            memory_reservation: int(&r.memory_reservation, "MemoryReservation")?,
            nano_cpus: int(&r.nano_cpus, "NanoCpus")?,
            cpu_shares: int(&r.cpu_shares, "CpuShares")?,
            cpu_period: int(&r.cpu_period, "CpuPeriod")?,
            cpu_quota: int(&r.cpu_quota, "CpuQuota")?,
            cpuset_cpus: string(&r.cpuset_cpus, "CpusetCpus")?,
            cpuset_mems: string(&r.cpuset_mems, "CpusetMems")?,
            pids_limit,
            restart_policy,
        })
    }

    /// The checks dockerd makes on the request alone.
    pub(crate) fn validate(&self, ncpu: u64) -> Result<(), EngineError> {
        if self.memory > 0 && self.memory < MIN_MEMORY {
            return Err(bad("Minimum memory limit allowed is 6MB"));
        }
        if self.memory > 0 && self.memory_swap > 0 && self.memory_swap < self.memory {
            return Err(bad(
                "Minimum memoryswap limit should be larger than memory limit, see usage",
            ));
        }
        if self.memory > 0 && self.memory_reservation > 0 && self.memory < self.memory_reservation {
            return Err(bad(
                "Minimum memory limit can not be less than memory reservation limit, see usage",
            ));
        }
        if self.nano_cpus > 0 && self.cpu_period > 0 {
            return Err(bad(
                "Conflicting options: Nano CPUs and CPU Period cannot both be set",
            ));
        }
        if self.nano_cpus > 0 && self.cpu_quota > 0 {
            return Err(bad(
                "Conflicting options: Nano CPUs and CPU Quota cannot both be set",
            ));
        }
        check_nano_cpus(self.nano_cpus, ncpu)?;
        if self.cpu_period != 0 && !(1000..=1_000_000).contains(&self.cpu_period) {
            return Err(bad(
                "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
            ));
        }
        if self.cpu_quota > 0 && self.cpu_quota < 1000 {
            return Err(bad("CPU cfs quota can not be less than 1ms (i.e. 1000)"));
        }
        if self.cpu_shares < 0 {
            return Err(bad("invalid CPU shares: must not be negative"));
        }
        if !self.cpuset_cpus.is_empty() {
            let cpus = parse_cpu_list(&self.cpuset_cpus).ok_or_else(|| {
                bad(format!(
                    "Invalid value {} for cpuset cpus",
                    self.cpuset_cpus
                ))
            })?;
            if let Some(c) = cpus.iter().find(|c| **c >= ncpu) {
                let avail = if ncpu == 1 {
                    "0".to_string()
                } else {
                    format!("0-{}", ncpu - 1)
                };
                return Err(bad(format!(
                    "Requested CPUs are not available - requested {c}, available: {avail}"
                )));
            }
        }
        if let Some((name, count)) = &self.restart_policy {
            match name.as_str() {
                "no" | "always" | "unless-stopped" if *count != 0 => {
                    return Err(bad(
                        "invalid restart policy: maximum retry count can only be used with 'on-failure'",
                    ))
                }
                "no" | "always" | "unless-stopped" => {}
                "on-failure" if *count < 0 => {
                    return Err(bad(
                        "invalid restart policy: maximum retry count cannot be negative",
                    ))
                }
                "on-failure" => {}
                other => {
                    return Err(bad(format!(
                        "invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
                    )))
                }
            }
        }
        Ok(())
    }

    /// Merges into `hc` (moby `UpdateContainer`: zero leaves a field alone) and returns
    /// the limits to write into a live cgroup.
    pub(crate) fn apply(&self, hc: &mut HostConfig) -> Result<Limits, UpdateConflict> {
        let old = hc.resources.clone();
        let cur = |f: &Field<i64>| f.get().copied().unwrap_or(0);
        let r = &mut hc.resources;
        let mut l = Limits::default();
        if self.memory != 0 {
            let swap = cur(&old.memory_swap);
            if swap > 0 && self.memory > swap && self.memory_swap == 0 {
                return Err(UpdateConflict::MemoryOverSwap);
            }
            r.memory = Field::Set(self.memory);
            l.memory = Some(self.memory);
        }
        if self.memory_swap != 0 {
            r.memory_swap = Field::Set(self.memory_swap);
            l.memory_swap = Some(self.memory_swap);
        }
        if self.memory_reservation != 0 {
            r.memory_reservation = Field::Set(self.memory_reservation);
            l.memory_reservation = Some(self.memory_reservation);
        }
        if self.cpu_shares != 0 {
            r.cpu_shares = Field::Set(self.cpu_shares);
            l.cpu_shares = Some(self.cpu_shares);
        }
        if self.nano_cpus != 0 {
            if cur(&old.cpu_period) != 0 || cur(&old.cpu_quota) != 0 {
                return Err(UpdateConflict::NanoCpusOverPeriod);
            }
            r.nano_cpus = Field::Set(self.nano_cpus);
            l.cpu_period = Some(100_000);
            // `validate` bounds `nano_cpus` by the CPU count; saturate all the same.
            l.cpu_quota = Some(self.nano_cpus.saturating_mul(100_000) / 1_000_000_000);
        }
        if self.cpu_period != 0 || self.cpu_quota != 0 {
            if cur(&old.nano_cpus) != 0 && self.nano_cpus == 0 {
                return Err(UpdateConflict::PeriodOverNanoCpus);
            }
            if self.cpu_period != 0 {
                r.cpu_period = Field::Set(self.cpu_period);
                l.cpu_period = Some(self.cpu_period);
            }
            if self.cpu_quota != 0 {
                r.cpu_quota = Field::Set(self.cpu_quota);
                l.cpu_quota = Some(self.cpu_quota);
            }
        }
        if !self.cpuset_cpus.is_empty() {
            r.cpuset_cpus = Field::Set(self.cpuset_cpus.clone());
            l.cpuset_cpus = Some(self.cpuset_cpus.clone());
        }
        if !self.cpuset_mems.is_empty() {
            r.cpuset_mems = Field::Set(self.cpuset_mems.clone());
            l.cpuset_mems = Some(self.cpuset_mems.clone());
        }
        if let Some(p) = self.pids_limit {
            r.pids_limit = Field::Set(p);
            l.pids_limit = Some(p);
        }
        if let Some((name, count)) = &self.restart_policy {
            if name != "no" && hc.auto_remove() {
                return Err(UpdateConflict::RestartWithAutoRemove);
            }
            hc.restart_policy = Field::Set(RestartPolicy {
                name: Field::Set(name.as_str().into()),
                maximum_retry_count: Field::Set(*count),
                ..RestartPolicy::default()
            });
        }
        Ok(l)
    }
}

/// An update the container's current settings refuse (moby `UpdateContainer`'s texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UpdateConflict {
    #[error("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time")]
    MemoryOverSwap,
    /// Nano CPUs asked for where a CPU period or quota is set.
    #[error(
        "Conflicting options: CPU Quota or CPU Period cannot be updated when Nano CPUs is set"
    )]
    NanoCpusOverPeriod,
    /// A CPU period or quota asked for where Nano CPUs are set.
    #[error(
        "Conflicting options: Nano CPUs cannot be updated as CPU Period/Quota has already been set"
    )]
    PeriodOverNanoCpus,
    #[error("Restart policy cannot be updated because AutoRemove is enabled for the container")]
    RestartWithAutoRemove,
}

/// `0-2,5` → [0, 1, 2, 5]; `None` when it does not parse.
fn parse_cpu_list(s: &str) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b || b - a > 4096 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

impl Engine {
    /// `POST /containers/{id}/update`; the answer's `Warnings`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_update(
        &self,
        name: &str,
        body: &Map<String, Value>,
    ) -> Result<Vec<String>, EngineError> {
        self.update_with_hugepages(name, body, None).await
    }

    /// [`Self::container_update`], with `hugepages` (the CRI's; `None` leaves them alone)
    /// written in the same cgroup writes, put back with them when one fails, and stored
    /// in the record with the `HostConfig`.
    pub(crate) async fn update_with_hugepages(
        &self,
        name: &str,
        body: &Map<String, Value>,
        hugepages: Option<Vec<super::record::HugepageLimit>>,
    ) -> Result<Vec<String>, EngineError> {
        let c = &self.containers;
        let entry = c.subject(name)?;
        let _guard = entry.op.lock().await;
        let update = Update::from_body(body)?;
        update.validate(berth_sys::host::ncpu())?;
        let (id, running, mut hc) = {
            let r = entry.rec();
            (r.id.clone(), r.running(), r.host_config.clone())
        };
        let cannot = |e: UpdateConflict| bad(format!("Cannot update container {id}: {e}"));
        let mut limits = update.apply(&mut hc).map_err(cannot)?;
        if let Some(h) = &hugepages {
            limits.hugepages = h.iter().map(|h| (h.page_size.clone(), h.limit)).collect();
        }
        if running {
            // The cgroup's files, read and written off the async workers.
            let (cgroup, id) = (self.containers.cgroup_path(&id), id.clone());
            crate::blocking::spawn(move || write_limits(&cgroup, &limits, &id))
                .await
                .map_err(|e| EngineError::Internal(e.to_string()))??;
        }
        let cri_create = hugepages.is_some() && !running && body.is_empty();
        {
            let mut r = entry.rec();
            r.host_config = hc;
            if let Some(h) = hugepages {
                r.hugepage_limits = h;
            }
        }
        c.save(&entry).await?;
        if !cri_create {
            // Not for the CRI's limits on a container just created (dockerd has none).
            c.emit(&entry.rec(), "update", &[]);
        }
        tracing::info!("container updated");
        Ok(Vec::new())
    }
}

/// Writes `limits` into the cgroup `path`, in the order `cgroup::writes` gives for a
/// raised or a lowered memory limit; a failed write puts back what the earlier ones changed.
fn write_limits(path: &str, limits: &Limits, id: &str) -> Result<(), EngineError> {
    let dirs = Dirs::of(path);
    let raise = match (limits.memory, cgroup::memory_limit(&dirs)) {
        (Some(m), Some(cur)) => m < 0 || m as u64 > cur,
        (Some(_), None) => false,
        (None, _) => true,
    };
    // A write the kernel refuses puts the earlier ones back (nothing half-made).
    cgroup::apply(cgroup::writes(&dirs, limits, raise))
        .map_err(|e| EngineError::Internal(format!("Cannot update container {id}: {e}")))
}

#[cfg(test)]
mod tests {
    use berth_api_types::container::RestartPolicyName;
    use serde_json::json;

    use super::*;

    fn host_config(v: Value) -> HostConfig {
        serde_json::from_value(v).unwrap()
    }

    fn upd(v: Value) -> Update {
        Update::from_body(v.as_object().unwrap()).unwrap()
    }

    /// `ncpu as i64 * 10^9` overflowed for a huge CPU count; now the bound saturates.
    #[test]
    fn nano_cpus_bound_does_not_overflow() {
        assert!(check_nano_cpus(i64::MAX, 2).is_err());
        assert!(check_nano_cpus(-1, 2).is_err());
        assert!(check_nano_cpus(i64::MAX, u64::MAX).is_ok());
        assert!(check_nano_cpus(2_000_000_000, 2).is_ok());
    }

    #[test]
    fn refuses_what_dockerd_refuses() {
        for (b, want) in [
            (
                json!({"Memory": 1024}),
                "Minimum memory limit allowed is 6MB",
            ),
            (
                json!({"Memory": 10_000_000, "MemorySwap": 9_000_000}),
                "Minimum memoryswap",
            ),
            (
                json!({"NanoCpus": 500_000_000, "CpuPeriod": 1000}),
                "Nano CPUs and CPU Period",
            ),
            (
                json!({"NanoCpus": 500_000_000, "CpuQuota": 1000}),
                "Nano CPUs and CPU Quota",
            ),
            (
                json!({"NanoCpus": 9_000_000_000i64}),
                "Range of CPUs is from 0.01 to 2.00",
            ),
            (json!({"CpuPeriod": 10}), "CPU cfs period"),
            (json!({"CpuQuota": 10}), "CPU cfs quota"),
            (
                json!({"CpusetCpus": "7"}),
                "Requested CPUs are not available - requested 7, available: 0-1",
            ),
            (
                json!({"CpusetCpus": "x"}),
                "Invalid value x for cpuset cpus",
            ),
            (
                json!({"RestartPolicy": {"Name": "sometimes"}}),
                "unknown policy 'sometimes'",
            ),
            (
                json!({"RestartPolicy": {"Name": "always", "MaximumRetryCount": 2}}),
                "only be used with 'on-failure'",
            ),
            (
                json!({"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": -1}}),
                "cannot be negative",
            ),
        ] {
            let e = upd(b.clone()).validate(2).unwrap_err();
            assert!(e.to_string().contains(want), "{b}: {e}");
        }
        assert!(Update::from_body(json!({"Memory": "1g"}).as_object().unwrap()).is_err());
        assert!(Update::from_body(json!({"RestartPolicy": 3}).as_object().unwrap()).is_err());
    }

    #[test]
    fn merges_into_host_config() {
        let mut hc = host_config(json!({"Memory": 0, "MemorySwap": 0, "AutoRemove": false}));
        let u = upd(json!({
            "Memory": 67108864, "CpuShares": 512, "PidsLimit": 50, "NanoCpus": 500_000_000,
            "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3}
        }));
        u.validate(2).unwrap();
        let l = u.apply(&mut hc).unwrap();
        assert_eq!(l.memory, Some(67108864));
        assert_eq!((l.cpu_period, l.cpu_quota), (Some(100_000), Some(50_000)));
        assert_eq!(l.memory_swap, None);
        assert_eq!(hc.resources.memory, Field::Set(67108864));
        assert_eq!(hc.resources.pids_limit, Field::Set(50));
        assert_eq!(hc.restart_policy().0, RestartPolicyName::OnFailure);
        // Zero leaves fields alone; an empty restart policy too.
        let l = upd(json!({"Memory": 0, "RestartPolicy": {"Name": ""}}))
            .apply(&mut hc)
            .unwrap();
        assert_eq!(l, Limits::default());
        assert_eq!(hc.resources.memory, Field::Set(67108864));
        assert_eq!(hc.restart_policy().1, 3);
    }

    #[test]
    fn conflicts_with_the_current_settings() {
        let mut hc = host_config(
            json!({"Memory": 10_000_000, "MemorySwap": 20_000_000, "AutoRemove": true}),
        );
        let e = upd(json!({"Memory": 30_000_000}))
            .apply(&mut hc)
            .unwrap_err();
        assert_eq!(e.to_string(), "Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time");
        assert!(upd(json!({"Memory": 30_000_000, "MemorySwap": -1}))
            .apply(&mut hc)
            .is_ok());
        let e = upd(json!({"RestartPolicy": {"Name": "always"}}))
            .apply(&mut hc)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        );
        let mut hc = host_config(json!({"CpuPeriod": 100_000}));
        let e = upd(json!({"NanoCpus": 500_000_000})).apply(&mut hc);
        assert_eq!(
            e.unwrap_err().to_string(),
            "Conflicting options: CPU Quota or CPU Period cannot be updated when Nano CPUs is set"
        );
        let mut hc = host_config(json!({"NanoCpus": 500_000_000}));
        let e = upd(json!({"CpuQuota": 50_000})).apply(&mut hc);
        assert_eq!(e.unwrap_err().to_string(), "Conflicting options: Nano CPUs cannot be updated as CPU Period/Quota has already been set");
        assert_eq!(parse_cpu_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("2-1"), None);
    }
}
