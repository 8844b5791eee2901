//! Registry credentials and the challenge/token dance.
//!
//! [`RegistryAuth`] is Docker's `AuthConfig` as the `X-Registry-Auth` header and `POST /auth`
//! carry it. A registry answers an unauthenticated request with `401` and a
//! `WWW-Authenticate` challenge: `Basic` means "send the password with every request";
//! `Bearer realm=…,service=…,scope=…` means "get a token from the realm for this scope"
//! (docs.docker.com/registry/spec/auth/token/). Tokens are cached per realm, service,
//! scope and credentials until shortly before they expire. Secrets never appear in `Debug`
//! output, logs or error messages.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Deserializer};

use super::silence::within;
use super::RegistryError;
use crate::Digest;

/// Tokens without `expires_in` live 60 s (the spec's minimum).
const DEFAULT_TOKEN_LIFETIME: u64 = 60;
/// Renew this long before a token expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(5);
/// The OAuth2 client id sent with identity-token requests (dockerd sends "docker").
const CLIENT_ID: &str = "berth";

/// Credentials for one registry, as Docker clients send them. Go decodes JSON field names
/// case-insensitively, so both `username` and `Username` are accepted; `null` reads as
/// empty.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RegistryAuth {
    #[serde(default, alias = "Username", deserialize_with = "nullable")]
    pub username: String,
    #[serde(default, alias = "Password", deserialize_with = "nullable")]
    pub password: String,
    /// base64 of `username:password` (the form `~/.docker/config.json` stores).
    #[serde(default, alias = "Auth", deserialize_with = "nullable")]
    pub auth: String,
    #[serde(default, alias = "Email", deserialize_with = "nullable")]
    pub email: String,
    #[serde(
        default,
        rename = "serveraddress",
        alias = "ServerAddress",
        deserialize_with = "nullable"
    )]
    pub server_address: String,
    /// An OAuth2 refresh token from an earlier login.
    #[serde(
        default,
        rename = "identitytoken",
        alias = "IdentityToken",
        deserialize_with = "nullable"
    )]
    pub identity_token: String,
    /// A bearer token to send to the registry as is.
    #[serde(
        default,
        rename = "registrytoken",
        alias = "RegistryToken",
        deserialize_with = "nullable"
    )]
    pub registry_token: String,
}

fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl fmt::Debug for RegistryAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |s: &str| if s.is_empty() { "" } else { "<redacted>" };
        f.debug_struct("RegistryAuth")
            .field("username", &self.username)
            .field("password", &redact(&self.password))
            .field("auth", &redact(&self.auth))
            .field("server_address", &self.server_address)
            .field("identity_token", &redact(&self.identity_token))
            .field("registry_token", &redact(&self.registry_token))
            .finish()
    }
}

/// An `AuthConfig` that does not decode (the client's error).
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("invalid X-Registry-Auth header: not base64")]
    HeaderNotBase64,
    #[error("invalid X-Registry-Auth header: {0}")]
    HeaderJson(serde_json::Error),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

impl RegistryAuth {
    /// Decodes an `X-Registry-Auth` header: base64url (padded or not; plain base64 is
    /// accepted too) of the JSON `AuthConfig`. An empty header means anonymous.
    pub fn from_header(value: &str) -> Result<RegistryAuth, AuthConfigError> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(RegistryAuth::default());
        }
        let engines = [
            &base64::engine::general_purpose::URL_SAFE,
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::STANDARD_NO_PAD,
        ];
        let json = engines
            .iter()
            .find_map(|e| e.decode(value).ok())
            .ok_or(AuthConfigError::HeaderNotBase64)?;
        Self::from_json(&json).map_err(|e| match e {
            AuthConfigError::Json(e) => AuthConfigError::HeaderJson(e),
            other => other,
        })
    }

    /// Parses the JSON `AuthConfig` (`POST /auth`'s body). Empty input means anonymous.
    pub fn from_json(json: &[u8]) -> Result<RegistryAuth, AuthConfigError> {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Ok(RegistryAuth::default());
        }
        Ok(serde_json::from_slice(json)?)
    }

    /// Username and password, from the fields or from `auth`.
    pub fn credentials(&self) -> Option<(String, String)> {
        if !self.username.is_empty() || !self.password.is_empty() {
            return Some((self.username.clone(), self.password.clone()));
        }
        if self.auth.is_empty() {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (u, p) = text.split_once(':')?;
        Some((u.to_string(), p.to_string()))
    }

    /// No credentials of any kind.
    pub fn is_anonymous(&self) -> bool {
        self.credentials().is_none()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }

    /// A stable, non-reversible name for these credentials (token-cache key).
    fn fingerprint(&self) -> String {
        let (u, p) = self.credentials().unwrap_or_default();
        let material = format!(
            "{}\0{}\0{}\0{}",
            u, p, self.identity_token, self.registry_token
        );
        Digest::of(material.as_bytes()).short_id()
    }

    /// `Authorization: Basic …` for these credentials, if there are any.
    pub(crate) fn basic_header(&self) -> Option<String> {
        let (u, p) = self.credentials()?;
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        Some(format!("Basic {encoded}"))
    }
}

