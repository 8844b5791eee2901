//! `berth events` (`system events`): the daemon's event stream, printed as docker's
//! `cli/command/system/events.go` prints it (time, type, action, actor, sorted attributes),
//! or through `--format` (`json` or a template over the daemon's raw JSON, so the legacy
//! `status`/`id`/`from` fields stay reachable).
//!
//! `--since`/`--until` are converted here to `seconds.nanoseconds` as the docker CLI does,
//! so a duration counts back from the client's clock.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_api_types::timestamp;
use clap::Args;
use futures_util::StreamExt;
use http::Method;
use serde_json::Value;

use crate::error::Error;
use crate::format::Template;
use crate::timefmt::rfc3339_nano_fixed;
use crate::{write_out, Session};

#[derive(Debug, Clone, Args)]
pub struct EventsArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    /// Format output using a custom template:
    /// 'json':             Print in JSON format
    /// 'TEMPLATE':         Print output using the given Go template
    #[arg(long, value_name = "string", verbatim_doc_comment)]
    pub format: Option<String>,
    /// Show all events created since timestamp
    #[arg(long, value_name = "string")]
    pub since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long, value_name = "string")]
    pub until: Option<String>,
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The query string of `GET /events`.
pub fn events_query(args: &EventsArgs, now: i64) -> Result<String, Error> {
    let filters = crate::request::parse_filters(&args.filter, "-f, --filter")?;
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (key, value) in [("since", &args.since), ("until", &args.until)] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            let t = timestamp::parse_nanos(v, now).map_err(|e| Error::client(e.to_string()))?;
            q.append_pair(key, &timestamp::to_wire(t));
        }
    }
    if !filters.is_empty() {
        let mut sorted: Vec<_> = filters.into_iter().collect();
        sorted.sort();
        let map: serde_json::Map<String, Value> = sorted
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect();
        q.append_pair("filters", &Value::Object(map).to_string());
    }
    Ok(q.finish())
}

/// docker's default line: `2024-01-02T03:04:05.000000001Z container start <id> (k=v, ...)`.
pub fn event_line(e: &Value) -> String {
    let nanos = e.get("timeNano").and_then(Value::as_i64).unwrap_or(0);
    let mut out = String::new();
    if nanos != 0 {
        out.push_str(&rfc3339_nano_fixed(nanos));
        out.push(' ');
    } else if let Some(t) = e.get("time").and_then(Value::as_i64).filter(|t| *t != 0) {
        out.push_str(&rfc3339_nano_fixed(t.saturating_mul(1_000_000_000)));
        out.push(' ');
    }
    let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_string();
    let actor = e.get("Actor");
    out.push_str(&format!(
        "{} {} {}",
        s(e.get("Type")),
        s(e.get("Action")),
        s(actor.and_then(|a| a.get("ID")))
    ));
    if let Some(Value::Object(attrs)) = actor.and_then(|a| a.get("Attributes")) {
        if !attrs.is_empty() {
            let mut kv: Vec<String> = attrs
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            kv.sort();
            out.push_str(&format!(" ({})", kv.join(", ")));
        }
    }
    out.push('\n');
    out
}

/// `events`.
pub async fn events(session: &Session, args: &EventsArgs) -> Result<(), Error> {
    let query = events_query(args, now_nanos())?;
    let template = match args.format.as_deref() {
        None | Some("") => None,
        Some("json") => Some(None),
        Some(f) => Some(Some(
            Template::parse(f).map_err(|e| Error::client(e.to_string()))?,
        )),
    };
    let client = session.client().await?;
    let docker = client
        .docker()
        .clone()
        .with_timeout(std::time::Duration::from_secs(365 * 24 * 3600));
    let mut body =
        crate::request::raw_request(&docker, Method::GET, format!("/events?{query}"), Vec::new());
    let mut buf: Vec<u8> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| client.explain(e))?;
        buf.extend_from_slice(&chunk);
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let text = match &template {
                None => event_line(&v),
                Some(None) => format!("{v}\n"),
                Some(Some(t)) => {
                    let mut s = t.render(&v).map_err(|e| Error::client(e.to_string()))?;
                    s.push('\n');
                    s
                }
            };
            write_out(&text)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn default_line_is_dockers() {
        let e = json!({
            "Type": "container", "Action": "die",
            "Actor": {"ID": "abc", "Attributes": {"name": "web", "exitCode": "3", "image": "busybox"}},
            "time": 1_700_000_000, "timeNano": 1_700_000_000_000_000_001i64,
        });
        assert_eq!(
            event_line(&e),
            "2023-11-14T22:13:20.000000001Z container die abc (exitCode=3, image=busybox, name=web)\n"
        );
        let bare = json!({"Type": "image", "Action": "pull", "Actor": {"ID": "x", "Attributes": {}}, "time": 0});
        assert_eq!(event_line(&bare), "image pull x\n");
    }

    #[test]
    fn query_converts_times_and_filters() {
        let args = EventsArgs {
            filter: vec!["event=die".into(), "container=web".into()],
            format: None,
            since: Some("10s".into()),
            until: Some("1700000000".into()),
        };
        let q = events_query(&args, 1_700_000_100_000_000_000).unwrap();
        assert!(q.contains("since=1700000090.000000000"), "{q}");
        assert!(q.contains("until=1700000000.000000000"), "{q}");
        assert!(
            q.contains(
                "filters=%7B%22container%22%3A%5B%22web%22%5D%2C%22event%22%3A%5B%22die%22%5D%7D"
            ),
            "{q}"
        );
        let bad = EventsArgs {
            since: Some("yesterday".into()),
            ..args
        };
        assert!(events_query(&bad, 0).is_err());
    }
}
