//! The Docker object model behind the API: one async method per operation, no HTTP.
//!
//! [`Engine`] holds the daemon's identity and settings, the image store, and the
//! containers, networks and volumes; the server only ever calls its methods. The drivers
//! that run containers come from outside ([`Drivers`]: berthd hands in the shim runtime,
//! the overlay mounter and the network manager), so the engine's unit tests run it over
//! fakes, without root. Blocking work (files, mounts, cgroups, the network driver) runs on
//! `blocking::spawn`, in the caller's span.
#![forbid(unsafe_code)]

mod blocking;
pub mod build;
mod config;
pub mod containers;
pub mod distribution;
mod error;
pub mod events;
#[cfg(test)]
mod fuzz_support;
mod identity;
pub mod images;
pub mod metrics;
mod networks;
mod pump;
mod system;
pub mod volumes;

use std::sync::Arc;
use std::time::Instant;

pub use berth_network::ipam::Pool as AddressPool;
pub use berth_network::{Ipv4Net, Ipv6Net};
pub use config::{
    BindPolicy, EngineConfig, NetConfig, RuntimeChoice, RuntimeConfig, RuntimeConfigError,
    BUILTIN_RUNTIME,
};
pub use containers::rootfs::{OverlayMounter, RootfsMounter};
pub use containers::HealthAction;
pub use error::{EngineError, ErrorKind};
pub use networks::host_route_overlap;

/// Makes the network driver once the engine's event bus exists: the driver reports
/// endpoint connects and disconnects through the [`NetHooks`] it is given.
pub type NetworkFactory = Box<
    dyn FnOnce(NetHooks) -> Result<Arc<dyn berth_network::NetworkDriver>, berth_network::NetError>
        + Send,
>;

pub use berth_network::manager::Hooks as NetHooks;

/// The drivers the engine runs containers with: berthd builds the real ones
/// (`berth_runtime::ShimRuntime`, [`OverlayMounter`], `berth_network::manager::Manager`);
/// the engine's unit tests hand in fakes.
pub struct Drivers {
    /// Creates, runs and monitors containers.
    pub runtime: Arc<dyn berth_runtime::Runtime>,
    /// Mounts each container's rootfs.
    pub rootfs: Arc<dyn RootfsMounter>,
    /// Container networking (called once, on a blocking thread, at start).
    pub network: NetworkFactory,
}

impl std::fmt::Debug for Drivers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drivers")
            .field("runtime", &self.runtime)
            .field("rootfs", &self.rootfs)
            .finish_non_exhaustive()
    }
}

/// The engine: shared by every request handler behind an `Arc`.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    images: Arc<berth_image::store::ImageStore>,
    registry: Arc<berth_image::registry::Registry>,
    containers: Arc<containers::Containers>,
    networks: Arc<networks::Networks>,
    events: Arc<events::EventBus>,
    id: String,
    started: Instant,
}

impl Engine {
    /// Opens (or creates) the data and exec roots, loads the daemon's persistent identity,
    /// and reattaches to the containers `drivers.runtime` still runs.
    pub async fn new(config: EngineConfig, drivers: Drivers) -> Result<Arc<Engine>, EngineError> {
        config
            .check_runtimes()
            .map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        containers::check_log_defaults(&config)?;
        let (id, images) = crate::blocking::spawn({
            let config = config.clone();
            move || {
                config.prepare_dirs()?;
                let id = identity::load_or_create(&config.data_root)?;
                let images = berth_image::store::ImageStore::open(&config.data_root.join("image"))?;
                Ok::<_, EngineError>((id, images))
            }
        })
        .await
        .map_err(|e| EngineError::Internal(format!("start-up task failed: {e}")))??;
        tracing::info!(daemon_id = %id, data_root = %config.data_root.display(), "engine ready");
        let registry = distribution::registry_for(&config);
        let events = Arc::new(events::EventBus::default());
        // The network records, every container record, and the containers still running
        // (their network restored) are read on a blocking thread.
        let (networks, containers) = crate::blocking::spawn({
            let (config, events) = (config.clone(), events.clone());
            move || {
                let Drivers {
                    runtime,
                    rootfs,
                    network,
                } = drivers;
                let networks = networks::Networks::open(network, events.clone())?;
                let containers = containers::Containers::open(
                    &config,
                    (runtime, rootfs),
                    events,
                    networks.clone(),
                );
                Ok::<_, EngineError>((networks, containers))
            }
        })
        .await
        .map_err(|e| EngineError::Internal(format!("start-up task failed: {e}")))??;
        let engine = Arc::new(Engine {
            config,
            images: Arc::new(images),
            registry,
            containers,
            networks,
            events,
            id,
            started: Instant::now(),
        });
        engine.containers.supervise(&engine);
        engine.build_recover().await;
        Ok(engine)
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The stable daemon ID reported in `/info` (persisted in `engine.json`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Time since the engine opened.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Before the process exits: lets the start-up network set-up (bridges, firewall)
    /// finish, so that no half-made bridge appears after we are gone.
    pub async fn shutdown(&self) {
        self.started().await;
    }

    /// Resolves once start-up work in the background (the network set-up) is done.
    pub async fn started(&self) {
        let networks = self.networks.clone();
        let _ = crate::blocking::spawn(move || networks.wait_host_ready()).await;
    }
}
