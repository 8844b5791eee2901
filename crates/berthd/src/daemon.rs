//! Wiring: take the data-root lock, open the engine, bind the listeners, and serve until
//! SIGTERM/SIGINT; SIGHUP reloads the TLS files and the revocation list (closing the
//! connections of certificates it now revokes).

use std::fs;
use std::sync::Arc;

use anyhow::Context;
use berth_engine::{Drivers, Engine, OverlayMounter};
use berth_runtime::ShimRuntime;
use berth_server::{Endpoint, ListenerOptions, Server};
use berth_sys::pidfile::DaemonLock;
use tokio::signal::unix::{signal, SignalKind};
use tracing_subscriber::EnvFilter;

use crate::config::{DaemonConfig, LogFormat};

/// How long shutdown waits for open CRI connections to finish their calls.
const CRI_DRAIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Structured logs on stderr, as text or one JSON object per line. `BERTH_LOG` (an
/// `EnvFilter` directive) overrides the level.
pub fn init_logging(level: &str, format: LogFormat) {
    let level = if level == "fatal" { "error" } else { level };
    let filter = EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Runs the daemon to completion.
pub fn run(config: DaemonConfig) -> anyhow::Result<()> {
    // Adopt systemd's sockets while the process is still single-threaded (it edits the
    // environment).
    let activated = if config.hosts.iter().any(|h| matches!(h, Endpoint::Fd(_))) {
        let only = config.hosts.iter().find_map(|h| match h {
            Endpoint::Fd(n) => *n,
            _ => None,
        });
        berth_sys::activation::take_listeners(only).context("socket activation")?
    } else {
        Vec::new()
    };
    let notifier = berth_sys::activation::ServiceNotifier::take();

    let data_root = &config.engine.data_root;
    fs::create_dir_all(data_root)
        .with_context(|| format!("cannot create data root {}", data_root.display()))?;
    crate::preflight::check_storage(data_root)?;
    let _lock = DaemonLock::acquire(data_root, Some(&config.pidfile))?;

    // Every published port, API connection and container costs descriptors: take the
    // whole hard limit (the shims, so the containers, keep the limit berthd was given).
    match berth_sys::rlimit::raise_nofile() {
        Ok((before, now)) if before != now => {
            tracing::info!(before, now, "raised the open-file limit (RLIMIT_NOFILE)")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }

    if let Some(audit) = config.audit.clone() {
        let what = audit
            .path
            .as_ref()
            .map_or_else(|| "stderr".to_string(), |p| p.display().to_string());
        let log = berth_server::audit::AuditLog::open(audit)
            .with_context(|| format!("cannot open the audit log {what}"))?;
        berth_server::audit::install(log);
        tracing::info!(audit_log = %what, "audit log enabled");
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(config, activated, notifier))
}

async fn serve(
    config: DaemonConfig,
    activated: Vec<berth_sys::activation::ActivatedListener>,
    notifier: berth_sys::activation::ServiceNotifier,
) -> anyhow::Result<()> {
    let engine_config = config.engine.clone();
    // The concrete drivers: a berth-shim per container under the exec root, overlayfs,
    // and the network manager over the data root.
    let (data_root, net_config) = (
        engine_config.data_root.clone(),
        engine_config.network.clone(),
    );
    let drivers = Drivers {
        // Shims live in `<cgroup-parent>/shims`, out of berthd's (service) cgroup.
        runtime: Arc::new(
            ShimRuntime::new(shim_binary(), &engine_config.exec_root)
                .with_shim_cgroup(engine_config.shim_cgroup())
                // `BERTH_LOG=berth_shim=debug`: each shim's debug log (its start steps'
                // timings, libcontainer's messages) in its `shim.log`.
                .with_debug(tracing::enabled!(
                    target: "berth_shim",
                    tracing::Level::DEBUG
                )),
        ),
        rootfs: Arc::new(OverlayMounter),
        network: Box::new(move |hooks| {
            let manager = berth_network::manager::Manager::open(&data_root, net_config, hooks)?;
            Ok(manager as Arc<dyn berth_network::NetworkDriver>)
        }),
    };
    // Every listener first (the API, the CRI socket, metrics): a daemon that cannot serve
    // refuses to start before the engine makes anything on the host (bridges, firewall
    // chains, restored containers).
    let opts = ListenerOptions {
        socket_gid: config.socket_gid,
        authorization: config.authorization.clone(),
    };
    let server = Server::bind(&config.hosts, config.tls.clone(), activated, &opts).await?;
    let bound_extras = async {
        let cri = match &config.cri_socket {
            Some(path) => Some(berth_cri::CriServer::bind(
                path,
                config.cri_cni.clone(),
                config.cri_stream,
            )?),
            None => None,
        };
        let metrics = match config.metrics_addr {
            Some(addr) => Some(berth_server::metrics::MetricsServer::bind(addr).await?),
            None => None,
        };
        anyhow::Ok((cri, metrics))
    };
    let (cri, metrics) = match bound_extras.await {
        Ok(bound) => bound,
        Err(e) => {
            server.abandon();
            return Err(e);
        }
    };
    let engine = match Engine::new(engine_config, drivers).await {
        Ok(engine) => engine,
        Err(e) => {
            server.abandon();
            return Err(e.into());
        }
    };
    let engine_at_exit = engine.clone();

    // The Kubernetes CRI API, on its own socket, stopped after the Docker API listeners.
    let (cri_stop, cri_stopped) = tokio::sync::watch::channel(false);
    let cri = cri.map(|cri| {
        let mut stopped = cri_stopped.clone();
        tokio::spawn(cri.serve(engine.clone(), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    });

    // Prometheus metrics, on loopback, stopped with the Docker API listeners.
    let (metrics_stop, metrics_stopped) = tokio::sync::watch::channel(false);
    let metrics = metrics.map(|m| {
        if let Some(local) = m.local_addr() {
            tracing::info!(listen = %local, "metrics endpoint listening (GET /metrics)");
        }
        let mut stopped = metrics_stopped;
        tokio::spawn(m.serve(engine.clone(), async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
    });

    // SIGHUP reloads the TLS files; without TLS it is logged and ignored (its default
    // action would kill the daemon).
    let reloader = server.tls_reloader();
    let mut hup = signal(SignalKind::hangup()).context("cannot watch SIGHUP")?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match &reloader {
                None => tracing::info!("SIGHUP: no TLS listener, nothing to reload"),
                Some(r) => {
                    // Reading the files blocks: off the async workers.
                    let r = r.clone();
                    match tokio::task::spawn_blocking(move || r.reload()).await {
                        Ok(Ok(done)) => tracing::info!(
                            revoked = done.revoked,
                            closed = done.closed,
                            "SIGHUP: TLS certificates and revocation list reloaded; new connections use them, connections of revoked certificates closed"
                        ),
                        Ok(Err(e)) => tracing::error!(
                            error = %e,
                            "SIGHUP: TLS reload failed; keeping the previous certificates"
                        ),
                        Err(e) => tracing::error!(
                            error = %e,
                            "SIGHUP: TLS reload failed; keeping the previous certificates"
                        ),
                    }
                }
            }
        }
    });

    // SIGUSR1 writes a state dump under the exec root (dockerd writes goroutine stacks).
    let dump_dir = config.engine.exec_root.clone();
    let mut usr1 = signal(SignalKind::user_defined1()).context("cannot watch SIGUSR1")?;
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            let load = crate::dump::RuntimeLoad::current();
            let dir = dump_dir.clone();
            match tokio::task::spawn_blocking(move || crate::dump::write(&dir, load)).await {
                Ok(Ok(path)) => {
                    tracing::info!(path = %path.display(), "SIGUSR1: state dump written")
                }
                Ok(Err(e)) => {
                    tracing::error!(error = %format!("{e:#}"), "SIGUSR1: state dump failed")
                }
                Err(e) => tracing::error!(error = %e, "SIGUSR1: state dump failed"),
            }
        }
    });

    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    let shutdown = async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        "berthd has completed initialization"
    );
    // A `Type=notify` unit (packaging/deb/berthd.service) waits for this.
    if let Err(e) = notifier.ready() {
        tracing::warn!(error = %e, "cannot notify the service manager that berthd is ready");
    }
    // Start-up code (config, recovery, network set-up) is not needed while idle: it goes
    // once the background set-up is done, off the path of the first requests (paging the
    // executable out before serving made the first request fault it back in from disk).
    let engine_started = engine_at_exit.clone();
    tokio::spawn(async move {
        engine_started.started().await;
        let _ = tokio::task::spawn_blocking(berth_sys::memory::release_startup_memory).await;
        crate::heap::spawn_trimmer();
    });
    server.serve(engine.clone(), shutdown).await;
    if let Some(task) = metrics {
        let _ = metrics_stop.send(true);
        let abort = task.abort_handle();
        if tokio::time::timeout(CRI_DRAIN, task).await.is_err() {
            abort.abort();
        }
    }
    if let Some(task) = cri {
        let _ = cri_stop.send(true);
        // A kubelet may keep its connection open: after a bound, the task is dropped, and
        // its socket file with it.
        let abort = task.abort_handle();
        if tokio::time::timeout(CRI_DRAIN, task).await.is_err() {
            tracing::warn!("CRI connections still open after {CRI_DRAIN:?}; closing them");
            abort.abort();
        }
    }
    engine_at_exit.shutdown().await;
    tracing::info!("berthd stopped");
    Ok(())
}

/// `$BERTH_SHIM`, else `berth-shim` next to this executable.
fn shim_binary() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("BERTH_SHIM").filter(|p| !p.is_empty()) {
        return p.into();
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("berth-shim")))
        .unwrap_or_else(|| "berth-shim".into())
}
