//! Fields that older API versions still carry and the current one dropped, added to an
//! answer by the version the client asked for, as moby's routers do: `VirtualSize`
//! (before 1.44), an image's `Container` and `ContainerConfig` (before 1.45) and the
//! container-only fields of an image's `Config` (before 1.50). docker-compose 1.x gets
//! an image's `ContainerConfig` at every version (see [`image_inspect_version`]).

use axum::http::header::USER_AGENT;
use axum::http::HeaderMap;
use berth_api_types::ApiVersion;
use serde_json::{json, Map, Value};

/// The version asked for, the current one for an unversioned path.
pub(super) fn asked(version: Option<axum::Extension<ApiVersion>>) -> ApiVersion {
    version.map_or(ApiVersion::CURRENT, |axum::Extension(v)| v)
}

/// moby `image_routes.go`: `VirtualSize` is `Size` before API 1.44.
fn virtual_size(item: &mut Value, version: ApiVersion) {
    if version < ApiVersion::new(1, 44) {
        if let Some(o) = item.as_object_mut() {
            let size = o.get("Size").cloned().unwrap_or(json!(0));
            o.insert("VirtualSize".into(), size);
        }
    }
}

/// One entry of `GET /images/json` (or of `/system/df`'s `Images`).
pub(super) fn image_summary(item: &mut Value, version: ApiVersion) {
    virtual_size(item, version);
}

/// The `Images` of `/system/df`.
pub(super) fn system_df(df: &mut Value, version: ApiVersion) {
    if let Some(images) = df.get_mut("Images").and_then(Value::as_array_mut) {
        for i in images {
            image_summary(i, version);
        }
    }
}

/// moby's legacy image `Config` (`container.Config`, no `omitempty` on these): what an
/// image does not set reads as its zero value.
const LEGACY_CONFIG: [(&str, Value); 17] = [
    ("Hostname", Value::String(String::new())),
    ("Domainname", Value::String(String::new())),
    ("User", Value::String(String::new())),
    ("AttachStdin", Value::Bool(false)),
    ("AttachStdout", Value::Bool(false)),
    ("AttachStderr", Value::Bool(false)),
    ("Tty", Value::Bool(false)),
    ("OpenStdin", Value::Bool(false)),
    ("StdinOnce", Value::Bool(false)),
    ("Env", Value::Null),
    ("Cmd", Value::Null),
    ("Image", Value::String(String::new())),
    ("Volumes", Value::Null),
    ("WorkingDir", Value::String(String::new())),
    ("Entrypoint", Value::Null),
    ("OnBuild", Value::Null),
    ("Labels", Value::Null),
];

fn legacy_config(config: Option<&Value>) -> Value {
    let mut c: Map<String, Value> = match config {
        Some(Value::Object(m)) => m.clone(),
        _ => Map::new(),
    };
    for (k, v) in LEGACY_CONFIG {
        c.entry(k).or_insert(v);
    }
    Value::Object(c)
}

/// The version whose image inspect answer a client gets: the one it asked for, except
/// for docker-compose 1.x (`User-Agent: docker-compose/1.29.2 docker-py/...`), which
/// negotiates the newest version yet reads an image's `ContainerConfig` to recreate a
/// service's container, and fails with `KeyError: 'ContainerConfig'` where it is left out
/// (Docker 25 and later, from API 1.45): it is answered as at 1.44, as dockerd 20.10–24
/// answered it. Beyond Docker 28, which leaves compose 1.x broken there.
pub(super) fn image_inspect_version(version: ApiVersion, headers: &HeaderMap) -> ApiVersion {
    let compose_v1 = headers
        .get(USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ua| ua.starts_with("docker-compose/1."));
    if compose_v1 {
        version.min(ApiVersion::new(1, 44))
    } else {
        version
    }
}

/// `GET /images/{name}/json`.
pub(super) fn image_inspect(image: &mut Value, version: ApiVersion) {
    virtual_size(image, version);
    let Some(o) = image.as_object_mut() else {
        return;
    };
    if version < ApiVersion::new(1, 50) {
        let c = legacy_config(o.get("Config"));
        o.insert("Config".into(), c);
    }
    if version < ApiVersion::new(1, 45) {
        o.entry("Container").or_insert(json!(""));
        let cc = legacy_config(o.get("ContainerConfig"));
        o.insert("ContainerConfig".into(), cc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_versions_get_the_fields_they_had() {
        let image = json!({"Id": "sha256:x", "Size": 5, "Config": {"Cmd": ["sh"]}});
        let mut old = image.clone();
        image_inspect(&mut old, ApiVersion::new(1, 41));
        assert_eq!(old["VirtualSize"], 5);
        assert_eq!(old["Container"], "");
        assert_eq!(old["Config"]["Cmd"], json!(["sh"]), "set fields kept");
        for v in [&old["Config"], &old["ContainerConfig"]] {
            let keys = v.as_object().unwrap();
            assert_eq!(keys.len(), 17, "{keys:?}");
            assert_eq!((&v["Env"], &v["Tty"]), (&Value::Null, &json!(false)));
        }
        let mut current = image.clone();
        image_inspect(&mut current, ApiVersion::CURRENT);
        assert_eq!(current, image);
        let mut headers = HeaderMap::new();
        let current = ApiVersion::CURRENT;
        assert_eq!(image_inspect_version(current, &headers), current);
        headers.insert(
            USER_AGENT,
            "docker-compose/1.29.2 docker-py/5.0.3 Linux/6.1"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            image_inspect_version(current, &headers),
            ApiVersion::new(1, 44)
        );
        assert_eq!(
            image_inspect_version(ApiVersion::new(1, 41), &headers),
            ApiVersion::new(1, 41)
        );
        headers.insert(USER_AGENT, "Docker-Client/28.0.0 (linux)".parse().unwrap());
        assert_eq!(image_inspect_version(current, &headers), current);
        let mut v149 = image.clone();
        image_inspect(&mut v149, ApiVersion::new(1, 49));
        assert!(v149.get("VirtualSize").is_none() && v149.get("ContainerConfig").is_none());
        assert_eq!(v149["Config"].as_object().unwrap().len(), 17);

        let mut df = json!({"Images": [{"Size": 7}], "Volumes": []});
        system_df(&mut df, ApiVersion::new(1, 43));
        assert_eq!(df["Images"][0]["VirtualSize"], 7);
        system_df(&mut df, ApiVersion::new(1, 44));
        let mut item = json!({"Size": 1});
        image_summary(&mut item, ApiVersion::new(1, 44));
        assert!(item.get("VirtualSize").is_none());
    }
}
