use serde_json::json;

use super::*;
use crate::PeerCred;

fn tls(subject: &str) -> ClientIdentity {
    ClientIdentity {
        subject: Some(Arc::from(subject)),
        ..ClientIdentity::default()
    }
}

fn unix(uid: u32, gid: u32) -> ClientIdentity {
    ClientIdentity {
        unix: Some(PeerCred {
            uid,
            gid,
            pid: None,
        }),
        ..ClientIdentity::default()
    }
}

fn authz(policy: &str) -> Authorizer {
    Authorizer::new(Policy::from_json(policy.as_bytes()).unwrap())
}

#[test]
fn subjects_parse_with_escapes_and_multi_valued_rdns() {
    assert_eq!(
        parse_subject("CN=alice,OU=berth:viewer"),
        vec![
            ("CN".into(), "alice".into()),
            ("OU".into(), "berth:viewer".into())
        ]
    );
    assert_eq!(
        parse_subject(r"CN=a\,OU=berth:admin+OU=x,O=A\2Cb"),
        vec![
            ("CN".into(), "a,OU=berth:admin".into()),
            ("OU".into(), "x".into()),
            ("O".into(), "A,b".into())
        ]
    );
    // Hostile input: no panic.
    for s in ["", "\\", "=", ",,,", "CN=\\4", "CN=\\", "é=é\\é"] {
        let _ = parse_subject(s);
    }
}

#[test]
fn tls_roles_come_from_the_berth_ou_then_the_subject_then_any_ou() {
    let a = authz(
        r#"{"subjects": {"CN=ci,O=Acme": "operator"}, "ous": {"Platform": "admin", "Dev": "viewer"}}"#,
    );
    assert_eq!(a.role_of(&tls("CN=v,OU=berth:viewer")), Some(Role::Viewer));
    assert_eq!(
        a.role_of(&tls("CN=o,OU=berth:operator")),
        Some(Role::Operator)
    );
    assert_eq!(a.role_of(&tls("CN=a,OU=berth:admin")), Some(Role::Admin));
    // The berth: OU wins over the policy's OUs; two of them give the lesser.
    assert_eq!(
        a.role_of(&tls("CN=p,OU=Platform,OU=berth:viewer")),
        Some(Role::Viewer)
    );
    assert_eq!(
        a.role_of(&tls("CN=x,OU=berth:admin,OU=berth:viewer")),
        Some(Role::Viewer)
    );
    assert_eq!(a.role_of(&tls("CN=ci,O=Acme")), Some(Role::Operator));
    assert_eq!(
        a.role_of(&tls("CN=p,OU=Dev,OU=Platform")),
        Some(Role::Admin)
    );
    assert_eq!(a.role_of(&tls("CN=d,OU=Dev")), Some(Role::Viewer));
    // No role: an unknown berth: role, an escaped comma that only looks like an OU.
    assert_eq!(a.role_of(&tls("CN=n,OU=berth:root")), None);
    assert_eq!(a.role_of(&tls(r"CN=n\,OU=berth:admin")), None);
    assert_eq!(a.role_of(&tls("CN=nobody")), None);
    assert_eq!(a.role_of(&ClientIdentity::default()), None);
}

