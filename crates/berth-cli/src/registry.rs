//! `login` and `logout` (docker/cli `cli/command/registry/{login,logout}.go`), and the
//! registry credentials `pull`, `push` and `build` send, read from `config.json` through
//! [`crate::config_file`]. The commands only prompt, call `POST /auth`, store and print.
//!
//! Credential helpers (`credsStore`, `credHelpers`) are not run: berth reads and writes
//! only the `auths` section, as docker does when no helper is configured.

use std::fmt::Write as _;
use std::io::{self, BufRead, IsTerminal, Read};
use std::path::Path;
use std::process::{Command, Stdio};

use bollard::errors::Error as BollardError;
use bollard::BollardRequest;
use clap::Args;
use futures_util::StreamExt;
use http::header::{HeaderName, HeaderValue};
use http::Method;
use hyper::body::Bytes;
use serde_json::{Map, Value};

use crate::config_file::{
    base64_url_encode, convert_to_hostname, ConfigFile, RegistryAuth, INDEX_SERVER,
};
use crate::connect::Client;
use crate::{write_err, write_out, Error, Session};

/// The header `pull` and `push` carry the credentials in.
pub const AUTH_HEADER: &str = "x-registry-auth";

/// `berth login [OPTIONS] [SERVER]`.
#[derive(Debug, Clone, Default, Args)]
pub struct LoginArgs {
    /// Registry to log in to (default Docker Hub, https://index.docker.io/v1/)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,

    /// Username
    #[arg(short = 'u', long, value_name = "string")]
    pub username: Option<String>,

    /// Password or Personal Access Token (PAT)
    #[arg(short = 'p', long, value_name = "string")]
    pub password: Option<String>,

    /// Take the Password or Personal Access Token (PAT) from stdin
    #[arg(long)]
    pub password_stdin: bool,
}

/// `berth logout [SERVER]`.
#[derive(Debug, Clone, Default, Args)]
pub struct LogoutArgs {
    /// Registry to log out from (default Docker Hub, https://index.docker.io/v1/)
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// The credentials `pull`/`push` send for a reference's registry (`docker.io`,
/// `localhost:5000`); anonymous when config.json has none or cannot be read.
pub fn credentials_for(session: &Session, domain: &str) -> RegistryAuth {
    let path = ConfigFile::path_for(session);
    let config = match ConfigFile::load(&path) {
        Ok(c) => c,
        Err(e) => {
            tracing::debug!(error = %e, "ignoring the client config file");
            return RegistryAuth::default();
        }
    };
    let found = config.auth_for_domain(domain);
    if found.is_none() && config.names_credential_store() {
        tracing::debug!(
            domain,
            "config.json names a credential store; berth reads only its \"auths\" section"
        );
    }
    found.unwrap_or_default()
}

/// The `X-Registry-Config` value `build` sends: every stored credential as a JSON map
/// from registry to `AuthConfig`, in padded URL-safe base64 (docker's `runBuild`).
pub fn registry_config_value(session: &Session) -> String {
    let all = ConfigFile::load(&ConfigFile::path_for(session))
        .map(|c| c.all_credentials())
        .unwrap_or_default();
    let mut m = Map::new();
    for (k, a) in all {
        if let Ok(v) = serde_json::from_str::<Value>(&a.to_json()) {
            m.insert(k, v);
        }
    }
    base64_url_encode(Value::Object(m).to_string().as_bytes())
}

/// The `X-Registry-Auth` header for a reference's registry, built from config.json.
pub fn auth_header(session: &Session, domain: &str) -> Result<(HeaderName, HeaderValue), Error> {
    let value = HeaderValue::from_str(&credentials_for(session, domain).header_value())
        .map_err(|e| Error::client(format!("cannot encode registry credentials: {e}")))?;
    Ok((HeaderName::from_static(AUTH_HEADER), value))
}

// ---------------------------------------------------------------------------------------
// Commands

/// docker's warning when a password lands in config.json.
pub fn unencrypted_warning(path: &Path) -> String {
    format!(
        "\nWARNING! Your credentials are stored unencrypted in '{}'.\n\
         Configure a credential helper to remove this warning. See\n\
         https://docs.docker.com/go/credential-store/\n\n",
        path.display()
    )
}

/// `login`'s flags checked as docker checks them, and `--password-stdin` read.
fn login_options(args: &LoginArgs) -> Result<(String, String), Error> {
    let user = args.username.clone().unwrap_or_default();
    let mut password = args.password.clone().unwrap_or_default();
    if args.password_stdin {
        if args.password.is_some() {
            return Err(Error::client(
                "conflicting options: cannot specify both --password and --password-stdin",
            ));
        }
        if user.is_empty() {
            return Err(Error::client(
                "the --password-stdin option requires --username to be set",
            ));
        }
        let mut text = String::new();
        io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::client(format!("cannot read the password from stdin: {e}")))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        password = text.strip_suffix('\r').unwrap_or(text).to_string();
    } else if args.password.is_some() {
        write_err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")?;
    }
    Ok((user.trim().to_string(), password))
}

