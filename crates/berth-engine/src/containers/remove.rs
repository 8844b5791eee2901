//! `DELETE /containers/{id}`, and with `link=1` the removal of a legacy link.

use berth_api_types::container::ContainerStatus;

use crate::{Engine, EngineError};

impl Engine {
    /// `DELETE /containers/{parent}/{alias}?link=1` (moby `rmLink`): the legacy link goes
    /// from the parent's `HostConfig.Links` and from its next start's `/etc/hosts` and
    /// environment. A plain container name is its own default link, which cannot go (and
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
        self.containers.networks.unlink(&id, alias).await;
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