#[test]
fn unix_peers_are_admin_unless_the_policy_names_them() {
    let a = authz(r#"{"uids": {"1000": "viewer", "0": "viewer"}, "gids": {"2000": "operator"}}"#);
    assert_eq!(a.role_of(&unix(0, 0)), Some(Role::Admin));
    assert_eq!(a.role_of(&unix(1000, 2000)), Some(Role::Viewer));
    assert_eq!(a.role_of(&unix(1001, 2000)), Some(Role::Operator));
    assert_eq!(a.role_of(&unix(1001, 999)), Some(Role::Admin));
}

#[test]
fn policy_files_are_checked() {
    for bad in [
        r#"{"uids": {"alice": "viewer"}}"#,
        r#"{"subjects": {"CN=x": "root"}}"#,
        r#"{"bind_allow": ["srv"]}"#,
        r#"{"bind_allow": ["/nonexistent-berth/../x"]}"#,
        r#"{"unknown": 1}"#,
        "[",
    ] {
        assert!(Policy::from_json(bad.as_bytes()).is_err(), "{bad}");
    }
    let p = Policy::from_json(br#"{"bind_allow": ["/nonexistent-berth-dir/data"]}"#).unwrap();
    assert_eq!(
        p.bind_allow,
        vec![PathBuf::from("/nonexistent-berth-dir/data")]
    );
}

fn seg(path: &str) -> Vec<String> {
    segments(path)
}

fn viewer_check(method: Method, path: &str, logs: bool) -> Result<(), &'static str> {
    let s = seg(path);
    let s: Vec<&str> = s.iter().map(String::as_str).collect();
    viewer(&method, &s, logs).map_err(|d| d.rule)
}

#[test]
fn viewers_read_but_do_not_attach_exec_log_or_copy_out() {
    for p in [
        "/containers/json",
        "/containers/x/json",
        "/images/json",
        "/images/busybox/json",
        "/info",
        "/events",
        "/networks",
        "/volumes/v",
        "/containers/x/top",
        "/containers/x/stats",
    ] {
        assert_eq!(viewer_check(Method::GET, p, false), Ok(()), "{p}");
    }
    assert_eq!(
        viewer_check(Method::HEAD, "/containers/x/archive", false),
        Ok(())
    );
    let refused = [
        (Method::POST, "/containers/create", "viewer.read_only"),
        (Method::DELETE, "/containers/x", "viewer.read_only"),
        (Method::POST, "/images/create", "viewer.read_only"),
        (Method::POST, "/containers/x/attach", "viewer.attach"),
        (Method::GET, "/containers/x/attach/ws", "viewer.attach"),
        (Method::POST, "/containers/x/exec", "viewer.exec"),
        (Method::POST, "/exec/e/start", "viewer.exec"),
        (Method::GET, "/containers/x/logs", "viewer.logs"),
        (Method::GET, "/containers/x/%6Cogs", "viewer.logs"),
        (Method::GET, "//containers//x/logs", "viewer.logs"),
        (Method::GET, "/containers/x/archive", "viewer.archive"),
        (Method::GET, "/containers/x/export", "viewer.archive"),
        (Method::PUT, "/containers/x/archive", "viewer.read_only"),
    ];
    for (m, p, rule) in refused {
        assert_eq!(viewer_check(m.clone(), p, false), Err(rule), "{m} {p}");
    }
    assert_eq!(
        viewer_check(Method::GET, "/containers/x/logs", true),
        Ok(())
    );
}

#[test]
fn ping_and_version_are_public_nothing_else() {
    let p = |m: Method, path: &str| {
        let s = seg(path);
        let s: Vec<&str> = s.iter().map(String::as_str).collect();
        is_public(&m, &s)
    };
    assert!(p(Method::GET, "/_ping"));
    assert!(p(Method::HEAD, "/_ping"));
    assert!(p(Method::GET, "/version"));
    assert!(!p(Method::POST, "/_ping"));
    assert!(!p(Method::GET, "/info"));
    assert!(!p(Method::GET, "/version/x"));
}

fn op(method: Method, path: &str) -> Result<Option<BodyCheck>, &'static str> {
    let (path, q) = path.split_once('?').unwrap_or((path, ""));
    let s = seg(path);
    let s: Vec<&str> = s.iter().map(String::as_str).collect();
    let q: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    operator_route(&method, &s, &q).map_err(|d| d.rule)
}

#[test]
fn operator_routes_and_which_bodies_are_checked() {
    assert_eq!(
        op(Method::POST, "/containers/create"),
        Ok(Some(BodyCheck::Create))
    );
    assert_eq!(
        op(Method::POST, "/containers/create?name=x"),
        Ok(Some(BodyCheck::Create))
    );
    assert_eq!(
        op(Method::POST, "/containers/c/update"),
        Ok(Some(BodyCheck::HostConfig))
    );
    assert_eq!(
        op(Method::POST, "/containers/c/start"),
        Ok(Some(BodyCheck::HostConfig))
    );
    assert_eq!(
        op(Method::POST, "/containers/c/exec"),
        Ok(Some(BodyCheck::Exec))
    );
    assert_eq!(
        op(Method::POST, "/volumes/create"),
        Ok(Some(BodyCheck::Volume))
    );
    assert_eq!(
        op(Method::POST, "/networks/create"),
        Ok(Some(BodyCheck::Network))
    );
    assert_eq!(op(Method::POST, "/containers/c/kill"), Ok(None));
    assert_eq!(
        op(Method::POST, "/images/create?fromImage=busybox"),
        Ok(None)
    );
    assert_eq!(op(Method::DELETE, "/networks/n"), Ok(None));
    assert_eq!(
        op(Method::POST, "/build?networkmode=host"),
        Err("operator.host_namespaces")
    );
    assert_eq!(op(Method::POST, "/build?networkmode=bridge"), Ok(None));
    assert_eq!(op(Method::POST, "/plugins/pull"), Err("operator.plugins"));
    assert_eq!(op(Method::POST, "/swarm/init"), Err("operator.swarm"));
    assert_eq!(op(Method::POST, "/services/create"), Err("operator.swarm"));
    assert_eq!(op(Method::POST, "/session"), Err("operator.session"));
    assert_eq!(op(Method::GET, "/plugins"), Ok(None));
}

