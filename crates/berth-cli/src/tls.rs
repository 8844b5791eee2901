//! `berth tls init`, `berth tls client` and `berth tls revoke`: set up (and withdraw) the
//! trust of Berth's mutual-TLS endpoint in one step, and print exactly what to run next. Generating and writing the files is
//! `berth_tls::generate`'s job; this module chooses defaults and words the report.

use std::path::{Path, PathBuf};

use berth_tls::generate::{self, ClientReport, InitOptions, InitReport};

use crate::cli::{TlsClientArgs, TlsCommand, TlsInitArgs, TlsRevokeArgs};
use crate::endpoint::{DEFAULT_HOST, DEFAULT_TLS_PORT};
use crate::error::Error;
use crate::write_out;

/// Runs one `berth tls` subcommand.
pub fn run(cmd: &TlsCommand) -> Result<(), Error> {
    match cmd {
        TlsCommand::Init(args) => init(args),
        TlsCommand::Client(args) => client(args),
        TlsCommand::Revoke(args) => revoke(args),
    }
}

fn absolute(p: &Path) -> Result<PathBuf, Error> {
    std::path::absolute(p)
        .map_err(|e| Error::client(format!("cannot resolve the path {}: {e}", p.display())))
}

fn init(args: &TlsInitArgs) -> Result<(), Error> {
    let opts = InitOptions {
        dir: absolute(&args.dir)?,
        sans: args.sans.clone(),
        client_name: args.client_name.clone(),
        days: args.days,
        force: args.force,
    };
    let report = generate::init(&opts).map_err(|e| Error::client(e.to_string()))?;
    write_out(&render_init(&report, &args.client_name))
}

fn client(args: &TlsClientArgs) -> Result<(), Error> {
    let ca_dir = absolute(&args.dir)?;
    let out = match &args.out {
        Some(out) => absolute(out)?,
        None => ca_dir.join("clients").join(&args.name),
    };
    let role = args.role.map(|r| r.as_str());
    let report =
        generate::new_client_with_role(&ca_dir, &args.name, role, &out, args.days, args.force)
            .map_err(|e| Error::client(e.to_string()))?;
    write_out(&render_client(&report, &args.name, &ca_dir))
}

fn revoke(args: &TlsRevokeArgs) -> Result<(), Error> {
    let ca_dir = absolute(&args.dir)?;
    let report = match (&args.name, &args.cert) {
        (Some(name), _) => berth_tls::revoke(&ca_dir, name),
        (None, Some(cert)) => berth_tls::revoke_cert(&ca_dir, &absolute(cert)?),
        (None, None) => return Err(Error::client("give NAME or --cert FILE")),
    }
    .map_err(|e| Error::client(e.to_string()))?;
    let who = report
        .revoked_now
        .iter()
        .chain(&report.already_revoked)
        .map(|c| c.name.as_str())
        .next()
        .unwrap_or_default()
        .to_string();
    write_out(&render_revoke(&report, &who))
}

/// The report of `berth tls revoke`: what was revoked, the list, and the reload step.
pub fn render_revoke(report: &berth_tls::RevokeReport, name: &str) -> String {
    let mut s = String::new();
    for c in &report.revoked_now {
        s += &format!("Revoked {:?} (serial {}).\n", c.name, c.serial);
    }
    for c in &report.already_revoked {
        s += &format!("Already revoked: {:?} (serial {}).\n", c.name, c.serial);
    }
    let crl = shell_quote(&report.crl.display().to_string());
    let plural = if report.listed == 1 { "" } else { "s" };
    s += &format!(
        "Revocation list written to {crl} ({} certificate{plural}, CRL number {}).\n",
        report.listed, report.crl_number
    );
    s += &format!(
        "\nReload it in berthd (started with --tlscrl={crl} or daemon.json \"tlscrl\"; copy the file first if berthd runs on another host); this also closes {name:?}'s open connections:\n  kill -HUP $(pidof berthd)\n"
    );
    s
}

/// What each generated file is, by name.
fn describe(path: &Path, client_name: &str) -> String {
    match path.file_name().and_then(|n| n.to_str()) {
        Some("ca.pem") => "CA certificate (clients and berthd trust it)".into(),
        Some("ca-key.pem") => "CA key: keep it secret; it signs new client certificates".into(),
        Some("server-cert.pem") => "server certificate (for berthd)".into(),
        Some("server-key.pem") => "server key (for berthd)".into(),
        Some("cert.pem") => format!("client certificate (CN={client_name})"),
        Some("key.pem") => "client key".into(),
        Some("crl.pem") => {
            "revocation list (berthd --tlscrl), empty until `berth tls revoke`".into()
        }
        _ => String::new(),
    }
}

