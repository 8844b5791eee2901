//! Container IDs and names: 64-hex IDs, Docker's name rule, random `adjective_noun` names.

use crate::EngineError;

const ADJECTIVES: &[&str] = &[
    "admiring", "brave", "busy", "calm", "clever", "cool", "eager", "elegant", "festive",
    "focused", "gallant", "happy", "hopeful", "jolly", "keen", "kind", "lucid", "modest", "nice",
    "quirky", "serene", "sharp", "stoic", "tender", "vibrant", "wizardly", "zen",
];

const NOUNS: &[&str] = &[
    "albattani",
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "einstein",
    "euler",
    "fermat",
    "galileo",
    "hopper",
    "hypatia",
    "kepler",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "planck",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "turing",
    "wozniak",
];

fn random() -> Result<[u8; 16], EngineError> {
    berth_sys::host::random_bytes().map_err(|e| EngineError::Internal(format!("random: {e}")))
}

/// A fresh 64-hex container ID.
pub(crate) fn new_id() -> Result<String, EngineError> {
    let mut s = String::with_capacity(64);
    for b in random()?.iter().chain(random()?.iter()) {
        s.push_str(&format!("{b:02x}"));
    }
    Ok(s)
}

/// A random `adjective_noun` (with a number when `attempt > 0`).
pub(crate) fn random_name(attempt: u32) -> Result<String, EngineError> {
    let r = random()?;
    let a = ADJECTIVES[r[0] as usize % ADJECTIVES.len()];
    let n = NOUNS[r[1] as usize % NOUNS.len()];
    Ok(if attempt == 0 {
        format!("{a}_{n}")
    } else {
        format!("{a}_{n}{}", r[2] % 10)
    })
}

/// Checks a requested name and returns it with its leading `/`.
pub(crate) fn validate(name: &str) -> Result<String, EngineError> {
    let bare = name.strip_prefix('/').unwrap_or(name);
    let mut chars = bare.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            let rest: Vec<char> = chars.collect();
            !rest.is_empty()
                && rest
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
        }
        _ => false,
    };
    if !ok {
        return Err(EngineError::InvalidArgument(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    Ok(format!("/{bare}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dockers_rule() {
        assert_eq!(validate("web").unwrap(), "/web");
        assert_eq!(validate("/a.b-c_d").unwrap(), "/a.b-c_d");
        for bad in ["", "a", "/", "-x", "a b", "a/b", "é1"] {
            assert!(validate(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_and_random_names() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), 64);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(validate(&random_name(0).unwrap()).is_ok());
        assert!(validate(&random_name(3).unwrap()).is_ok());
    }
}