fn hc(v: serde_json::Value) -> Result<Vec<PathBuf>, &'static str> {
    host_config(v.as_object().unwrap()).map_err(|d| d.rule)
}

#[test]
fn each_operator_rule_on_host_config() {
    let refused = [
        (json!({"Privileged": true}), "operator.privileged"),
        (json!({"privileged": 1}), "operator.privileged"),
        (json!({"PidMode": "host"}), "operator.host_namespaces"),
        (json!({"IpcMode": "host"}), "operator.host_namespaces"),
        (json!({"NetworkMode": "HOST"}), "operator.host_namespaces"),
        (json!({"UTSMode": "host"}), "operator.host_namespaces"),
        (json!({"UsernsMode": "host"}), "operator.host_namespaces"),
        (json!({"CgroupnsMode": "host"}), "operator.host_namespaces"),
        (json!({"PidMode": ["host"]}), "operator.host_namespaces"),
        (
            json!({"Devices": [{"PathOnHost": "/dev/sda"}]}),
            "operator.devices",
        ),
        (
            json!({"DeviceRequests": [{"Count": -1}]}),
            "operator.devices",
        ),
        (
            json!({"DeviceCgroupRules": ["a *:* rwm"]}),
            "operator.devices",
        ),
        (json!({"CapAdd": ["SYS_ADMIN"]}), "operator.cap_add"),
        (json!({"CapAdd": "ALL"}), "operator.cap_add"),
        (
            json!({"SecurityOpt": ["seccomp=unconfined"]}),
            "operator.security_opt",
        ),
        (
            json!({"SecurityOpt": ["apparmor=unconfined"]}),
            "operator.security_opt",
        ),
        (
            json!({"SecurityOpt": ["label=disable"]}),
            "operator.security_opt",
        ),
        (
            json!({"SecurityOpt": ["no-new-privileges=false"]}),
            "operator.security_opt",
        ),
        (json!({"SecurityOpt": [{"x": 1}]}), "operator.security_opt"),
        (
            json!({"SecurityOpt": "seccomp=unconfined"}),
            "operator.security_opt",
        ),
        (json!({"MaskedPaths": []}), "operator.system_paths"),
        (json!({"ReadonlyPaths": []}), "operator.system_paths"),
        (json!({"CgroupParent": "/"}), "operator.cgroup_parent"),
        (
            json!({"VolumesFrom": ["admin-box"]}),
            "operator.volumes_from",
        ),
        (json!({"Binds": [1]}), "operator.bind"),
        (json!({"Mounts": ["x"]}), "operator.bind"),
    ];
    for (v, rule) in refused {
        assert_eq!(hc(v.clone()), Err(rule), "{v}");
    }
    // What docker run sends by default, and what an operator may set.
    let plain = json!({
        "Privileged": false, "PidMode": "", "IpcMode": "private", "NetworkMode": "default",
        "UTSMode": "", "Devices": [], "DeviceRequests": null, "CapAdd": null,
        "CapDrop": ["NET_RAW"], "SecurityOpt": ["no-new-privileges"], "MaskedPaths": null,
        "CgroupParent": "", "VolumesFrom": null, "Binds": ["vol:/data", "rel:/x:ro"],
        "Mounts": [{"Type": "tmpfs", "Target": "/t"}, {"Type": "volume", "Source": "v", "Target": "/v"}],
        "NetworkMode2": "host"
    });
    assert_eq!(hc(plain), Ok(vec![]));
    assert_eq!(hc(json!({"PidMode": "container:abc"})), Ok(vec![]));
    // Host paths are returned for the allow-list check.
    let binds = json!({
        "Binds": ["/:/host", "/srv/data:/d:ro"],
        "Mounts": [
            {"Type": "bind", "Source": "/etc", "Target": "/e"},
            {"Source": "/var", "Target": "/v"},
            {"Type": "volume", "Target": "/w",
             "VolumeOptions": {"DriverConfig": {"Options": {"o": "bind", "device": "/root"}}}}
        ]
    });
    let paths: Vec<PathBuf> = ["/", "/srv/data", "/etc", "/var", "/root"]
        .into_iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(hc(binds), Ok(paths));
    let dev = json!({"type": "none", "o": "bind", "device": "/"});
    assert_eq!(
        volume_device(dev.as_object().unwrap()),
        Some(PathBuf::from("/"))
    );
    let tmpfs = json!({"type": "tmpfs", "device": "tmpfs"});
    assert_eq!(volume_device(tmpfs.as_object().unwrap()), None);
}

