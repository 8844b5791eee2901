//! `POST /containers/create`: the create plan (the body read over the image's config) and
//! the record, name reservation and directories it makes.

use berth_api_types::container::{ContainerConfig, HostConfig, NetworkMode};
use berth_api_types::field::Field;
use berth_api_types::network::NetworkingConfig;
use serde_json::{json, Map, Value};

use super::record::{Record, RECORD_VERSION};
use super::{
    create_fields, health, host_opts, lifecycle, links, mounts, names, spec, Containers, Entry,
};
use crate::system::now_rfc3339;
use crate::{Engine, EngineError};

/// `POST /containers/create`'s answer.
#[derive(Debug, Clone)]
pub struct Created {
    pub id: String,
    pub warnings: Vec<String>,
}

/// What a create body asks for, read and checked before any ID, name or disk work.
pub(crate) struct CreatePlan {
    pub(crate) host_config: HostConfig,
    pub(crate) networking: NetworkingConfig,
    /// `HostConfig.NetworkMode` as given (`Unspecified` before the default is filled in).
    pub(crate) mode: NetworkMode,
    /// The container whose network namespace `container:<peer>` names.
    pub(crate) net_peer: Option<String>,
    /// The image's config merged with the body's.
    pub(crate) config: ContainerConfig,
    pub(crate) mounts: Vec<mounts::MountEntry>,
    pub(crate) args: Vec<String>,
    /// dockerd's warnings for settings the host cannot apply (dropped from the record).
    pub(crate) warnings: Vec<String>,
}

/// `container_create`'s reading of `body` over the image's config `image_cfg`, in its
/// order: the typed `HostConfig` (a field of the wrong JSON type reads as absent, as it
/// always did, and is stored as sent), network mode, restart policy, host options, runtime (`check_runtime`), the typed `Config` merged
/// over the image's, mounts, command. The fuzz target drives this same function.
pub(crate) fn plan_create(
    c: &Containers,
    engine_config: &crate::EngineConfig,
    body: &Map<String, Value>,
    image_cfg: &Map<String, Value>,
    check_runtime: &dyn Fn(&str) -> Result<(), EngineError>,
) -> Result<CreatePlan, EngineError> {
    let mut req = body.clone();
    let mut host_config: HostConfig = match req.remove("HostConfig") {
        Some(v @ Value::Object(_)) => serde_json::from_value(v)
            .map_err(|e| EngineError::InvalidArgument(format!("invalid HostConfig: {e}")))?,
        _ => HostConfig::default(),
    };
    // Read tolerantly, as it always was: a body that does not read is no endpoints.
    let networking: NetworkingConfig = (req.remove("NetworkingConfig"))
        .and_then(|n| serde_json::from_value(n).ok())
        .unwrap_or_default();
    let mode = host_config
        .network_mode
        .get()
        .cloned()
        .unwrap_or(NetworkMode::Unspecified);
    let net_peer = match mode.container_peer() {
        Some(peer) => Some(c.get(peer)?.rec().id.clone()),
        None => None,
    };
    links::settle(c, &mode, &mut host_config)?;
    if mode.is_default() {
        host_config.network_mode = Field::Set(NetworkMode::Bridge);
    }
    lifecycle::validate_policy(&host_config)?;
    host_opts::settle(c, engine_config, &mut host_config)?;
    let warnings = create_fields::settle(&mut host_config, &create_fields::Support::probe())?;
    // moby `daemon/daemon_unix.go`: an empty runtime is the default, stored by name.
    let runtime = (host_config.runtime.get())
        .filter(|r| !r.is_empty())
        .unwrap_or(&engine_config.default_runtime)
        .to_string();
    check_runtime(&runtime)?;
    host_config.runtime = Field::Set(runtime);
    let asked: ContainerConfig = serde_json::from_value(Value::Object(req.clone()))
        .map_err(|e| EngineError::InvalidArgument(format!("invalid Config: {e}")))?;
    let config = spec::merge_config(&asked, image_cfg);
    health::check(&config)?;
    let mounts = mounts::plan(c, &host_config, &asked, image_cfg)?;
    let args = config.args();
    if args.is_empty() {
        return Err(EngineError::InvalidArgument("No command specified".into()));
    }
    Ok(CreatePlan {
        host_config,
        networking,
        mode,
        net_peer,
        config,
        mounts,
        args,
        warnings,
    })
}

impl Engine {
    /// `POST /containers/create`.
    pub async fn container_create(
        &self,
        name: Option<String>,
        body: Map<String, Value>,
    ) -> Result<Created, EngineError> {
        self.container_create_as(name, body, None).await
    }

    /// `POST /containers/create` by a client with the authorization `role` that approved
    /// its host binds (kept with them: [`crate::BindPolicy`] applies at every start).
    pub async fn container_create_as(
        &self,
        name: Option<String>,
        body: Map<String, Value>,
        role: Option<&str>,
    ) -> Result<Created, EngineError> {
        self.create(name, body, role, true).await
    }

