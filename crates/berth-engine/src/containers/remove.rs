//! `DELETE /containers/{id}`.

use berth_api_types::container::ContainerStatus;

use crate::{Engine, EngineError};

impl Engine {
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
