//! Deserializers that read a field the way the daemon's hand-written parsing always did: a
//! value of the wrong JSON type counts as absent (its default) instead of failing the whole
//! body, as the `.as_str().unwrap_or("")` reads they replace.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `T` if the value reads as one, else `T::default()`.
pub fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    let v = Value::deserialize(d)?;
    Ok(serde_json::from_value(v).unwrap_or_default())
}

/// An array's string elements (others are skipped); `None` for anything but an array.
pub fn strings<'de, D>(d: D) -> Result<Option<Vec<String>>, D::Error>
where
    D: Deserializer<'de>,
{
    Ok(match Value::deserialize(d)? {
        Value::Array(a) => Some(
            a.into_iter()
                .filter_map(|x| match x {
                    Value::String(s) => Some(s),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    })
}

/// An array whose elements each read as `T` or else as `T::default()`; empty for anything
/// but an array.
pub fn each_or_default<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    Ok(match Value::deserialize(d)? {
        Value::Array(a) => a
            .into_iter()
            .map(|x| serde_json::from_value(x).unwrap_or_default())
            .collect(),
        _ => Vec::new(),
    })
}

/// An object whose values each read as `T` or else as `T::default()`; empty for anything
/// but an object.
pub fn values_or_default<'de, D, T>(d: D) -> Result<std::collections::BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned + Default,
{
    Ok(match Value::deserialize(d)? {
        Value::Object(m) => m
            .into_iter()
            .map(|(k, x)| (k, serde_json::from_value(x).unwrap_or_default()))
            .collect(),
        _ => Default::default(),
    })
}