/// What a registry asked for in `WWW-Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        /// The scope the registry suggested (we compute our own, but keep it for the
        /// token request when it names something we did not think of).
        scope: Option<String>,
    },
}

/// Parses a `WWW-Authenticate` value (RFC 7235: schemes followed by auth-params, quoted
/// strings with `\\` escapes, optional spaces around `=`). Unknown schemes are skipped.
pub(crate) fn parse_challenges(header: &str) -> Vec<Challenge> {
    let bytes = header.as_bytes();
    let len = bytes.len();
    let skip = |i: &mut usize, set: &[u8]| {
        while *i < len && set.contains(&bytes[*i]) {
            *i += 1;
        }
    };
    let mut out = Vec::new();
    let mut current: Option<(String, HashMap<String, String>)> = None;
    let mut i = 0;
    loop {
        skip(&mut i, b" \t,");
        if i >= len {
            break;
        }
        let start = i;
        while i < len && !b" \t,=\"".contains(&bytes[i]) {
            i += 1;
        }
        if i == start {
            i += 1; // a stray '=' or '"'
            continue;
        }
        let token = header[start..i].to_ascii_lowercase();
        let mut j = i;
        skip(&mut j, b" \t");
        match current.as_mut() {
            Some((_, params)) if j < len && bytes[j] == b'=' => {
                j += 1;
                skip(&mut j, b" \t");
                let mut value = String::new();
                if j < len && bytes[j] == b'"' {
                    let open = j;
                    let mut chars = header[open + 1..].char_indices();
                    j = len; // unterminated: the rest is the value
                    while let Some((k, c)) = chars.next() {
                        match c {
                            '\\' => value.extend(chars.next().map(|(_, n)| n)),
                            '"' => {
                                j = open + 1 + k + 1;
                                break;
                            }
                            c => value.push(c),
                        }
                    }
                } else {
                    let vstart = j;
                    while j < len && !b", \t".contains(&bytes[j]) {
                        j += 1;
                    }
                    value.push_str(&header[vstart..j]);
                }
                params.insert(token, value);
                i = j;
            }
            _ => {
                out.extend(current.take().and_then(to_challenge));
                current = Some((token, HashMap::new()));
            }
        }
    }
    out.extend(current.and_then(to_challenge));
    out
}

fn to_challenge((scheme, mut params): (String, HashMap<String, String>)) -> Option<Challenge> {
    match scheme.as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.remove("realm")?,
            service: params.remove("service"),
            scope: params.remove("scope"),
        }),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct CachedToken {
    value: String,
    expires: Instant,
}

/// Bearer tokens by realm, service, scopes and credentials fingerprint.
#[derive(Default)]
pub struct TokenCache {
    tokens: Mutex<HashMap<String, CachedToken>>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.tokens.lock().map(|t| t.len()).unwrap_or(0);
        f.debug_struct("TokenCache").field("tokens", &n).finish()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl TokenCache {
    /// A token for `scopes` from the challenge's realm, cached or fetched.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        challenge: &Challenge,
        scopes: &[String],
        auth: &RegistryAuth,
    ) -> Result<String, RegistryError> {
        let Challenge::Bearer {
            realm,
            service,
            scope: _,
        } = challenge
        else {
            return Err(RegistryError::Http("not a bearer challenge".into()));
        };
        if !auth.registry_token.is_empty() {
            return Ok(auth.registry_token.clone());
        }
        let key = format!(
            "{realm}|{}|{}|{}",
            service.as_deref().unwrap_or_default(),
            scopes.join(" "),
            auth.fingerprint()
        );
        if let Some(t) = self
            .tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if t.expires > Instant::now() {
                return Ok(t.value.clone());
            }
        }
        let (value, lifetime) = fetch_token(http, realm, service.as_deref(), scopes, auth).await?;
        let expires = Instant::now() + Duration::from_secs(lifetime).saturating_sub(TOKEN_MARGIN);
        self.tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                key,
                CachedToken {
                    value: value.clone(),
                    expires,
                },
            );
        Ok(value)
    }
}