fn file_lines(written: &[PathBuf], client_name: &str) -> String {
    let width = written
        .iter()
        .map(|p| p.display().to_string().chars().count())
        .max()
        .unwrap_or(0);
    written
        .iter()
        .map(|p| {
            let shown = p.display().to_string();
            let desc = describe(p, client_name);
            if desc.is_empty() {
                format!("  {shown}\n")
            } else {
                format!("  {shown:<width$}  {desc}\n")
            }
        })
        .collect()
}

/// The host part of `DOCKER_HOST` for a client: the first SAN that is not a wildcard.
fn client_host(sans: &[String]) -> String {
    let name = sans
        .iter()
        .find(|s| !s.starts_with("*."))
        .map_or("localhost", String::as_str);
    if name.contains(':') {
        format!("[{name}]")
    } else {
        name.to_string()
    }
}

/// The report of `berth tls init`.
pub fn render_init(report: &InitReport, client_name: &str) -> String {
    let dir = &report.dir;
    let q = |p: PathBuf| shell_quote(&p.display().to_string());
    let mut s = format!(
        "Certificates written to {} (CA, server for: {}):\n",
        dir.display(),
        report.sans.join(", ")
    );
    s += &file_lines(&report.written, client_name);
    s += "\nStart the daemon with:\n";
    s += &format!(
        "  berthd -H {DEFAULT_HOST} -H tcp://0.0.0.0:{DEFAULT_TLS_PORT} --tlsverify --tlscacert={} --tlscert={} --tlskey={} --tlscrl={}\n",
        q(dir.join("ca.pem")),
        q(dir.join("server-cert.pem")),
        q(dir.join("server-key.pem")),
        q(dir.join("crl.pem")),
    );
    s += "\nConnect a client with:\n";
    s += &format!(
        "  export DOCKER_HOST=tcp://{}:{DEFAULT_TLS_PORT} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={}\n",
        client_host(&report.sans),
        q(dir.clone()),
    );
    s += "  berth version    # or: docker version\n";
    s += &context_lines(&client_host(&report.sans), dir);
    s += &format!(
        "\nMore client certificates: berth tls client NAME --dir {}\n",
        q(dir.clone())
    );
    s += &format!(
        "Revoke one: berth tls revoke NAME --dir {}, then kill -HUP $(pidof berthd)\n",
        q(dir.clone())
    );
    s
}

/// The report of `berth tls client`.
pub fn render_client(report: &ClientReport, name: &str, ca_dir: &Path) -> String {
    let mut s = format!(
        "Client certificate for {name:?} written to {} (signed by the CA in {}):\n",
        report.dir.display(),
        ca_dir.display()
    );
    s += &file_lines(&report.written, name);
    s += "\nConnect with (HOST: a name or address in the daemon's server certificate):\n";
    s += &format!(
        "  export DOCKER_HOST=tcp://HOST:{DEFAULT_TLS_PORT} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={}\n",
        shell_quote(&report.dir.display().to_string())
    );
    s += "  berth version    # or: docker version\n";
    s += &context_lines("HOST", &report.dir);
    s
}

/// How to keep a client directory as a named context (`berth context create --tls-dir`).
fn context_lines(host: &str, dir: &Path) -> String {
    format!(
        "or keep it as a named context (in the docker CLI's store, usable by both):\n  \
         berth context create NAME --tls-dir {} --host tcp://{host}:{DEFAULT_TLS_PORT}\n  \
         berth --context NAME version    # or: docker --context NAME version\n",
        shell_quote(&dir.display().to_string())
    )
}