#[test]
fn binds_must_resolve_under_the_allow_list_symlinks_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let allowed = tmp.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    std::fs::create_dir(tmp.path().join("secret")).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("secret"), allowed.join("link")).unwrap();
    let policy = format!(r#"{{"bind_allow": [{:?}]}}"#, allowed.display().to_string());
    let p = Policy::from_json(policy.as_bytes()).unwrap();
    let ok = |path: PathBuf| check_binds(&[path], &p.bind_allow).map_err(|d| d.rule);
    assert_eq!(ok(allowed.clone()), Ok(()));
    assert_eq!(ok(allowed.join("sub/new")), Ok(()));
    assert_eq!(ok(allowed.join("link")), Err("operator.bind"));
    assert_eq!(ok(allowed.join("link/x")), Err("operator.bind"));
    assert_eq!(ok(allowed.join("../secret")), Err("operator.bind"));
    assert_eq!(
        ok(allowed.join("missing/../../secret")),
        Err("operator.bind")
    );
    assert_eq!(ok(tmp.path().join("allowed-not")), Err("operator.bind"));
    assert_eq!(ok(PathBuf::from("/")), Err("operator.bind"));
}

/// Existing containers' host configs: `admin-box` privileged, `plain` an operator's.
struct Fake;

impl HostConfigs for Fake {
    async fn host_config(&self, id: &str) -> Option<Map<String, Value>> {
        let v = match id {
            "admin-box" => json!({"Privileged": true, "NetworkMode": "host"}),
            "root-bind" => json!({"Binds": ["/:/host"]}),
            "plain" => json!({"NetworkMode": "bridge", "Binds": null, "CgroupnsMode": "host"}),
            _ => return None,
        };
        v.as_object().cloned()
    }
}

async fn run(
    a: &Authorizer,
    id: ClientIdentity,
    method: Method,
    uri: &str,
    body: &str,
) -> Result<Bytes, (u16, String)> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .body(Body::from(body.to_string()))
        .unwrap();
    req.extensions_mut().insert(id);
    match a.check(req, &Fake).await {
        Ok(req) => Ok(req.into_body().collect().await.unwrap().to_bytes()),
        Err(resp) => {
            let status = resp.status().as_u16();
            let b = resp.into_body().collect().await.unwrap().to_bytes();
            let v: Value = serde_json::from_slice(&b).unwrap();
            Err((status, v["message"].as_str().unwrap().to_string()))
        }
    }
}

