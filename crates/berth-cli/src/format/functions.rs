//! The template functions docker's `--format` offers (`json`, `index`, `join`, `split`,
//! `upper`, `lower`, `title`, `len`, `eq`, `ne`, `not`, `and`, `or`), with Go's argument
//! checks; their errors become execution errors at the call.

use serde_json::Value;

use super::value::{print_json, print_value, truthy, type_name, Val};

pub(super) const FUNCTIONS: &[&str] = &[
    "json", "index", "join", "split", "upper", "lower", "title", "len", "eq", "ne", "not", "and",
    "or",
];

fn want_args(args: &[Val], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

pub(super) fn call(name: &str, args: &[Val]) -> Result<Val, String> {
    let s = |v: String| Ok(Some(Value::String(v)));
    match name {
        "json" => {
            want_args(args, 1)?;
            let text = match &args[0] {
                None => "null".to_string(),
                Some(v) => serde_json::to_string(v).map_err(|e| e.to_string())?,
            };
            s(text)
        }
        "index" => {
            if args.is_empty() {
                return Err("wrong number of args: want at least 1 got 0".into());
            }
            let mut cur = args[0].clone();
            for key in &args[1..] {
                cur = match (cur, key) {
                    (None | Some(Value::Null), _) => None,
                    (Some(Value::Object(m)), Some(Value::String(k))) => m.get(k.as_str()).cloned(),
                    (Some(Value::Array(a)), Some(Value::Number(n))) => {
                        let i = n
                            .as_u64()
                            .ok_or_else(|| format!("index out of range: {n}"))?;
                        Some(
                            a.get(usize::try_from(i).unwrap_or(usize::MAX))
                                .cloned()
                                .ok_or_else(|| format!("index out of range: {i}"))?,
                        )
                    }
                    (Some(c), k) => {
                        return Err(format!(
                            "can't index item of type {} with {}",
                            type_name(&c),
                            print_value(k)
                        ))
                    }
                };
            }
            Ok(cur)
        }
        "join" => {
            want_args(args, 2)?;
            let sep = as_str(&args[1])?;
            let items: Vec<String> = match &args[0] {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.iter().map(print_json).collect(),
                Some(other) => return Err(format!("can't join a {}", type_name(other))),
            };
            s(items.join(&sep))
        }
        "split" => {
            want_args(args, 2)?;
            let text = as_str(&args[0])?;
            let sep = as_str(&args[1])?;
            let parts: Vec<Value> = if sep.is_empty() {
                text.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                text.split(sep.as_str())
                    .map(|p| Value::String(p.to_string()))
                    .collect()
            };
            Ok(Some(Value::Array(parts)))
        }
        "upper" => {
            want_args(args, 1)?;
            s(as_str(&args[0])?.to_uppercase())
        }
        "lower" => {
            want_args(args, 1)?;
            s(as_str(&args[0])?.to_lowercase())
        }
        "title" => {
            want_args(args, 1)?;
            s(title_case(&as_str(&args[0])?))
        }
        "len" => {
            want_args(args, 1)?;
            let n = match &args[0] {
                Some(Value::String(t)) => t.len(),
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(m)) => m.len(),
                None | Some(Value::Null) => 0,
                Some(other) => return Err(format!("len of type {}", type_name(other))),
            };
            Ok(Some(Value::from(n)))
        }
        "eq" | "ne" => {
            if args.len() < 2 {
                return Err(format!(
                    "wrong number of args: want at least 2 got {}",
                    args.len()
                ));
            }
            let first = normalize(&args[0]);
            let any = args[1..].iter().any(|a| normalize(a) == first);
            Ok(Some(Value::Bool(if name == "eq" { any } else { !any })))
        }
        "not" => {
            want_args(args, 1)?;
            Ok(Some(Value::Bool(!truthy(&args[0]))))
        }
        "and" | "or" => {
            if args.is_empty() {
                return Err("wrong number of args: want at least 1 got 0".into());
            }
            // Go returns the first falsy (and) / truthy (or) argument, else the last.
            let pick = args
                .iter()
                .find(|a| truthy(a) == (name == "or"))
                .unwrap_or(&args[args.len() - 1]);
            Ok(pick.clone())
        }
        other => Err(format!("function {other:?} not defined")),
    }
}

/// Numbers compare by value (1 == 1.0), missing compares like an empty value.
fn normalize(v: &Val) -> Value {
    match v {
        None => Value::Null,
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Number(n.clone()), Value::Number),
        Some(v) => v.clone(),
    }
}

/// Go's deprecated `strings.Title`: upper-cases the first letter of each word.
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev_letter = false;
    for c in s.chars() {
        if !prev_letter && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev_letter = c.is_alphanumeric() || c == '_' || c == '\'';
    }
    out
}

fn as_str(v: &Val) -> Result<String, String> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Ok(String::new()),
        Some(other) => Ok(print_json(other)),
    }
}
