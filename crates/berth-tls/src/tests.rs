//! End-to-end tests of the crate: `generate` writes files, `load_*` reads them, and real
//! in-memory rustls handshakes show who gets in. Each refusal test names the rule it pins.

use std::path::Path;
use std::sync::Arc;

use rcgen::ExtendedKeyUsagePurpose;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use time::{Duration, OffsetDateTime};

use crate::generate::{self, InitOptions};
use crate::load::{parse_certs, parse_key};
use crate::test_support::*;
use crate::{load_client_config, load_server_config, TlsError, TlsPaths};

fn server_for(tls: &Path) -> Arc<rustls::ServerConfig> {
    load_server_config(&server_paths(tls)).unwrap()
}

fn client_for(tls: &Path) -> Arc<ClientConfig> {
    load_client_config(&TlsPaths::in_dir(tls)).unwrap()
}

fn assert_server_refused(out: &Outcome, want: impl Fn(&rustls::Error) -> bool) {
    match &out.server_err {
        Some(e) if want(e) => {}
        other => panic!("expected the server to refuse, got {other:?} (outcome {out:?})"),
    }
    assert!(!out.ok());
}

fn is_cert_error(e: &rustls::Error, f: impl Fn(&CertificateError) -> bool) -> bool {
    matches!(e, rustls::Error::InvalidCertificate(c) if f(c))
}

#[test]
fn good_client_accepted_with_identity_and_alpn() {
    let tmp = TempDir::new("good");
    let report = init_in(tmp.path(), &[]);
    let out = handshake(
        server_for(&report.dir),
        client_for(&report.dir),
        "localhost",
    );
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.subject.as_deref(), Some("CN=client"));
    assert_eq!(out.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(out.version, Some(rustls::ProtocolVersion::TLSv1_3));
}

#[test]
fn tls12_client_accepted() {
    let tmp = TempDir::new("tls12");
    let report = init_in(tmp.path(), &[]);
    let paths = TlsPaths::in_dir(&report.dir);
    let mut roots = RootCertStore::empty();
    for c in parse_certs(&paths.ca, &std::fs::read(&paths.ca).unwrap()).unwrap() {
        roots.add(c).unwrap();
    }
    let chain = parse_certs(&paths.cert, &std::fs::read(&paths.cert).unwrap()).unwrap();
    let key = parse_key(&paths.key, &std::fs::read(&paths.key).unwrap()).unwrap();
    let client =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS12])
            .unwrap()
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .unwrap();
    let out = handshake(server_for(&report.dir), Arc::new(client), "localhost");
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(out.subject.as_deref(), Some("CN=client"));
}

#[test]
fn client_without_certificate_refused() {
    let tmp = TempDir::new("nocert");
    let report = init_in(tmp.path(), &[]);
    let paths = TlsPaths::in_dir(&report.dir);
    let mut roots = RootCertStore::empty();
    for c in parse_certs(&paths.ca, &std::fs::read(&paths.ca).unwrap()).unwrap() {
        roots.add(c).unwrap();
    }
    let client =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let out = handshake(server_for(&report.dir), Arc::new(client), "localhost");
    assert_server_refused(&out, |e| {
        matches!(e, rustls::Error::NoCertificatesPresented)
    });
}

#[test]
fn client_from_another_ca_refused() {
    let tmp = TempDir::new("otherca");
    let ours = init_in(&tmp.path().join("ours"), &[]);
    let theirs = init_in(&tmp.path().join("theirs"), &[]);
    // Trusts our server, but presents a certificate from another CA.
    let paths = TlsPaths {
        ca: ours.dir.join("ca.pem"),
        cert: theirs.dir.join("cert.pem"),
        key: theirs.dir.join("key.pem"),
        crl: None,
    };
    let out = handshake(
        server_for(&ours.dir),
        load_client_config(&paths).unwrap(),
        "localhost",
    );
    // Both CAs are named "CN=berth CA", so webpki finds a candidate issuer by name and
    // then fails its signature.
    assert_server_refused(&out, |e| {
        is_cert_error(e, |c| {
            matches!(
                c,
                CertificateError::UnknownIssuer | CertificateError::BadSignature
            )
        })
    });
}

fn leaf_outcome(tag: &str, leaf: Leaf) -> Outcome {
    let tmp = TempDir::new(tag);
    let report = init_in(tmp.path(), &[]);
    let (cert, key) = sign_leaf(&leaf, &issuer_from(&report.dir));
    let paths = write_client(
        &tmp.path().join("client"),
        &report.dir.join("ca.pem"),
        &cert,
        &key,
    );
    handshake(
        server_for(&report.dir),
        load_client_config(&paths).unwrap(),
        "localhost",
    )
}

