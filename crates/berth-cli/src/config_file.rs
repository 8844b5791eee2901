//! docker's client `config.json` as `login`, `pull`, `push`, `build` and contexts use it:
//! the `auths` section (the plain-file credential store, docker/cli `cli/config/configfile`
//! and `cli/config/credentials/file_store.go`), which entry a registry uses, the
//! `X-Registry-Auth` encoding, and `currentContext`. Pure: no requests.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::endpoint::{config_dir, process_env};
use crate::{Error, Session};

/// Docker Hub's key in `auths` and its `serveraddress` (docker's `registry.IndexServer`).
pub const INDEX_SERVER: &str = "https://index.docker.io/v1/";

// ---------------------------------------------------------------------------------------
// Credentials

/// One registry's credentials: an `auths` entry, and what goes into `X-Registry-Auth`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    pub server_address: String,
    pub identity_token: String,
}

impl RegistryAuth {
    /// docker's `registry.AuthConfig` JSON, empty fields left out (`{}` when anonymous).
    pub fn to_json(&self) -> String {
        let mut m = Map::new();
        for (k, v) in [
            ("username", &self.username),
            ("password", &self.password),
            ("serveraddress", &self.server_address),
            ("identitytoken", &self.identity_token),
        ] {
            if !v.is_empty() {
                m.insert(k.into(), json!(v));
            }
        }
        Value::Object(m).to_string()
    }

    /// The `X-Registry-Auth` value: the JSON above in padded URL-safe base64, as docker's
    /// `registry.EncodeAuthConfig` writes it.
    pub fn header_value(&self) -> String {
        base64_url_encode(self.to_json().as_bytes())
    }
}

/// docker's `credentials.ConvertToHostname`: `https://h:5000/v2/` → `h:5000`.
pub fn convert_to_hostname(address: &str) -> &str {
    let stripped = address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address);
    stripped.split('/').next().unwrap_or(stripped)
}

/// The `auths` key docker looks up for a reference's registry: Docker Hub's
/// [`INDEX_SERVER`], any other registry by `host[:port]`.
pub fn config_key(domain: &str) -> String {
    if matches!(domain, "docker.io" | "index.docker.io" | "") {
        INDEX_SERVER.to_string()
    } else {
        domain.to_string()
    }
}

/// A docker `config.json`, kept whole so that saving preserves every key berth does not
/// know.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigFile {
    pub path: PathBuf,
    value: Map<String, Value>,
}

impl ConfigFile {
    /// Whether it names a credential store (`credsStore`), which berth does not run.
    pub fn names_credential_store(&self) -> bool {
        self.value.contains_key("credsStore")
    }

    /// `config.json` in the client config directory of `session` (`--config`,
    /// `$DOCKER_CONFIG`, `~/.docker`).
    pub fn path_for(session: &Session) -> PathBuf {
        config_dir(session.options(), &process_env).join("config.json")
    }

