//! Revocation end to end inside the crate: `init`/`new_client` index what they issue,
//! `revoke` writes a list openssl accepts, and a daemon configuration with that list
//! refuses the revoked client in a real in-memory handshake while others get in.

use std::path::Path;
use std::process::Command;

use rustls::pki_types::CertificateDer;
use rustls::CertificateError;

use crate::generate::{self, CRL_FILE};
use crate::test_support::*;
use crate::{load_client_config, load_server_tls, revoke, CertId, Index, TlsError, TlsPaths};

fn new_client(ca_dir: &Path, name: &str) -> TlsPaths {
    let out = ca_dir.join("clients").join(name);
    generate::new_client(ca_dir, name, &out, 5, false).unwrap();
    TlsPaths::in_dir(&out)
}

fn with_crl(ca_dir: &Path) -> TlsPaths {
    TlsPaths {
        crl: Some(ca_dir.join(CRL_FILE)),
        ..server_paths(ca_dir)
    }
}

fn cert_id(paths: &TlsPaths) -> CertId {
    let pem = std::fs::read(&paths.cert).unwrap();
    let der = crate::load::parse_certs(&paths.cert, &pem)
        .unwrap()
        .remove(0);
    CertId::of(&der).unwrap()
}

#[test]
fn init_and_client_index_unique_positive_serials() {
    let tmp = TempDir::new("index");
    let report = init_in(tmp.path(), &[]);
    let bob = new_client(&report.dir, "bob");
    let bob2 = new_client(&report.dir, "bob2");
    let index = Index::load(&report.dir).unwrap();
    let names: Vec<&str> = index.certificates.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["client", "bob", "bob2"]);
    // init wrote the first, empty, list.
    assert_eq!(index.crl_number, 1);
    for (entry, paths) in
        index
            .certificates
            .iter()
            .zip([TlsPaths::in_dir(&report.dir), bob.clone(), bob2])
    {
        // The index names the certificate's own serial: 16 bytes, top bit clear.
        assert_eq!(entry.serial, cert_id(&paths).serial_hex());
        assert_eq!(entry.serial.len(), 32, "{entry:?}");
        assert!(entry.serial.as_bytes()[0] < b'8', "{entry:?}");
        assert_eq!(entry.subject, format!("CN={}", entry.name));
        assert!(entry.revoked.is_none());
        assert!(crate::index::parse_rfc3339(&entry.not_after).is_some());
    }
    let mut serials: Vec<&str> = index
        .certificates
        .iter()
        .map(|c| c.serial.as_str())
        .collect();
    serials.sort_unstable();
    serials.dedup();
    assert_eq!(serials.len(), 3);
}

#[test]
fn revoke_writes_a_crl_signed_by_the_ca_and_is_idempotent() {
    let tmp = TempDir::new("revoke");
    let report = init_in(tmp.path(), &[]);
    let bob = new_client(&report.dir, "bob");

    let err = revoke(&report.dir, "nobody").unwrap_err();
    assert!(matches!(err, TlsError::UnknownClient { .. }), "{err}");
    assert!(
        err.to_string().contains("(it issued: bob, client)"),
        "{err}"
    );
    let empty = load_server_tls(&with_crl(&report.dir)).unwrap();
    assert!(empty.revoked.is_empty());

    let first = revoke(&report.dir, "bob").unwrap();
    assert_eq!(first.revoked_now.len(), 1);
    assert!(first.already_revoked.is_empty());
    assert_eq!((first.listed, first.crl_number), (1, 2));
    assert_eq!(first.crl, report.dir.join(CRL_FILE));

    let tls = load_server_tls(&with_crl(&report.dir)).unwrap();
    assert_eq!(tls.revoked.len(), 1);
    assert!(tls.revoked.contains(&cert_id(&bob)));
    assert!(!tls
        .revoked
        .contains(&cert_id(&TlsPaths::in_dir(&report.dir))));

    let again = revoke(&report.dir, "bob").unwrap();
    assert!(again.revoked_now.is_empty());
    assert_eq!(again.already_revoked, first.revoked_now);
    assert_eq!((again.listed, again.crl_number), (1, 3));
    let index = Index::load(&report.dir).unwrap();
    assert_eq!(index.crl_number, 3);
    assert_eq!(
        index
            .certificates
            .iter()
            .filter(|c| c.revoked.is_some())
            .count(),
        1
    );

    // An independent verifier agrees: openssl checks the signature against ca.pem and
    // lists bob's serial with the CRL number.
    let out = Command::new("openssl")
        .args(["crl", "-noout", "-text", "-CAfile"])
        .arg(report.dir.join("ca.pem"))
        .arg("-in")
        .arg(report.dir.join(CRL_FILE))
        .output();
    if let Ok(out) = out {
        let text = String::from_utf8_lossy(&out.stdout).to_uppercase();
        let errs = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{errs}");
        assert!(errs.contains("verify OK"), "{errs}");
        assert!(
            text.contains(&cert_id(&bob).serial_hex().to_uppercase()),
            "{text}"
        );
        assert!(
            text.contains("X509V3 CRL NUMBER: \n                3"),
            "{text}"
        );
    }
}

