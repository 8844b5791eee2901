//! Dockerfile instructions applied to an image's container config, as `docker import
//! --change` and `docker commit --change` accept them: `CMD`, `ENTRYPOINT`, `ENV`,
//! `EXPOSE`, `LABEL`, `ONBUILD`, `STOPSIGNAL`, `USER`, `VOLUME`, `WORKDIR`.

use serde_json::{Map, Value};

/// Why a `--change` is refused (a 400), in dockerd's words where it has them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    /// The config's `Env` or `OnBuild` holds something else.
    #[error("{0} is not a list")]
    NotAList(&'static str),
    /// The config's `Labels`, `ExposedPorts` or `Volumes` holds something else.
    #[error("{0} is not a map")]
    NotAMap(String),
    #[error("invalid containerPort: {0}")]
    BadPort(String),
    #[error("{0} requires at least one argument")]
    NoArgument(String),
    #[error("{0} requires exactly one argument")]
    NotOneArgument(String),
    #[error("{0} must have two arguments")]
    NotTwoArguments(String),
    #[error("{word} names must be of the form key=value, got {got:?}")]
    NotKeyValue { word: String, got: String },
    #[error("{0} is not a valid change command")]
    Unknown(String),
    /// Changes were sent, but none holds an instruction (moby's Dockerfile parser).
    #[error("file with no instructions")]
    NoInstructions,
}

/// Applies each instruction in order to `config` (the image config's `config` object).
/// As moby's `BuildFromConfig`, the values sent are joined with newlines and read one
/// instruction per line (blank lines and `#` comments skipped); values sent that hold no
/// instruction at all are refused.
pub fn apply_changes(
    config: &mut Map<String, Value>,
    changes: &[String],
) -> Result<(), ChangeError> {
    let lines: Vec<&str> = changes
        .iter()
        .flat_map(|c| c.lines())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    if !changes.is_empty() && lines.is_empty() {
        return Err(ChangeError::NoInstructions);
    }
    for change in lines {
        let (word, rest) = change
            .split_once(char::is_whitespace)
            .map(|(w, r)| (w, r.trim()))
            .unwrap_or((change, ""));
        match word.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.insert("Cmd".into(), command(rest));
            }
            "ENTRYPOINT" => {
                config.insert("Entrypoint".into(), command(rest));
            }
            "ENV" => {
                let env = config.entry("Env").or_insert_with(|| Value::Array(vec![]));
                if env.is_null() {
                    *env = Value::Array(vec![]);
                }
                let list = env.as_array_mut().ok_or(ChangeError::NotAList("Env"))?;
                for (k, v) in key_values(rest, "ENV")? {
                    list.retain(|e| {
                        e.as_str().and_then(|s| s.split_once('=')).map(|(ek, _)| ek)
                            != Some(k.as_str())
                    });
                    list.push(Value::String(format!("{k}={v}")));
                }
            }
            "LABEL" => {
                let labels = config
                    .entry("Labels")
                    .or_insert_with(|| Value::Object(Map::new()));
                if labels.is_null() {
                    *labels = Value::Object(Map::new());
                }
                let map = labels
                    .as_object_mut()
                    .ok_or_else(|| ChangeError::NotAMap("Labels".into()))?;
                for (k, v) in key_values(rest, "LABEL")? {
                    map.insert(k, Value::String(v));
                }
            }
            "EXPOSE" => {
                let ports = object_entry(config, "ExposedPorts")?;
                for p in rest.split_whitespace() {
                    let p = if p.contains('/') {
                        p.to_string()
                    } else {
                        format!("{p}/tcp")
                    };
                    let (num, proto) = p.split_once('/').unwrap_or_default();
                    let ok_num = num
                        .split('-')
                        .all(|n| n.parse::<u16>().is_ok_and(|n| n > 0));
                    if !ok_num || !["tcp", "udp", "sctp"].contains(&proto) {
                        return Err(ChangeError::BadPort(p));
                    }
                    ports.insert(p, Value::Object(Map::new()));
                }
            }
            "VOLUME" => {
                let vols = object_entry(config, "Volumes")?;
                let list: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
                    Ok(l) => l,
                    Err(_) => rest.split_whitespace().map(String::from).collect(),
                };
                if list.is_empty() {
                    return Err(ChangeError::NoArgument("VOLUME".into()));
                }
                for v in list {
                    vols.insert(v, Value::Object(Map::new()));
                }
            }
            "USER" => set_string(config, "User", rest, "USER")?,
            "WORKDIR" => set_string(config, "WorkingDir", rest, "WORKDIR")?,
            "STOPSIGNAL" => set_string(config, "StopSignal", rest, "STOPSIGNAL")?,
            "ONBUILD" => {
                let list = config
                    .entry("OnBuild")
                    .or_insert_with(|| Value::Array(vec![]));
                if list.is_null() {
                    *list = Value::Array(vec![]);
                }
                list.as_array_mut()
                    .ok_or(ChangeError::NotAList("OnBuild"))?
                    .push(Value::String(rest.to_string()));
            }
            other => return Err(ChangeError::Unknown(other.to_string())),
        }
    }
    Ok(())
}

/// Exec form (`["a","b"]`) or shell form (`a b` → `/bin/sh -c "a b"`).
fn command(rest: &str) -> Value {
    if let Ok(list) = serde_json::from_str::<Vec<String>>(rest) {
        return Value::from(list);
    }
    Value::from(vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        rest.to_string(),
    ])
}

