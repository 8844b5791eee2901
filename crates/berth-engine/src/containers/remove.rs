//! `DELETE /containers/{id}`, and with `link=1` the removal of a legacy link.

use berth_api_types::container::ContainerStatus;

use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::{Engine, EngineError};

/// The most of a running container's `/etc/hosts` read to take a link out (it is the
/// container's to write; a larger one is left as it is).
const MAX_HOSTS: u64 = 1 << 20;

/// Takes the entry named `names` out of the hosts file at `path`, in place: the file is
/// bind-mounted into the running container, which sees a rewrite of the same inode only.
/// Opened without following a symlink.
fn drop_hosts_entry(path: &Path, names: &str) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)?;
    let mut text = String::new();
    (&mut f).take(MAX_HOSTS + 1).read_to_string(&mut text)?;
    if text.len() as u64 > MAX_HOSTS {
        return Err(std::io::Error::other("the hosts file is too large"));
    }
    let kept = berth_network::files::without_entry(&text, names);
    if kept.len() == text.len() {
        return Ok(());
    }
    f.set_len(0)?;
    f.rewind()?;
    f.write_all(kept.as_bytes())
}

impl Engine {
    /// `DELETE /containers/{parent}/{alias}?link=1` (moby `rmLink`): the legacy link goes
    /// from the parent's `HostConfig.Links` and from its next start's `/etc/hosts` and
    /// environment; a running parent's `/etc/hosts` loses the link's entry at once, as
    /// dockerd's `updateNetwork` rewrites it (its environment stays as it started). A plain container name is its own default link, which cannot go (and
    /// the container stays); a link that does not exist names no container.
    pub async fn container_remove_link(&self, name: &str) -> Result<(), EngineError> {
        let bare = name.trim_start_matches('/');
        let full = format!("/{bare}");
        let no_such = || EngineError::NotFound(format!("No such container: {bare}"));
        let Some((parent, alias)) = full.rsplit_once('/').filter(|(p, _)| !p.is_empty()) else {
            self.containers.get(name)?;
            return Err(EngineError::Conflict(
                "Conflict, cannot remove the default link name of the container".into(),
            ));
        };
        let entry = self.containers.get(parent).map_err(|_| no_such())?;
        let _guard = entry.op.lock().await;
        if !super::links::remove(&mut entry.rec().host_config, &full) {
            return Err(no_such());
        }
        self.containers.save(&entry).await?;
        let id = entry.rec().id.clone();
        if let Some(names) = self.containers.networks.unlink(&id, alias).await {
            let hosts = self.containers.data_dir(&id).join("hosts");
            let done = crate::blocking::spawn(move || drop_hosts_entry(&hosts, &names)).await;
            if let Err(e) = done
                .map_err(|e| e.to_string())
                .and_then(|r| r.map_err(|e| e.to_string()))
            {
                tracing::warn!(container_id = %id, error = %e, "cannot take the link out of /etc/hosts");
            }
        }
        Ok(())
    }

    /// `DELETE /containers/{id}`.
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub async fn container_delete(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let c = &self.containers;
        let entry = c.subject(name)?;
        let _guard = entry.op.lock().await;
        let (id, cname, running, status) = {
            let r = entry.rec();
            (r.id.clone(), r.name.clone(), r.running(), r.state.status)
        };
        if status == ContainerStatus::Removing {
            return Err(EngineError::Conflict(format!(
                "removal of container {id} is already in progress"
            )));
        }
        if status == ContainerStatus::Restarting {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "cannot remove container \"{cname}\": container is restarting: stop the container before removing or force remove"
                )));
            }
            c.cancel_restart(&entry).await;
        }
        if running {
            if !force {
                return Err(EngineError::Conflict(format!(
                    "cannot remove container \"{cname}\": container is running: stop the container before removing or force remove"
                )));
            }
            c.cancel_restart(&entry).await;
            let seen = entry.events.borrow().exits;
            if !c.kill_and_wait(&entry, &id, seen).await {
                return Err(EngineError::Internal(format!(
                    "cannot remove container \"{cname}\": could not kill it"
                )));
            }
        }
        c.remove(&entry).await;
        Ok(())
    }
}
