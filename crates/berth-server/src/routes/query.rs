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

    /// Go's `strconv.ParseBool` of `key` when present and not empty; its error text when
    /// the value is none of `1 t T TRUE true True 0 f F FALSE false False`.
    pub(crate) fn parse_bool(&self, key: &str) -> Result<Option<bool>, String> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some("1" | "t" | "T" | "TRUE" | "true" | "True") => Ok(Some(true)),
            Some("0" | "f" | "F" | "FALSE" | "false" | "False") => Ok(Some(false)),
            Some(v) => Err(format!("strconv.ParseBool: parsing {v:?}: invalid syntax")),
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
        let q = Query::from_uri(&"/x?a=True&b=0&c=&d=yes".parse().unwrap());
        assert_eq!(q.parse_bool("a"), Ok(Some(true)));
        assert_eq!(q.parse_bool("b"), Ok(Some(false)));
        assert_eq!(q.parse_bool("c"), Ok(None));
        assert_eq!(q.parse_bool("absent"), Ok(None));
        assert_eq!(
            q.parse_bool("d"),
            Err(r#"strconv.ParseBool: parsing "yes": invalid syntax"#.into())
        );
    }
}
