//! Internal errors as the client sees them and as the log keeps them: a request id for
//! the log's request span, and 500 answers whose message has the daemon's own directories
//! (`--data-root`, `--exec-root`) replaced by their names. The log line keeps the whole
//! message; the client learns what failed without the host's layout.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, Response};

/// The largest 500 body read back to rewrite (error bodies are a line of JSON).
const BODY_MAX: usize = 64 * 1024;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static ROOTS: OnceLock<Vec<(String, &'static str)>> = OnceLock::new();

/// A short id, unique in this daemon's life, for the request span.
pub fn next_request_id() -> String {
    format!("{:x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Records the directories 500 messages must not show (set once, at bind).
pub fn set_roots(data_root: &Path, exec_root: &Path) {
    let mut roots = vec![
        (data_root.display().to_string(), "<data-root>"),
        (exec_root.display().to_string(), "<exec-root>"),
    ];
    // The longer first, should one hold the other.
    roots.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    let _ = ROOTS.set(roots);
}

/// `message` with each root replaced by its name.
fn redact_message(message: &str, roots: &[(String, &'static str)]) -> String {
    let mut out = message.to_string();
    for (path, name) in roots {
        if path.len() > 1 {
            out = out.replace(path.as_str(), name);
        }
    }
    out
}

/// A 500 answer with its message logged whole and sent redacted. Other bodies (a stream,
/// a body that is not Docker's `{"message"}`) pass unchanged.
pub async fn redact(resp: Response<Body>) -> Response<Body> {
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_MAX).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot read an internal error's body");
            return Response::from_parts(parts, Body::empty());
        }
    };
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_string));
    let Some(message) = message else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    tracing::error!(details = %message, "internal error");
    let shown = redact_message(&message, ROOTS.get().map_or(&[], Vec::as_slice));
    if shown == message {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let body = serde_json::json!({ "message": shown }).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use super::*;

    #[test]
    fn roots_become_their_names() {
        let roots = vec![
            ("/var/lib/berth/exec".to_string(), "<exec-root>"),
            ("/var/lib/berth".to_string(), "<data-root>"),
        ];
        assert_eq!(
            redact_message(
                "cannot write /var/lib/berth/containers/x/record.json: No space left",
                &roots
            ),
            "cannot write <data-root>/containers/x/record.json: No space left"
        );
        assert_eq!(
            redact_message("mount /var/lib/berth/exec/c/rootfs failed", &roots),
            "mount <exec-root>/c/rootfs failed"
        );
        assert_eq!(
            redact_message("exec: \"/bin/x\": not found", &roots),
            "exec: \"/bin/x\": not found"
        );
    }

    #[tokio::test]
    async fn a_500_body_is_rewritten_and_others_pass() {
        let _ = ROOTS.set(vec![("/srv/berth-data".into(), "<data-root>")]);
        let resp = Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(r#"{"message":"cannot open /srv/berth-data/x"}"#))
            .unwrap();
        let out = redact(resp).await;
        assert_eq!(out.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(out.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"message":"cannot open <data-root>/x"}"#);
        let resp = Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("/srv/berth-data"))
            .unwrap();
        let body = axum::body::to_bytes(redact(resp).await.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"/srv/berth-data");
    }
}
