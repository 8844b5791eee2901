//! [`Field`]: a request field kept exactly as the client sent it — absent, `null`, a value,
//! or a value of the wrong JSON type — so that what Berth echoes back (inspect's `Config`
//! and `HostConfig`) omits what was omitted and keeps the `null`s Go clients send for nil
//! slices and pointers. A value of the wrong type reads as absent, as the daemon's
//! hand-written parsing (`.as_i64().unwrap_or(0)`) always read it, and is echoed as sent.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A field that may be absent, `null`, set, or sent with a value that is not a `T`. Use it
/// with `#[serde(default, skip_serializing_if = "Field::is_absent")]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Field<T> {
    #[default]
    Absent,
    Null,
    Set(T),
    /// Not a `T`: read as absent, kept for the echo.
    Invalid(Value),
}

impl<T> Field<T> {
    pub fn is_absent(&self) -> bool {
        matches!(self, Field::Absent)
    }

    /// The value, if one was sent.
    pub fn get(&self) -> Option<&T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self) -> Option<&mut T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }

    pub fn into_option(self) -> Option<T> {
        match self {
            Field::Set(v) => Some(v),
            _ => None,
        }
    }
}

impl<T: Clone + Default> Field<T> {
    /// The value, or `T`'s default when absent or `null`.
    pub fn or_default(&self) -> T {
        self.get().cloned().unwrap_or_default()
    }
}

impl<T: DeserializeOwned + Default + Clone> Field<Vec<T>> {
    /// The items. Of a list with an item of the wrong type, every item, each wrong one as
    /// `T::default()` (an object's fields read from a non-object are all absent).
    pub fn items(&self) -> Vec<T> {
        match self {
            Field::Set(v) => v.clone(),
            Field::Invalid(Value::Array(a)) => a
                .iter()
                .map(|x| T::deserialize(x).unwrap_or_default())
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl Field<Vec<String>> {
    /// The strings of a list; of a list with other items too, its strings.
    pub fn strings(&self) -> Vec<String> {
        self.strings_if_list().unwrap_or_default()
    }

    /// [`Field::strings`], `None` when no list was sent.
    pub fn strings_if_list(&self) -> Option<Vec<String>> {
        match self {
            Field::Set(v) => Some(v.clone()),
            Field::Invalid(Value::Array(a)) => Some(
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect(),
            ),
            _ => None,
        }
    }
}

impl Field<std::collections::BTreeMap<String, String>> {
    /// The map; of a map with a value that is not a string, every key, such a value as `""`.
    pub fn string_values(&self) -> std::collections::BTreeMap<String, String> {
        match self {
            Field::Set(m) => m.clone(),
            Field::Invalid(Value::Object(m)) => m
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect(),
            _ => Default::default(),
        }
    }
}

impl<T> From<Option<T>> for Field<T> {
    fn from(v: Option<T>) -> Self {
        match v {
            Some(v) => Field::Set(v),
            None => Field::Null,
        }
    }
}

impl<T: Serialize> Serialize for Field<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Set(v) => v.serialize(s),
            Field::Invalid(v) => v.serialize(s),
            Field::Absent | Field::Null => s.serialize_none(),
        }
    }
}

impl<'de, T: DeserializeOwned + Serialize> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if v.is_null() {
            return Ok(Field::Null);
        }
        Ok(match T::deserialize(&v) {
            // serde reads a struct from an array too (by position); Docker's JSON objects
            // are never sent as arrays, and the hand parsing never read them so.
            Ok(t) if v.is_array() && serde_json::to_value(&t).is_ok_and(|x| x.is_object()) => {
                Field::Invalid(v)
            }
            Ok(t) => Field::Set(t),
            Err(_) => Field::Invalid(v),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
    struct S {
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        a: Field<u32>,
    }

    #[test]
    fn absent_null_set_and_invalid_round_trip() {
        for text in [
            r#"{}"#,
            r#"{"a":null}"#,
            r#"{"a":3}"#,
            r#"{"a":"three"}"#,
            r#"{"a":-1}"#,
        ] {
            let s: S = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&s).unwrap(), text);
        }
        let s: S = serde_json::from_str(r#"{"a":null}"#).unwrap();
        assert_eq!(s.a, Field::Null);
        assert_eq!(s.a.or_default(), 0);
        let s: S = serde_json::from_str(r#"{"a":"three"}"#).unwrap();
        assert_eq!(s.a.get(), None);
        assert_eq!(s.a.or_default(), 0);
    }

    #[test]
    fn lists_with_items_of_the_wrong_type_read_item_by_item() {
        let f: Field<Vec<String>> = serde_json::from_str(r#"["a", 5, "b"]"#).unwrap();
        assert_eq!(f.get(), None);
        assert_eq!(f.strings(), ["a", "b"]);
        let f: Field<Vec<String>> = serde_json::from_str(r#""a""#).unwrap();
        assert_eq!(f.strings_if_list(), None);
        let f: Field<Vec<S>> = serde_json::from_str(r#"[{"a": 1}, 7]"#).unwrap();
        assert_eq!(f.items(), [S { a: Field::Set(1) }, S::default()]);
    }

    #[derive(Debug, Default, Serialize, Deserialize, PartialEq)]
    struct Outer {
        #[serde(default, skip_serializing_if = "Field::is_absent")]
        s: Field<S>,
    }

    #[test]
    fn an_object_sent_as_an_array_is_invalid() {
        let o: Outer = serde_json::from_str(r#"{"s":[3]}"#).unwrap();
        assert_eq!(o.s, Field::Invalid(serde_json::json!([3])));
        assert_eq!(serde_json::to_string(&o).unwrap(), r#"{"s":[3]}"#);
        let o: Outer = serde_json::from_str(r#"{"s":{"a":3}}"#).unwrap();
        assert_eq!(o.s, Field::Set(S { a: Field::Set(3) }));
    }
}