/// `login [SERVER]`: checks the credentials through the daemon (`POST /auth`) and stores
/// them in config.json.
pub async fn login(session: &Session, args: &LoginArgs) -> Result<(), Error> {
    let (user, password) = login_options(args)?;
    let server = match args.server.as_deref() {
        Some(s) if !s.is_empty() && s != "docker.io" => s.to_string(),
        _ => INDEX_SERVER.to_string(),
    };
    let is_default = server == INDEX_SERVER;
    let key = if is_default {
        server.clone()
    } else {
        convert_to_hostname(&server).to_string()
    };
    let path = ConfigFile::path_for(session);
    let mut config = ConfigFile::load(&path)?;
    let stored = config.get(&key).unwrap_or_default();
    let client = session.client().await?;

    // No flags and stored credentials: try those first, as docker does.
    if user.is_empty()
        && password.is_empty()
        && !stored.username.is_empty()
        && (!stored.password.is_empty() || !stored.identity_token.is_empty())
    {
        write_err(&format!(
            "Authenticating with existing credentials... [Username: {}]\n\n \
                 Info -> To login with a different account, run 'docker logout' followed by \
                 'docker login'\n\n\n",
            stored.username
        ))?;
        let mut auth = stored.clone();
        auth.server_address = key.clone();
        match post_auth(&client, &auth).await {
            Ok(status) => return print_status(&status),
            Err(e) => write_err(&format!("Login did not succeed, error: {e}\n"))?,
        }
    }

    let mut auth = RegistryAuth {
        username: user,
        password,
        server_address: key,
        identity_token: String::new(),
    };
    prompt_missing(&mut auth, &stored.username, is_default)?;
    let status = post_auth(&client, &auth).await?;
    if !status.identity_token.is_empty() {
        auth.password.clear();
        auth.identity_token = status.identity_token.clone();
    }
    config.store(&auth);
    config
        .save()
        .map_err(|e| Error::client(format!("Error saving credentials: {e}")))?;
    if !auth.password.is_empty() {
        write_err(&unencrypted_warning(&path))?;
    }
    print_status(&status)
}

fn print_status(status: &AuthStatus) -> Result<(), Error> {
    if status.status.is_empty() {
        return Ok(());
    }
    write_out(&format!("{}\n", status.status))
}

/// Prompts on the terminal for what the flags left out: the username (offering the
/// stored one), then the password without echo.
fn prompt_missing(
    auth: &mut RegistryAuth,
    stored_user: &str,
    is_default: bool,
) -> Result<(), Error> {
    let stdin = io::stdin();
    if auth.password.is_empty() && !stdin.is_terminal() {
        return Err(Error::client(
            "Error: Cannot perform an interactive login from a non TTY device",
        ));
    }
    if auth.username.is_empty() {
        if is_default {
            write_out(
                "Log in with your Docker ID or email address to push and pull images from \
                 Docker Hub. If you don't have a Docker ID, head over to https://hub.docker.com/ \
                 to create one.\n",
            )?;
        }
        if stored_user.is_empty() {
            write_out("Username: ")?;
        } else {
            write_out(&format!("Username ({stored_user}): "))?;
        }
        let typed = read_line(&mut stdin.lock())?;
        auth.username = if typed.is_empty() {
            stored_user.to_string()
        } else {
            typed
        };
    }
    if auth.username.is_empty() {
        return Err(Error::client("Error: Non-null Username Required"));
    }
    if auth.password.is_empty() {
        // Echo off before the prompt shows, so nothing typed after it is echoed.
        let echo_off = set_echo(false);
        let typed = write_out("Password: ").and_then(|()| read_line(&mut stdin.lock()));
        if echo_off {
            set_echo(true);
        }
        write_out("\n")?;
        auth.password = typed?;
        if auth.password.is_empty() {
            return Err(Error::client("Error: Password Required"));
        }
    }
    Ok(())
}

/// One line of input, surrounding white space trimmed (docker's `PromptForInput`).
fn read_line(input: &mut dyn BufRead) -> Result<String, Error> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| Error::client(format!("cannot read from stdin: {e}")))?;
    Ok(line.trim().to_string())
}

/// Turns the terminal's echo on or off with `stty` on our stdin (the crate has no unsafe
/// code for termios); true when it worked.
fn set_echo(on: bool) -> bool {
    Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(Stdio::inherit())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// What `POST /auth` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AuthStatus {
    status: String,
    identity_token: String,
}

