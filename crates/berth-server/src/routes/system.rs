//! System routes: `/_ping`, `/version`, `/info`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
}

/// `GET`/`HEAD /_ping`: "OK" plus the headers the CLI negotiates with (the version headers
/// common to every answer are added by the serving layer).
async fn ping() -> impl IntoResponse {
    let mut h = HeaderMap::new();
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // No BuildKit session endpoint yet: advertise the classic builder so the docker CLI
    // does not try to open one.
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    (h, "OK")
}

async fn version(State(engine): State<AppState>) -> impl IntoResponse {
    Json(engine.version())
}

async fn info(State(engine): State<AppState>) -> impl IntoResponse {
    Json(engine.info().await)
}
