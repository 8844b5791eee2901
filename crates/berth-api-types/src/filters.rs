//! The `filters` query parameter: JSON mapping a filter name to its values. Docker clients
//! send `{"name":["a","b"]}` and, from older versions, `{"name":{"a":true}}`; both parse.

use std::collections::BTreeMap;

/// Parsed filters: name → values, in request order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Parses the raw query value (already URL-decoded). Empty means no filters.
    pub fn parse(raw: Option<&str>) -> Result<Self, String> {
        let raw = raw.unwrap_or("").trim();
        if raw.is_empty() {
            return Ok(Self::default());
        }
        let v: serde_json::Value =
            serde_json::from_str(raw).map_err(|e| format!("invalid filter: {e}"))?;
        let obj = v
            .as_object()
            .ok_or("invalid filter: expected a JSON object")?;
        let mut out = BTreeMap::new();
        for (k, v) in obj {
            let values = match v {
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(String::from)
                            .ok_or(format!("invalid filter value for {k:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                serde_json::Value::Object(m) => m
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(x, _)| x.clone())
                    .collect(),
                _ => return Err(format!("invalid filter value for {k:?}")),
            };
            out.insert(k.clone(), values);
        }
        Ok(Self(out))
    }

    pub fn get(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Refuses filter names outside `allowed`, with dockerd's message.
    pub fn allow_only(&self, allowed: &[&str]) -> Result<(), String> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(format!("invalid filter '{k}'")),
            None => Ok(()),
        }
    }

    /// A boolean filter (`dangling=true`): `None` when absent, an error when not a boolean.
    pub fn bool_value(&self, name: &str) -> Result<Option<bool>, String> {
        match self.get(name) {
            [] => Ok(None),
            [v, ..] => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(format!("invalid filter '{name}={v}'")),
            },
        }
    }
}

/// Shell-style glob match (`*`, `?`) as Go's `path.Match` for reference filters; `*` does
/// not cross `/`.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    fn go(p: &[u8], t: &[u8]) -> bool {
        match (p.first(), t.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], t) || (!t.is_empty() && t[0] != b'/' && go(p, &t[1..])),
            (Some(b'?'), Some(c)) if *c != b'/' => go(&p[1..], &t[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &t[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_wire_forms_parse() {
        let a = Filters::parse(Some(r#"{"dangling":["true"],"label":["a=b","c"]}"#)).unwrap();
        assert_eq!(a.get("label"), ["a=b", "c"]);
        let b = Filters::parse(Some(r#"{"dangling":{"true":true}}"#)).unwrap();
        assert_eq!(b.bool_value("dangling").unwrap(), Some(true));
        assert_eq!(Filters::parse(None).unwrap(), Filters::default());
    }

    #[test]
    fn bad_filters_are_errors() {
        assert!(Filters::parse(Some("[1]")).is_err());
        assert!(Filters::parse(Some("{")).is_err());
        assert!(Filters::parse(Some(r#"{"a":[1]}"#)).is_err());
        let f = Filters::parse(Some(r#"{"nope":["x"],"dangling":["maybe"]}"#)).unwrap();
        assert_eq!(
            f.allow_only(&["dangling"]).unwrap_err(),
            "invalid filter 'nope'"
        );
        assert!(f.bool_value("dangling").is_err());
    }

    #[test]
    fn glob() {
        assert!(glob_match("busybox", "busybox"));
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("busybox:*", "busybox:latest"));
        assert!(!glob_match("*", "a/b"));
        assert!(glob_match("*/*", "a/b"));
        assert!(glob_match("b?sybox", "busybox"));
        assert!(!glob_match("busybox", "busybox2"));
    }
}
