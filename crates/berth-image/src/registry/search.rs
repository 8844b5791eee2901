//! `GET /images/search`: a registry's v1 search endpoint, as dockerd asks it (moby
//! `registry/search.go`): Docker Hub's index for plain terms, `host/term` for others; the
//! answer bounded in size and read as `{"results": [...]}`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::transport::{tls_config, CONNECT_TIMEOUT, USER_AGENT};
use super::{Registry, RegistryError};

/// moby `IndexName`, and where its v1 search lives.
const INDEX_NAME: &str = "docker.io";
const INDEX_SERVER: &str = "https://index.docker.io/v1/";
/// A search answer holds at most 100 short entries; anything this large is not one.
const MAX_ANSWER: usize = 4 << 20;

/// One entry of the answer (swagger `ImageSearchResponseItem`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SearchResult {
    #[serde(default)]
    pub star_count: i64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub is_automated: bool,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize)]
struct SearchResults {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// moby `splitReposSearchTerm`: the index a term names, and the term there.
pub fn split_term(term: &str) -> (&str, &str) {
    match term.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first, rest)
        }
        _ => (INDEX_NAME, term),
    }
}

impl Registry {
    /// The repositories matching `term` (at most `limit`, 1 to 100) on the index it names.
    pub async fn search(
        self: &Arc<Self>,
        term: &str,
        limit: u32,
    ) -> Result<Vec<SearchResult>, RegistryError> {
        let (index, mut remote) = split_term(term);
        let (index, base) = match index {
            INDEX_NAME | "index.docker.io" | "registry-1.docker.io" => {
                // Pulled as `foo`, stored as `library/foo`.
                remote = remote.strip_prefix("library/").unwrap_or(remote);
                (INDEX_NAME, INDEX_SERVER.to_string())
            }
            other => (other, format!("https://{other}/v1/")),
        };
        let tls = tls_config(&self.config.certs_dirs, index)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(Duration::from_secs(60))
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| RegistryError::Tls(format!("cannot set up HTTP client: {e}")))?;
        let mut url = reqwest::Url::parse(&format!("{base}search")).map_err(|e| {
            RegistryError::InvalidArgument(format!("invalid registry {index}: {e}"))
        })?;
        url.query_pairs_mut()
            .append_pair("q", remote)
            .append_pair("n", &limit.to_string());
        let url = url.to_string();
        // dockerd answers 500 (a system error) when the index cannot be reached.
        let resp = http
            .get(&url)
            .header("X-Docker-Token", "true")
            .send()
            .await
            .map_err(|e| {
                RegistryError::Http(RegistryError::transport("GET", &url, &e).to_string())
            })?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(RegistryError::Http(format!(
                "unexpected status code {}",
                resp.status().as_u16()
            )));
        }
        let body = super::client::read_limited(resp, MAX_ANSWER, "GET", &url).await?;
        let results: SearchResults = serde_json::from_slice(&body).map_err(|e| {
            RegistryError::Invalid(format!("error decoding registry search results: {e}"))
        })?;
        Ok(results.results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_index_as_moby_splits_them() {
        assert_eq!(split_term("busybox"), ("docker.io", "busybox"));
        assert_eq!(
            split_term("library/busybox"),
            ("docker.io", "library/busybox")
        );
        assert_eq!(split_term("quay.io/app"), ("quay.io", "app"));
        assert_eq!(split_term("localhost/app/x"), ("localhost", "app/x"));
        assert_eq!(split_term("host:5000/app"), ("host:5000", "app"));
    }
}
