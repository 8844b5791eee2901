//! One repository on one registry: authenticated requests for manifests, blobs and
//! uploads, and the registry's error bodies (`{"errors":[{"code":…,"message":…}]}`) turned
//! into [`RegistryError`] with dockerd's wording (`manifest unknown: manifest unknown`).
//!
//! Authorization follows the endpoint's `GET /v2/` challenge: nothing, Basic with the
//! credentials, or a bearer token for this client's scopes. A request that can be sent
//! again (no streamed body) is retried once when a registry that let `/v2/` through
//! challenges it.

use std::sync::Arc;

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};

use super::auth::{parse_challenges, Challenge, RegistryAuth};
use super::manifest::{ACCEPT as MANIFEST_ACCEPT, MAX_MANIFEST_SIZE};
use super::silence::{capitalized, strip_query, within};
use super::transport::Endpoint;
use super::{Registry, RegistryError};
use crate::Digest;

/// What a mount attempt gave.
#[derive(Debug)]
pub(crate) enum Mount {
    /// The registry linked the blob into our repository.
    Mounted,
    /// It could not; here is an upload session to send the blob instead.
    Upload(String),
}

/// A client for one repository with fixed token scopes.
#[derive(Debug)]
pub struct RepoClient {
    registry: Arc<Registry>,
    endpoint: Arc<Endpoint>,
    repo: String,
    auth: RegistryAuth,
    scopes: Vec<String>,
}

impl RepoClient {
    pub(crate) fn new(
        registry: Arc<Registry>,
        endpoint: Arc<Endpoint>,
        repo: String,
        auth: RegistryAuth,
        actions: &str,
        extra_pull_repos: Vec<String>,
    ) -> RepoClient {
        let mut scopes = vec![format!("repository:{repo}:{actions}")];
        scopes.extend(
            extra_pull_repos
                .into_iter()
                .filter(|r| *r != repo)
                .map(|r| format!("repository:{r}:pull")),
        );
        RepoClient {
            registry,
            endpoint,
            repo,
            auth,
            scopes,
        }
    }

    /// The repository path (`library/busybox`).
    pub fn repo(&self) -> &str {
        &self.repo
    }