#[test]
fn revoked_client_refused_at_handshake_others_accepted() {
    let tmp = TempDir::new("refuse");
    let report = init_in(tmp.path(), &[]);
    let bob = new_client(&report.dir, "bob");
    let alice = new_client(&report.dir, "alice");
    revoke(&report.dir, "bob").unwrap();
    let server = load_server_tls(&with_crl(&report.dir)).unwrap().config;

    let out = handshake(
        server.clone(),
        load_client_config(&bob).unwrap(),
        "localhost",
    );
    match &out.server_err {
        Some(rustls::Error::InvalidCertificate(CertificateError::Revoked)) => {}
        other => panic!("bob was not refused as revoked: {other:?} ({out:?})"),
    }
    let out = handshake(server, load_client_config(&alice).unwrap(), "localhost");
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.subject.as_deref(), Some("CN=alice"));
}

#[test]
fn crl_of_another_ca_missing_or_garbage_refused() {
    let tmp = TempDir::new("badcrl");
    let ours = init_in(&tmp.path().join("a"), &[]);
    let theirs = init_in(&tmp.path().join("b"), &[]);
    new_client(&theirs.dir, "eve");
    revoke(&theirs.dir, "eve").unwrap();

    let err = load_server_tls(&TlsPaths {
        crl: Some(theirs.dir.join(CRL_FILE)),
        ..server_paths(&ours.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::CrlNotFromCa { .. }), "{err}");
    assert!(
        err.to_string().contains("is not signed by a CA in"),
        "{err}"
    );

    // Same issuer name ("berth CA"), other key: the signature decides, not the name.
    let forged = tmp.path().join("forged.pem");
    std::fs::copy(theirs.dir.join(CRL_FILE), &forged).unwrap();
    let err = load_server_tls(&TlsPaths {
        crl: Some(forged),
        ..server_paths(&ours.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::CrlNotFromCa { .. }), "{err}");

    let err = load_server_tls(&TlsPaths {
        crl: Some(tmp.path().join("missing.pem")),
        ..server_paths(&ours.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err}");
    assert!(err.to_string().contains("berth tls revoke"), "{err}");

    let garbage = tmp.path().join("garbage.pem");
    std::fs::write(&garbage, "not a list\n").unwrap();
    let err = load_server_tls(&TlsPaths {
        crl: Some(garbage.clone()),
        ..server_paths(&ours.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::NoCrl { .. }), "{err}");

    std::fs::write(
        &garbage,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    )
    .unwrap();
    let err = load_server_tls(&TlsPaths {
        crl: Some(garbage),
        ..server_paths(&ours.dir)
    })
    .unwrap_err();
    assert!(matches!(err, TlsError::BadCrl { .. }), "{err}");
}

#[test]
fn forced_init_starts_a_new_index_and_an_empty_list() {
    let tmp = TempDir::new("reinit");
    let report = init_in(tmp.path(), &[]);
    new_client(&report.dir, "bob");
    revoke(&report.dir, "bob").unwrap();
    let mut opts = init_opts(&report.dir, &[]);
    opts.force = true;
    generate::init(&opts).unwrap();
    let index = Index::load(&report.dir).unwrap();
    assert_eq!(index.certificates.len(), 1);
    assert_eq!(index.crl_number, 1);
    // The new list is the new CA's, and empty.
    assert!(load_server_tls(&with_crl(&report.dir))
        .unwrap()
        .revoked
        .is_empty());
}

#[test]
fn cert_id_of_garbage_is_none() {
    assert!(CertId::of(&CertificateDer::from(vec![0x30, 0x03, 1, 2])).is_none());
}

#[test]
fn revoke_by_certificate_file_covers_certificates_the_index_lacks() {
    let tmp = TempDir::new("bycert");
    let report = init_in(tmp.path(), &[]);
    // Made by hand with the CA's key: not in the index (as from a berth before indexes).
    let (cert_pem, key_pem) = sign_leaf(&Leaf::client("carol"), &issuer_from(&report.dir));
    let carol = write_client(
        &tmp.path().join("carol"),
        &report.dir.join("ca.pem"),
        &cert_pem,
        &key_pem,
    );
    assert!(revoke(&report.dir, "carol").is_err());
    let done = crate::revoke_cert(&report.dir, &carol.cert).unwrap();
    assert_eq!(done.revoked_now.len(), 1);
    assert_eq!(done.revoked_now[0].name, "carol");
    assert_eq!(done.revoked_now[0].serial, cert_id(&carol).serial_hex());
    // Now in the index: by name it is already revoked.
    let again = revoke(&report.dir, "carol").unwrap();
    assert_eq!(again.already_revoked.len(), 1);

    let server = load_server_tls(&with_crl(&report.dir)).unwrap().config;
    let out = handshake(server, load_client_config(&carol).unwrap(), "localhost");
    assert!(!out.ok(), "{out:?}");

    // An indexed certificate by file: its entry is marked, no duplicate.
    let bob = new_client(&report.dir, "bob");
    crate::revoke_cert(&report.dir, &bob.cert).unwrap();
    let index = Index::load(&report.dir).unwrap();
    let bobs: Vec<_> = index
        .certificates
        .iter()
        .filter(|c| c.name == "bob")
        .collect();
    assert_eq!(bobs.len(), 1);
    assert!(bobs[0].revoked.is_some());

    // Another CA's certificate is not this CA's to revoke.
    let other = init_in(&tmp.path().join("other"), &[]);
    let err = crate::revoke_cert(&report.dir, &other.dir.join("cert.pem")).unwrap_err();
    assert!(
        err.to_string().contains("was not issued by the CA in"),
        "{err}"
    );
}