#[tokio::test]
async fn requests_are_passed_on_unchanged_or_refused_with_403_naming_the_rule() {
    let a = authz("{}");
    let operator = tls("CN=o,OU=berth:operator");
    let body = r#"{"Image": "busybox", "HostConfig": {"Binds": ["v:/d"]}}"#;
    let passed = run(
        &a,
        operator.clone(),
        Method::POST,
        "/containers/create",
        body,
    )
    .await;
    assert_eq!(passed, Ok(Bytes::from(body)));
    let bad = r#"{"Image": "busybox", "HostConfig": {"Privileged": true}}"#;
    let (status, msg) = run(
        &a,
        operator.clone(),
        Method::POST,
        "/containers/create",
        bad,
    )
    .await
    .unwrap_err();
    assert_eq!(status, 403);
    assert_eq!(
        msg,
        "authorization denied: role operator may not create privileged containers (rule: operator.privileged)"
    );
    let root = r#"{"Image": "busybox", "HostConfig": {"Binds": ["/:/host"]}}"#;
    let (_, msg) = run(
        &a,
        operator.clone(),
        Method::POST,
        "/containers/create",
        root,
    )
    .await
    .unwrap_err();
    assert!(msg.contains("(rule: operator.bind)"), "{msg}");
    // Invalid JSON goes on to the route, which refuses it (nothing is created).
    assert_eq!(
        run(
            &a,
            operator.clone(),
            Method::POST,
            "/containers/create",
            "{"
        )
        .await,
        Ok(Bytes::from("{"))
    );
    let exec = r#"{"Cmd": ["sh"], "Privileged": true}"#;
    let (_, msg) = run(
        &a,
        operator.clone(),
        Method::POST,
        "/containers/c/exec",
        exec,
    )
    .await
    .unwrap_err();
    assert!(msg.contains("(rule: operator.privileged)"), "{msg}");
    let vol = r#"{"Name": "v", "DriverOpts": {"type": "none", "o": "bind", "device": "/"}}"#;
    let (_, msg) = run(&a, operator.clone(), Method::POST, "/volumes/create", vol)
        .await
        .unwrap_err();
    assert!(msg.contains("(rule: operator.bind)"), "{msg}");
    let net = r#"{"Name": "n", "Options": {"com.docker.network.bridge.name": "eth0"}}"#;
    let (_, msg) = run(&a, operator.clone(), Method::POST, "/networks/create", net)
        .await
        .unwrap_err();
    assert!(msg.contains("(rule: operator.bridge_name)"), "{msg}");
    let net = r#"{"Name": "n", "Options": {"com.docker.network.driver.mtu": "1400"}}"#;
    assert!(
        run(&a, operator.clone(), Method::POST, "/networks/create", net)
            .await
            .is_ok()
    );
    let big = format!(r#"{{"Image": "{}"}}"#, "x".repeat(MAX_CHECKED_BODY));
    let (status, _) = run(&a, operator, Method::POST, "/containers/create", &big)
        .await
        .unwrap_err();
    assert_eq!(status, 400);

    let admin = tls("CN=a,OU=berth:admin");
    assert!(run(&a, admin, Method::POST, "/containers/create", bad)
        .await
        .is_ok());

    let nobody = tls("CN=nobody");
    let (status, msg) = run(&a, nobody.clone(), Method::GET, "/containers/json", "")
        .await
        .unwrap_err();
    assert_eq!(status, 403);
    assert!(msg.contains("(rule: no_role)"), "{msg}");
    assert!(run(&a, nobody.clone(), Method::GET, "/_ping", "")
        .await
        .is_ok());
    assert!(run(&a, nobody, Method::GET, "/version", "").await.is_ok());

    let viewer = tls("CN=v,OU=berth:viewer");
    let (_, msg) = run(&a, viewer, Method::POST, "/containers/create", body)
        .await
        .unwrap_err();
    assert!(
        msg.starts_with("authorization denied: role viewer may not POST /containers/create"),
        "{msg}"
    );
    assert!(msg.ends_with("(rule: viewer.read_only)"), "{msg}");
}

#[tokio::test]
async fn operators_do_not_reach_into_containers_they_could_not_create() {
    let a = authz("{}");
    let operator = tls("CN=o,OU=berth:operator");
    for (method, uri) in [
        (Method::POST, "/containers/admin-box/exec"),
        (Method::POST, "/containers/admin-box/attach?stream=1"),
        (
            Method::GET,
            "/containers/root-bind/archive?path=/host/etc/shadow",
        ),
        (Method::PUT, "/containers/root-bind/archive?path=/host"),
        (Method::GET, "/containers/admin-box/export"),
    ] {
        let (status, msg) = run(
            &a,
            operator.clone(),
            method.clone(),
            uri,
            r#"{"Cmd": ["sh"]}"#,
        )
        .await
        .unwrap_err();
        assert_eq!(status, 403, "{method} {uri}");
        assert!(msg.ends_with("(rule: operator.unconfined_target)"), "{msg}");
    }
    for peer in ["admin-box", "root-bind"] {
        for key in ["NetworkMode", "PidMode", "IpcMode"] {
            let body = json!({"Image": "b", "HostConfig": {key: format!("container:{peer}")}});
            let (_, msg) = run(
                &a,
                operator.clone(),
                Method::POST,
                "/containers/create",
                &body.to_string(),
            )
            .await
            .unwrap_err();
            assert!(
                msg.contains(&format!("join the namespaces of container {peer}")),
                "{msg}"
            );
        }
    }
    // An operator's own containers, and ones that do not exist (the route says 404).
    for uri in [
        "/containers/plain/exec",
        "/containers/plain/attach",
        "/containers/gone/exec",
    ] {
        assert!(
            run(&a, operator.clone(), Method::POST, uri, "{}")
                .await
                .is_ok(),
            "{uri}"
        );
    }
    let body = json!({"Image": "b", "HostConfig": {"NetworkMode": "container:plain"}});
    assert!(run(
        &a,
        operator.clone(),
        Method::POST,
        "/containers/create",
        &body.to_string()
    )
    .await
    .is_ok());
    // Reading a privileged container's state and stopping it stay an operator's.
    assert!(run(
        &a,
        operator.clone(),
        Method::GET,
        "/containers/admin-box/json",
        ""
    )
    .await
    .is_ok());
    assert!(
        run(&a, operator, Method::POST, "/containers/admin-box/stop", "")
            .await
            .is_ok()
    );
    // Admins are not checked.
    let admin = tls("CN=a,OU=berth:admin");
    assert!(
        run(&a, admin, Method::POST, "/containers/admin-box/exec", "{}")
            .await
            .is_ok()
    );
}
