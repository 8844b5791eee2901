//! Container routes: create, start, attach (101 upgrade, then the shim's stream spliced
//! to the client), wait, logs, kill, stop, delete, list, inspect.

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use berth_api_types::filters::Filters;
use berth_api_types::ApiVersion;
use berth_engine::containers::{created_json, AttachStreams, LogsOptions, WaitCondition};
use serde_json::{json, Map, Value};

use super::body::receiver_body;
use super::hijack::stream_type;
use super::query::Query;
use crate::ApiError;

use super::AppState;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/containers/json", get(list))
        .route("/containers/create", post(create))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/attach", post(attach))
        .route(
            "/containers/{id}/attach/ws",
            get(super::attach_ws::attach_ws),
        )
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}", delete(remove))
        .route("/containers/{id}/{link}", delete(remove_link))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/prune", post(prune))
}

async fn create(
    State(engine): State<AppState>,
    role: Option<Extension<crate::Role>>,
    version: Option<Extension<berth_api_types::ApiVersion>>,
    uri: Uri,
    body: Bytes,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let map: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    image_mounts_need_1_48(&map, super::legacy::asked(version))?;
    // With authorization on, the role that approved the body's host binds stays with
    // them: every start confines them as that role's were checked.
    let role = role.map(|Extension(r)| r.as_str());
    let created = engine
        .container_create_as(q.get("name").map(String::from), map, role)
        .await?;
    Ok((StatusCode::CREATED, Json(created_json(&created))).into_response())
}

/// moby `postContainersCreate`: image mounts came with API 1.48.
fn image_mounts_need_1_48(
    body: &Map<String, Value>,
    version: berth_api_types::ApiVersion,
) -> Result<(), ApiError> {
    let image_mount = body
        .get("HostConfig")
        .and_then(|h| h.get("Mounts"))
        .and_then(Value::as_array)
        .is_some_and(|m| m.iter().any(|m| m.get("Type") == Some(&json!("image"))));
    if image_mount && version < berth_api_types::ApiVersion::new(1, 48) {
        return Err(ApiError::bad_request(
            "Mount type \"Image\" needs API v1.48 or newer",
        ));
    }
    Ok(())
}

async fn start(
    State(engine): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(changed_or_not_modified(engine.container_start(&id).await?))
}

async fn inspect(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let mut v = engine.container_inspect(&id).await?;
    if Query::from_uri(&uri).bool("size") {
        engine.container_add_sizes(&mut v).await;
    }
    Ok(Json(v).into_response())
}

async fn list(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let filters = Filters::parse(q.get("filters")).map_err(ApiError::from)?;
    // moby `getContainersJSON`: a `limit` that is not a number is refused, in strconv's
    // words (dockerd answers 500; the client's error is a 400 here).
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        None => None,
        Some(l) => Some(l.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("strconv.Atoi: parsing {l:?}: invalid syntax"))
        })?),
    };
    let limit = limit
        .filter(|n| *n > 0)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    if !q.bool("size") {
        // Typed entries, serialised once.
        let mut items = engine.container_summaries(q.bool("all"), &filters).await?;
        if let Some(n) = limit {
            items.truncate(n);
        }
        engine.container_summaries_add_mounts(&mut items).await;
        return Ok(Json(items).into_response());
    }
    let mut items = engine.container_list(q.bool("all"), &filters).await?;
    if let Some(n) = limit {
        items.truncate(n);
    }
    engine.container_add_mounts(&mut items).await;
    for item in &mut items {
        engine.container_add_sizes(item).await;
    }
    Ok(Json(items).into_response())
}

async fn kill(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    // moby's router wraps every kill error: "Cannot kill container: NAME: ...".
    engine
        .container_kill(&id, q.get("signal").unwrap_or(""))
        .await
        .map_err(|e| {
            let mut answer = ApiError::from(e);
            answer.message = format!("Cannot kill container: {id}: {}", answer.message);
            answer
        })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn stop(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let t = timeout_param(&q)?;
    let changed = engine.container_stop(&id, t, q.get("signal")).await?;
    Ok(changed_or_not_modified(changed))
}

/// `DELETE /containers/{parent}/{alias}`: moby's `{name:.*}` reaches the removal with the
/// whole path as the name; only a link (`link=1`) can be named so.
async fn remove_link(
    State(engine): State<AppState>,
    Path((parent, alias)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let name = format!("{parent}/{alias}");
    if Query::from_uri(&uri).bool("link") {
        engine.container_remove_link(&name).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    Err(ApiError::not_found(format!("No such container: {name}")))
}

async fn remove(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    if q.bool("link") {
        engine.container_remove_link(&id).await?;
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let anonymous = match q.bool("v") {
        true => engine.container_anonymous_volumes(&id).await?,
        false => Vec::new(),
    };
    engine.container_delete(&id, q.bool("force")).await?;
    engine.volumes_drop_anonymous(anonymous).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn wait(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let cond = match q.get("condition").unwrap_or("") {
        "" | "not-running" => WaitCondition::NotRunning,
        "next-exit" => WaitCondition::NextExit,
        "removed" => WaitCondition::Removed,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid condition: \"{other}\""
            )))
        }
    };
    let fut = engine.container_wait(&id, cond).await?;
    // Headers now, the body once the condition is met: clients start the container only
    // after the wait is registered.
    let stream = futures_util::stream::once(async move {
        let v = match fut.await {
            Ok(code) => json!({"StatusCode": code, "Error": null}),
            Err(e) => json!({"StatusCode": -1, "Error": {"Message": e.to_string()}}),
        };
        let mut b = serde_json::to_vec(&v).unwrap_or_default();
        b.push(b'\n');
        Ok::<_, std::convert::Infallible>(Bytes::from(b))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response())
}

async fn logs(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    version: Option<Extension<ApiVersion>>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let opts = LogsOptions {
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
        follow: q.bool("follow"),
        timestamps: q.bool("timestamps"),
        tail: q.get("tail").and_then(|t| t.parse::<usize>().ok()),
        since: time_param(&q, "since")?,
        // bollard sends `until=0` for "no bound"; the epoch bounds nothing useful either.
        until: time_param(&q, "until")?.filter(|u| *u != 0),
        details: q.bool("details"),
    };
    if !opts.stdout && !opts.stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let (tty, rx) = engine.container_logs(&id, opts).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            stream_type(tty, version.as_ref().map(|Extension(v)| v)),
        )],
        receiver_body(rx),
    )
        .into_response())
}