    /// The registry name as in references (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.endpoint.domain
    }

    pub(crate) fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/v2/{}/{tail}", self.endpoint.base, self.repo)
    }

    /// The `Authorization` value for the next request.
    async fn authorization(
        &self,
        challenge: Option<&Challenge>,
    ) -> Result<Option<String>, RegistryError> {
        match challenge.or(self.endpoint.challenge.as_ref()) {
            None => Ok(None),
            Some(Challenge::Basic) => Ok(self.auth.basic_header()),
            Some(bearer) => {
                let token = self
                    .registry
                    .tokens()
                    .token(&self.endpoint.http, bearer, &self.scopes, &self.auth)
                    .await?;
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Sends a request that can be rebuilt (no streamed body), answering a late challenge
    /// once.
    async fn request(
        &self,
        method: Method,
        url: &str,
        prepare: impl Fn(RequestBuilder) -> RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut late_challenge: Option<Challenge> = None;
        loop {
            let authorization = self.authorization(late_challenge.as_ref()).await?;
            let mut rb = prepare(self.endpoint.http.request(method.clone(), url));
            if let Some(a) = &authorization {
                rb = rb.header(AUTHORIZATION, a);
            }
            let resp = within(rb.send(), method.as_str(), url)
                .await?
                .map_err(|e| RegistryError::transport(method.as_str(), url, &e))?;
            if resp.status() == StatusCode::UNAUTHORIZED
                && authorization.is_none()
                && late_challenge.is_none()
            {
                if let Some(c) = challenges(resp.headers()).into_iter().next() {
                    if c != Challenge::Basic || !self.auth.is_anonymous() {
                        late_challenge = Some(c);
                        continue;
                    }
                }
            }
            return Ok(resp);
        }
    }

    /// Sends a request with a streamed body: once, no retry.
    async fn send_once(
        &self,
        method: Method,
        url: &str,
        rb: RequestBuilder,
    ) -> Result<Response, RegistryError> {
        let mut rb = rb;
        if let Some(a) = self.authorization(None).await? {
            rb = rb.header(AUTHORIZATION, a);
        }
        rb.send()
            .await
            .map_err(|e| RegistryError::transport(method.as_str(), url, &e))
    }

    /// Fetches a manifest by tag or digest: body, content type. Refuses oversized ones.
    pub(crate) async fn get_manifest(
        &self,
        reference: &str,
    ) -> Result<(Bytes, String), RegistryError> {
        let url = self.url(&format!("manifests/{reference}"));
        let resp = self
            .request(Method::GET, &url, |rb| rb.header(ACCEPT, MANIFEST_ACCEPT))
            .await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, "GET", &url).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = read_limited(resp, MAX_MANIFEST_SIZE, "GET", &url).await?;
        Ok((body, content_type))
    }

    /// Every tag of the repository (`GET /v2/<name>/tags/list`, following `Link` pages).
    pub(crate) async fn list_tags(&self) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut tags = Vec::new();
        let mut url = self.url("tags/list");
        for _ in 0..MAX_TAG_PAGES {
            let resp = self.request(Method::GET, &url, |rb| rb).await?;
            if !resp.status().is_success() {
                return Err(self.error(resp, "GET", &url).await);
            }
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let body = read_limited(resp, MAX_MANIFEST_SIZE, "GET", &url).await?;
            let page: TagList = serde_json::from_slice(&body)
                .map_err(|e| RegistryError::Invalid(format!("tag list from {url}: {e}")))?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(path) => url = format!("{}{path}", self.endpoint.base),
                None => break,
            }
        }
        Ok(tags)
    }

    /// Fetches a small blob (a config) whole and checks its digest.
    pub(crate) async fn get_blob_bytes(
        &self,
        digest: &Digest,
        max: usize,
    ) -> Result<Bytes, RegistryError> {
        let resp = self.get_blob(digest, 0).await?;
        let url = self.url(&format!("blobs/{digest}"));
        let body = read_limited(resp, max, "GET", &url).await?;
        let actual = Digest::of(&body);
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                expected: *digest,
                actual,
            });
        }
        Ok(body)
    }

    /// Starts a blob download at byte `offset` (a `Range` request when not 0). The answer
    /// is 200 or 206; the caller checks which.
    pub(crate) async fn get_blob(
        &self,
        digest: &Digest,
        offset: u64,
    ) -> Result<Response, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self
            .request(Method::GET, &url, |rb| {
                if offset > 0 {
                    rb.header(RANGE, format!("bytes={offset}-"))
                } else {
                    rb
                }
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.error(resp, "GET", &url).await);
        }
        Ok(resp)
    }

    /// The blob's size when the repository has it.
    pub(crate) async fn head_blob(&self, digest: &Digest) -> Result<Option<u64>, RegistryError> {
        let url = self.url(&format!("blobs/{digest}"));
        let resp = self.request(Method::HEAD, &url, |rb| rb).await?;
        match resp.status() {
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.error(resp, "HEAD", &url).await),
        }
    }

    /// Asks the registry to link `digest` from repository `from` into ours.
    pub(crate) async fn mount(&self, digest: &Digest, from: &str) -> Result<Mount, RegistryError> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from)
            .finish();
        let url = self.url(&format!("blobs/uploads/?{query}"));
        let resp = self
            .request(Method::POST, &url, |rb| rb.header(CONTENT_LENGTH, "0"))
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Upload(self.location(&resp, &url)?)),
            _ => Err(self.error(resp, "POST", &url).await),
        }
    }

    /// Opens an upload session; returns its URL.
    pub(crate) async fn start_upload(&self) -> Result<String, RegistryError> {
        let url = self.url("blobs/uploads/");
        let resp = self
            .request(Method::POST, &url, |rb| rb.header(CONTENT_LENGTH, "0"))
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.error(resp, "POST", &url).await);
        }
        self.location(&resp, &url)
    }

    /// Sends the whole blob in one `PUT <session>?digest=` (a monolithic upload after
    /// `POST`).
    pub(crate) async fn put_blob(
        &self,
        session: &str,
        digest: &Digest,
        size: u64,
        body: reqwest::Body,
    ) -> Result<(), RegistryError> {
        let url = with_digest(session, digest);
        let rb = self
            .endpoint
            .http
            .put(&url)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(body);
        let resp = self.send_once(Method::PUT, &url, rb).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error(resp, "PUT", &url).await);
        }
        Ok(())
    }

    /// Streams a blob of unknown digest in one `PATCH` (chunked transfer encoding);
    /// returns the session URL to finish with [`RepoClient::finish_upload`].
    pub(crate) async fn patch_blob(
        &self,
        session: &str,
        body: reqwest::Body,
    ) -> Result<String, RegistryError> {
        let rb = self
            .endpoint
            .http
            .patch(session)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
        let resp = self.send_once(Method::PATCH, session, rb).await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.error(resp, "PATCH", session).await);
        }
        self.location(&resp, session)
    }

    /// Closes an upload session with the digest of everything sent.
    pub(crate) async fn finish_upload(
        &self,
        session: &str,
        digest: &Digest,
    ) -> Result<(), RegistryError> {
        let url = with_digest(session, digest);
        let resp = self
            .request(Method::PUT, &url, |rb| rb.header(CONTENT_LENGTH, "0"))
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error(resp, "PUT", &url).await);
        }
        Ok(())
    }

    /// Uploads a manifest under `tag`.
    pub(crate) async fn put_manifest(
        &self,
        tag: &str,
        body: Vec<u8>,
        media_type: &str,
    ) -> Result<(), RegistryError> {
        let url = self.url(&format!("manifests/{tag}"));
        let resp = self
            .request(Method::PUT, &url, |rb| {
                rb.header(CONTENT_TYPE, media_type).body(body.clone())
            })
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(self.error(resp, "PUT", &url).await);
        }
        Ok(())
    }

    /// An upload session URL from `Location`, made absolute.
    fn location(&self, resp: &Response, url: &str) -> Result<String, RegistryError> {
        let loc = resp
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                RegistryError::Http(format!(
                    "registry sent no upload location for {}",
                    strip_query(url)
                ))
            })?;
        let base = reqwest::Url::parse(url).map_err(|e| RegistryError::Http(e.to_string()))?;
        base.join(loc)
            .map(String::from)
            .map_err(|e| RegistryError::Http(format!("invalid upload location {loc:?}: {e}")))
    }

    /// Turns an error answer into a [`RegistryError`], with the registry's own words.
    pub(crate) async fn error(&self, resp: Response, method: &str, url: &str) -> RegistryError {
        let status = resp.status();
        let late = challenges(resp.headers());
        let body = resp.bytes().await.unwrap_or_default();
        let text = registry_error_text(&body);
        match status {
            StatusCode::UNAUTHORIZED => {
                let no_basic = matches!(late.first(), Some(Challenge::Basic))
                    && self.auth.credentials().is_none();
                RegistryError::Unauthorized(if no_basic {
                    no_basic_auth(method, url)
                } else {
                    text.unwrap_or_else(|| "unauthorized: authentication required".into())
                })
            }
            StatusCode::FORBIDDEN => RegistryError::Denied(
                text.unwrap_or_else(|| "denied: requested access to the resource is denied".into()),
            ),
            StatusCode::NOT_FOUND => RegistryError::NotFound(text.unwrap_or_else(|| {
                format!(
                    "{} \"{}\": not found",
                    capitalized(method),
                    strip_query(url)
                )
            })),
            s if s.is_server_error() => RegistryError::Transport(format!(
                "{} \"{}\": {s}{}",
                capitalized(method),
                strip_query(url),
                text.map(|t| format!(": {t}")).unwrap_or_default()
            )),
            s => RegistryError::Http(text.unwrap_or_else(|| {
                format!(
                    "{} \"{}\": unexpected status {s}",
                    capitalized(method),
                    strip_query(url)
                )
            })),
        }
    }
}

