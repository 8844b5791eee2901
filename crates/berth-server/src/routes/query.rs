//! Query-string reading with Docker's conventions: repeated keys (`names=a&names=b`) and
//! Go's loose booleans (`1`, `true`, `yes` are true; empty, `0`, `false`, `no`, `none` are not).

use axum::http::Uri;

/// The decoded `key=value` pairs of a request, in order.
#[derive(Debug, Default)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    pub(crate) fn from_uri(uri: &Uri) -> Self {
        Self(
            form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `key`.
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key`.
    pub(crate) fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// moby `httputils.BoolValue`.
    pub(crate) fn bool(&self, key: &str) -> bool {
        match self.get(key) {
            None => false,
            Some(v) => !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "" | "0" | "no" | "false" | "none"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_and_booleans() {
        let q = Query::from_uri(
            &"/x?names=a&names=b%3Ac&force=1&noprune=false&q="
                .parse()
                .unwrap(),
        );
        assert_eq!(q.all("names"), ["a", "b:c"]);
        assert!(q.bool("force"));
        assert!(!q.bool("noprune"));
        assert!(!q.bool("q"));
        assert!(!q.bool("absent"));
    }
}