#[test]
fn hand_made_client_leaf_accepted() {
    // The control for the refusals below: same builder, proper profile.
    let out = leaf_outcome("handmade", Leaf::client("bob"));
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.subject.as_deref(), Some("CN=bob"));
}

#[test]
fn client_cert_with_server_auth_only_eku_refused() {
    let mut leaf = Leaf::client("srv");
    leaf.ekus = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let out = leaf_outcome("srveku", leaf);
    assert_server_refused(&out, |e| {
        is_cert_error(e, |c| {
            matches!(
                c,
                CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. }
            )
        })
    });
}

#[test]
fn client_cert_without_eku_refused() {
    let mut leaf = Leaf::client("noeku");
    leaf.ekus = vec![];
    let out = leaf_outcome("noeku", leaf);
    assert_server_refused(&out, |e| {
        is_cert_error(e, |c| matches!(c, CertificateError::InvalidPurpose))
    });
}

#[test]
fn expired_client_cert_refused() {
    let now = OffsetDateTime::now_utc();
    let mut leaf = Leaf::client("old");
    leaf.not_before = now - Duration::days(10);
    leaf.not_after = now - Duration::days(1);
    let out = leaf_outcome("expired", leaf);
    assert_server_refused(&out, |e| {
        is_cert_error(e, |c| {
            matches!(
                c,
                CertificateError::Expired | CertificateError::ExpiredContext { .. }
            )
        })
    });
}

#[test]
fn not_yet_valid_client_cert_refused() {
    let now = OffsetDateTime::now_utc();
    let mut leaf = Leaf::client("future");
    leaf.not_before = now + Duration::days(1);
    leaf.not_after = now + Duration::days(10);
    let out = leaf_outcome("future", leaf);
    assert_server_refused(&out, |e| {
        is_cert_error(e, |c| {
            matches!(
                c,
                CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }
            )
        })
    });
}

#[test]
fn intermediate_chain_accepted() {
    let tmp = TempDir::new("chain");
    let report = init_in(tmp.path(), &[]);
    let (inter_pem, inter) = intermediate(&issuer_from(&report.dir));
    let (leaf_pem, key) = sign_leaf(&Leaf::client("carol"), &inter);
    let chain = format!("{leaf_pem}{inter_pem}");
    let paths = write_client(
        &tmp.path().join("client"),
        &report.dir.join("ca.pem"),
        &chain,
        &key,
    );
    let out = handshake(
        server_for(&report.dir),
        load_client_config(&paths).unwrap(),
        "localhost",
    );
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.subject.as_deref(), Some("CN=carol"));

    // Without the intermediate the leaf does not chain to the root.
    std::fs::write(&paths.cert, &leaf_pem).unwrap();
    let out = handshake(
        server_for(&report.dir),
        load_client_config(&paths).unwrap(),
        "localhost",
    );
    assert_server_refused(&out, |e| {
        is_cert_error(e, |c| matches!(c, CertificateError::UnknownIssuer))
    });
}

#[test]
fn several_roots_in_ca_file_each_trusted() {
    let tmp = TempDir::new("roots");
    let a = init_in(&tmp.path().join("a"), &[]);
    let b = init_in(&tmp.path().join("b"), &[]);
    let both = tmp.path().join("both.pem");
    let pem = std::fs::read_to_string(a.dir.join("ca.pem")).unwrap()
        + &std::fs::read_to_string(b.dir.join("ca.pem")).unwrap();
    std::fs::write(&both, pem).unwrap();
    let server = load_server_config(&TlsPaths {
        ca: both.clone(),
        ..server_paths(&a.dir)
    })
    .unwrap();
    let client_b = load_client_config(&TlsPaths {
        ca: a.dir.join("ca.pem"),
        ..TlsPaths::in_dir(&b.dir)
    })
    .unwrap();
    let out = handshake(server, client_b, "localhost");
    assert!(out.ok(), "{out:?}");
}

#[test]
fn server_name_not_in_sans_refused_by_client() {
    let tmp = TempDir::new("name");
    let report = init_in(tmp.path(), &["berth.example.com"]);
    let out = handshake(
        server_for(&report.dir),
        client_for(&report.dir),
        "evil.example.com",
    );
    match &out.client_err {
        Some(e)
            if is_cert_error(e, |c| {
                matches!(
                    c,
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                )
            }) => {}
        other => panic!("expected the client to refuse the name, got {other:?}"),
    }
    assert!(!out.ok());
}