/// "no basic auth credentials", as dockerd words it: a manifest fetch's names the
/// request (`Head "http://r/v2/a/manifests/v1": no basic auth credentials`, Go's
/// `url.Error` around it: dockerd's first request for a manifest is a HEAD), a push's
/// blob requests say it bare.
fn no_basic_auth(method: &str, url: &str) -> String {
    let url = strip_query(url);
    if url.contains("/manifests/") && matches!(method, "GET" | "HEAD" | "get" | "head") {
        format!("Head \"{url}\": no basic auth credentials")
    } else {
        "no basic auth credentials".to_string()
    }
}

/// Pages of a tag list followed at most (a registry answering with endless `Link`s).
const MAX_TAG_PAGES: usize = 1000;

/// The path of a `Link: </v2/…?last=x>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    let (target, params) = header.split_once(';')?;
    params
        .contains("rel=\"next\"")
        .then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
        .filter(|t| t.starts_with('/'))
}

/// `POST /auth`: does `GET /v2/` accept these credentials?
pub(crate) async fn login(
    registry: &Arc<Registry>,
    endpoint: &Endpoint,
    auth: &RegistryAuth,
) -> Result<(), RegistryError> {
    let url = format!("{}/v2/", endpoint.base);
    let authorization = match &endpoint.challenge {
        None => return Ok(()),
        Some(Challenge::Basic) => match auth.basic_header() {
            Some(h) => h,
            None => {
                return Err(RegistryError::Unauthorized(
                    "no basic auth credentials".into(),
                ))
            }
        },
        Some(bearer) => {
            let token = registry
                .tokens()
                .token(&endpoint.http, bearer, &[], auth)
                .await?;
            format!("Bearer {token}")
        }
    };
    let request = endpoint.http.get(&url).header(AUTHORIZATION, authorization);
    let resp = within(request.send(), "GET", &url)
        .await?
        .map_err(|e| RegistryError::transport("GET", &url, &e))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    // dockerd's wording (moby `registry/auth.go` `loginV2`).
    let msg = format!("login attempt to {url} failed with status: {status}");
    Err(
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            RegistryError::Unauthorized(msg)
        } else {
            RegistryError::Http(msg)
        },
    )
}

