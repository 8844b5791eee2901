//! The streaming server's request cache: `Exec`, `Attach` and `PortForward` store their
//! request under a random token and answer a URL naming it; the client's connection to
//! that URL takes the request out. A token serves once, lives [`TOKEN_TTL`] at most, and at
//! most [`MAX_IN_FLIGHT`] wait at a time (the kubelet's streaming server's numbers).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::rand::SecureRandom;

use crate::proto::{AttachRequest, ExecRequest, PortForwardRequest};

/// How long a token waits for its connection.
pub(crate) const TOKEN_TTL: Duration = Duration::from_secs(60);
/// How many tokens may wait at once.
pub(crate) const MAX_IN_FLIGHT: usize = 1000;
/// Random bytes per token (64 bits, URL-safe base64 without padding: 11 characters).
const TOKEN_BYTES: usize = 8;

/// What a token stands for.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Pending {
    Exec(ExecRequest),
    Attach(AttachRequest),
    PortForward(PortForwardRequest),
}

impl Pending {
    /// The URL path segment of this kind of request.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

/// Why a request could not be cached.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum TokenError {
    #[error("maximum number of in-flight requests exceeded")]
    Full,
    #[error("cannot generate a random token")]
    Random,
}

/// Tokens and their requests.
pub(crate) struct Tokens {
    ttl: Duration,
    max: usize,
    rng: ring::rand::SystemRandom,
    map: Mutex<HashMap<String, (Instant, Pending)>>,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens::new(TOKEN_TTL, MAX_IN_FLIGHT)
    }
}

impl Tokens {
    pub(crate) fn new(ttl: Duration, max: usize) -> Self {
        Tokens {
            ttl,
            max,
            rng: ring::rand::SystemRandom::new(),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Pending)>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `req`; its token.
    pub(crate) fn insert(&self, req: Pending) -> Result<String, TokenError> {
        self.insert_at(req, Instant::now())
    }

    fn insert_at(&self, req: Pending, now: Instant) -> Result<String, TokenError> {
        let mut map = self.map();
        if map.len() >= self.max {
            map.retain(|_, (expires, _)| *expires > now);
            if map.len() >= self.max {
                return Err(TokenError::Full);
            }
        }
        loop {
            let mut bytes = [0u8; TOKEN_BYTES];
            self.rng.fill(&mut bytes).map_err(|_| TokenError::Random)?;
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            if map.contains_key(&token) {
                continue;
            }
            map.insert(token.clone(), (now + self.ttl, req));
            return Ok(token);
        }
    }

    /// Takes the request of `token` out, if it has not expired.
    pub(crate) fn consume(&self, token: &str) -> Option<Pending> {
        self.consume_at(token, Instant::now())
    }

    fn consume_at(&self, token: &str, now: Instant) -> Option<Pending> {
        let (expires, req) = self.map().remove(token)?;
        (expires > now).then_some(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: &str) -> Pending {
        Pending::Exec(ExecRequest {
            container_id: id.into(),
            ..Default::default()
        })
    }

    #[test]
    fn a_token_serves_once() {
        let t = Tokens::default();
        let a = t.insert(exec("a")).unwrap();
        let b = t.insert(exec("b")).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 11, "{a}");
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        assert_eq!(t.consume(&a), Some(exec("a")));
        assert_eq!(t.consume(&a), None);
        assert_eq!(t.consume("nope"), None);
        assert_eq!(t.consume(&b), Some(exec("b")));
    }

    #[test]
    fn a_token_expires() {
        let t = Tokens::new(Duration::from_secs(60), 10);
        let now = Instant::now();
        let a = t.insert_at(exec("a"), now).unwrap();
        assert_eq!(t.consume_at(&a, now + Duration::from_secs(61)), None);
        // Gone, not just refused.
        assert_eq!(t.consume_at(&a, now), None);
        let b = t.insert_at(exec("b"), now).unwrap();
        assert!(t.consume_at(&b, now + Duration::from_secs(59)).is_some());
    }

    #[test]
    fn in_flight_tokens_are_bounded_and_expired_ones_make_room() {
        let t = Tokens::new(Duration::from_secs(60), 2);
        let now = Instant::now();
        t.insert_at(exec("a"), now).unwrap();
        t.insert_at(exec("b"), now).unwrap();
        assert_eq!(t.insert_at(exec("c"), now), Err(TokenError::Full));
        let later = now + Duration::from_secs(61);
        let c = t.insert_at(exec("c"), later).unwrap();
        assert_eq!(t.consume_at(&c, later), Some(exec("c")));
    }
}