#[test]
fn every_san_accepted() {
    let tmp = TempDir::new("sans");
    let report = init_in(tmp.path(), &["Berth.Example.com", "10.1.2.3", "[::1]"]);
    assert_eq!(
        report.sans,
        [
            "berth.example.com",
            "10.1.2.3",
            "::1",
            "localhost",
            "127.0.0.1"
        ]
    );
    let server = server_for(&report.dir);
    let client = client_for(&report.dir);
    for name in [
        "127.0.0.1",
        "localhost",
        "berth.example.com",
        "10.1.2.3",
        "::1",
    ] {
        let out = handshake(server.clone(), client.clone(), name);
        assert!(out.ok(), "{name}: {out:?}");
    }
    let chain = parse_certs(
        Path::new("x"),
        &std::fs::read(report.dir.join("server-cert.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        crate::peer_subject(&chain[0]).as_deref(),
        Some("CN=berth.example.com")
    );
}

#[test]
fn default_server_cn_is_berthd() {
    let tmp = TempDir::new("cn");
    let report = init_in(tmp.path(), &[]);
    assert_eq!(report.sans, ["localhost", "127.0.0.1"]);
    let chain = parse_certs(
        Path::new("x"),
        &std::fs::read(report.dir.join("server-cert.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(crate::peer_subject(&chain[0]).as_deref(), Some("CN=berthd"));
    let ca = parse_certs(
        Path::new("x"),
        &std::fs::read(report.dir.join("ca.pem")).unwrap(),
    )
    .unwrap();
    assert_eq!(crate::peer_subject(&ca[0]).as_deref(), Some("CN=berth CA"));
}

#[cfg(unix)]
#[test]
fn file_modes() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new("modes");
    let report = init_in(tmp.path(), &[]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&report.dir), 0o700);
    assert_eq!(report.written.len(), 7);
    for path in &report.written {
        let name = path.file_name().unwrap().to_str().unwrap();
        let want = if name.contains("key") { 0o600 } else { 0o644 };
        assert_eq!(mode(path), want, "{name}");
    }
    // No temp files left behind.
    let mut names: Vec<_> = std::fs::read_dir(&report.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca-key.pem",
            "ca.pem",
            "cert.pem",
            "crl.pem",
            "index.json",
            "key.pem",
            "server-cert.pem",
            "server-key.pem"
        ]
    );
    assert_eq!(mode(&report.dir.join("index.json")), 0o644);
}

#[test]
fn init_refuses_to_overwrite_without_force() {
    let tmp = TempDir::new("force");
    let report = init_in(tmp.path(), &[]);
    let before = std::fs::read(report.dir.join("ca.pem")).unwrap();
    let mut opts: InitOptions = init_opts(&report.dir, &[]);
    let err = generate::init(&opts).unwrap_err();
    assert!(matches!(err, TlsError::Exists { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("ca.pem") && msg.contains("--force") && msg.contains("--dir"),
        "{msg}"
    );
    assert_eq!(std::fs::read(report.dir.join("ca.pem")).unwrap(), before);

    opts.force = true;
    generate::init(&opts).unwrap();
    assert_ne!(std::fs::read(report.dir.join("ca.pem")).unwrap(), before);
}

#[test]
fn init_rejects_bad_arguments() {
    let tmp = TempDir::new("badargs");
    let mut opts = init_opts(&tmp.path().join("tls"), &["not a name"]);
    let msg = generate::init(&opts).unwrap_err().to_string();
    assert!(msg.contains("invalid SAN \"not a name\""), "{msg}");
    opts.sans.clear();
    opts.days = 0;
    assert!(matches!(
        generate::init(&opts),
        Err(TlsError::InvalidArgument(_))
    ));
    opts.days = 1;
    opts.client_name = "../x".to_string();
    assert!(matches!(
        generate::init(&opts),
        Err(TlsError::InvalidArgument(_))
    ));
    // Nothing was created for refused arguments.
    assert!(!tmp.path().join("tls").exists());
}

#[test]
fn new_client_is_a_ready_cert_path() {
    let tmp = TempDir::new("newclient");
    let report = init_in(tmp.path(), &[]);
    let out_dir = report.dir.join("clients").join("dave");
    let rep = generate::new_client(&report.dir, "dave", &out_dir, 7, false).unwrap();
    assert_eq!(rep.dir, out_dir);
    assert_eq!(
        rep.written,
        [
            out_dir.join("cert.pem"),
            out_dir.join("key.pem"),
            out_dir.join("ca.pem")
        ]
    );
    assert_eq!(
        std::fs::read(out_dir.join("ca.pem")).unwrap(),
        std::fs::read(report.dir.join("ca.pem")).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out_dir.join("key.pem")), 0o600);
        assert_eq!(mode(&out_dir.join("cert.pem")), 0o644);
    }
    let out = handshake(server_for(&report.dir), client_for(&out_dir), "localhost");
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.subject.as_deref(), Some("CN=dave"));

    let err = generate::new_client(&report.dir, "dave", &out_dir, 7, false).unwrap_err();
    assert!(matches!(err, TlsError::Exists { .. }), "{err:?}");
    generate::new_client(&report.dir, "dave", &out_dir, 7, true).unwrap();
}

#[test]
fn new_client_with_role_puts_it_in_an_ou() {
    let tmp = TempDir::new("roleclient");
    let report = init_in(tmp.path(), &[]);
    let out_dir = report.dir.join("clients").join("vera");
    generate::new_client_with_role(&report.dir, "vera", Some("viewer"), &out_dir, 7, false)
        .unwrap();
    let out = handshake(server_for(&report.dir), client_for(&out_dir), "localhost");
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.subject.as_deref(), Some("OU=berth:viewer,CN=vera"));
    for bad in ["", "Admin", "a,OU=x", "berth:admin"] {
        let err = generate::new_client_with_role(&report.dir, "v2", Some(bad), &out_dir, 7, true)
            .unwrap_err();
        assert!(err.to_string().contains("invalid role"), "{bad}: {err}");
    }
}

