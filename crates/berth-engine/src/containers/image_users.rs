//! Which containers use which image: what `docker rmi` and `image prune` must respect.

use std::collections::HashMap;

use berth_image::store::ImageUser;

use super::Containers;
use crate::Engine;

impl Containers {
    /// Image ID → one container using it, a running one when there is any. A container
    /// uses its own image and those its image mounts mount.
    pub(crate) fn image_users(&self) -> HashMap<String, ImageUser> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let mut users: HashMap<String, ImageUser> = HashMap::new();
        for entry in map.values() {
            let rec = entry.rec();
            for image in std::iter::once(&rec.image_id).chain(&rec.image_mounts) {
                let user = ImageUser {
                    container_id: rec.id.clone(),
                    running: rec.running(),
                };
                match users.get(image) {
                    Some(u) if u.running || !user.running => {}
                    _ => {
                        users.insert(image.clone(), user);
                    }
                }
            }
        }
        users
    }
}

impl Engine {
    /// A container that uses image `id` (its own image, or one an image mount mounts), a
    /// running one when there is any: what the CRI's RemoveImage checks before it untags.
    pub fn image_user(&self, id: &str) -> Option<String> {
        self.containers
            .image_users()
            .remove(id)
            .map(|u| u.container_id)
    }
}