/// Quotes `s` for a POSIX shell when it holds anything but safe characters.
fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%=,".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_report_gives_exact_next_steps() {
        let dir = PathBuf::from("/etc/berth/tls");
        let report = InitReport {
            dir: dir.clone(),
            written: berth_tls::generate::INIT_FILES
                .iter()
                .map(|f| dir.join(f))
                .collect(),
            sans: vec!["myhost".into(), "localhost".into(), "127.0.0.1".into()],
        };
        let text = render_init(&report, "client");
        assert!(text.starts_with(
            "Certificates written to /etc/berth/tls (CA, server for: myhost, localhost, 127.0.0.1):\n  /etc/berth/tls/ca.pem           CA certificate"
        ), "{text}");
        assert!(
            text.contains("  /etc/berth/tls/cert.pem         client certificate (CN=client)\n"),
            "{text}"
        );
        assert!(text.contains(
            "  berthd -H unix:///run/berth.sock -H tcp://0.0.0.0:2376 --tlsverify --tlscacert=/etc/berth/tls/ca.pem --tlscert=/etc/berth/tls/server-cert.pem --tlskey=/etc/berth/tls/server-key.pem --tlscrl=/etc/berth/tls/crl.pem\n"
        ), "{text}");
        assert!(text.contains(
            "  export DOCKER_HOST=tcp://myhost:2376 DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH=/etc/berth/tls\n  berth version    # or: docker version\n"
        ), "{text}");
        assert!(text.contains(
            "  berth context create NAME --tls-dir /etc/berth/tls --host tcp://myhost:2376\n  berth --context NAME version    # or: docker --context NAME version\n"
        ), "{text}");
    }

    #[test]
    fn revoke_report_names_the_list_and_the_reload_step() {
        let cert = |serial: &str| berth_tls::IssuedCert {
            serial: serial.into(),
            name: "bob".into(),
            subject: "CN=bob".into(),
            not_after: "2030-01-01T00:00:00Z".into(),
            revoked: Some("2026-01-01T00:00:00Z".into()),
        };
        let report = berth_tls::RevokeReport {
            crl: PathBuf::from("/etc/berth/tls/crl.pem"),
            revoked_now: vec![cert("4a01")],
            already_revoked: vec![cert("4b02")],
            listed: 2,
            crl_number: 3,
            next_update: time::OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(
            render_revoke(&report, "bob"),
            "Revoked \"bob\" (serial 4a01).\nAlready revoked: \"bob\" (serial 4b02).\nRevocation list written to /etc/berth/tls/crl.pem (2 certificates, CRL number 3).\n\nReload it in berthd (started with --tlscrl=/etc/berth/tls/crl.pem or daemon.json \"tlscrl\"; copy the file first if berthd runs on another host); this also closes \"bob\"'s open connections:\n  kill -HUP $(pidof berthd)\n"
        );
    }

    #[test]
    fn client_host_skips_wildcards_and_brackets_ipv6() {
        assert_eq!(
            client_host(&["*.x.org".into(), "a.x.org".into()]),
            "a.x.org"
        );
        assert_eq!(client_host(&["::1".into()]), "[::1]");
        assert_eq!(client_host(&[]), "localhost");
    }

    #[test]
    fn paths_with_spaces_are_quoted() {
        assert_eq!(shell_quote("/a b/c"), "'/a b/c'");
        assert_eq!(shell_quote("/it's"), r"'/it'\''s'");
        assert_eq!(shell_quote("/plain/path-1.pem"), "/plain/path-1.pem");
    }

    #[test]
    fn init_and_client_write_usable_files() {
        let base = std::env::temp_dir().join(format!("berth-cli-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let args = TlsInitArgs {
            dir: base.clone(),
            sans: vec!["myhost".into()],
            client_name: "client".into(),
            days: 2,
            force: false,
        };
        init(&args).unwrap();
        for f in berth_tls::generate::INIT_FILES {
            assert!(base.join(f).is_file(), "{f}");
        }
        // A second init refuses to overwrite.
        assert!(init(&args).is_err());
        client(&TlsClientArgs {
            name: "bob".into(),
            role: None,
            dir: base.clone(),
            out: None,
            days: 2,
            force: false,
        })
        .unwrap();
        let out = base.join("clients/bob");
        berth_tls::load_client_config(&berth_tls::TlsPaths::in_dir(&out)).unwrap();
        let revoke_args = TlsRevokeArgs {
            name: Some("bob".into()),
            cert: None,
            dir: base.clone(),
        };
        revoke(&revoke_args).unwrap();
        assert!(base.join("crl.pem").is_file());
        // Idempotent; an unknown name is an error.
        revoke(&revoke_args).unwrap();
        assert!(revoke(&TlsRevokeArgs {
            name: Some("nobody".into()),
            cert: None,
            dir: base.clone(),
        })
        .is_err());
        // By file: the first client's certificate.
        revoke(&TlsRevokeArgs {
            name: None,
            cert: Some(base.join("cert.pem")),
            dir: base.clone(),
        })
        .unwrap();
        std::fs::remove_dir_all(&base).unwrap();
    }
}
