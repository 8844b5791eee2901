//! `GET /events`: the engine's event history since `since`, then live events until `until`
//! (or until the client goes), as JSON lines in Docker's message shape.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use berth_api_types::filters::Filters;
use berth_api_types::timestamp::parse_nanos;
use berth_engine::events::{Event, EventFilter};
use tokio::sync::broadcast::error::RecvError;

use super::body::receiver_body;
use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route("/events", get(events))
}

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn line(e: &Event) -> Bytes {
    let mut b = serde_json::to_vec(&e.to_json()).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

async fn events(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let now = now_nanos();
    let time = |key: &str| -> Result<Option<i64>, ApiError> {
        match q.get(key).map(str::trim) {
            None | Some("") => Ok(None),
            Some(v) => parse_nanos(v, now).map(Some).map_err(ApiError::from),
        }
    };
    let since = time("since")?;
    let until = time("until")?;
    if let (Some(s), Some(u)) = (since, until) {
        if s > u {
            return Err(ApiError::bad_request(
                "`since` time can't be after `until` time",
            ));
        }
    }
    let filters = Filters::parse(q.get("filters")).map_err(ApiError::from)?;
    let filter = EventFilter::new(filters)?;
    let sub = engine.events_subscribe(since);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let before_until = |e: &Event| until.is_none_or(|u| e.time_nano <= u);
        for e in sub
            .past
            .iter()
            .filter(|e| filter.matches(e) && before_until(e))
        {
            if tx.send(line(e)).await.is_err() {
                return;
            }
        }
        let mut live = sub.live;
        let deadline = async {
            match until {
                Some(u) => {
                    let left = u.saturating_sub(now_nanos()).max(0) as u64;
                    tokio::time::sleep(Duration::from_nanos(left)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                got = live.recv() => match got {
                    Ok(e) => {
                        if !before_until(&e) {
                            return;
                        }
                        if filter.matches(&e) && tx.send(line(&e)).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "events subscriber fell behind");
                    }
                    Err(RecvError::Closed) => return,
                },
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        receiver_body(rx),
    )
        .into_response())
}