#[test]
fn new_client_without_ca_says_to_init() {
    let tmp = TempDir::new("noca");
    let err =
        generate::new_client(tmp.path(), "eve", &tmp.path().join("out"), 7, false).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("ca.pem") && msg.contains("berth tls init --dir"),
        "{msg}"
    );
}

#[test]
fn new_client_with_mismatched_ca_key_refused() {
    let tmp = TempDir::new("mismatchca");
    let a = init_in(&tmp.path().join("a"), &[]);
    let b = init_in(&tmp.path().join("b"), &[]);
    std::fs::copy(b.dir.join("ca-key.pem"), a.dir.join("ca-key.pem")).unwrap();
    let err = generate::new_client(&a.dir, "eve", &tmp.path().join("out"), 7, false).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
}

#[test]
fn missing_file_error_names_path_and_fix() {
    let tmp = TempDir::new("missing");
    let dir = tmp.path().join("nowhere");
    let err = load_server_config(&TlsPaths::in_dir(&dir)).unwrap_err();
    assert!(matches!(
        err,
        TlsError::Read {
            kind: std::io::ErrorKind::NotFound,
            ..
        }
    ));
    assert_eq!(
        err.to_string(),
        format!(
            "tls: cannot read {}: No such file or directory; create it with `berth tls init --dir {}`",
            dir.join("ca.pem").display(),
            dir.display()
        )
    );
}

#[test]
fn loading_errors_are_specific() {
    let tmp = TempDir::new("loaderr");
    let report = init_in(tmp.path(), &[]);
    let junk = tmp.path().join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();

    // No certificate in the CA file.
    let err = load_server_config(&TlsPaths {
        ca: junk.clone(),
        ..server_paths(&report.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains("junk.pem"));

    // No key in the key file (a certificate given as the key).
    let err = load_server_config(&TlsPaths {
        key: report.dir.join("server-cert.pem"),
        ..server_paths(&report.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err:?}");

    // The client's key with the server's certificate.
    let err = load_server_config(&TlsPaths {
        key: report.dir.join("key.pem"),
        ..server_paths(&report.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("key.pem") && msg.contains("server-cert.pem"),
        "{msg}"
    );

    let err = load_client_config(&TlsPaths {
        key: report.dir.join("server-key.pem"),
        ..TlsPaths::in_dir(&report.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");

    // Damaged PEM.
    std::fs::write(
        &junk,
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let err = load_client_config(&TlsPaths {
        ca: junk.clone(),
        ..TlsPaths::in_dir(&report.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::MalformedPem { .. }), "{err:?}");
}

#[test]
fn key_material_never_in_errors() {
    let tmp = TempDir::new("secret");
    let report = init_in(tmp.path(), &[]);
    let key = std::fs::read_to_string(report.dir.join("key.pem")).unwrap();
    let body: String = key.lines().nth(1).unwrap().to_string();
    // Damage the key so parsing fails mid-way.
    let damaged = key.replacen(&body, &format!("{}!", &body[..body.len() - 1]), 1);
    let bad = tmp.path().join("bad-key.pem");
    std::fs::write(&bad, &damaged).unwrap();
    let err = load_client_config(&TlsPaths {
        key: bad,
        ..TlsPaths::in_dir(&report.dir)
    })
    .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(&body[..16]), "{text}");
}