/// `POST /auth`. bollard has no call for it, so we send bollard's `export_image` request
/// with its method, path and body swapped by a request modifier (as `image` does for
/// `push`): same transport, version prefix and error handling.
async fn post_auth(client: &Client, auth: &RegistryAuth) -> Result<AuthStatus, Error> {
    const PLACEHOLDER: &str = "berth-auth-request";
    let suffix = format!("/images/{PLACEHOLDER}/get");
    let body = Bytes::from(auth.to_json());
    let docker = client
        .docker()
        .clone()
        .with_request_modifier(move |mut req: BollardRequest| {
            let uri = req.uri().to_string();
            if let Some(base) = uri.strip_suffix(&suffix) {
                if let Ok(u) = format!("{base}/auth").parse() {
                    *req.uri_mut() = u;
                }
            }
            *req.method_mut() = Method::POST;
            *req.body_mut() = bollard::body_full(body.clone());
            req
        });
    let mut stream = Box::pin(docker.export_image(PLACEHOLDER));
    let mut answer = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e: BollardError| client.explain(e))?;
        answer.extend_from_slice(&chunk);
    }
    let value: Value = serde_json::from_slice(&answer).map_err(|e| {
        Error::client(format!(
            "cannot parse the daemon's answer to POST /auth: {e}"
        ))
    })?;
    let text = |k: &str| {
        value
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    Ok(AuthStatus {
        status: text("Status"),
        identity_token: text("IdentityToken"),
    })
}

/// `logout [SERVER]`: removes the server's entries from config.json.
pub async fn logout(session: &Session, args: &LogoutArgs) -> Result<(), Error> {
    let (server, default) = match args.server.as_deref() {
        Some(s) if !s.is_empty() => (s.to_string(), false),
        _ => (INDEX_SERVER.to_string(), true),
    };
    let hostname = if default {
        server.clone()
    } else {
        convert_to_hostname(&server).to_string()
    };
    let mut keys = vec![server.clone()];
    if !default {
        keys.extend([
            hostname.clone(),
            format!("http://{hostname}"),
            format!("https://{hostname}"),
        ]);
    }
    write_out(&format!("Removing login credentials for {hostname}\n"))?;
    let path = ConfigFile::path_for(session);
    let result = ConfigFile::load(&path).and_then(|mut config| {
        for k in &keys {
            config.erase(k);
        }
        config
            .save()
            .map_err(|e| Error::client(format!("{}: {e}", path.display())))
    });
    if let Err(e) = result {
        let mut text = String::from("WARNING: could not erase credentials:\n");
        for k in &keys {
            writeln!(text, "{k}: {e}").expect("write to String");
        }
        write_err(&text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::config_file::{base64_decode, base64_std_encode};
    use serde_json::json;

    fn config(value: Value) -> ConfigFile {
        ConfigFile::parse(Path::new("/x/config.json"), &value.to_string()).unwrap()
    }

    #[test]
    fn every_credential_for_the_build_registry_config() {
        let c = config(json!({"auths": {
            "localhost:5000": {"auth": base64_std_encode(b"u:p")},
            "https://index.docker.io/v1/": {"auth": base64_std_encode(b"h:q")},
        }}));
        let mut all = c.all_credentials();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        let users: Vec<(&str, &str)> = all
            .iter()
            .map(|(k, a)| (k.as_str(), a.username.as_str()))
            .collect();
        assert_eq!(
            users,
            [
                ("https://index.docker.io/v1/", "h"),
                ("localhost:5000", "u")
            ]
        );
    }

    #[test]
    fn header_is_url_safe_base64_of_dockers_json() {
        let auth = RegistryAuth {
            username: "alice".into(),
            password: "s3cret?>".into(),
            server_address: "127.0.0.1:5000".into(),
            identity_token: String::new(),
        };
        let header = auth.header_value();
        assert!(!header.contains('+') && !header.contains('/'), "{header}");
        let decoded: Value = serde_json::from_slice(&base64_decode(&header).unwrap()).unwrap();
        assert_eq!(
            decoded,
            json!({"username": "alice", "password": "s3cret?>", "serveraddress": "127.0.0.1:5000"})
        );
        assert_eq!(RegistryAuth::default().header_value(), "e30=");
    }

    #[test]
    fn login_and_logout_parse_like_docker() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "berth",
            "login",
            "-u",
            "alice",
            "--password-stdin",
            "h:1",
        ])
        .unwrap();
        let Some(crate::cli::Command::Login(a)) = cli.command else {
            panic!("not login")
        };
        assert_eq!(a.username.as_deref(), Some("alice"));
        assert!(a.password_stdin && a.password.is_none());
        assert_eq!(a.server.as_deref(), Some("h:1"));
        let cli = crate::cli::Cli::try_parse_from(["berth", "logout"]).unwrap();
        let Some(crate::cli::Command::Logout(a)) = cli.command else {
            panic!("not logout")
        };
        assert_eq!(a.server, None);
    }

    #[test]
    fn warning_names_the_file() {
        let w = unencrypted_warning(Path::new("/h/.docker/config.json"));
        assert!(
            w.contains("stored unencrypted in '/h/.docker/config.json'"),
            "{w}"
        );
    }
}
