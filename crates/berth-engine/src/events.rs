//! The engine's event bus: what `GET /events` streams.
//!
//! Every operation that changes an object calls [`Engine::emit_event`] (or
//! [`EventBus::emit`] where only the bus is at hand, as in the container exit task). The
//! bus keeps the last [`HISTORY`] events for `since` (dockerd keeps 256,
//! `daemon/events/events.go`) and broadcasts each one to live subscribers. It does not
//! know HTTP: the server turns a [`Subscription`] into JSON lines.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_api_types::filters::Filters;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::{Engine, EngineError};

/// How many past events `since` can replay (as dockerd).
pub const HISTORY: usize = 256;

/// One event, as dockerd's `events.Message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `container`, `image`, `network`, `volume`, `daemon`, …
    pub typ: String,
    pub action: String,
    pub actor_id: String,
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub time_nano: i64,
}

impl Event {
    /// Docker's wire shape, with the legacy `status`/`id`/`from` fields for containers and
    /// images (moby `daemon/events/events.go` `Log`).
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "Type": self.typ,
            "Action": self.action,
            "Actor": {"ID": self.actor_id, "Attributes": self.attributes},
            "scope": "local",
            "time": self.time_nano.div_euclid(1_000_000_000),
            "timeNano": self.time_nano,
        });
        if self.typ == "container" || self.typ == "image" {
            v["status"] = json!(self.action);
            v["id"] = json!(self.actor_id);
        }
        if self.typ == "container" {
            if let Some(image) = self.attributes.get("image") {
                v["from"] = json!(image);
            }
        }
        v
    }

    /// The action without its detail (`exec_start: sh` → `exec_start`), as dockerd's filter.
    fn base_action(&self) -> &str {
        self.action
            .split_once(':')
            .map_or(self.action.as_str(), |(a, _)| a)
    }
}

/// Filters `GET /events` accepts.
const FILTERS: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// The parsed `filters` of `GET /events` (moby `daemon/events/filter.go`).
#[derive(Debug, Clone, Default)]
pub struct EventFilter(Filters);

impl EventFilter {
    pub fn new(filters: Filters) -> Result<EventFilter, EngineError> {
        filters.allow_only(FILTERS).map_err(EngineError::from)?;
        for t in filters.get("type") {
            const TYPES: &[&str] = &[
                "builder",
                "config",
                "container",
                "daemon",
                "image",
                "network",
                "node",
                "plugin",
                "secret",
                "service",
                "volume",
            ];
            if !TYPES.contains(&t.as_str()) {
                return Err(EngineError::InvalidArgument(format!(
                    "Invalid filter: 'type'='{t}'"
                )));
            }
        }
        Ok(EventFilter(filters))
    }

    pub fn matches(&self, e: &Event) -> bool {
        let f = &self.0;
        let any = |name: &str, pred: &dyn Fn(&str) -> bool| {
            let vals = f.get(name);
            vals.is_empty() || vals.iter().any(|v| pred(v))
        };
        let name = e.attributes.get("name").map(String::as_str).unwrap_or("");
        // dockerd's `fuzzyMatchName`: an ID or name prefix, whatever the event's type.
        let fuzzy =
            |v: &str| e.actor_id.starts_with(v) || (!name.is_empty() && name.starts_with(v));
        any("type", &|v| e.typ == v)
            && any("event", &|v| e.action == v || e.base_action() == v)
            && any("scope", &|v| v == "local")
            && any("container", &fuzzy)
            && any("image", &|v| {
                let attr = if e.typ == "image" { "name" } else { "image" };
                let image = e.attributes.get(attr).map(String::as_str).unwrap_or("");
                e.actor_id == v
                    || image == v
                    || strip_tag(&e.actor_id) == v
                    || strip_tag(image) == v
            })
            && any("network", &fuzzy)
            && any("volume", &fuzzy)
            && any("daemon", &fuzzy)
            && any("plugin", &fuzzy)
            && any("config", &fuzzy)
            && any("secret", &fuzzy)
            && any("service", &fuzzy)
            && any("node", &fuzzy)
            && f.get("label").iter().all(|l| match l.split_once('=') {
                Some((k, v)) => e.attributes.get(k).is_some_and(|a| a == v),
                None => e.attributes.contains_key(l.as_str()),
            })
    }
}