    /// Reads `path`; a missing or empty file is an empty config.
    pub fn load(path: &Path) -> Result<ConfigFile, Error> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(Error::client(format!(
                    "loading config file: {}: {e}",
                    path.display()
                )))
            }
        };
        ConfigFile::parse(path, &text)
    }

    /// Parses the text of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<ConfigFile, Error> {
        let bad = |why: String| {
            Error::client(format!(
                "loading config file: {}: invalid config file: {why}",
                path.display()
            ))
        };
        let value = if text.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(text).map_err(|e| bad(e.to_string()))? {
                Value::Object(m) => m,
                _ => return Err(bad("not a JSON object".into())),
            }
        };
        Ok(ConfigFile {
            path: path.to_path_buf(),
            value,
        })
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.value.get("auths").and_then(Value::as_object)
    }

    /// Every stored credential by its key (docker's `GetAllCredentials`, file store only).
    pub fn all_credentials(&self) -> Vec<(String, RegistryAuth)> {
        self.auths()
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| Some((k.clone(), decode_entry(k, v)?)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The entry under `key`, else (as docker's file store does for legacy keys) the
    /// first whose host name is `key`.
    pub fn get(&self, key: &str) -> Option<RegistryAuth> {
        let auths = self.auths()?;
        let (found, entry) = match auths.get_key_value(key) {
            Some(kv) => kv,
            None => auths.iter().find(|(k, _)| convert_to_hostname(k) == key)?,
        };
        decode_entry(found, entry)
    }

    /// The credentials for a reference's registry (`docker.io`, `localhost:5000`).
    pub fn auth_for_domain(&self, domain: &str) -> Option<RegistryAuth> {
        self.get(&config_key(domain))
    }

    /// Stores `auth` under its `server_address`, as docker writes it: `auth` holds
    /// base64("user:password"), plus `identitytoken` when there is one.
    pub fn store(&mut self, auth: &RegistryAuth) {
        let auths = self
            .value
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let Value::Object(auths) = auths else {
            unreachable!("just made an object")
        };
        let mut entry = Map::new();
        if !auth.username.is_empty() || !auth.password.is_empty() {
            let plain = format!("{}:{}", auth.username, auth.password);
            entry.insert("auth".into(), json!(base64_std_encode(plain.as_bytes())));
        }
        if !auth.identity_token.is_empty() {
            entry.insert("identitytoken".into(), json!(auth.identity_token));
        }
        auths.insert(auth.server_address.clone(), Value::Object(entry));
    }

    /// Removes `key` from `auths`; true when it was there.
    pub fn erase(&mut self, key: &str) -> bool {
        match self.value.get_mut("auths").and_then(Value::as_object_mut) {
            Some(auths) => auths.remove(key).is_some(),
            None => false,
        }
    }

    /// `currentContext`: the context `berth context use` chose; `None` when unset or empty.
    pub fn current_context(&self) -> Option<&str> {
        self.value
            .get("currentContext")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Sets `currentContext`; `None` removes the key (docker's "default").
    pub fn set_current_context(&mut self, name: Option<&str>) {
        match name {
            Some(n) => {
                self.value
                    .insert("currentContext".into(), Value::String(n.to_string()));
            }
            None => {
                self.value.remove("currentContext");
            }
        }
    }

    /// The file's text as docker writes it: tab-indented JSON, `auths` always present.
    pub fn to_text(&self) -> String {
        let mut value = self.value.clone();
        value
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        let mut out = Vec::new();
        let formatter = serde_json::ser::PrettyFormatter::with_indent(b"\t");
        let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
        Value::Object(value)
            .serialize(&mut ser)
            .expect("a JSON value serializes");
        String::from_utf8(out).expect("serde_json writes UTF-8")
    }

    /// Writes the file atomically (`berth_sys::fs::atomic_write`: a temp file beside it,
    /// fsync, renamed over it, the directory fsynced), mode 0600, creating the directory
    /// (0700) if needed.
    pub fn save(&self) -> io::Result<()> {
        let dir = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        berth_sys::fs::atomic_write(&self.path, self.to_text().as_bytes(), 0o600)
    }
}

fn decode_entry(key: &str, entry: &Value) -> Option<RegistryAuth> {
    let text = |k: &str| {
        entry
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut auth = RegistryAuth {
        username: text("username"),
        password: text("password"),
        server_address: key.to_string(),
        identity_token: text("identitytoken"),
    };
    let encoded = text("auth");
    if !encoded.is_empty() {
        let decoded = String::from_utf8(base64_decode(&encoded)?).ok()?;
        let (user, pass) = decoded.split_once(':')?;
        auth.username = user.to_string();
        auth.password = pass.trim_matches('\0').to_string();
    }
    Some(auth)
}

// ---------------------------------------------------------------------------------------
// base64

const B64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64_encode(data: &[u8], alphabet: &[u8; 64]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Base64 with `=` padding in the URL-safe alphabet, as docker encodes `X-Registry-Auth`.
pub fn base64_url_encode(data: &[u8]) -> String {
    base64_encode(data, B64_URL)
}

/// Standard base64 with padding, as docker writes `auth` in config.json.
pub fn base64_std_encode(data: &[u8]) -> String {
    base64_encode(data, B64_STD)
}

/// Decodes standard or URL-safe base64, padding optional; `None` on anything else.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        B64_STD
            .iter()
            .position(|&x| x == c)
            .or_else(|| B64_URL.iter().position(|&x| x == c))
            .map(|p| p as u32)
    };
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config(value: Value) -> ConfigFile {
        ConfigFile::parse(Path::new("/x/config.json"), &value.to_string()).unwrap()
    }

    #[test]
    fn base64_round_trips() {
        for s in ["", "a", "ab", "abc", "user:pass", "\u{ff}\u{fe}?>"] {
            let enc = base64_url_encode(s.as_bytes());
            assert_eq!(base64_decode(&enc).unwrap(), s.as_bytes(), "{s:?} -> {enc}");
            let enc = base64_std_encode(s.as_bytes());
            assert_eq!(base64_decode(&enc).unwrap(), s.as_bytes(), "{s:?} -> {enc}");
        }
        assert_eq!(base64_url_encode(b"{}"), "e30=");
        assert_eq!(base64_std_encode(b"\xfb\xff"), "+/8=");
        assert_eq!(base64_url_encode(b"\xfb\xff"), "-_8=");
        assert_eq!(base64_decode("dXNlcjpwYXNz").unwrap(), b"user:pass");
        assert_eq!(base64_decode("dXNlcjpwYXNz==").unwrap(), b"user:pass");
        assert!(base64_decode("***").is_none());
    }

    #[test]
    fn credentials_come_from_auths_by_host() {
        let config = config(json!({"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnNlY3JldA=="},
            "localhost:5000": {"auth": "dTpwOnc="},
            "https://reg.example.com/v2/": {"identitytoken": "tok"},
        }}));
        let hub = config.auth_for_domain("docker.io").unwrap();
        assert_eq!(
            (hub.username.as_str(), hub.password.as_str()),
            ("hub", "secret")
        );
        assert_eq!(hub.server_address, "https://index.docker.io/v1/");
        let local = config.auth_for_domain("localhost:5000").unwrap();
        assert_eq!(
            (local.username.as_str(), local.password.as_str()),
            ("u", "p:w")
        );
        let legacy = config.auth_for_domain("reg.example.com").unwrap();
        assert_eq!(legacy.identity_token, "tok");
        assert_eq!(legacy.server_address, "https://reg.example.com/v2/");
        assert!(config.auth_for_domain("other:5000").is_none());
        assert!(config.auth_for_domain("index.docker.io").is_some());
        assert_eq!(
            local.to_json(),
            r#"{"password":"p:w","serveraddress":"localhost:5000","username":"u"}"#
        );
    }

    #[test]
    fn exact_key_wins_and_hub_matches_only_its_key() {
        let config = config(json!({"auths": {
            "http://h:1": {"auth": base64_std_encode(b"legacy:x")},
            "h:1": {"auth": base64_std_encode(b"exact:y")},
            "docker.io": {"auth": base64_std_encode(b"not:hub")},
        }}));
        assert_eq!(config.auth_for_domain("h:1").unwrap().username, "exact");
        // docker looks Docker Hub up under https://index.docker.io/v1/ only.
        assert!(config.auth_for_domain("docker.io").is_none());
    }

    #[test]
    fn hostnames_and_keys_follow_docker() {
        assert_eq!(convert_to_hostname("https://h:5000/v2/"), "h:5000");
        assert_eq!(convert_to_hostname("http://h"), "h");
        assert_eq!(convert_to_hostname("h:5000"), "h:5000");
        assert_eq!(config_key("docker.io"), INDEX_SERVER);
        assert_eq!(config_key("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    #[test]
    fn store_and_erase_keep_other_keys() {
        let mut c = config(json!({
            "auths": {"other:1": {"auth": "eDp5"}},
            "psFormat": "table {{.ID}}",
            "HttpHeaders": {"X-Meta": "1"},
        }));
        c.store(&RegistryAuth {
            username: "alice".into(),
            password: "s3cret".into(),
            server_address: "127.0.0.1:5000".into(),
            identity_token: String::new(),
        });
        let text = c.to_text();
        assert!(text.contains("\n\t\"auths\": {\n\t\t"), "{text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            v["auths"]["127.0.0.1:5000"],
            json!({"auth": "YWxpY2U6czNjcmV0"})
        );
        assert_eq!(v["auths"]["other:1"], json!({"auth": "eDp5"}));
        assert_eq!(v["psFormat"], json!("table {{.ID}}"));
        assert_eq!(v["HttpHeaders"], json!({"X-Meta": "1"}));
        let back = c.get("127.0.0.1:5000").unwrap();
        assert_eq!(
            (back.username.as_str(), back.password.as_str()),
            ("alice", "s3cret")
        );

        assert!(c.erase("127.0.0.1:5000"));
        assert!(!c.erase("127.0.0.1:5000"));
        let v: Value = serde_json::from_str(&c.to_text()).unwrap();
        assert_eq!(v["auths"], json!({"other:1": {"auth": "eDp5"}}));
        assert_eq!(v["psFormat"], json!("table {{.ID}}"));
    }

    #[test]
    fn identity_tokens_are_stored_without_the_password() {
        let mut c = config(json!({}));
        c.store(&RegistryAuth {
            username: "bob".into(),
            password: String::new(),
            server_address: INDEX_SERVER.into(),
            identity_token: "tok".into(),
        });
        let v: Value = serde_json::from_str(&c.to_text()).unwrap();
        assert_eq!(
            v["auths"][INDEX_SERVER],
            json!({"auth": base64_std_encode(b"bob:"), "identitytoken": "tok"})
        );
    }

    #[test]
    fn empty_missing_and_bad_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("sub").join("config.json");
        let c = ConfigFile::load(&path).unwrap();
        assert_eq!(c.to_text(), "{\n\t\"auths\": {}\n}");
        assert!(ConfigFile::parse(&path, "").is_ok());
        let err = ConfigFile::parse(&path, "[1]").unwrap_err().to_string();
        assert!(err.contains("invalid config file"), "{err}");
        assert!(ConfigFile::parse(&path, "{").is_err());

        // Saved with mode 0600 in a new 0700 directory, replacing the old file.
        let mut c = c;
        c.store(&RegistryAuth {
            username: "u".into(),
            password: "p".into(),
            server_address: "h:1".into(),
            identity_token: String::new(),
        });
        c.save().unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let mut again = ConfigFile::load(&path).unwrap();
        assert_eq!(again.get("h:1").unwrap().password, "p");
        again.erase("h:1");
        again.save().unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("config.json")]);
    }

    /// Credentials never go through a link planted where the temporary file will be
    /// (the old writer opened a predictable `.config.json.<pid>.tmp` following links).
    #[test]
    fn save_does_not_write_through_a_planted_link() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let path = dir.join("config.json");
        let victim = dir.join("victim");
        fs::write(&victim, b"keep").unwrap();
        let pid = std::process::id();
        for planted in [
            format!(".config.json.{pid}.tmp"),
            format!(".berth_temp_{pid}_0"),
        ] {
            std::os::unix::fs::symlink(&victim, dir.join(planted)).unwrap();
        }
        let mut c = ConfigFile::load(&path).unwrap();
        c.store(&RegistryAuth {
            username: "u".into(),
            password: "secret".into(),
            server_address: "h:1".into(),
            identity_token: String::new(),
        });
        c.save().unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"keep");
        assert!(!fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            ConfigFile::load(&path)
                .unwrap()
                .get("h:1")
                .unwrap()
                .password,
            "secret"
        );
    }
}
