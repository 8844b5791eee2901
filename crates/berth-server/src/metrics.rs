//! Prometheus metrics on `metrics-addr` (dockerd's daemon.json key): API requests by
//! method, route and status with latency histograms, recorded as each request is answered,
//! plus the engine's gauges (containers by state, shim and daemon memory, pulled bytes).
//!
//! The endpoint is plain HTTP, as dockerd's, so it listens on loopback only: it serves
//! nothing but `GET /metrics`, and counts, never names or IDs of containers.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use berth_engine::metrics::EngineMetrics;
use berth_engine::Engine;

use crate::ServerError;

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request no route matched (its path is the client's, unbounded).
const UNMATCHED: &str = "(unmatched)";

#[derive(Default)]
struct RouteStats {
    by_status: BTreeMap<u16, u64>,
    /// Per bucket, requests at or under its bound (cumulative when rendered).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

type Table = BTreeMap<(&'static str, String), RouteStats>;

fn table() -> &'static Mutex<Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

/// A method as a bounded label: clients may send any token.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Router middleware: the matched route template travels back on the response, for
/// [`record`].
pub(crate) async fn remember_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(r);
    }
    resp
}

/// Counts one answered request under its route template (from [`remember_route`]).
pub(crate) fn record(method: &Method, resp: &Response, took: Duration) {
    let route = resp
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED, |m| m.as_str());
    let secs = took.as_secs_f64();
    let Ok(mut t) = table().lock() else { return };
    let s = t
        .entry((method_label(method), route.to_string()))
        .or_default();
    *s.by_status.entry(resp.status().as_u16()).or_default() += 1;
    if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
        s.buckets[i] += 1;
    }
    s.count += 1;
    s.sum_seconds += secs;
}

/// A label value with `\`, `"` and newlines escaped as the text format wants.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// berthd's own memory: resident, and the allocator's account of its heap.
#[derive(Debug, Clone, Copy, Default)]
pub struct DaemonMemory {
    pub rss: Option<u64>,
    pub heap: berth_sys::memory::HeapStats,
}

impl DaemonMemory {
    /// Now (reads `/proc/self/statm`: call it off the async workers).
    pub fn now() -> DaemonMemory {
        DaemonMemory {
            rss: berth_engine::metrics::own_rss_bytes(),
            heap: berth_sys::memory::heap_stats(),
        }
    }
}

