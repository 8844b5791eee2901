//! Fakes of the engine's drivers for its unit tests: [`FakeRuntime`] keeps containers in
//! memory, records every call, and ends a container when a test says so
//! ([`FakeRuntime::exit`]) or when it is sent SIGKILL or SIGTERM (exit code 128 + signal,
//! as a shell init would); [`NoMount`] mounts nothing. Neither needs root.
//!
//! The pid a fake container reports is the test process's own: the engine opens a pidfd
//! on it and reads its start time, and never signals it (signals go through the runtime).

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use berth_runtime::{
    AttachStreams, ContainerStart, ExecProcess, ExecState, ExitRecord, Runtime, RuntimeError,
    RuntimeFuture, Started, State, Status,
};
use tokio::net::UnixStream;
use tokio::sync::watch;

use super::rootfs::RootfsMounter;
use crate::system::now_rfc3339;

/// One fake container: its exit, once it has one.
#[derive(Debug)]
struct Ctr {
    started: bool,
    exit: watch::Sender<Option<ExitRecord>>,
}

/// An in-memory [`Runtime`].
#[derive(Debug, Default)]
pub(crate) struct FakeRuntime {
    ctrs: Mutex<HashMap<String, Ctr>>,
    calls: Mutex<Vec<String>>,
    /// The spec of each container's last create, as JSON.
    specs: Mutex<HashMap<String, serde_json::Value>>,
}

fn pid() -> i32 {
    i32::try_from(std::process::id()).unwrap_or(i32::MAX)
}

/// The runtime's name for a container (the engine's `rid`).
fn rid(id: &str) -> &str {
    id.get(..24).unwrap_or(id)
}

impl FakeRuntime {
    /// Every call so far, one line each: `"<op> <rid>"`, `"kill <rid> <signal>"`.
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// How many calls of `op` there were for container `id`.
    pub(crate) fn count(&self, op: &str, id: &str) -> usize {
        let prefix = format!("{op} {}", rid(id));
        self.calls()
            .iter()
            .filter(|c| c.starts_with(&prefix))
            .count()
    }

    /// The OCI spec container `id` was last created with, as JSON.
    pub(crate) fn spec(&self, id: &str) -> Option<serde_json::Value> {
        let specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        specs.get(rid(id)).cloned()
    }

    /// Whether the runtime still holds container `id` (created and not deleted).
    pub(crate) fn holds(&self, id: &str) -> bool {
        self.lock().contains_key(rid(id))
    }

    /// Ends container `id` (its full id or the runtime's name) with `code`; false when it
    /// is not running.
    pub(crate) fn exit(&self, id: &str, code: i32) -> bool {
        self.end(rid(id), code, None)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Ctr>> {
        self.ctrs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, call: String) {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }

    fn end(&self, rid: &str, code: i32, signal: Option<i32>) -> bool {
        let ctrs = self.lock();
        let Some(c) = ctrs.get(rid).filter(|c| c.started) else {
            return false;
        };
        c.exit.send_if_modified(|e| {
            if e.is_some() {
                return false;
            }
            *e = Some(ExitRecord {
                exit_code: code,
                signal,
                oom_killed: false,
                started_at: None,
                finished_at: now_rfc3339(),
                error: None,
            });
            true
        })
    }

    fn running(&self, id: &str) -> Result<(), RuntimeError> {
        match self.lock().get(id) {
            Some(c) if c.started && c.exit.borrow().is_none() => Ok(()),
            Some(_) => Err(RuntimeError::NotRunning(format!(
                "Container {id} is not running"
            ))),
            None => Err(RuntimeError::NotFound(id.to_string())),
        }
    }
}

impl Runtime for FakeRuntime {
    fn create(&self, req: ContainerStart) -> RuntimeFuture<'_, Started> {
        Box::pin(async move {
            self.record(format!("create {}", req.id));
            if let Ok(spec) = serde_json::to_value(&req.spec) {
                let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
                specs.insert(req.id.clone(), spec);
            }
            let mut ctrs = self.lock();
            if ctrs.contains_key(&req.id) {
                return Err(RuntimeError::Conflict(format!(
                    "container {} already exists",
                    req.id
                )));
            }
            let started = !req.defer_start;
            let exit = watch::channel(None).0;
            ctrs.insert(req.id, Ctr { started, exit });
            Ok(Started {
                pid: pid(),
                shim_pid: pid(),
            })
        })
    }