    /// The create: with `/.dockerenv` in the container's init layer or not
    /// ([`super::init_layer`]).
    #[tracing::instrument(skip_all, fields(container_id = tracing::field::Empty, container = tracing::field::Empty))]
    pub(super) async fn create(
        &self,
        name: Option<String>,
        body: Map<String, Value>,
        role: Option<&str>,
        dockerenv: bool,
    ) -> Result<Created, EngineError> {
        let c = &self.containers;
        let image_name = body
            .get("Image")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| EngineError::InvalidArgument("No image specified".into()))?
            .to_string();
        let image = self.images.resolve(&image_name).map_err(|e| match e {
            berth_image::store::StoreError::NoSuchImage(_) => {
                mounts::image::no_such_image(&image_name)
            }
            other => other.into(),
        })?;
        // The image's config blob is read from disk: off the async workers.
        let (store, image_id) = (self.images.clone(), image.id.clone());
        let image_cfg = crate::blocking::spawn(move || store.config(&image_id))
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??
            .config
            .unwrap_or_default();
        let CreatePlan {
            host_config,
            networking,
            mode,
            net_peer,
            mut config,
            mut mounts,
            args,
            warnings,
        } = plan_create(c, &self.config, &body, &image_cfg, &|r| {
            self.external_runtime(r).map(drop)
        })?;
        mounts::approve(&mut mounts, role);
        let mounted_images = mounts::image::resolve(&self.images, &mut mounts)?;
        let id = names::new_id()?;
        if config.hostname.get().is_none_or(String::is_empty) {
            // moby `daemon/create.go`: on the host's network, the host's name.
            let host = (mode == NetworkMode::Host)
                .then(|| nix::unistd::gethostname().ok()?.into_string().ok())
                .flatten();
            config.hostname = Field::Set(host.unwrap_or_else(|| id[..12].into()));
        }
        config.image = Field::Set(image_name.clone());
        let rec_name = match &name {
            Some(n) if !n.is_empty() => Some(names::validate(n)?),
            _ => None,
        };
        let rec = Record {
            version: RECORD_VERSION,
            id: id.clone(),
            name: String::new(),
            created: now_rfc3339(),
            image: image_name,
            image_id: image.id.clone(),
            path: args[0].clone(),
            args: args[1..].to_vec(),
            config,
            host_config,
            state: Default::default(),
            restart_count: 0,
            manually_stopped: false,
            image_mounts: mounted_images.clone(),
            hugepage_limits: Vec::new(),
        };
        // Reserve the name and insert, under one lock.
        let entry = {
            let mut map = c.map.lock().unwrap_or_else(|e| e.into_inner());
            let taken = |n: &str| {
                map.values()
                    .find(|e| e.rec().name == n)
                    .map(|e| e.rec().id.clone())
            };
            let name = match rec_name {
                Some(n) => {
                    if let Some(other) = taken(&n) {
                        return Err(EngineError::Conflict(format!(
                            "Conflict. The container name \"{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                        )));
                    }
                    n
                }
                None => {
                    let mut attempt = 0;
                    loop {
                        let n = format!("/{}", names::random_name(attempt)?);
                        if taken(&n).is_none() || attempt > 20 {
                            break n;
                        }
                        attempt += 1;
                    }
                }
            };
            let mut rec = rec;
            links::name_links(&mut rec.host_config, &name);
            rec.name = name;
            let entry = Entry::new(rec);
            map.insert(id.clone(), entry.clone());
            entry
        };
        let span = tracing::Span::current();
        span.record("container_id", tracing::field::display(&id));
        span.record("container", tracing::field::debug(&entry.rec().name));
        let dir = c.data_dir(&id);
        // Directories, volumes (a copy of the image's content into new ones) and the
        // record's fsync: off the async workers.
        let made = async {
            let (root, d) = (self.config().data_root.clone(), dir.clone());
            let mut image_layers = self.images.layer_diff_dirs(&entry.rec().image_id)?;
            image_layers.reverse();
            // Image mounts' subpaths are checked in their images now: the images cannot
            // change, so a subpath missing now would fail every start.
            let mut staging = mounts::Staging::new(
                &self.config.exec_root.join("binds").join(super::rid(&id)),
                None,
            );
            staging.images = mounts::image::layers(&self.images, &mounted_images)?;
            let volumes = crate::blocking::spawn(move || {
                std::fs::create_dir_all(d.join("rw/diff"))
                    .and_then(|()| std::fs::create_dir_all(d.join("rw/work")))
                    .and_then(|()| super::init_layer::make(&d, &image_layers, dockerenv))
                    .map_err(EngineError::io("cannot create", &d))?;
                mounts::image::check(&staging, &mounts, &d.join("empty"))?;
                mounts::materialize(&root, &d, mounts)
            })
            .await
            .map_err(|e| EngineError::Internal(e.to_string()))??;
            for name in volumes {
                self.emit_event("volume", "create", &name, &[("driver", "local")]);
            }
            c.save(&entry).await?;
            let r = entry.rec().clone();
            (c.networks)
                .register(
                    &id,
                    &r.name,
                    &r.config,
                    &r.host_config,
                    &networking,
                    net_peer,
                )
                .await
        }
        .await;
        if let Err(e) = made {
            c.map.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            let d = dir.clone();
            let _ = crate::blocking::spawn(move || std::fs::remove_dir_all(d)).await;
            return Err(e);
        }
        tracing::info!("container created");
        c.emit(&entry.rec(), "create", &[]);
        for w in &warnings {
            tracing::warn!(warning = %w, "container create");
        }
        Ok(Created { id, warnings })
    }
}

/// A json value for the create response.
pub fn created_json(c: &Created) -> Value {
    json!({"Id": c.id, "Warnings": c.warnings})
}