fn set_string(
    config: &mut Map<String, Value>,
    key: &str,
    value: &str,
    word: &str,
) -> Result<(), ChangeError> {
    if value.is_empty() {
        return Err(ChangeError::NotOneArgument(word.to_string()));
    }
    config.insert(key.into(), Value::String(value.to_string()));
    Ok(())
}

fn object_entry<'a>(
    config: &'a mut Map<String, Value>,
    key: &str,
) -> Result<&'a mut Map<String, Value>, ChangeError> {
    let v = config
        .entry(key)
        .or_insert_with(|| Value::Object(Map::new()));
    if v.is_null() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut()
        .ok_or_else(|| ChangeError::NotAMap(key.to_string()))
}

/// `k=v k2="v 2"` pairs, or the legacy `k v` single pair.
fn key_values(rest: &str, word: &str) -> Result<Vec<(String, String)>, ChangeError> {
    let words = split_quoted(rest);
    if words.is_empty() {
        return Err(ChangeError::NoArgument(word.to_string()));
    }
    if !words[0].contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| ChangeError::NotTwoArguments(word.to_string()))?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .into_iter()
        .map(|w| {
            w.split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| ChangeError::NotKeyValue {
                    word: word.to_string(),
                    got: w.clone(),
                })
        })
        .collect()
}

/// Splits on whitespace, honouring double and single quotes (which are removed).
fn split_quoted(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (_, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (None, c) if c.is_whitespace() => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            (_, c) => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn apply(changes: &[&str]) -> Result<Value, ChangeError> {
        let mut m = Map::new();
        apply_changes(
            &mut m,
            &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )?;
        Ok(Value::Object(m))
    }

    /// moby `BuildFromConfig`: no change sent is no parse; changes sent without an
    /// instruction are the parser's "file with no instructions"; one value may hold
    /// several lines.
    #[test]
    fn sent_changes_need_an_instruction() {
        assert_eq!(apply(&[]).unwrap(), json!({}));
        for empty in [&[""][..], &["", "  "], &["# only a comment\n"]] {
            assert_eq!(apply(empty), Err(ChangeError::NoInstructions), "{empty:?}");
        }
        assert_eq!(
            ChangeError::NoInstructions.to_string(),
            "file with no instructions"
        );
        let v = apply(&["ENV A=1\nUSER u", ""]).unwrap();
        assert_eq!(v, json!({"Env": ["A=1"], "User": "u"}));
        // A config whose Env is `null` (an image that sets none) gains a list.
        let mut m = Map::new();
        m.insert("Env".into(), Value::Null);
        apply_changes(&mut m, &["ENV B=2".to_string()]).unwrap();
        assert_eq!(m["Env"], json!(["B=2"]));
    }

    #[test]
    fn bad_changes_are_refused() {
        assert!(apply(&["RUN echo"]).is_err());
        assert!(apply(&["EXPOSE 99999"]).is_err());
        assert!(apply(&["EXPOSE 80/xyz"]).is_err());
        assert!(apply(&["ENV"]).is_err());
        assert!(apply(&["ENV =x"]).is_err());
        assert!(apply(&["USER"]).is_err());
        assert!(apply(&["VOLUME"]).is_err());
    }

    #[test]
    fn refusals_say_why_as_before() {
        let text = |c: &[&str]| apply(c).unwrap_err().to_string();
        assert_eq!(text(&["RUN echo"]), "RUN is not a valid change command");
        assert_eq!(text(&["EXPOSE 99999"]), "invalid containerPort: 99999/tcp");
        assert_eq!(text(&["ENV"]), "ENV requires at least one argument");
        assert_eq!(text(&["LABEL x"]), "LABEL must have two arguments");
        assert_eq!(
            text(&["ENV =x"]),
            r#"ENV names must be of the form key=value, got "=x""#
        );
        assert_eq!(text(&["USER"]), "USER requires exactly one argument");
        assert_eq!(text(&["VOLUME"]), "VOLUME requires at least one argument");
    }

    #[test]
    fn cmd_forms() {
        assert_eq!(
            apply(&[r#"CMD ["sh","-c","x"]"#]).unwrap()["Cmd"],
            json!(["sh", "-c", "x"])
        );
        assert_eq!(
            apply(&["CMD echo hi"]).unwrap()["Cmd"],
            json!(["/bin/sh", "-c", "echo hi"])
        );
        assert_eq!(
            apply(&[r#"ENTRYPOINT ["/bin/busybox"]"#]).unwrap()["Entrypoint"],
            json!(["/bin/busybox"])
        );
    }

    #[test]
    fn env_label_expose_volume_user() {
        let v = apply(&[
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "LABEL x=y",
            "EXPOSE 80 53/udp",
            "VOLUME /data",
            "USER nobody",
            "WORKDIR /srv",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        assert_eq!(v["Env"], json!(["B=two words", "A=3"]));
        assert_eq!(v["Labels"], json!({"x": "y"}));
        assert_eq!(v["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(v["Volumes"], json!({"/data": {}}));
        assert_eq!(v["User"], "nobody");
        assert_eq!(v["WorkingDir"], "/srv");
        assert_eq!(v["StopSignal"], "SIGINT");
    }
}
