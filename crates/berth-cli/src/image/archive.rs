//! The image commands that move images as files: `save` (to a file written beside its
//! destination and renamed over it when complete), `load` and `import` (streamed from
//! a file or stdin read on a thread, so a blocking read never stalls the runtime).

use std::io::{self, IsTerminal, Read, Write};
use std::path::Path;

use bollard::query_parameters::{CreateImageOptions, ImportImageOptions};
use bollard::BollardRequest;
use futures_util::{Stream, StreamExt};
use http::header::HeaderValue;
use hyper::body::Bytes;

use berth_api_types::reference::Reference;

use super::{ImportArgs, LoadArgs, SaveArgs, LONG_REQUEST};
use crate::atomic_file::AtomicFile;
use crate::error::Error;
use crate::progress::{print_message, terminal_width, JsonMessage, JsonProgress, ProgressPrinter};
use crate::request::query_escape;
use crate::Session;

/// `save`: to `-o FILE` (written beside it and renamed into place when complete, as
/// docker's `CopyToFile`), else to stdout unless that is a terminal.
pub async fn save(session: &Session, args: &SaveArgs) -> Result<(), Error> {
    if let Some(path) = &args.output {
        validate_output_path(path)
            .map_err(|e| Error::client(format!("failed to save image: {e}")))?;
    } else if io::stdout().is_terminal() {
        return Err(Error::client(
            "cowardly refusing to save to a terminal. Use the -o flag or redirect",
        ));
    }
    let client = session.client().await?;
    let docker = client.docker().clone().with_timeout(LONG_REQUEST);
    let names: Vec<&str> = args.images.iter().map(String::as_str).collect();
    let mut stream = docker.export_images(&names);
    match &args.output {
        Some(path) => {
            let mut file = AtomicFile::create_beside(path)
                .map_err(|e| Error::client(format!("failed to save image: {e}")))?;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| client.daemon_err(e))?;
                file.write_all(&chunk).map_err(|e| {
                    Error::client(format!(
                        "failed to save image: write {}: {e}",
                        path.display()
                    ))
                })?;
            }
            file.persist()
                .map_err(|e| Error::client(format!("failed to save image: {e}")))
        }
        None => {
            let stdout = io::stdout();
            let mut out = stdout.lock();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| client.daemon_err(e))?;
                match out.write_all(&chunk) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => return Err(Error::client(format!("cannot write output: {e}"))),
                }
            }
            match out.flush() {
                Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                    Err(Error::client(format!("cannot write output: {e}")))
                }
                _ => Ok(()),
            }
        }
    }
}

/// `load`: from `-i FILE` or stdin; the daemon's progress is drawn as docker draws it, and
/// asked for only when stdout is a terminal (cli/command/image/load.go).
pub async fn load(session: &Session, args: &LoadArgs) -> Result<(), Error> {
    let reader: Box<dyn Read + Send> = match &args.input {
        Some(path) => Box::new(std::fs::File::open(path).map_err(|e| open_error(path, &e))?),
        None => {
            if io::stdin().is_terminal() {
                return Err(Error::client(
                    "requested load from stdin, but stdin is empty",
                ));
            }
            Box::new(io::stdin())
        }
    };
    let terminal = io::stdout().is_terminal();
    let client = session.client().await?;
    let docker = client.docker().clone().with_timeout(LONG_REQUEST);
    let opts = ImportImageOptions {
        quiet: args.quiet || !terminal,
        platform: None,
    };
    // bollard's `import_image_stream` is `POST /images/load`; it labels the body JSON,
    // docker labels it a tar.
    let docker = docker.with_request_modifier(|mut req: BollardRequest| {
        req.headers_mut().insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-tar"),
        );
        req
    });
    let mut stream = docker.import_image_stream(opts, read_in_background(reader), None);
    let mut printer = ProgressPrinter::new(terminal, terminal_width(terminal));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| client.daemon_err(e))?;
        let jm = JsonMessage {
            stream: info.stream,
            status: info.status,
            id: info.id,
            progress_detail: info.progress_detail.map(JsonProgress::from),
            ..Default::default()
        };
        print_message(&mut printer, &jm)?;
    }
    Ok(())
}