/// `busybox:latest` → `busybox` (dockerd matches an image filter with and without the tag).
fn strip_tag(name: &str) -> &str {
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rfind(':') {
        Some(i) => &name[..name.len() - last.len() + i],
        None => name,
    }
}

/// The history and the live broadcast.
#[derive(Debug)]
pub struct EventBus {
    history: Mutex<VecDeque<Event>>,
    live: broadcast::Sender<Event>,
}

/// What a `GET /events` caller reads: the past events it asked for, then the live ones.
#[derive(Debug)]
pub struct Subscription {
    pub past: Vec<Event>,
    pub live: broadcast::Receiver<Event>,
}

impl Default for EventBus {
    fn default() -> Self {
        EventBus {
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            live: broadcast::channel(1024).0,
        }
    }
}

pub(crate) fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

impl EventBus {
    /// Records and broadcasts one event stamped now.
    pub fn emit(&self, typ: &str, action: &str, id: &str, attributes: &[(&str, &str)]) {
        let ev = Event {
            typ: typ.into(),
            action: action.into(),
            actor_id: id.into(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            time_nano: 0,
        };
        self.publish(ev);
    }

    /// Records and broadcasts an event made by the caller (with its own attributes map),
    /// stamped now.
    pub fn publish(&self, mut ev: Event) {
        let mut h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        ev.time_nano = now_nanos();
        // Keep history in time order even if the clock steps back.
        if let Some(last) = h.back() {
            ev.time_nano = ev.time_nano.max(last.time_nano);
        }
        tracing::debug!(r#type = %ev.typ, action = %ev.action, id = %ev.actor_id, "event");
        if h.len() == HISTORY {
            h.pop_front();
        }
        h.push_back(ev.clone());
        // Sent under the history lock, so a subscriber sees each event once: either in its
        // `past` or on its receiver.
        let _ = self.live.send(ev);
    }

    /// An image event: dockerd names the image in the `name` attribute.
    pub fn image(&self, action: &str, id: &str, name: &str) {
        self.emit("image", action, id, &[("name", name)]);
    }

    /// The history at or after `since_nanos` (none when `None`) and a live receiver.
    pub fn subscribe(&self, since_nanos: Option<i64>) -> Subscription {
        let h = self.history.lock().unwrap_or_else(|e| e.into_inner());
        let past = match since_nanos {
            Some(s) => h.iter().filter(|e| e.time_nano >= s).cloned().collect(),
            None => Vec::new(),
        };
        Subscription {
            past,
            live: self.live.subscribe(),
        }
    }
}

impl Engine {
    /// Publishes one event: `typ` (`container`, `image`, …), `action` (`create`, `pull`,
    /// …), the actor's ID, and its attributes (`name`, `image`, `exitCode`, …).
    pub fn emit_event(&self, typ: &str, action: &str, id: &str, attributes: &[(&str, &str)]) {
        self.events.emit(typ, action, id, attributes);
    }

    /// `untag` and `delete` events for what `DELETE /images/{name}` removed. dockerd names
    /// the image ID as the actor of both; an untag item carries only the reference, so the
    /// reference is the actor there.
    pub(crate) fn image_delete_events(
        &self,
        items: &impl AsRef<[berth_api_types::image::DeleteItem]>,
    ) {
        use berth_api_types::image::DeleteItem;
        for item in items.as_ref() {
            match item {
                DeleteItem::Untagged(r) => self.emit_event("image", "untag", r, &[("name", r)]),
                DeleteItem::Deleted(id) => self.emit_event("image", "delete", id, &[("name", id)]),
            }
        }
    }

    /// `load` events from the lines `docker load` prints.
    pub(crate) fn image_load_events(&self, lines: &[String]) {
        for l in lines {
            let name = l
                .strip_prefix("Loaded image: ")
                .or_else(|| l.strip_prefix("Loaded image ID: "))
                .map(str::trim);
            if let Some(n) = name {
                self.emit_event("image", "load", n, &[("name", n)]);
            }
        }
    }

    /// `GET /events`: the history since `since_nanos` and the live events after it.
    pub fn events_subscribe(&self, since_nanos: Option<i64>) -> Subscription {
        self.events.subscribe(since_nanos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(typ: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            typ: typ.into(),
            action: action.into(),
            actor_id: id.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            time_nano: 1_700_000_000_123_456_789,
        }
    }

    fn filter(raw: &str) -> EventFilter {
        EventFilter::new(Filters::parse(Some(raw)).unwrap()).unwrap()
    }

    #[test]
    fn wire_shape_has_legacy_fields_for_containers_and_images() {
        let c = ev(
            "container",
            "die",
            "abc",
            &[("image", "busybox"), ("exitCode", "3")],
        );
        let j = c.to_json();
        assert_eq!(j["status"], "die");
        assert_eq!(j["id"], "abc");
        assert_eq!(j["from"], "busybox");
        assert_eq!(j["time"], 1_700_000_000);
        assert_eq!(j["timeNano"], 1_700_000_000_123_456_789i64);
        assert_eq!(j["scope"], "local");
        assert_eq!(j["Actor"]["Attributes"]["exitCode"], "3");
        let i = ev("image", "pull", "busybox:latest", &[("name", "busybox")]).to_json();
        assert_eq!(i["status"], "pull");
        assert!(i.get("from").is_none());
        let n = ev("network", "connect", "n1", &[]).to_json();
        assert!(n.get("status").is_none() && n.get("id").is_none());
    }

    #[test]
    fn filters_match_like_dockerd() {
        let c = ev(
            "container",
            "exec_start: sh -c true",
            "0123456789abcdef",
            &[
                ("name", "web"),
                ("image", "busybox:latest"),
                ("tier", "front"),
            ],
        );
        assert!(filter(r#"{"type":["container"]}"#).matches(&c));
        assert!(!filter(r#"{"type":["image"]}"#).matches(&c));
        assert!(filter(r#"{"event":["exec_start"]}"#).matches(&c));
        assert!(filter(r#"{"event":["die","exec_start"]}"#).matches(&c));
        assert!(!filter(r#"{"event":["die"]}"#).matches(&c));
        assert!(filter(r#"{"container":["web"]}"#).matches(&c));
        assert!(filter(r#"{"container":["0123"]}"#).matches(&c));
        assert!(!filter(r#"{"container":["other"]}"#).matches(&c));
        assert!(filter(r#"{"image":["busybox"]}"#).matches(&c));
        assert!(filter(r#"{"image":["busybox:latest"]}"#).matches(&c));
        assert!(filter(r#"{"label":["tier=front"]}"#).matches(&c));
        assert!(filter(r#"{"label":["tier"]}"#).matches(&c));
        assert!(!filter(r#"{"label":["tier=back"]}"#).matches(&c));
        assert!(!filter(r#"{"network":["n"]}"#).matches(&c));
        let i = ev(
            "image",
            "tag",
            "sha256:aa",
            &[("name", "localhost:5000/x:1")],
        );
        assert!(filter(r#"{"image":["localhost:5000/x"]}"#).matches(&i));
        assert!(filter(r#"{"image":["sha256:aa"]}"#).matches(&i));
    }

    #[test]
    fn bad_filters_are_refused() {
        let bad = |raw: &str| EventFilter::new(Filters::parse(Some(raw)).unwrap()).is_err();
        assert!(bad(r#"{"nope":["x"]}"#));
        assert!(bad(r#"{"type":["cat"]}"#));
        assert!(!bad(r#"{"type":["volume"]}"#));
    }

    #[test]
    fn history_is_bounded_and_since_selects() {
        let bus = EventBus::default();
        for i in 0..(HISTORY + 10) {
            bus.emit("container", "create", &i.to_string(), &[]);
        }
        let all = bus.subscribe(Some(0)).past;
        assert_eq!(all.len(), HISTORY);
        assert_eq!(all[0].actor_id, "10");
        assert!(bus.subscribe(None).past.is_empty());
        assert!(bus.subscribe(Some(i64::MAX)).past.is_empty());
    }

    #[tokio::test]
    async fn live_subscribers_get_new_events() {
        let bus = EventBus::default();
        let mut sub = bus.subscribe(None);
        bus.emit(
            "image",
            "pull",
            "busybox:latest",
            &[("name", "busybox:latest")],
        );
        let got = sub.live.recv().await.unwrap();
        assert_eq!(got.action, "pull");
        assert_eq!(got.attributes["name"], "busybox:latest");
    }

    #[test]
    fn strips_tags_not_registry_ports() {
        assert_eq!(strip_tag("busybox:latest"), "busybox");
        assert_eq!(strip_tag("localhost:5000/x"), "localhost:5000/x");
        assert_eq!(strip_tag("localhost:5000/x:1"), "localhost:5000/x");
    }
}
