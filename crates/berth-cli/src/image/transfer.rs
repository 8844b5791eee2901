//! The image commands that talk to registries through the daemon: `pull` and `push`, with
//! the credentials of `login` and the daemon's progress drawn as docker draws it.

use std::io::{self, IsTerminal};

use bollard::query_parameters::CreateImageOptions;
use bollard::BollardRequest;
use futures_util::StreamExt;
use http::Method;
use serde_json::{json, Map, Value};

use berth_api_types::reference::Reference;

use super::{PullArgs, PushArgs, LONG_REQUEST};
use crate::error::Error;
use crate::progress::{print_message, terminal_width, JsonLines, JsonMessage, ProgressPrinter};
use crate::registry;
use crate::request::{path_escape, query_escape, raw_request};
use crate::{write_out, Session};

/// `pull NAME[:TAG|@DIGEST]`.
pub async fn pull(session: &Session, args: &PullArgs) -> Result<(), Error> {
    let mut reference = Reference::parse(&args.name)?;
    let name_only = reference.is_name_only();
    if args.all_tags && !name_only {
        return Err(Error::client("tag can't be used with --all-tags/-a"));
    }
    if !args.all_tags && name_only {
        reference = reference.with_default_tag();
        if !args.quiet {
            write_out("Using default tag: latest\n")?;
        }
    }
    let client = session.client().await?;
    let auth_header = registry::auth_header(session, reference.domain())?;
    let opts = CreateImageOptions {
        from_image: Some(reference.full_name()),
        tag: pull_tag(&reference),
        platform: platform_param(args.platform.as_deref()),
        ..Default::default()
    };
    // The header as docker encodes it (URL-safe base64, empty fields left out), not
    // bollard's `DockerCredentials` encoding.
    let docker = client
        .docker()
        .clone()
        .with_timeout(LONG_REQUEST)
        .with_request_modifier(move |mut req: BollardRequest| {
            req.headers_mut()
                .insert(auth_header.0.clone(), auth_header.1.clone());
            req
        });
    let mut stream = docker.create_image(Some(opts), None, None);
    let terminal = io::stdout().is_terminal() && !args.quiet;
    let mut printer = ProgressPrinter::new(terminal, terminal_width(terminal));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| client.daemon_err(e))?;
        if args.quiet {
            continue;
        }
        let jm = JsonMessage::from(info);
        print_message(&mut printer, &jm)?;
    }
    write_out(&format!("{reference}\n"))
}

/// `push NAME[:TAG]`.
pub async fn push(session: &Session, args: &PushArgs) -> Result<(), Error> {
    let mut reference = Reference::parse(&args.name)?;
    if reference.digest().is_some() {
        return Err(Error::client("cannot push a digest reference"));
    }
    if args.all_tags && reference.tag().is_some() {
        return Err(Error::client("tag can't be used with --all-tags/-a"));
    }
    if !args.all_tags && reference.tag().is_none() {
        reference = reference.with_default_tag();
        if !args.quiet {
            write_out("Using default tag: latest\n")?;
        }
    }
    let mut query = Vec::new();
    if let Some(t) = reference.tag().filter(|_| !args.all_tags) {
        query.push(format!("tag={}", query_escape(t)));
    }
    if let Some(p) = &args.platform {
        query.push(format!("platform={}", query_escape(&platform_json(p)?)));
    }
    let auth_header = registry::auth_header(session, reference.domain())?;
    let familiar = reference.familiar_name();
    let client = session.client().await?;
    // Not bollard's `push_image`: it decodes the stream into `PushImageInfo`, which has no
    // `id`, so per-layer lines could not be drawn. We read the JSON lines ourselves.
    let mut path = format!("/images/{}/push", path_escape(&familiar));
    if !query.is_empty() {
        path = format!("{path}?{}", query.join("&"));
    }
    let docker = client.docker().clone().with_timeout(LONG_REQUEST);
    let headers = vec![auth_header];
    let body = raw_request(&docker, Method::POST, path, headers);
    let terminal = io::stdout().is_terminal() && !args.quiet;
    let mut printer = ProgressPrinter::new(terminal, terminal_width(terminal));
    let mut lines = JsonLines::default();
    let mut body = Box::pin(body);
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| client.daemon_err(e))?;
        for jm in lines.push(&chunk)? {
            if args.quiet {
                if let Some(e) = jm.error_text() {
                    return Err(Error::client(e));
                }
                continue;
            }
            print_message(&mut printer, &jm)?;
        }
    }
    for jm in lines.finish()? {
        if !args.quiet {
            print_message(&mut printer, &jm)?;
        } else if let Some(e) = jm.error_text() {
            return Err(Error::client(e));
        }
    }
    if args.quiet {
        write_out(&format!("{reference}\n"))?;
    }
    Ok(())
}

/// The `tag` parameter of `POST /images/create` for a reference: its digest when it has
/// one (the digest alone decides what is fetched), else its tag.
pub fn pull_tag(reference: &Reference) -> Option<String> {
    reference
        .digest()
        .map(ToString::to_string)
        .or_else(|| reference.tag().map(str::to_owned))
}

/// `--platform` as `pull` and `import` send it: lower-cased, empty when not given.
pub(super) fn platform_param(platform: Option<&str>) -> String {
    platform.unwrap_or_default().to_ascii_lowercase()
}

/// `--platform os[/arch[/variant]]` as the JSON docker sends to `push`.
fn platform_json(p: &str) -> Result<String, Error> {
    let mut parts = p.split('/');
    let os = parts.next().unwrap_or_default();
    let arch = parts.next();
    if os.is_empty() || arch.is_some_and(str::is_empty) {
        return Err(Error::client(format!("invalid platform {p:?}")));
    }
    let mut m = Map::new();
    if let Some(a) = arch {
        m.insert("architecture".into(), json!(a.to_ascii_lowercase()));
    }
    m.insert("os".into(), json!(os.to_ascii_lowercase()));
    if let Some(v) = parts.next() {
        m.insert("variant".into(), json!(v.to_ascii_lowercase()));
    }
    Ok(Value::Object(m).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_are_sent_as_docker_sends_them() {
        assert_eq!(
            platform_json("linux/ARM64/v8").unwrap(),
            r#"{"architecture":"arm64","os":"linux","variant":"v8"}"#
        );
        assert!(platform_json("/x").is_err());
    }
}