fn challenges(headers: &HeaderMap) -> Vec<Challenge> {
    headers
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_challenges)
        .collect()
}

/// Reads a body of at most `max` bytes.
pub(super) async fn read_limited(
    mut resp: Response,
    max: usize,
    method: &str,
    url: &str,
) -> Result<Bytes, RegistryError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(RegistryError::Invalid(format!(
            "{} is larger than {max} bytes",
            strip_query(url)
        )));
    }
    let mut out = Vec::new();
    while let Some(chunk) = within(resp.chunk(), method, url)
        .await?
        .map_err(|e| RegistryError::transport(method, url, &e))?
    {
        if out.len() + chunk.len() > max {
            return Err(RegistryError::Invalid(format!(
                "{} is larger than {max} bytes",
                strip_query(url)
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// distribution's `errcode.Errors` as dockerd prints them: `manifest unknown: manifest
/// unknown` (the code lower-cased with spaces, then the message).
fn registry_error_text(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Errors {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    let parsed: Errors = serde_json::from_slice(body).ok()?;
    let parts: Vec<String> = parsed
        .errors
        .iter()
        .map(|e| {
            let code = e.code.replace('_', " ").to_lowercase();
            match (code.is_empty(), e.message.is_empty()) {
                (false, false) => format!("{code}: {}", e.message),
                (false, true) => code,
                _ => e.message.clone(),
            }
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

fn with_digest(session: &str, digest: &Digest) -> String {
    let sep = if session.contains('?') { '&' } else { '?' };
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("digest", &digest.to_string())
        .finish();
    format!("{session}{sep}{q}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_read_like_dockerd() {
        let body = br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"nope"}}]}"#;
        assert_eq!(
            registry_error_text(body).unwrap(),
            "manifest unknown: manifest unknown"
        );
        let two = br#"{"errors":[{"code":"DENIED","message":"no"},{"code":"UNAUTHORIZED","message":"authentication required"}]}"#;
        assert_eq!(
            registry_error_text(two).unwrap(),
            "denied: no; unauthorized: authentication required"
        );
        assert!(registry_error_text(b"<html>").is_none());
        assert!(registry_error_text(br#"{"errors":[]}"#).is_none());
    }

    #[test]
    fn tag_list_pages_follow_next_links() {
        assert_eq!(
            next_link(r#"</v2/library/busybox/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/library/busybox/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</v2/x/tags/list?last=b>; rel="prev""#), None);
        assert_eq!(next_link(r#"<https://evil.example/x>; rel="next""#), None);
    }

    /// dockerd 20.10 pulling from an htpasswd registry without credentials.
    #[test]
    fn no_basic_auth_names_the_manifest_request_as_dockerd() {
        let url = "http://127.0.0.1:5000/v2/app/manifests/v1";
        let want = format!("Head \"{url}\": no basic auth credentials");
        assert_eq!(no_basic_auth("GET", url), want);
        assert_eq!(no_basic_auth("HEAD", url), want);
        assert_eq!(
            no_basic_auth("POST", "http://127.0.0.1:5000/v2/app/blobs/uploads/"),
            "no basic auth credentials"
        );
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn digest_joins_upload_urls() {
        let d = Digest::of(b"");
        assert_eq!(
            with_digest("http://r/v2/x/blobs/uploads/u?_state=abc", &d),
            format!(
                "http://r/v2/x/blobs/uploads/u?_state=abc&digest=sha256%3A{}",
                d.hex()
            )
        );
        assert!(with_digest("http://r/u", &d).starts_with("http://r/u?digest=sha256%3A"));
    }
}
