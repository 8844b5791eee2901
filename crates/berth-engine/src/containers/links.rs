//! Legacy container links (`--link` on the default bridge, moby `daemon/links`): the
//! create-time checks and the names `HostConfig.Links` keeps (`/db:/web/alias`), and the
//! environment a linked container gives the one that links to it (`ALIAS_PORT_*`,
//! `ALIAS_NAME`, `ALIAS_ENV_*`). The `/etc/hosts` entries are the network driver's.

use berth_api_types::container::{HostConfig, NetworkMode};
use berth_api_types::field::Field;
use berth_network::manager::{parse_legacy_link, LinkedPeer};

use super::Containers;
use crate::EngineError;

/// Checks `HostConfig.Links` at create, as dockerd does: refused with host networking;
/// on the default bridge each linked container must exist, and is stored by its name
/// (`/db:alias`; [`name_links`] adds the parent's name once it has one). On a user network
/// they are left as sent (the endpoint's `Links` apply there).
pub(crate) fn settle(
    c: &Containers,
    mode: &NetworkMode,
    hc: &mut HostConfig,
) -> Result<(), EngineError> {
    let Some(links) = hc.links.get().filter(|l| !l.is_empty()).cloned() else {
        return Ok(());
    };
    if *mode == NetworkMode::Host {
        return Err(EngineError::InvalidArgument(
            "conflicting options: host type networking can't be used with links. This would result in undefined behavior".into(),
        ));
    }
    if !(mode.is_default() || *mode == NetworkMode::Bridge) {
        return Ok(());
    }
    let mut out = Vec::new();
    for l in &links {
        let (name, alias) =
            parse_legacy_link(l).map_err(|e| EngineError::InvalidArgument(e.to_string()))?;
        let child = c.get(&name).map_err(|_| {
            EngineError::InvalidArgument(format!(
                "could not get container for {name}: No such container: {name}"
            ))
        })?;
        let child = child.rec().name.clone();
        out.push(format!("{child}:{alias}"));
    }
    hc.links = Field::Set(out);
    Ok(())
}

/// `/db:alias` → `/db:/<parent>/alias`, as inspect shows them (after [`settle`]).
pub(crate) fn name_links(hc: &mut HostConfig, parent: &str) {
    let Some(links) = hc.links.get().cloned() else {
        return;
    };
    let parent = parent.trim_start_matches('/');
    let named = links
        .into_iter()
        .map(|l| match l.split_once(':') {
            Some((child, alias)) if child.starts_with('/') && !alias.starts_with('/') => {
                format!("{child}:/{parent}/{alias}")
            }
            _ => l,
        })
        .collect();
    hc.links = Field::Set(named);
}

/// Removes link `full` (`/web/alias`) from the parent's `HostConfig.Links` (null once
/// none is left, as dockerd shows it); whether it was there.
pub(crate) fn remove(hc: &mut HostConfig, full: &str) -> bool {
    let Some(links) = hc.links.get().cloned() else {
        return false;
    };
    let kept: Vec<String> = (links.iter())
        .filter(|l| l.split_once(':').map(|(_, a)| a) != Some(full))
        .cloned()
        .collect();
    if kept.len() == links.len() {
        return false;
    }
    hc.links = if kept.is_empty() {
        Field::Null
    } else {
        Field::Set(kept)
    };
    true
}

/// After a container named `old` was renamed `new` (both with their `/`): the links that
/// name it, as the linked container (`/old:/web/a`) or as the one linking
/// (`/db:/old/a`), say `new` (moby keeps links by ID and shows them by current name);
/// whether any changed.
pub(crate) fn rename_in(hc: &mut HostConfig, old: &str, new: &str) -> bool {
    let Some(links) = hc.links.get().cloned() else {
        return false;
    };
    let renamed: Vec<String> = links
        .iter()
        .map(|l| {
            let Some((child, full)) = l.split_once(':') else {
                return l.clone();
            };
            let child = if child == old { new } else { child };
            let full = match full.strip_prefix(old).and_then(|a| a.strip_prefix('/')) {
                Some(alias) => format!("{new}/{alias}"),
                None => full.to_string(),
            };
            format!("{child}:{full}")
        })
        .collect();
    if renamed == links {
        return false;
    }
    hc.links = Field::Set(renamed);
    true
}

