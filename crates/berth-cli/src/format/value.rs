//! Template values as Go sees them: [`Val`] (a missing map key is `None`), Go's truth and
//! type names, and printing as Go's `%v` does (`map[k:v]`, `<nil>`). Used by `exec`
//! (evaluation) and `functions` (the builtins), so neither imports the other for them.

use serde_json::Value;

/// What an expression evaluates to: `None` is a missing map key (Go's `<no value>`).
pub(super) type Val = Option<Value>;

pub(super) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// Go's truth: false, 0, nil, empty strings, slices and maps are false.
pub(super) fn truthy(v: &Val) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

/// How `{{.X}}` prints a value (Go's `%v` on the corresponding Go value).
pub(super) fn print_value(v: &Val) -> String {
    match v {
        None => "<no value>".to_string(),
        Some(v) => print_json(v),
    }
}

pub(super) fn print_json(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(print_json).collect();
            format!("[{}]", items.join(" "))
        }
        Value::Object(m) => {
            let mut items: Vec<(&String, &Value)> = m.iter().collect();
            items.sort_by(|a, b| a.0.cmp(b.0));
            let items: Vec<String> = items
                .into_iter()
                .map(|(k, v)| format!("{k}:{}", print_json(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
    }
}