async fn fetch_token(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    auth: &RegistryAuth,
) -> Result<(String, u64), RegistryError> {
    let mut url = reqwest::Url::parse(realm)
        .map_err(|e| RegistryError::Http(format!("invalid token realm {realm:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RegistryError::Http(format!(
            "invalid token realm {realm:?}: not an http(s) URL"
        )));
    }
    let request = if !auth.identity_token.is_empty() {
        // OAuth2 refresh-token grant (docs.docker.com/registry/spec/auth/oauth/).
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", &auth.identity_token)
            .append_pair("client_id", CLIENT_ID);
        if let Some(s) = service {
            form.append_pair("service", s);
        }
        if !scopes.is_empty() {
            form.append_pair("scope", &scopes.join(" "));
        }
        http.post(url.clone())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form.finish())
    } else {
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
            if let Some((user, _)) = auth.credentials() {
                q.append_pair("account", &user);
            }
        }
        let mut req = http.get(url.clone());
        if let Some(basic) = auth.basic_header() {
            req = req.header(reqwest::header::AUTHORIZATION, basic);
        }
        req
    };
    let method = if auth.identity_token.is_empty() {
        "GET"
    } else {
        "POST"
    };
    let resp = within(request.send(), method, url.as_str())
        .await?
        .map_err(|e| RegistryError::transport(method, url.as_str(), &e))?;
    let status = resp.status();
    let body = within(resp.bytes(), method, url.as_str())
        .await?
        .map_err(|e| RegistryError::transport(method, url.as_str(), &e))?;
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return Err(RegistryError::Unauthorized(format!(
            "unauthorized: {}",
            token_error_detail(&body).unwrap_or_else(|| "incorrect username or password".into())
        )));
    }
    if !status.is_success() {
        return Err(RegistryError::Http(format!(
            "token request to {} failed: {status}",
            url.as_str().split('?').next().unwrap_or_default()
        )));
    }
    let parsed: TokenResponse = serde_json::from_slice(&body)
        .map_err(|e| RegistryError::Http(format!("invalid token response: {e}")))?;
    let value = if parsed.token.is_empty() {
        parsed.access_token
    } else {
        parsed.token
    };
    if value.is_empty() {
        return Err(RegistryError::Http(
            "token response holds no token".to_string(),
        ));
    }
    let lifetime = parsed
        .expires_in
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_TOKEN_LIFETIME);
    Ok((value, lifetime))
}

/// `details` (Docker Hub) or the first `errors[].message` of a token server's error body.
fn token_error_detail(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    if let Some(d) = v.get("details").and_then(|d| d.as_str()) {
        return Some(d.to_string());
    }
    v.get("errors")?
        .as_array()?
        .first()?
        .get("message")?
        .as_str()
        .map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_decodes_url_safe_standard_and_empty() {
        let json = r#"{"username":"u","password":"p?>~","serveraddress":"localhost:5000"}"#;
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        let std = base64::engine::general_purpose::STANDARD_NO_PAD.encode(json);
        for h in [url, std] {
            let a = RegistryAuth::from_header(&h).unwrap();
            assert_eq!(a.credentials(), Some(("u".into(), "p?>~".into())));
            assert_eq!(a.server_address, "localhost:5000");
        }
        assert!(RegistryAuth::from_header("").unwrap().is_anonymous());
        assert!(RegistryAuth::from_header("e30=").unwrap().is_anonymous());
        assert_eq!(
            RegistryAuth::from_header("%%%").unwrap_err().to_string(),
            "invalid X-Registry-Auth header: not base64"
        );
        assert_eq!(
            RegistryAuth::from_header("MQ==").unwrap_err().to_string(),
            "invalid X-Registry-Auth header: invalid type: integer `1`, expected struct RegistryAuth at line 1 column 1"
        );
        assert_eq!(
            RegistryAuth::from_json(b"{").unwrap_err().to_string(),
            "EOF while parsing an object at line 1 column 1"
        );
        let nulls = RegistryAuth::from_json(br#"{"username":null,"Password":"x"}"#).unwrap();
        assert_eq!(nulls.password, "x");
    }

    #[test]
    fn auth_field_gives_credentials() {
        let a = RegistryAuth {
            auth: base64::engine::general_purpose::STANDARD.encode("me:se:cret"),
            ..Default::default()
        };
        assert_eq!(a.credentials(), Some(("me".into(), "se:cret".into())));
        assert!(a.basic_header().unwrap().starts_with("Basic "));
    }

    #[test]
    fn debug_never_shows_secrets() {
        let a = RegistryAuth {
            username: "me".into(),
            password: "hunter2".into(),
            identity_token: "tok-abc".into(),
            registry_token: "tok-def".into(),
            auth: "bWU6aHVudGVyMg==".into(),
            ..Default::default()
        };
        let d = format!("{a:?}");
        for secret in ["hunter2", "tok-abc", "tok-def", "bWU6aHVudGVyMg=="] {
            assert!(!d.contains(secret), "{d}");
        }
        assert!(d.contains("me"));
    }

    #[test]
    fn challenges_parse() {
        let cases: &[(&str, Vec<Challenge>)] = &[
            ("Basic realm=\"Registry Realm\"", vec![Challenge::Basic]),
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#,
                vec![Challenge::Bearer {
                    realm: "https://auth.docker.io/token".into(),
                    service: Some("registry.docker.io".into()),
                    scope: Some("repository:library/busybox:pull".into()),
                }],
            ),
            (
                r#"bearer realm=http://127.0.0.1:1/t, service = x"#,
                vec![Challenge::Bearer {
                    realm: "http://127.0.0.1:1/t".into(),
                    service: Some("x".into()),
                    scope: None,
                }],
            ),
            (
                r#"Bearer realm="a\"b", Basic realm="r""#,
                vec![
                    Challenge::Bearer {
                        realm: "a\"b".into(),
                        service: None,
                        scope: None,
                    },
                    Challenge::Basic,
                ],
            ),
            ("Negotiate", vec![]),
            ("Bearer service=\"no realm\"", vec![]),
            ("", vec![]),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_challenges(input), want, "{input}");
        }
    }
}