/// [`rename_in`] over every record; each one changed is saved.
pub(crate) async fn renamed(c: &Containers, old: &str, new: &str) {
    let entries: Vec<_> = c
        .map
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    for e in entries {
        let changed = rename_in(&mut e.rec().host_config, old, new);
        if changed {
            c.save_logged(&e).await;
        }
    }
}

/// The environment of container `parent` (its name) from its legacy links, each linked
/// container's own environment read from its record.
pub(crate) fn env_for(c: &Containers, parent: &str, links: &[LinkedPeer]) -> Vec<String> {
    let mut env = Vec::new();
    for peer in links {
        let child_env = c
            .get(&peer.id)
            .map(|e| e.rec().config.env.strings())
            .unwrap_or_default();
        env.extend(link_env(parent, peer, &child_env));
    }
    env
}

/// One link's variables, in moby `links.Link.ToEnv`'s order: the default port (the lowest,
/// TCP first), runs of consecutive ports as `_START`/`_END`, each port, the name, the
/// linked container's environment (less `HOME` and `PATH`).
pub(crate) fn link_env(parent: &str, peer: &LinkedPeer, child_env: &[String]) -> Vec<String> {
    let alias = peer.alias.to_uppercase().replace('-', "_");
    let ip = peer.ip;
    let mut ports = peer.exposed.clone();
    // nat.Sort withTCP: by number, TCP first on a tie.
    ports.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| (b.1 == "tcp").cmp(&(a.1 == "tcp")))
    });
    let mut env = Vec::new();
    if let Some((port, proto)) = ports.first() {
        env.push(format!("{alias}_PORT={proto}://{ip}:{port}"));
    }
    // A run of consecutive ports: its first and last (port, protocol).
    type Run<'a> = ((u16, &'a str), (u16, &'a str));
    let mut run: Option<Run<'_>> = None;
    let flush = |env: &mut Vec<String>, (start, end): Run<'_>| {
        if start != end {
            let (p, proto) = start;
            let key = format!("{alias}_PORT_{p}_{}", proto.to_uppercase());
            env.push(format!("{key}_START={proto}://{ip}:{p}"));
            env.push(format!("{key}_ADDR={ip}"));
            env.push(format!("{key}_PROTO={proto}"));
            env.push(format!("{key}_PORT_START={p}"));
            env.push(format!("{key}_END={}://{ip}:{}", end.1, end.0));
            env.push(format!("{key}_PORT_END={}", end.0));
        }
    };
    for (i, (port, proto)) in ports.iter().enumerate() {
        let p = (*port, proto.as_str());
        let Some((start, end)) = run else {
            run = Some((p, p));
            continue;
        };
        if u32::from(p.0) == u32::from(end.0) + 1 && p.1 == end.1 {
            run = Some((start, p));
            if i != ports.len() - 1 {
                continue;
            }
        }
        if let Some(r) = run {
            flush(&mut env, r);
        }
        run = Some((p, p));
    }
    for (port, proto) in &ports {
        let key = format!("{alias}_PORT_{port}_{}", proto.to_uppercase());
        env.push(format!("{key}={proto}://{ip}:{port}"));
        env.push(format!("{key}_ADDR={ip}"));
        env.push(format!("{key}_PORT={port}"));
        env.push(format!("{key}_PROTO={proto}"));
    }
    let parent = parent.trim_start_matches('/');
    env.push(format!("{alias}_NAME=/{parent}/{}", peer.alias));
    for v in child_env {
        let Some((k, val)) = v.split_once('=') else {
            continue;
        };
        if k != "HOME" && k != "PATH" {
            env.push(format!("{alias}_ENV_{k}={val}"));
        }
    }
    env
}