async fn attach(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    mut req: Request,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    // moby `daemon/attach.go` checks the keys first, before looking for the container.
    let keys = super::attach_ws::detach_keys(&q)?;
    let streams = AttachStreams {
        stdin: q.bool("stdin"),
        stdout: q.bool("stdout"),
        stderr: q.bool("stderr"),
    };
    let stdin = streams.stdin;
    let upgrade_asked = req
        .headers()
        .get(header::UPGRADE)
        .is_some_and(|v| !v.is_empty());
    // moby `containerAttach`: with `logs`, the log so far (of the streams asked for) comes
    // first; only with `stream` does the live output follow.
    let logs = q.bool("logs");
    let (tty, replay, pending) = if q.bool("stream") {
        let replay = match logs && (streams.stdout || streams.stderr) {
            true => Some(
                engine
                    .container_logs(&id, super::attach_ws::replay_options(&streams))
                    .await?
                    .1,
            ),
            false => None,
        };
        let (tty, pending) = engine.container_attach(&id, streams).await?;
        (tty, replay, Some(pending))
    } else {
        let mut opts = super::attach_ws::replay_options(&streams);
        opts.stdout &= logs;
        opts.stderr &= logs;
        let (tty, rx) = engine.container_logs(&id, opts).await?;
        (tty, Some(rx), None)
    };
    let ctype = stream_type(tty, req.extensions().get::<ApiVersion>());
    if !upgrade_asked {
        // An old client without Upgrade: the output as the body.
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            if let Some(mut replay) = replay {
                while let Some(b) = replay.recv().await {
                    if tx.send(b).await.is_err() {
                        return;
                    }
                }
            }
            let Some(Ok(shim)) = (match pending {
                Some(p) => Some(p.await),
                None => None,
            }) else {
                return;
            };
            let mut s = tokio_util::io::ReaderStream::new(shim);
            use futures_util::StreamExt;
            while let Some(Ok(b)) = s.next().await {
                if tx.send(b).await.is_err() {
                    return;
                }
            }
        });
        return Ok(([(header::CONTENT_TYPE, ctype)], receiver_body(rx)).into_response());
    }
    let upgrade = super::hijack::upgrade(&mut req);
    tokio::spawn(async move {
        let Some(mut client) = upgrade.await else {
            return;
        };
        if let Some(mut replay) = replay {
            use tokio::io::AsyncWriteExt;
            while let Some(b) = replay.recv().await {
                if client.write_all(&b).await.is_err() {
                    return;
                }
            }
            let _ = client.flush().await;
        }
        let Some(pending) = pending else {
            use tokio::io::AsyncWriteExt;
            let _ = client.shutdown().await;
            return;
        };
        let shim = match pending.await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(error = %e, "attach: no stream");
                return;
            }
        };
        // moby scans only a tty's input (`container/stream/attach.go`).
        let detach_keys = (tty && stdin).then_some(keys);
        if super::hijack::splice(client, shim, detach_keys).await {
            engine.container_detached(&id);
        }
    });
    Ok(super::hijack::upgraded(ctype))
}

/// 204 when a start or stop changed the container, 304 when it was already so.
fn changed_or_not_modified(changed: bool) -> Response {
    match changed {
        true => StatusCode::NO_CONTENT.into_response(),
        false => StatusCode::NOT_MODIFIED.into_response(),
    }
}

/// The `t` query parameter (seconds; negative waits forever).
fn timeout_param(q: &Query) -> Result<Option<i64>, ApiError> {
    match q.get("t") {
        None | Some("") => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .map(Some)
            // moby `postContainersStop`/`Restart`: strconv's words (dockerd answers 500).
            .map_err(|_| {
                ApiError::bad_request(format!("strconv.Atoi: parsing {t:?}: invalid syntax"))
            }),
    }
}

async fn restart(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let t = timeout_param(&q)?;
    engine.container_restart(&id, t, q.get("signal")).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn rename(
    State(engine): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    engine
        .container_rename(&id, q.get("name").unwrap_or(""))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn prune(State(engine): State<AppState>, uri: Uri) -> Result<Response, ApiError> {
    let q = Query::from_uri(&uri);
    let filters = Filters::parse(q.get("filters")).map_err(ApiError::from)?;
    Ok(Json(engine.container_prune(&filters).await?).into_response())
}

/// A time query parameter (`since`, `until`) in nanoseconds; see `timestamp::parse_nanos`.
fn time_param(q: &Query, key: &str) -> Result<Option<i64>, ApiError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    match q.get(key).map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => berth_api_types::timestamp::parse_nanos(v, now)
            .map(Some)
            .map_err(ApiError::from),
    }
}
