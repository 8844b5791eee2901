//! The requests being answered right now, for berthd's SIGUSR1 state dump: each request
//! registers on arrival and leaves when its answer's head is ready (a streamed body, such
//! as `logs --follow` or an attach, is then the connection's, not listed here).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// One request being answered.
#[derive(Debug, Clone)]
pub struct InFlight {
    pub id: String,
    pub method: String,
    pub path: String,
    pub client: String,
    pub running_for: Duration,
}

struct Entry {
    method: String,
    path: String,
    client: String,
    since: Instant,
}

fn table() -> &'static Mutex<BTreeMap<String, Entry>> {
    static TABLE: OnceLock<Mutex<BTreeMap<String, Entry>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// Listed while alive.
pub struct Registration(String);

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut t) = table().lock() {
            t.remove(&self.0);
        }
    }
}

/// Lists a request until the returned value is dropped.
pub fn register(id: &str, method: &str, path: &str, client: &str) -> Registration {
    if let Ok(mut t) = table().lock() {
        t.insert(
            id.to_string(),
            Entry {
                method: method.to_string(),
                path: path.to_string(),
                client: client.to_string(),
                since: Instant::now(),
            },
        );
    }
    Registration(id.to_string())
}

/// The requests being answered, the longest-running first.
pub fn snapshot() -> Vec<InFlight> {
    let mut out: Vec<InFlight> = match table().lock() {
        Ok(t) => t
            .iter()
            .map(|(id, e)| InFlight {
                id: id.clone(),
                method: e.method.clone(),
                path: e.path.clone(),
                client: e.client.clone(),
                running_for: e.since.elapsed(),
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort_by_key(|f| std::cmp::Reverse(f.running_for));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_while_registered() {
        let r = register("test-1", "GET", "/containers/json", "uid=0");
        let listed = snapshot();
        assert!(listed
            .iter()
            .any(|f| f.id == "test-1" && f.path == "/containers/json" && f.method == "GET"));
        drop(r);
        assert!(!snapshot().iter().any(|f| f.id == "test-1"));
    }
}