/// `base` (the links' variables) overridden by the container's own `env`, as moby's
/// `ReplaceOrAppendEnvValues` does.
pub(crate) fn merge_env(base: &[String], env: Vec<String>) -> Vec<String> {
    let key = |e: &str| e.split('=').next().unwrap_or(e).to_string();
    let mut out: Vec<String> = base
        .iter()
        .filter(|b| !env.iter().any(|e| key(e) == key(b)))
        .cloned()
        .collect();
    out.extend(env);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(alias: &str, exposed: &[(u16, &str)]) -> LinkedPeer {
        LinkedPeer {
            alias: alias.into(),
            id: "c".repeat(64),
            name: "db".into(),
            ip: "172.17.0.2".parse().unwrap(),
            exposed: exposed.iter().map(|(p, s)| (*p, s.to_string())).collect(),
        }
    }

    /// What dockerd 20.10 gave `docker run --link db:store` (db with `-e FOO=bar
    /// --expose 5432 --expose 53/udp`), in its order.
    #[test]
    fn variables_as_dockerd_sets_them() {
        let env = link_env(
            "/web",
            &peer("store", &[(5432, "tcp"), (53, "udp")]),
            &[
                "PATH=/bin".into(),
                "FOO=bar".into(),
                "X=a b".into(),
                "HOME=/root".into(),
            ],
        );
        assert_eq!(
            env,
            [
                "STORE_PORT=udp://172.17.0.2:53",
                "STORE_PORT_53_UDP=udp://172.17.0.2:53",
                "STORE_PORT_53_UDP_ADDR=172.17.0.2",
                "STORE_PORT_53_UDP_PORT=53",
                "STORE_PORT_53_UDP_PROTO=udp",
                "STORE_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "STORE_PORT_5432_TCP_ADDR=172.17.0.2",
                "STORE_PORT_5432_TCP_PORT=5432",
                "STORE_PORT_5432_TCP_PROTO=tcp",
                "STORE_NAME=/web/store",
                "STORE_ENV_FOO=bar",
                "STORE_ENV_X=a b",
            ]
        );
    }

    /// dockerd 20.10 with `--expose 80-82`: the run of ports as _START/_END.
    #[test]
    fn port_runs() {
        let env = link_env(
            "web",
            &peer("my-db", &[(81, "tcp"), (80, "tcp"), (82, "tcp")]),
            &[],
        );
        for want in [
            "MY_DB_PORT=tcp://172.17.0.2:80",
            "MY_DB_PORT_80_TCP_START=tcp://172.17.0.2:80",
            "MY_DB_PORT_80_TCP_PORT_START=80",
            "MY_DB_PORT_80_TCP_END=tcp://172.17.0.2:82",
            "MY_DB_PORT_80_TCP_PORT_END=82",
            "MY_DB_PORT_81_TCP_PORT=81",
            "MY_DB_NAME=/web/my-db",
        ] {
            assert!(env.iter().any(|e| e == want), "{want} not in {env:?}");
        }
        assert_eq!(
            env.iter().filter(|e| e.contains("_TCP_START=")).count(),
            1,
            "{env:?}"
        );
        assert!(link_env("web", &peer("x", &[]), &[])
            .iter()
            .all(|e| !e.contains("_PORT")));
    }

    #[test]
    fn own_environment_wins() {
        let got = merge_env(
            &["A_PORT=1".into(), "A_NAME=/w/a".into()],
            vec!["A_NAME=mine".into(), "Z=1".into()],
        );
        assert_eq!(got, ["A_PORT=1", "A_NAME=mine", "Z=1"]);
    }

    #[test]
    fn stored_names() {
        let mut hc = HostConfig {
            links: Field::Set(vec!["/db:store".into(), "/x:/other/y".into()]),
            ..Default::default()
        };
        name_links(&mut hc, "/web");
        assert_eq!(
            hc.links.get().cloned().unwrap(),
            ["/db:/web/store", "/x:/other/y"]
        );
        assert!(!remove(&mut hc, "/web/nope"));
        assert!(remove(&mut hc, "/web/store"));
        assert_eq!(hc.links.get().cloned().unwrap(), ["/x:/other/y"]);
        assert!(remove(&mut hc, "/other/y"));
        assert_eq!(hc.links, Field::Null);
        let mut hc = HostConfig {
            links: Field::Set(vec!["/db:/web/store".into(), "/dbx:/web/x".into()]),
            ..Default::default()
        };
        assert!(rename_in(&mut hc, "/db", "/db2"));
        assert!(rename_in(&mut hc, "/web", "/app"));
        assert!(!rename_in(&mut hc, "/we", "/zz"));
        assert_eq!(
            hc.links.get().cloned().unwrap(),
            ["/db2:/app/store", "/dbx:/app/x"]
        );
    }
}