/// The whole exposition, in Prometheus text format 0.0.4.
pub fn render(engine: &EngineMetrics, daemon: &DaemonMemory) -> String {
    let mut o = String::new();
    let head = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    head(
        &mut o,
        "engine_daemon_container_states_containers",
        "gauge",
        "The count of containers in various states",
    );
    for (state, n) in [
        ("paused", engine.paused),
        ("running", engine.running),
        ("stopped", engine.stopped),
    ] {
        let _ = writeln!(
            o,
            "engine_daemon_container_states_containers{{state=\"{state}\"}} {n}"
        );
    }
    head(
        &mut o,
        "berth_shims",
        "gauge",
        "Container shim processes running",
    );
    let _ = writeln!(o, "berth_shims {}", engine.shims);
    head(
        &mut o,
        "berth_shim_resident_memory_bytes",
        "gauge",
        "Resident memory of all container shims together",
    );
    let _ = writeln!(
        o,
        "berth_shim_resident_memory_bytes {}",
        engine.shim_rss_bytes
    );
    if let Some(rss) = daemon.rss {
        head(
            &mut o,
            "berth_daemon_resident_memory_bytes",
            "gauge",
            "Resident memory of berthd",
        );
        let _ = writeln!(o, "berth_daemon_resident_memory_bytes {rss}");
    }
    head(
        &mut o,
        "berth_daemon_heap_bytes",
        "gauge",
        "berthd's heap as its allocator counts it: allocated (in_use), freed and kept for reuse (free), in the arenas (arena), mapped block by block (mmapped)",
    );
    let h = &daemon.heap;
    for (kind, v) in [
        ("in_use", h.in_use_bytes),
        ("free", h.free_bytes),
        ("arena", h.arena_bytes),
        ("mmapped", h.mmapped_bytes),
    ] {
        let _ = writeln!(o, "berth_daemon_heap_bytes{{kind=\"{kind}\"}} {v}");
    }
    head(
        &mut o,
        "berth_image_pulled_bytes_total",
        "counter",
        "Bytes of image blobs downloaded from registries",
    );
    let _ = writeln!(o, "berth_image_pulled_bytes_total {}", engine.pulled_bytes);

    head(
        &mut o,
        "berth_health_probes_total",
        "counter",
        "Healthcheck probes run, by result",
    );
    let _ = writeln!(
        o,
        "berth_health_probes_total{{result=\"passed\"}} {}\nberth_health_probes_total{{result=\"failed\"}} {}",
        engine.health_probes_passed, engine.health_probes_failed
    );
    head(
        &mut o,
        "berth_health_unhealthy_total",
        "counter",
        "Times a container turned unhealthy",
    );
    let _ = writeln!(
        o,
        "berth_health_unhealthy_total {}",
        engine.health_turned_unhealthy
    );

    let t = match table().lock() {
        Ok(t) => t,
        Err(_) => return o,
    };
    head(
        &mut o,
        "berth_api_requests_total",
        "counter",
        "API requests answered, by method, route and status",
    );
    for ((method, route), s) in t.iter() {
        for (status, n) in &s.by_status {
            let _ = writeln!(
                o,
                "berth_api_requests_total{{method=\"{method}\",route=\"{}\",status=\"{status}\"}} {n}",
                escape(route)
            );
        }
    }
    head(
        &mut o,
        "berth_api_request_duration_seconds",
        "histogram",
        "Time to answer an API request (until the response head), by method and route",
    );
    for ((method, route), s) in t.iter() {
        let labels = format!("method=\"{method}\",route=\"{}\"", escape(route));
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(s.buckets) {
            cumulative += n;
            let _ = writeln!(
                o,
                "berth_api_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            o,
            "berth_api_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            s.count
        );
        let _ = writeln!(
            o,
            "berth_api_request_duration_seconds_sum{{{labels}}} {}",
            s.sum_seconds
        );
        let _ = writeln!(
            o,
            "berth_api_request_duration_seconds_count{{{labels}}} {}",
            s.count
        );
    }
    o
}

async fn metrics(State(engine): State<Arc<Engine>>) -> Response {
    let read = tokio::task::spawn_blocking(move || (engine.metrics(), DaemonMemory::now())).await;
    match read {
        Ok((m, daemon)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            render(&m, &daemon),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The metrics listener, bound: loopback addresses only (the endpoint has no TLS).
pub struct MetricsServer {
    listener: tokio::net::TcpListener,
}

impl MetricsServer {
    pub async fn bind(addr: SocketAddr) -> Result<Self, ServerError> {
        if !addr.ip().is_loopback() {
            return Err(ServerError::InvalidHost {
                host: addr.to_string(),
                reason: "metrics-addr must be a loopback address (127.0.0.1:PORT or [::1]:PORT): \
                         the metrics endpoint is plain HTTP; scrape it from this host or \
                         through a proxy that adds TLS"
                    .into(),
            });
        }
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind {
                endpoint: format!("metrics-addr {addr}"),
                source,
            })?;
        Ok(Self { listener })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves `GET /metrics` until `shutdown` completes.
    pub async fn serve(
        self,
        engine: Arc<Engine>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let app = Router::new()
            .route("/metrics", get(metrics))
            .with_state(engine);
        if let Err(e) = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "metrics endpoint stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16) -> Response {
        let mut r = Response::new(axum::body::Body::empty());
        *r.status_mut() = StatusCode::from_u16(status).unwrap();
        r
    }

    #[test]
    fn unmatched_requests_and_odd_methods_stay_bounded() {
        let odd = Method::from_bytes(b"BREW").unwrap();
        record(&odd, &answered(404), Duration::from_millis(2));
        record(&Method::GET, &answered(404), Duration::from_millis(30));
        let daemon = DaemonMemory {
            rss: Some(1 << 20),
            heap: berth_sys::memory::HeapStats {
                in_use_bytes: 3 << 20,
                ..Default::default()
            },
        };
        let text = render(&EngineMetrics::default(), &daemon);
        assert!(
            text.contains("berth_daemon_heap_bytes{kind=\"in_use\"} 3145728"),
            "{text}"
        );
        assert!(
            text.contains(
                r#"berth_api_requests_total{method="other",route="(unmatched)",status="404"} "#
            ),
            "{text}"
        );
        assert!(!text.contains("BREW"), "{text}");
        assert!(
            text.contains("berth_daemon_resident_memory_bytes 1048576"),
            "{text}"
        );
        // The histogram is cumulative and ends with +Inf = count.
        let line = |prefix: &str| {
            text.lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in {text}"))
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        };
        let small = line(
            r#"berth_api_request_duration_seconds_bucket{method="GET",route="(unmatched)",le="0.025"}"#,
        );
        let big = line(
            r#"berth_api_request_duration_seconds_bucket{method="GET",route="(unmatched)",le="0.05"}"#,
        );
        let all = line(
            r#"berth_api_request_duration_seconds_bucket{method="GET",route="(unmatched)",le="+Inf"}"#,
        );
        assert!(small < big && big <= all, "{small} {big} {all}");
    }

    #[test]
    fn states_are_dockerds() {
        let m = EngineMetrics {
            running: 2,
            paused: 1,
            stopped: 4,
            ..Default::default()
        };
        let text = render(&m, &DaemonMemory::default());
        assert!(text.contains("engine_daemon_container_states_containers{state=\"running\"} 2"));
        assert!(text.contains("engine_daemon_container_states_containers{state=\"paused\"} 1"));
        assert!(text.contains("engine_daemon_container_states_containers{state=\"stopped\"} 4"));
        assert!(!text.contains("berth_daemon_resident_memory_bytes"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
