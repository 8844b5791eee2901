//! The client's deadline (`grpc-timeout`) answered with `DEADLINE_EXCEEDED`, as the gRPC
//! spec asks. tonic's server enforces the header too but answers `CANCELLED` when it
//! fires, so a call whose deadline is shorter than its work (critest's PullImage with a
//! 1 ms deadline) got whichever answer won the race. This layer sits inside tonic's and
//! fires a millisecond earlier (the timer's granularity), so the answer is
//! `DEADLINE_EXCEEDED`, and the call's work is dropped with it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;

/// Wraps a gRPC service (see the module doc).
#[derive(Debug, Clone)]
pub struct Deadlines<S> {
    inner: S,
}

impl<S> Deadlines<S> {
    pub fn new(inner: S) -> Self {
        Deadlines { inner }
    }
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for Deadlines<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let timeout = req
            .headers()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_timeout);
        let call = self.inner.call(req);
        Box::pin(async move {
            let Some(timeout) = timeout else {
                return call.await;
            };
            let fire = timeout.saturating_sub(Duration::from_millis(1));
            tokio::select! {
                biased;
                answer = call => answer,
                _ = tokio::time::sleep(fire) => {
                    Ok(tonic::Status::deadline_exceeded("the client's deadline passed").into_http())
                }
            }
        })
    }
}

/// A `grpc-timeout` value: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(v: &str) -> Option<Duration> {
    if !v.is_ascii() {
        return None;
    }
    let (digits, unit) = v.split_at(v.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_service::Service;

    #[test]
    fn timeouts_parse_as_the_grpc_spec_writes_them() {
        assert_eq!(parse_timeout("1m"), Some(Duration::from_millis(1)));
        assert_eq!(parse_timeout("2S"), Some(Duration::from_secs(2)));
        assert_eq!(parse_timeout("3H"), Some(Duration::from_secs(3 * 3600)));
        assert_eq!(
            parse_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "m", "1", "123456789m", "1x", "-1m", "1.5S", "é"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[derive(Clone)]
    struct Slow;

    impl tower_service::Service<http::Request<()>> for Slow {
        type Response = http::Response<Body>;
        type Error = std::convert::Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            Box::pin(async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(http::Response::new(Body::default()))
            })
        }
    }

    #[tokio::test]
    async fn a_passed_deadline_is_answered_deadline_exceeded() {
        let req = http::Request::builder()
            .header("grpc-timeout", "1m")
            .body(())
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), Deadlines::new(Slow).call(req))
            .await
            .expect("answered before the work ended")
            .unwrap();
        // DEADLINE_EXCEEDED is code 4.
        assert_eq!(answer.headers().get("grpc-status").unwrap(), "4");
    }
}