    fn start<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            self.record(format!("start {id}"));
            match self.lock().get_mut(id) {
                Some(c) if !c.started => {
                    c.started = true;
                    Ok(())
                }
                Some(_) => Err(RuntimeError::Conflict(format!("{id} already started"))),
                None => Err(RuntimeError::NotFound(id.to_string())),
            }
        })
    }

    fn state<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, State> {
        Box::pin(async move {
            let ctrs = self.lock();
            let c = ctrs
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
            let exit = c.exit.borrow().clone();
            let status = match (&exit, c.started) {
                (Some(_), _) => Status::Stopped,
                (None, true) => Status::Running,
                (None, false) => Status::Created,
            };
            Ok(State {
                id: id.to_string(),
                status,
                pid: pid(),
                shim_pid: pid(),
                tty: false,
                started_at: None,
                exit,
                exit_notify: false,
            })
        })
    }

    fn kill<'a>(&'a self, id: &'a str, signal: i32, all: bool) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            self.record(format!(
                "kill {id} {signal}{}",
                if all { " all" } else { "" }
            ));
            self.running(id)?;
            use nix::sys::signal::Signal::{SIGKILL, SIGTERM};
            if signal == SIGKILL as i32 || signal == SIGTERM as i32 {
                self.end(id, 128 + signal, Some(signal));
            }
            Ok(())
        })
    }

    fn wait<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ExitRecord> {
        Box::pin(async move {
            self.record(format!("wait {id}"));
            let mut rx = {
                let ctrs = self.lock();
                let c = ctrs
                    .get(id)
                    .ok_or_else(|| RuntimeError::NotFound(id.to_string()))?;
                c.exit.subscribe()
            };
            let exit = rx
                .wait_for(Option::is_some)
                .await
                .map_err(|_| RuntimeError::NotFound(id.to_string()))?
                .clone();
            exit.ok_or_else(|| RuntimeError::Internal("no exit".into()))
        })
    }

    fn attach<'a>(&'a self, id: &'a str, _: AttachStreams) -> RuntimeFuture<'a, UnixStream> {
        Box::pin(async move {
            self.record(format!("attach {id}"));
            self.running(id)?;
            let (ours, _theirs) =
                UnixStream::pair().map_err(|e| RuntimeError::Internal(e.to_string()))?;
            Ok(ours)
        })
    }

    fn resize<'a>(&'a self, id: &'a str, _: u16, _: u16) -> RuntimeFuture<'a, ()> {
        Box::pin(async move { self.running(id) })
    }

    fn pause<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            self.record(format!("pause {id}"));
            self.running(id)
        })
    }

    fn resume<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            self.record(format!("resume {id}"));
            self.running(id)
        })
    }

    fn reopen_log<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            self.record(format!("reopen_log {id}"));
            self.running(id)
        })
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        exec_id: &'a str,
        _: ExecProcess,
        _: bool,
    ) -> RuntimeFuture<'a, (i32, Option<UnixStream>)> {
        Box::pin(async move {
            self.record(format!("exec {id} {exec_id}"));
            self.running(id)?;
            Err(RuntimeError::Internal(
                "the fake runtime runs no execs".into(),
            ))
        })
    }

    fn exec_state<'a>(&'a self, id: &'a str, exec_id: &'a str) -> RuntimeFuture<'a, ExecState> {
        Box::pin(async move {
            self.running(id)?;
            Err(RuntimeError::NotFound(exec_id.to_string()))
        })
    }

    fn exec_wait<'a>(&'a self, id: &'a str, exec_id: &'a str) -> RuntimeFuture<'a, ExecState> {
        self.exec_state(id, exec_id)
    }

    fn exec_resize<'a>(
        &'a self,
        id: &'a str,
        exec_id: &'a str,
        _: u16,
        _: u16,
    ) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            self.running(id)?;
            Err(RuntimeError::NotFound(exec_id.to_string()))
        })
    }

    fn delete<'a>(&'a self, id: &'a str) -> RuntimeFuture<'a, ()> {
        Box::pin(async move {
            self.record(format!("delete {id}"));
            let mut ctrs = self.lock();
            match ctrs.get(id) {
                None => Err(RuntimeError::NotFound(id.to_string())),
                Some(c) if c.started && c.exit.borrow().is_none() => Err(RuntimeError::Conflict(
                    format!("cannot remove container {id}: container is running"),
                )),
                Some(_) => {
                    ctrs.remove(id);
                    Ok(())
                }
            }
        })
    }

    fn list(&self) -> RuntimeFuture<'_, Vec<String>> {
        Box::pin(async move {
            let mut ids: Vec<String> = self.lock().keys().cloned().collect();
            ids.sort();
            Ok(ids)
        })
    }
}

/// A rootfs "mount" that leaves the (empty) directory as it is.
#[derive(Debug, Default)]
pub(crate) struct NoMount;

impl RootfsMounter for NoMount {
    fn mount(&self, _: &Path, _: &[PathBuf], _: &Path, _: &Path) -> io::Result<()> {
        Ok(())
    }

    fn unmount(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
}
