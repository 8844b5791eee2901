//! `DELETE /containers/{id}`, and with `link=1` the removal of a legacy link.

use berth_api_types::container::ContainerStatus;

use crate::{Engine, EngineError};

impl Engine {
    /// `DELETE /containers/{parent}/{alias}?link=1` (moby `rmLink`). Berth makes no
    /// legacy links, so the link names no container; a plain container name is its own
    /// default link, which cannot go (and the container stays).
    pub async fn container_remove_link(&self, name: &str) -> Result<(), EngineError> {
        let entry = self.containers.get(name)?;
        let full = format!("/{}", name.trim_start_matches('/'));
        if full.rfind('/') == Some(0) {
            return Err(EngineError::Conflict(
                "Conflict, cannot remove the default link name of the container".into(),
            ));
        }
        Err(EngineError::NotFound(format!(
            "No such link: {full} of container {}",
            entry.rec().id
        )))
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