/// `import file|URL|- [REPOSITORY[:TAG]]`.
pub async fn import(session: &Session, args: &ImportArgs) -> Result<(), Error> {
    if let Some(r) = &args.reference {
        Reference::parse(r)?;
    }
    let (from_src, body): (String, Option<Box<dyn Read + Send>>) = match args.source.as_str() {
        "-" => ("-".into(), Some(Box::new(io::stdin()))),
        s if s.starts_with("http://") || s.starts_with("https://") => (s.to_string(), None),
        path => {
            let file = std::fs::File::open(path).map_err(|e| open_error(Path::new(path), &e))?;
            ("-".into(), Some(Box::new(file)))
        }
    };
    let client = session.client().await?;
    // docker sends `repo` as the whole REPOSITORY[:TAG] and leaves `tag` empty
    // (client/image_import.go); the daemon splits it.
    let opts = CreateImageOptions {
        from_src: Some(from_src),
        repo: Some(args.reference.clone().unwrap_or_default()),
        tag: Some(String::new()),
        message: Some(args.message.clone().unwrap_or_default()),
        changes: Vec::new(),
        platform: super::transfer::platform_param(args.platform.as_deref()),
        ..Default::default()
    };
    // bollard joins `changes` with newlines into one parameter; docker sends each change
    // as its own `changes` parameter, so append them to the query bollard built.
    let extra: String = args
        .change
        .iter()
        .map(|c| format!("&changes={}", query_escape(c)))
        .collect();
    let docker = client
        .docker()
        .clone()
        .with_timeout(LONG_REQUEST)
        .with_request_modifier(move |mut req: BollardRequest| {
            let uri = req.uri().to_string();
            let sep = if uri.contains('?') { "" } else { "?" };
            let extra = if sep.is_empty() {
                extra.clone()
            } else {
                extra.replacen('&', "", 1)
            };
            if let Ok(u) = format!("{uri}{sep}{extra}").parse() {
                *req.uri_mut() = u;
            }
            req
        });
    let body = body.map(|r| bollard::body_try_stream(read_in_background(r)));
    let mut stream = docker.create_image(Some(opts), body, None);
    let terminal = io::stdout().is_terminal();
    let mut printer = ProgressPrinter::new(terminal, terminal_width(terminal));
    while let Some(item) = stream.next().await {
        let info = item.map_err(|e| client.daemon_err(e))?;
        let jm = JsonMessage::from(info);
        print_message(&mut printer, &jm)?;
    }
    Ok(())
}

/// Go's `os.Open` error wording (`open x: no such file or directory`).
fn open_error(path: &Path, e: &io::Error) -> Error {
    Error::client(format!("open {}: {}", path.display(), go_io_error(e)))
}

fn go_io_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        io::ErrorKind::IsADirectory => "is a directory".into(),
        _ => e.to_string(),
    }
}

/// docker's `ValidateOutputPath`: the directory must exist, the path must not be
/// something other than a file or directory.
fn validate_output_path(path: &Path) -> Result<(), String> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        if let Err(e) = std::fs::metadata(dir) {
            return Err(format!(
                "invalid output path: stat {}: {}",
                dir.display(),
                go_io_error(&e)
            ));
        }
    }
    match std::fs::metadata(path) {
        Ok(m) if !(m.is_dir() || m.is_file()) => Err(format!(
            "invalid output path: {:?} must be a directory or a regular file",
            path.display().to_string()
        )),
        _ => Ok(()),
    }
}

/// Reads `reader` on a thread and yields its chunks, so a blocking stdin or file read
/// never stalls the single-threaded runtime that sends the request.
pub(crate) fn read_in_background(
    mut reader: Box<dyn Read + Send>,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(4);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if tx
                        .blocking_send(Ok(Bytes::copy_from_slice(&buf[..n])))
                        .is_err()
                    {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}
