//! The image commands: `images` (`image ls`), `image inspect`, `history`, `tag`, `rmi`,
//! `save`, `load`, `import`, `image prune`, `pull` and `push`, with docker's flags, output
//! and exit statuses (docker/cli `cli/command/image/*.go` and
//! `cli/command/formatter/image.go`).
//!
//! Rendering is pure and tested here: list rows and `--format`/`table` output
//! ([`render_list`]), Go's human sizes and ages ([`human_size_precision`],
//! [`human_duration`]), the JSON progress stream as moby's `pkg/jsonmessage` draws it
//! ([`ProgressPrinter`]). References are parsed by `berth_api_types::reference` (the same
//! code the daemon uses). The command functions only call the daemon and print.
//!
//! Requests go through bollard. Where bollard falls short we still use its transport and
//! say why at the spot: `push` (its `PushImageInfo` has no `id`, so layers could not be
//! told apart) and `import --change` (it joins changes with newlines into one parameter;
//! docker sends one `changes` parameter per change). It does not own the daemon
//! connection ([`crate::connect`]) nor the template language ([`crate::format`]).

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bollard::errors::Error as BollardError;
use bollard::models::{ImageHistoryResponseItem, ImageSummary};
use bollard::query_parameters::{
    CreateImageOptions, ImportImageOptions, ListImagesOptions, PruneImagesOptions,
    RemoveImageOptions, TagImageOptions,
};
use bollard::BollardRequest;
use clap::{ArgAction, Args, Subcommand};
use futures_util::{Stream, StreamExt};
use http::header::{HeaderName, HeaderValue};
use http::Method;
use hyper::body::Bytes;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use berth_api_types::reference::Reference;

use crate::connect::process_env;
use crate::error::Error;
use crate::format::{human_size, tabwrite, Template, TemplateError};
use crate::registry;
use crate::{write_err, write_out, Session};

/// Long operations (load, save, import, pull, push) have no deadline in the docker CLI;
/// bollard's default of two minutes until the response headers would cut off a big load,
/// which the daemon answers only once the whole archive is stored.
const LONG_REQUEST: Duration = Duration::from_secs(24 * 3600);

const FORMAT_HELP: &str = "Format output using a custom template:\n\
'table':            Print output in table format with column headers (default)\n\
'table TEMPLATE':   Print output in table format using the given Go template\n\
'json':             Print in JSON format\n\
'TEMPLATE':         Print output using the given Go template.\n\
Refer to https://docs.docker.com/go/formatting/ for more information about formatting output with templates";

// ---------------------------------------------------------------------------------------
// Command line

/// `berth image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List images
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Display detailed information on one or more images
    Inspect(InspectArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    #[command(visible_alias = "remove")]
    Rm(RmiArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Remove unused images
    Prune(PruneArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
}

/// The image commands docker also offers at the top level (`docker images`, `docker rmi`...).
#[derive(Debug, Subcommand)]
pub enum ImageShortcut {
    /// List images
    Images(ImagesArgs),
    /// Show the history of an image
    History(HistoryArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(TagArgs),
    /// Remove one or more images
    Rmi(RmiArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(LoadArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(ImportArgs),
    /// Download an image from a registry
    Pull(PullArgs),
    /// Upload an image to a registry
    Push(PushArgs),
}

#[derive(Debug, Clone, Default, Args)]
pub struct ImagesArgs {
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    /// Show all images (default hides intermediate images)
    #[arg(short, long)]
    pub all: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Show digests
    #[arg(long)]
    pub digests: bool,
    #[arg(long, value_name = "string", help = FORMAT_HELP)]
    pub format: Option<String>,
    /// Filter output based on conditions provided
    #[arg(short = 'f', long = "filter", value_name = "filter")]
    pub filter: Vec<String>,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Format output using a custom template:
    /// 'json':             Print in JSON format
    /// 'TEMPLATE':         Print output using the given Go template
    #[arg(short = 'f', long, value_name = "string", verbatim_doc_comment)]
    pub format: Option<String>,
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Print sizes and dates in human readable format
    #[arg(
        short = 'H',
        long,
        value_name = "bool",
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        action = ArgAction::Set
    )]
    pub human: bool,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    /// Only show image IDs
    #[arg(short, long)]
    pub quiet: bool,
    #[arg(long, value_name = "string", help = FORMAT_HELP)]
    pub format: Option<String>,
    #[arg(value_name = "IMAGE")]
    pub image: String,
}

#[derive(Debug, Clone, Args)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE_IMAGE[:TAG]")]
    pub source: String,
    #[arg(value_name = "TARGET_IMAGE[:TAG]")]
    pub target: String,
}

#[derive(Debug, Clone, Args)]
pub struct RmiArgs {
    /// Force removal of the image
    #[arg(short, long)]
    pub force: bool,
    /// Do not delete untagged parents
    #[arg(long)]
    pub no_prune: bool,
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct SaveArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long, value_name = "string")]
    pub output: Option<PathBuf>,
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Read from tar archive file, instead of STDIN
    #[arg(short, long, value_name = "string")]
    pub input: Option<PathBuf>,
    /// Suppress the load output
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change", value_name = "list")]
    pub change: Vec<String>,
    /// Set commit message for imported image
    #[arg(short, long, value_name = "string")]
    pub message: Option<String>,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    #[arg(value_name = "file|URL|-")]
    pub source: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Remove all unused images, not just dangling ones
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (e.g. "until=<timestamp>")
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// Download all tagged images in the repository
    #[arg(short, long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Set platform if server is multi-platform capable
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Skip image verification (accepted for docker compatibility; berth has no content trust)
    #[arg(
        long,
        value_name = "bool",
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        action = ArgAction::Set,
        hide = true
    )]
    pub disable_content_trust: bool,
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub name: String,
}

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Push all tags of an image to the repository
    #[arg(short, long = "all-tags")]
    pub all_tags: bool,
    /// Suppress verbose output
    #[arg(short, long)]
    pub quiet: bool,
    /// Push a platform-specific manifest as a single-platform image to the registry
    #[arg(long, value_name = "string")]
    pub platform: Option<String>,
    /// Skip image signing (accepted for docker compatibility; berth has no content trust)
    #[arg(
        long,
        value_name = "bool",
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        action = ArgAction::Set,
        hide = true
    )]
    pub disable_content_trust: bool,
    #[arg(value_name = "NAME[:TAG]")]
    pub name: String,
}

/// Runs `berth image ...`.
pub async fn run(session: &Session, cmd: &ImageCommand) -> Result<(), Error> {
    match cmd {
        ImageCommand::Ls(a) => images(session, a, false).await,
        ImageCommand::Inspect(a) => inspect(session, a).await,
        ImageCommand::History(a) => history(session, a).await,
        ImageCommand::Tag(a) => tag(session, a).await,
        ImageCommand::Rm(a) => rmi(session, a).await,
        ImageCommand::Save(a) => save(session, a).await,
        ImageCommand::Load(a) => load(session, a).await,
        ImageCommand::Import(a) => import(session, a).await,
        ImageCommand::Prune(a) => prune(session, a).await,
        ImageCommand::Pull(a) => pull(session, a).await,
        ImageCommand::Push(a) => push(session, a).await,
    }
}

/// Runs the top-level spellings (`berth images`, `berth rmi`, ...).
pub async fn run_shortcut(session: &Session, cmd: &ImageShortcut) -> Result<(), Error> {
    match cmd {
        ImageShortcut::Images(a) => images(session, a, true).await,
        ImageShortcut::History(a) => history(session, a).await,
        ImageShortcut::Tag(a) => tag(session, a).await,
        ImageShortcut::Rmi(a) => rmi(session, a).await,
        ImageShortcut::Save(a) => save(session, a).await,
        ImageShortcut::Load(a) => load(session, a).await,
        ImageShortcut::Import(a) => import(session, a).await,
        ImageShortcut::Pull(a) => pull(session, a).await,
        ImageShortcut::Push(a) => push(session, a).await,
    }
}

// ---------------------------------------------------------------------------------------
// Commands

/// `images` / `image ls`.
pub async fn images(session: &Session, args: &ImagesArgs, top_level: bool) -> Result<(), Error> {
    let mut filters = parse_filters(&args.filter, "-f, --filter")?;
    if let Some(r) = &args.reference {
        filters
            .entry("reference".into())
            .or_default()
            .push(r.clone());
    }
    let client = session.client().await?;
    let opts = ListImagesOptions {
        all: args.all,
        filters: (!filters.is_empty()).then_some(filters),
        ..Default::default()
    };
    let list = client
        .docker()
        .list_images(Some(opts))
        .await
        .map_err(|e| client.daemon_err(e))?;
    let listed: Vec<ListedImage> = list.into_iter().map(ListedImage::from).collect();
    let format = image_format(args.format.as_deref(), args.quiet, args.digests);
    let show_digest = args.digests || format.contains("{{.Digest}}");
    let now = now_unix();
    let rows: Vec<Value> = listed
        .iter()
        .flat_map(|img| image_rows(img, show_digest, args.digests))
        .map(|r| r.to_json(!args.no_trunc, now))
        .collect();
    write_out(&render_list(&format, &image_headers(), &rows)?)?;
    if let (true, Some(name)) = (top_level && rows.is_empty(), &args.reference) {
        // cli/command/image/list.go printAmbiguousHint: "docker images ls" lists nothing.
        const SUBCOMMANDS: [&str; 13] = [
            "build", "history", "import", "inspect", "list", "load", "ls", "prune", "pull", "push",
            "rm", "save", "tag",
        ];
        if SUBCOMMANDS.contains(&name.as_str()) {
            write_err(&format!(
                "\nNo images found matching {name:?}: did you mean \"berth image {name}\"?\n"
            ))?;
        }
    }
    Ok(())
}

/// `image inspect`: the daemon's JSON as sent (see [`Client::get_json`]), as a 4-space
/// indented array, or one template rendering per image. Missing images are reported after
/// the others, exit status 1.
pub async fn inspect(session: &Session, args: &InspectArgs) -> Result<(), Error> {
    let template = args
        .format
        .as_deref()
        .filter(|f| !f.is_empty())
        .map(Template::parse_format_flag)
        .transpose()?;
    let client = session.client().await?;
    let mut found: Vec<Vec<u8>> = Vec::new();
    let mut errors = Vec::new();
    for name in &args.images {
        // Raw bytes, not bollard's `inspect_image`: its typed model drops fields it does
        // not know, and a parsed `Value` would reorder keys; docker prints what the
        // daemon sent, re-indented.
        let path = format!("/images/{}/json", path_escape(name));
        match collect(raw_request(client.docker(), Method::GET, path, Vec::new())).await {
            Ok(body) => found.push(body),
            Err(e) => errors.push(client.daemon_err(e).to_string()),
        }
    }
    print_inspect(&found, template.as_ref(), errors)
}

/// `network inspect`, `volume inspect`: `GET <collection>/<name>` for each name, printed
/// by [`print_inspect`] (missing ones reported after, exit status 1).
pub(crate) async fn inspect_each(
    client: &crate::connect::Client,
    collection: &str,
    names: &[String],
    format: Option<&str>,
) -> Result<(), Error> {
    let template = format
        .map(Template::parse_format_flag)
        .transpose()
        .map_err(|e| Error::client(e.to_string()))?;
    let mut found = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match client
            .get_json(&format!("{collection}/{}", query_escape(n)))
            .await
        {
            Ok(v) => found.push(v.to_string().into_bytes()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    print_inspect(&found, template.as_ref(), errors)
}

/// Prints `inspect` results as docker does: the daemon's JSON bodies as a 4-space indented
/// array, or one template rendering per object; `errors` (missing objects) come after,
/// with exit status 1. Shared by `image inspect` and `inspect`.
pub(crate) fn print_inspect(
    found: &[Vec<u8>],
    template: Option<&Template>,
    mut errors: Vec<String>,
) -> Result<(), Error> {
    let mut out = String::new();
    match template {
        None => {
            let joined = format!(
                "[{}]",
                found
                    .iter()
                    .map(|b| String::from_utf8_lossy(b).into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            );
            out.push_str(&json_indent(&joined, "    "));
            out.push('\n');
        }
        Some(t) => {
            for body in found {
                let value: Value = serde_json::from_slice(body)
                    .map_err(|e| Error::client(format!("cannot parse the daemon's answer: {e}")))?;
                match t.render(&value) {
                    Ok(text) => {
                        out.push_str(&text);
                        out.push('\n');
                    }
                    Err(e) => errors.push(format!("template parsing error: {e}")),
                }
            }
            // cli/command/inspect TemplateInspector.Flush: an empty result is one newline.
            if out.is_empty() {
                out.push('\n');
            }
        }
    }
    write_out(&out)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::client(errors.join("\n")))
    }
}

/// `history`.
pub async fn history(session: &Session, args: &HistoryArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let items = client
        .docker()
        .image_history(&args.image)
        .await
        .map_err(|e| client.daemon_err(e))?;
    let format = history_format(args.format.as_deref(), args.quiet, args.human);
    let now = now_unix();
    let rows: Vec<Value> = items
        .iter()
        .map(|h| history_row(h, !args.no_trunc, args.human, now))
        .collect();
    write_out(&render_list(&format, &history_headers(), &rows)?)
}

/// `tag SOURCE TARGET`: the daemon validates TARGET and answers docker's messages.
pub async fn tag(session: &Session, args: &TagArgs) -> Result<(), Error> {
    let (repo, tag) = split_tag_target(&args.target);
    let client = session.client().await?;
    let opts = TagImageOptions {
        repo: Some(repo),
        tag,
    };
    client
        .docker()
        .tag_image(&args.source, Some(opts))
        .await
        .map_err(|e| client.daemon_err(e))
}

/// `rmi`: every image is tried; with `-f`, images that do not exist are reported on
/// stderr without failing (cli/command/image/remove.go).
pub async fn rmi(session: &Session, args: &RmiArgs) -> Result<(), Error> {
    let client = session.client().await?;
    let opts = RemoveImageOptions {
        force: args.force,
        noprune: args.no_prune,
        platforms: None,
    };
    let mut errors = Vec::new();
    let mut fatal = false;
    for name in &args.images {
        match client
            .docker()
            .remove_image(name, Some(opts.clone()), None)
            .await
        {
            Ok(items) => {
                let mut out = String::new();
                for item in items {
                    match (item.deleted, item.untagged) {
                        (Some(d), _) if !d.is_empty() => writeln!(out, "Deleted: {d}"),
                        (_, Some(u)) => writeln!(out, "Untagged: {u}"),
                        _ => Ok(()),
                    }
                    .expect("write to String");
                }
                write_out(&out)?;
            }
            Err(e) => {
                let e = client.daemon_err(e);
                if !matches!(e, Error::Daemon { status: 404, .. }) {
                    fatal = true;
                }
                errors.push(e.to_string());
            }
        }
    }
    if errors.is_empty() {
        return Ok(());
    }
    if !args.force || fatal {
        return Err(Error::client(errors.join("\n")));
    }
    write_err(&format!("{}\n", errors.join("\n")))
}

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
            let mut file = TempFile::create_beside(path)
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
        platform: args
            .platform
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase(),
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
        let jm = JsonMessage {
            status: info.status,
            id: info.id,
            progress_detail: info.progress_detail.map(JsonProgress::from),
            ..Default::default()
        };
        print_message(&mut printer, &jm)?;
    }
    Ok(())
}

/// `image prune`.
pub async fn prune(session: &Session, args: &PruneArgs) -> Result<(), Error> {
    let mut filters = parse_filters(&args.filter, "--filter")?;
    if !args.force {
        let warning = if args.all {
            "WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?"
        } else {
            "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
        };
        if !confirm(warning)? {
            return Ok(());
        }
    }
    filters
        .entry("dangling".into())
        .or_default()
        .push((!args.all).to_string());
    let client = session.client().await?;
    let report = client
        .docker()
        .prune_images(Some(PruneImagesOptions {
            filters: Some(filters),
        }))
        .await
        .map_err(|e| client.daemon_err(e))?;
    let deleted: Vec<(Option<String>, Option<String>)> = report
        .images_deleted
        .unwrap_or_default()
        .into_iter()
        .map(|d| (d.untagged, d.deleted))
        .collect();
    write_out(&render_prune(
        &deleted,
        report.space_reclaimed.unwrap_or(0).max(0) as u64,
    ))
}

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
        platform: args
            .platform
            .clone()
            .unwrap_or_default()
            .to_ascii_lowercase(),
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
        let jm = JsonMessage {
            status: info.status,
            id: info.id,
            progress_detail: info.progress_detail.map(JsonProgress::from),
            ..Default::default()
        };
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

fn print_message(printer: &mut ProgressPrinter, jm: &JsonMessage) -> Result<(), Error> {
    let mut out = String::new();
    let result = printer.message(jm, &mut out);
    write_out(&out)?;
    result.map_err(Error::client)
}

/// A request bollard has no fitting call for, sent through bollard all the same (same
/// transport, version prefix and error handling): bollard hands out a response body as it
/// came only from `export_image` (`GET /images/{name}/get`), so we send that call with a
/// request modifier that swaps in our method, path (with query) and headers. `path`
/// follows the version prefix, as `/images/x/json`.
fn raw_request(
    docker: &bollard::Docker,
    method: Method,
    path: String,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> impl Stream<Item = Result<Bytes, BollardError>> + Unpin {
    const PLACEHOLDER: &str = "berth-raw-request";
    let suffix = format!("/images/{PLACEHOLDER}/get");
    let docker = docker
        .clone()
        .with_request_modifier(move |mut req: BollardRequest| {
            let uri = req.uri().to_string();
            if let Some(base) = uri.strip_suffix(&suffix) {
                if let Ok(u) = format!("{base}{path}").parse() {
                    *req.uri_mut() = u;
                }
            }
            *req.method_mut() = method.clone();
            for (name, value) in &headers {
                req.headers_mut().insert(name.clone(), value.clone());
            }
            req
        });
    Box::pin(docker.export_image(PLACEHOLDER))
}

async fn collect(
    mut body: impl Stream<Item = Result<Bytes, BollardError>> + Unpin,
) -> Result<Vec<u8>, BollardError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Local I/O helpers

fn now_unix() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
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

/// A file written beside its destination and renamed over it only when complete.
struct TempFile {
    file: std::fs::File,
    tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl TempFile {
    fn create_beside(dest: &Path) -> io::Result<TempFile> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = dest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let mut n = 0u32;
        loop {
            let tmp = dir.join(format!(".berth_temp_{}_{n}", std::process::id()));
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)
            {
                Ok(file) => {
                    return Ok(TempFile {
                        file,
                        tmp,
                        dest: dest.to_path_buf(),
                        done: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(e),
            }
        }
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    fn persist(mut self) -> Result<(), String> {
        self.file
            .sync_all()
            .map_err(|e| format!("sync {}: {e}", self.tmp.display()))?;
        std::fs::rename(&self.tmp, &self.dest)
            .map_err(|e| format!("rename {}: {e}", self.dest.display()))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Reads `reader` on a thread and yields its chunks, so a blocking stdin or file read
/// never stalls the single-threaded runtime that sends the request.
fn read_in_background(
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

/// docker's `prompt.Confirm`: prints `message [y/N] ` and reads one line; only `y`
/// (any case) agrees.
fn confirm(message: &str) -> Result<bool, Error> {
    write_out(&format!("{message} [y/N] "))?;
    let mut line = String::new();
    io::stdin()
        .read_line(&mut line)
        .map_err(|e| Error::client(format!("cannot read the answer: {e}")))?;
    Ok(line.trim().eq_ignore_ascii_case("y"))
}

/// The terminal's width for progress bars. berth forbids `unsafe`, so instead of the
/// TIOCGWINSZ ioctl docker uses we read `$COLUMNS`, then ask `stty size` on the
/// controlling terminal; 80 when neither answers (narrow enough that no bar wraps).
fn terminal_width(terminal: bool) -> usize {
    if !terminal {
        return 200;
    }
    if let Some(n) = process_env("COLUMNS").and_then(|c| c.trim().parse::<usize>().ok()) {
        return n;
    }
    let tty = std::fs::File::open("/dev/tty");
    if let Ok(tty) = tty {
        if let Ok(out) = std::process::Command::new("stty")
            .arg("size")
            .stdin(tty)
            .stderr(std::process::Stdio::null())
            .output()
        {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Some(cols) = text
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse::<usize>().ok())
            {
                return cols;
            }
        }
    }
    80
}

// ---------------------------------------------------------------------------------------
// Filters and references

/// docker's `--filter name=value` (opts.FilterOpt): the name is lower-cased and trimmed.
pub fn parse_filters(values: &[String], flag: &str) -> Result<HashMap<String, Vec<String>>, Error> {
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for v in values {
        let Some((name, value)) = v.split_once('=') else {
            return Err(Error::Status {
                code: 125,
                message: format!(
                    "invalid argument {v:?} for \"{flag}\" flag: bad format of filter (expected name=value)"
                ),
            });
        };
        out.entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(value.trim().to_string());
    }
    Ok(out)
}

/// `TARGET_IMAGE[:TAG]` split into the `repo` and `tag` query parameters of
/// `POST /images/{name}/tag`; the tag is what follows the last `:` after the last `/`.
pub fn split_tag_target(target: &str) -> (String, Option<String>) {
    if target.contains('@') {
        return (target.to_string(), None);
    }
    match target.rfind(':') {
        Some(i) if !target[i..].contains('/') => {
            (target[..i].to_string(), Some(target[i + 1..].to_string()))
        }
        _ => (target.to_string(), None),
    }
}

/// The `tag` parameter of `POST /images/create` for a reference: its digest when it has
/// one (the digest alone decides what is fetched), else its tag.
pub fn pull_tag(reference: &Reference) -> Option<String> {
    reference
        .digest()
        .map(ToString::to_string)
        .or_else(|| reference.tag().map(str::to_owned))
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

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
pub fn query_escape(s: &str) -> String {
    escape(s, b"-._~")
}

/// Percent-encodes an image name for a URL path; `/`, `:` and `@` stay, as docker sends
/// `localhost:5000/a/b:tag` and `a@sha256:...` in paths.
pub fn path_escape(s: &str) -> String {
    escape(s, b"-._~/:@")
}

fn escape(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").expect("write to String");
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Rendering: lists

/// The parts of `GET /images/json`'s entries that `docker images` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListedImage {
    pub id: String,
    pub repo_tags: Vec<String>,
    pub repo_digests: Vec<String>,
    pub created: i64,
    pub size: i64,
    pub shared_size: i64,
    pub containers: i64,
}

impl From<ImageSummary> for ListedImage {
    fn from(s: ImageSummary) -> Self {
        ListedImage {
            id: s.id,
            repo_tags: s.repo_tags,
            repo_digests: s.repo_digests,
            created: s.created,
            size: s.size,
            shared_size: s.shared_size,
            containers: s.containers,
        }
    }
}

/// One line of `docker images`: an image under one repository, tag and digest.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageRow<'a> {
    pub image: &'a ListedImage,
    pub repository: String,
    pub tag: String,
    pub digest: String,
}

impl ImageRow<'_> {
    /// The row as the template sees it: docker's `imageContext` methods, by name.
    pub fn to_json(&self, trunc: bool, now: i64) -> Value {
        let i = self.image;
        let na_or = |n: i64, f: &dyn Fn(i64) -> String| {
            if n == -1 {
                "N/A".to_string()
            } else {
                f(n)
            }
        };
        let unique = if i.size == -1 || i.shared_size == -1 {
            "N/A".to_string()
        } else {
            human_size((i.size - i.shared_size) as f64)
        };
        json!({
            "Containers": na_or(i.containers, &|n| n.to_string()),
            "CreatedAt": go_time_string(i.created),
            "CreatedSince": format!("{} ago", human_duration(now - i.created)),
            "Digest": self.digest,
            "ID": if trunc { truncate_id(&i.id) } else { i.id.clone() },
            "Repository": self.repository,
            "SharedSize": na_or(i.shared_size, &|n| human_size(n as f64)),
            "Size": human_size_precision(i.size as f64, 3),
            "Tag": self.tag,
            "UniqueSize": unique,
            "VirtualSize": human_size(i.size as f64),
        })
    }
}

fn is_dangling(img: &ListedImage) -> bool {
    (img.repo_tags.is_empty() && img.repo_digests.is_empty())
        || (img.repo_tags == ["<none>:<none>"] && img.repo_digests == ["<none>@<none>"])
}

/// The rows of one image (formatter/image.go `imageFormatTaggedAndDigest`): one per tag,
/// times one per digest of the same repository when digests are shown (`need_digest`),
/// plus a row per repository known only by digest. Repositories keep the order of their
/// first appearance.
pub fn image_rows(img: &ListedImage, need_digest: bool, show_digests: bool) -> Vec<ImageRow<'_>> {
    let row = |repository: &str, tag: &str, digest: &str| ImageRow {
        image: img,
        repository: repository.to_string(),
        tag: tag.to_string(),
        digest: digest.to_string(),
    };
    if is_dangling(img) {
        return vec![row("<none>", "<none>", "<none>")];
    }
    let mut tags: Vec<(String, Vec<String>)> = Vec::new();
    for t in &img.repo_tags {
        let Ok(r) = Reference::parse(t) else {
            continue;
        };
        let Some(tag) = r.tag().map(str::to_owned) else {
            continue;
        };
        let name = r.familiar_name();
        match tags.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(tag),
            None => tags.push((name, vec![tag])),
        }
    }
    let mut digests: Vec<(String, Vec<String>)> = Vec::new();
    for d in &img.repo_digests {
        let Ok(r) = Reference::parse(d) else {
            continue;
        };
        let Some(digest) = r.digest().map(ToString::to_string) else {
            continue;
        };
        let name = r.familiar_name();
        match digests.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) => v.push(digest),
            None => digests.push((name, vec![digest])),
        }
    }
    let mut rows = Vec::new();
    for (repo, repo_tags) in &tags {
        let pos = digests.iter().position(|(n, _)| n == repo);
        let ds = pos.map(|p| digests.remove(p).1).unwrap_or_default();
        let ds = if need_digest { ds } else { Vec::new() };
        for t in repo_tags {
            if ds.is_empty() {
                rows.push(row(repo, t, "<none>"));
            }
            for d in &ds {
                rows.push(row(repo, t, d));
            }
        }
    }
    for (repo, ds) in &digests {
        if show_digests {
            for d in ds {
                rows.push(row(repo, "<none>", d));
            }
        } else {
            rows.push(row(repo, "<none>", ""));
        }
    }
    rows
}

/// Headers of the image table (formatter/image.go `newImageContext`).
pub fn image_headers() -> Value {
    json!({
        "ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
        "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
        "Containers": "CONTAINERS", "VirtualSize": "SIZE", "SharedSize": "SHARED SIZE",
        "UniqueSize": "UNIQUE SIZE",
    })
}

/// `--format` of `images` with docker's defaults (formatter/image.go `NewImageFormat`).
pub fn image_format(format: Option<&str>, quiet: bool, digests: bool) -> String {
    let source = format.filter(|f| !f.is_empty()).unwrap_or("table");
    if source == "table" {
        return if quiet {
            "{{.ID}}".into()
        } else if digests {
            "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
                .into()
        } else {
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}".into()
        };
    }
    if source.starts_with("table") && digests && !source.contains("{{.Digest}}") {
        return format!("{source}\t{{{{.Digest}}}}");
    }
    source.to_string()
}

/// `--format` of `history` (image/formatter_history.go `NewHistoryFormat`).
pub fn history_format(format: Option<&str>, quiet: bool, human: bool) -> String {
    match format.filter(|f| !f.is_empty()).unwrap_or("table") {
        "table" if quiet => "{{.ID}}".into(),
        "table" if !human => {
            "table {{.ID}}\t{{.CreatedAt}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into()
        }
        "table" => {
            "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}".into()
        }
        other => other.to_string(),
    }
}

pub fn history_headers() -> Value {
    json!({
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
    })
}

/// One `history` line as the template sees it (`historyContext`).
pub fn history_row(h: &ImageHistoryResponseItem, trunc: bool, human: bool, now: i64) -> Value {
    let created_at = rfc3339(h.created);
    let created_by = h.created_by.replace('\t', " ");
    json!({
        "Comment": h.comment,
        "CreatedAt": created_at,
        "CreatedBy": if trunc { ellipsis(&created_by, 45) } else { created_by },
        "CreatedSince": if human {
            format!("{} ago", human_duration(now - h.created))
        } else {
            created_at.clone()
        },
        "ID": if trunc { truncate_id(&h.id) } else { h.id.clone() },
        "Size": if human {
            human_size_precision(h.size as f64, 3)
        } else {
            h.size.to_string()
        },
    })
}

/// Renders a list command's rows with a resolved `--format` (formatter/formatter.go):
/// `table ...` prints a header row and aligns columns with a (10, 3) tabwriter, `json`
/// prints `{{json .}}` per row, anything else is a template per row. `\t` and `\n`
/// written literally in the format become tab and newline.
pub fn render_list(format: &str, headers: &Value, rows: &[Value]) -> Result<String, Error> {
    let table = format.starts_with("table");
    let body = if table {
        &format["table".len()..]
    } else if format == "json" {
        "{{json .}}"
    } else {
        format
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let template = Template::parse(&body).map_err(list_template_error)?;
    let mut text = String::new();
    if table {
        text.push_str(&template.render(headers).map_err(list_template_error)?);
        text.push('\n');
    }
    for row in rows {
        text.push_str(&template.render(row).map_err(list_template_error)?);
        text.push('\n');
    }
    Ok(if table { tabwrite(&text, 10, 3) } else { text })
}

/// List commands exit 1 on any template error, with docker's "template parsing error".
fn list_template_error(e: TemplateError) -> Error {
    match e {
        TemplateError::Parse(_) => Error::client(e.to_string()),
        TemplateError::Exec(_) => Error::client(format!("template parsing error: {e}")),
    }
}

/// `image prune`'s report (cli/command/image/prune.go).
pub fn render_prune(deleted: &[(Option<String>, Option<String>)], reclaimed: u64) -> String {
    let mut out = String::new();
    if !deleted.is_empty() {
        out.push_str("Deleted Images:\n");
        for (untagged, del) in deleted {
            if let Some(u) = untagged.as_deref().filter(|u| !u.is_empty()) {
                writeln!(out, "untagged: {u}").expect("write to String");
            }
            if let Some(d) = del.as_deref().filter(|d| !d.is_empty()) {
                writeln!(out, "deleted: {d}").expect("write to String");
            }
        }
        out.push('\n');
    }
    writeln!(
        out,
        "Total reclaimed space: {}",
        human_size(reclaimed as f64)
    )
    .expect("write to String");
    out
}

/// docker's `stringid.TruncateID`: without `sha256:`, 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, hex)| hex);
    id.chars().take(12).collect()
}

/// formatter.Ellipsis: at most `max` characters, the last one `…` when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// go-units `HumanDuration` of `seconds`.
pub fn human_duration(seconds: i64) -> String {
    let hours_f = seconds as f64 / 3600.0;
    let minutes = seconds / 60;
    let hours = (hours_f + 0.5) as i64;
    if seconds < 1 {
        "Less than a second".into()
    } else if seconds == 1 {
        "1 second".into()
    } else if seconds < 60 {
        format!("{seconds} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", hours_f as i64 / 24 / 365)
    }
}

/// go-units `HumanSizeWithPrecision`: decimal units, `precision` significant digits
/// (`%.3g`), as `docker images` prints sizes (`1.98MB`).
pub fn human_size_precision(mut size: f64, precision: usize) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", go_g(size, precision.max(1)), UNITS[i])
}

/// Go's `%.<p>g`.
fn go_g(x: f64, p: usize) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if !x.is_finite() {
        return if x.is_nan() {
            "NaN".into()
        } else if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let sci = format!("{x:.*e}", p - 1);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let trim = |s: &str| -> String {
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s.to_string()
        }
    };
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa), exp.abs());
    }
    let decimals = usize::try_from(p as i32 - 1 - exp).unwrap_or(0);
    trim(&format!("{x:.decimals$}"))
}

/// Go's `time.Unix(s, 0).String()` in UTC: `2024-05-01 12:00:00 +0000 UTC`.
pub fn go_time_string(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} +0000 UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// RFC 3339 in UTC (`2024-05-01T12:00:00Z`), as Go formats `time.RFC3339`.
pub fn rfc3339(unix: i64) -> String {
    match OffsetDateTime::from_unix_timestamp(unix) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => unix.to_string(),
    }
}

/// Go's `json.Indent(dst, src, "", indent)`: re-indents JSON text token by token, keeping
/// key order and string contents as they are (docker's inspect output). Empty objects and
/// arrays stay `{}` and `[]`.
pub fn json_indent(src: &str, indent: &str) -> String {
    let mut out = String::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut need_indent = false;
    let mut chars = src.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str(indent);
        }
    };
    while let Some(c) = chars.next() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != ']' && c != '}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '"' => {
                out.push('"');
                while let Some(d) = chars.next() {
                    out.push(d);
                    match d {
                        '\\' => {
                            if let Some(e) = chars.next() {
                                out.push(e);
                            }
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '{' | '[' => {
                out.push(c);
                need_indent = true;
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_indent {
                    // Empty: `{}` or `[]`.
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Rendering: the JSON progress stream (moby pkg/jsonmessage)

/// One message of a pull, push, load or import stream.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct JsonMessage {
    #[serde(default)]
    pub stream: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    /// The daemon's own rendering (deprecated in the API, still sent).
    #[serde(default)]
    pub progress: Option<String>,
    #[serde(default, rename = "progressDetail")]
    pub progress_detail: Option<JsonProgress>,
    #[serde(default, rename = "errorDetail")]
    pub error_detail: Option<JsonError>,
    #[serde(default)]
    pub aux: Option<Value>,
}

impl JsonMessage {
    /// The error docker would show for this message, if it is one.
    pub fn error_text(&self) -> Option<String> {
        self.error_detail.as_ref().map(|e| {
            if e.code == Some(401) {
                "authentication is required".to_string()
            } else {
                e.message.clone()
            }
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct JsonProgress {
    #[serde(default)]
    pub current: i64,
    #[serde(default)]
    pub total: i64,
    /// Unix seconds when the transfer started (for the time left).
    #[serde(default)]
    pub start: i64,
    #[serde(default)]
    pub hidecounts: bool,
    #[serde(default)]
    pub units: String,
}

impl From<bollard::models::ProgressDetail> for JsonProgress {
    fn from(p: bollard::models::ProgressDetail) -> Self {
        JsonProgress {
            current: p.current.unwrap_or(0),
            total: p.total.unwrap_or(0),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct JsonError {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(default)]
    pub message: String,
}

impl JsonProgress {
    /// `JSONProgress.String()`: a bar when the terminal is wider than 110 columns, the
    /// byte counts, and the time left when wider than 50.
    pub fn render(&self, width: usize, now: i64) -> String {
        if self.current <= 0 && self.total <= 0 {
            return String::new();
        }
        if self.total <= 0 {
            return if self.units.is_empty() {
                format!("{:>8}", human_size(self.current as f64))
            } else {
                format!("{} {}", self.current, self.units)
            };
        }
        let percentage = ((self.current as f64 / self.total as f64 * 100.0) as i64 / 2).min(50);
        let mut out = String::new();
        if width > 110 {
            let spaces = (50 - percentage).max(0) as usize;
            let filled = percentage.max(0) as usize;
            write!(out, "[{}>{}] ", "=".repeat(filled), " ".repeat(spaces))
                .expect("write to String");
        }
        if !self.hidecounts {
            if self.units.is_empty() {
                let current = human_size(self.current as f64);
                if self.current > self.total {
                    write!(out, "{current:>8}").expect("write to String");
                } else {
                    write!(out, "{current:>8}/{}", human_size(self.total as f64))
                        .expect("write to String");
                }
            } else if self.current > self.total {
                write!(out, "{} {}", self.current, self.units).expect("write to String");
            } else {
                write!(out, "{}/{} {}", self.current, self.total, self.units)
                    .expect("write to String");
            }
        }
        if self.current > 0 && self.start > 0 && percentage < 50 && width > 50 {
            let elapsed = (now - self.start).max(0) as f64;
            let left = (self.total - self.current) as f64 * elapsed / self.current as f64;
            write!(out, " {}", go_duration(left as i64)).expect("write to String");
        }
        out
    }
}

/// Go's `time.Duration.String()` for whole seconds (`0s`, `45s`, `1m5s`, `2h0m3s`).
pub fn go_duration(seconds: i64) -> String {
    let s = seconds.max(0);
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h{m}m{sec}s")
    } else if m > 0 {
        format!("{m}m{sec}s")
    } else {
        format!("{sec}s")
    }
}

/// Draws a progress stream as `jsonmessage.DisplayJSONMessagesStream`: on a terminal,
/// each layer keeps its own line, rewritten in place with ANSI cursor movement; otherwise
/// plain lines, progress-only updates left out.
#[derive(Debug)]
pub struct ProgressPrinter {
    terminal: bool,
    width: usize,
    /// Line of each layer ID, counted from the first progress line of this block.
    ids: HashMap<String, usize>,
    now: Option<i64>,
}

impl ProgressPrinter {
    pub fn new(terminal: bool, width: usize) -> ProgressPrinter {
        ProgressPrinter {
            terminal,
            width,
            ids: HashMap::new(),
            now: None,
        }
    }

    /// Fixes the clock (tests).
    pub fn with_now(mut self, now: i64) -> ProgressPrinter {
        self.now = Some(now);
        self
    }

    /// Appends what `jm` draws to `out`; an error message is returned as `Err`, as docker
    /// stops at it.
    pub fn message(&mut self, jm: &JsonMessage, out: &mut String) -> Result<(), String> {
        if jm.aux.is_some() {
            return Ok(());
        }
        let id = jm.id.as_deref().unwrap_or("");
        let progress_msg = jm.progress.as_deref().unwrap_or("");
        let mut diff = 0;
        if !id.is_empty() && (jm.progress_detail.is_some() || !progress_msg.is_empty()) {
            let line = match self.ids.get(id) {
                Some(l) => *l,
                None => {
                    let l = self.ids.len();
                    self.ids.insert(id.to_string(), l);
                    if self.terminal {
                        out.push('\n');
                    }
                    l
                }
            };
            diff = self.ids.len() - line;
            if self.terminal && diff > 0 {
                write!(out, "\x1b[{diff}A").expect("write to String");
            }
        } else {
            // Anything else ends the block: later progress starts new lines.
            self.ids.clear();
        }
        let result = self.display(jm, out);
        if !id.is_empty() && self.terminal && diff > 0 {
            write!(out, "\x1b[{diff}B").expect("write to String");
        }
        result
    }

    fn display(&self, jm: &JsonMessage, out: &mut String) -> Result<(), String> {
        if let Some(e) = jm.error_text() {
            return Err(e);
        }
        let stream = jm.stream.as_deref().unwrap_or("");
        let status = jm.status.as_deref().unwrap_or("");
        let id = jm.id.as_deref().unwrap_or("");
        let progress_msg = jm.progress.as_deref().unwrap_or("");
        let now = self.now.unwrap_or_else(now_unix);
        let bar = jm
            .progress_detail
            .as_ref()
            .map(|p| p.render(self.width, now))
            .unwrap_or_default();
        let mut endl = "";
        if self.terminal && stream.is_empty() && jm.progress_detail.is_some() {
            out.push_str("\x1b[2K\r");
            endl = "\r";
        } else if jm.progress_detail.is_some() && !bar.is_empty() {
            // No progress bars off a terminal.
            return Ok(());
        }
        if !id.is_empty() {
            write!(out, "{id}: ").expect("write to String");
        }
        if jm.progress_detail.is_some() && self.terminal {
            write!(out, "{status} {bar}{endl}").expect("write to String");
        } else if !progress_msg.is_empty() {
            write!(out, "{status} {progress_msg}{endl}").expect("write to String");
        } else if !stream.is_empty() {
            write!(out, "{stream}{endl}").expect("write to String");
        } else {
            writeln!(out, "{status}{endl}").expect("write to String");
        }
        Ok(())
    }
}

/// Splits a byte stream into JSON messages, one per line.
#[derive(Debug, Default)]
pub struct JsonLines {
    pending: Vec<u8>,
}

impl JsonLines {
    /// Adds `chunk`; returns the messages completed by it.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<JsonMessage>, Error> {
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::new();
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            if let Some(m) = parse_json_line(&line)? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// The last message, when the stream did not end with a newline.
    pub fn finish(&mut self) -> Result<Vec<JsonMessage>, Error> {
        let line = std::mem::take(&mut self.pending);
        Ok(parse_json_line(&line)?.into_iter().collect())
    }
}

fn parse_json_line(line: &[u8]) -> Result<Option<JsonMessage>, Error> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| Error::client(format!("cannot read the daemon's progress message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(id: &str, tags: &[&str], digests: &[&str]) -> ListedImage {
        ListedImage {
            id: id.into(),
            repo_tags: tags.iter().map(|s| s.to_string()).collect(),
            repo_digests: digests.iter().map(|s| s.to_string()).collect(),
            created: 1_000,
            size: 1_982_256,
            shared_size: -1,
            containers: -1,
        }
    }

    const ID1: &str = "sha256:48cc1df219fb4c46289da11365d73a5b9c43adf5131e38b15735cafbfa6f5b7a";
    const ID2: &str = "sha256:d4e5f5621728cf1d5a922100946e49418dc6e148d4610e4f16773aaa92642c75";
    const DIG: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    fn rows_of(images: &[ListedImage], digests: bool, format: &str, trunc: bool) -> Vec<Value> {
        let need = digests || format.contains("{{.Digest}}");
        images
            .iter()
            .flat_map(|i| image_rows(i, need, digests))
            .map(|r| r.to_json(trunc, 1_001))
            .collect()
    }

    #[test]
    fn images_table_matches_docker_output() {
        // Captured from docker 28.2 against berthd.
        let images = [img(ID1, &["bb:1", "bb:2"], &[]), img(ID2, &[], &[])];
        let format = image_format(None, false, false);
        let out = render_list(
            &format,
            &image_headers(),
            &rows_of(&images, false, &format, true),
        )
        .unwrap();
        let want = "REPOSITORY   TAG       IMAGE ID       CREATED        SIZE\n\
                    bb           1         48cc1df219fb   1 second ago   1.98MB\n\
                    bb           2         48cc1df219fb   1 second ago   1.98MB\n\
                    <none>       <none>    d4e5f5621728   1 second ago   1.98MB\n";
        assert_eq!(out, want);
    }

    #[test]
    fn images_digest_and_no_trunc_tables() {
        let images = [img(ID1, &["bb:1"], &[]), img(ID2, &[], &[])];
        let format = image_format(None, false, true);
        let out = render_list(
            &format,
            &image_headers(),
            &rows_of(&images, true, &format, true),
        )
        .unwrap();
        let want = "REPOSITORY   TAG       DIGEST    IMAGE ID       CREATED        SIZE\n\
                    bb           1         <none>    48cc1df219fb   1 second ago   1.98MB\n\
                    <none>       <none>    <none>    d4e5f5621728   1 second ago   1.98MB\n";
        assert_eq!(out, want);
        let format = image_format(None, false, false);
        let out = render_list(
            &format,
            &image_headers(),
            &rows_of(&images[..1], false, &format, false),
        )
        .unwrap();
        assert!(out.lines().nth(1).unwrap().contains(ID1), "{out}");
    }

    #[test]
    fn empty_table_is_the_header_only() {
        let format = image_format(None, false, false);
        let out = render_list(&format, &image_headers(), &[]).unwrap();
        assert_eq!(out, "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n");
    }

    #[test]
    fn quiet_and_custom_formats() {
        let images = [img(ID1, &["bb:1", "bb:2"], &[])];
        let q = image_format(None, true, false);
        let rows = rows_of(&images, false, &q, true);
        assert_eq!(
            render_list(&q, &image_headers(), &rows).unwrap(),
            "48cc1df219fb\n48cc1df219fb\n"
        );
        let f = image_format(Some("{{.Repository}}:{{.Tag}}\\t{{.Size}}"), false, false);
        assert_eq!(
            render_list(&f, &image_headers(), &rows).unwrap(),
            "bb:1\t1.98MB\nbb:2\t1.98MB\n"
        );
        let f = image_format(Some("table {{.ID}}\t{{.Size}}|{{.Tag}}"), false, false);
        assert_eq!(
            render_list(&f, &image_headers(), &rows).unwrap(),
            "IMAGE ID       SIZE|TAG\n48cc1df219fb   1.98MB|1\n48cc1df219fb   1.98MB|2\n"
        );
        // --digests adds a Digest column to a custom table.
        assert_eq!(
            image_format(Some("table {{.ID}}"), false, true),
            "table {{.ID}}\t{{.Digest}}"
        );
    }

    #[test]
    fn json_rows_have_dockers_keys() {
        let images = [img(ID2, &[], &[])];
        let rows = rows_of(&images, false, "json", true);
        let out = render_list("json", &image_headers(), &rows).unwrap();
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        assert_eq!(
            v,
            json!({"Containers":"N/A","CreatedAt":"1970-01-01 00:16:40 +0000 UTC",
                   "CreatedSince":"1 second ago","Digest":"<none>","ID":"d4e5f5621728",
                   "Repository":"<none>","SharedSize":"N/A","Size":"1.98MB","Tag":"<none>",
                   "UniqueSize":"N/A","VirtualSize":"1.982MB"})
        );
    }

    #[test]
    fn template_errors_exit_1_with_dockers_prefix() {
        let e = render_list("{{.Foo", &image_headers(), &[]).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "template parsing error: template: :1: unclosed action"
        );
        let e = render_list("{{.A.B}}", &image_headers(), &[json!({"A": "x"})]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("template parsing error: template: :1:2: "),
            "{e}"
        );
    }

    #[test]
    fn rows_group_tags_and_digests_by_repository() {
        let d = format!("bb@{DIG}");
        let i = img(
            ID1,
            &["bb:1", "docker.io/library/bb:2", "localhost:5000/x/y:v"],
            &[&d, &format!("other@{DIG}")],
        );
        let plain: Vec<(String, String, String)> = image_rows(&i, false, false)
            .into_iter()
            .map(|r| (r.repository, r.tag, r.digest))
            .collect();
        let s = |a: &str, b: &str, c: &str| (a.to_string(), b.to_string(), c.to_string());
        assert_eq!(
            plain,
            vec![
                s("bb", "1", "<none>"),
                s("bb", "2", "<none>"),
                s("localhost:5000/x/y", "v", "<none>"),
                s("other", "<none>", ""),
            ]
        );
        let with: Vec<(String, String, String)> = image_rows(&i, true, true)
            .into_iter()
            .map(|r| (r.repository, r.tag, r.digest))
            .collect();
        assert_eq!(
            with,
            vec![
                s("bb", "1", DIG),
                s("bb", "2", DIG),
                s("localhost:5000/x/y", "v", "<none>"),
                s("other", "<none>", DIG),
            ]
        );
        // Old daemons' placeholders mean dangling.
        let old = img(ID1, &["<none>:<none>"], &["<none>@<none>"]);
        assert_eq!(image_rows(&old, false, false)[0].repository, "<none>");
    }

    #[test]
    fn history_table_matches_docker_output() {
        let h = ImageHistoryResponseItem {
            id: ID1.into(),
            created: 1_000,
            created_by: String::new(),
            tags: vec!["bb:1".into()],
            size: 1_982_256,
            comment: "hello".into(),
        };
        let f = history_format(None, false, true);
        let out = render_list(
            &f,
            &history_headers(),
            &[history_row(&h, true, true, 1_007)],
        )
        .unwrap();
        assert_eq!(
            out,
            "IMAGE          CREATED         CREATED BY   SIZE      COMMENT\n\
             48cc1df219fb   7 seconds ago                1.98MB    hello\n"
        );
        let f = history_format(None, false, false);
        let out = render_list(
            &f,
            &history_headers(),
            &[history_row(&h, true, false, 1_007)],
        )
        .unwrap();
        assert_eq!(
            out,
            "IMAGE          CREATED AT             CREATED BY   SIZE      COMMENT\n\
             48cc1df219fb   1970-01-01T00:16:40Z                1982256   hello\n"
        );
        let long = ImageHistoryResponseItem {
            id: "<missing>".into(),
            created_by: "/bin/sh -c\t#(nop) ADD file:71356d2ad59aa3119d0123456789 in /".into(),
            ..h.clone()
        };
        let row = history_row(&long, true, true, 1_000);
        assert_eq!(row["ID"], "<missing>");
        assert_eq!(
            row["CreatedBy"],
            "/bin/sh -c #(nop) ADD file:71356d2ad59aa3119…"
        );
        assert_eq!(row["CreatedBy"].as_str().unwrap().chars().count(), 45);
        assert_eq!(
            history_row(&long, false, true, 1_000)["CreatedBy"],
            "/bin/sh -c #(nop) ADD file:71356d2ad59aa3119d0123456789 in /"
        );
        assert_eq!(history_format(None, true, true), "{{.ID}}");
    }

    #[test]
    fn human_durations_match_go_units() {
        for (secs, want) in [
            (-5, "Less than a second"),
            (0, "Less than a second"),
            (1, "1 second"),
            (59, "59 seconds"),
            (60, "About a minute"),
            (119, "About a minute"),
            (180, "3 minutes"),
            (3599, "59 minutes"),
            (3600, "About an hour"),
            (5399, "About an hour"),
            (5400, "2 hours"),
            (47 * 3600, "47 hours"),
            (48 * 3600, "2 days"),
            (13 * 86400, "13 days"),
            (14 * 86400, "2 weeks"),
            (59 * 86400, "8 weeks"),
            (60 * 86400, "2 months"),
            (729 * 86400, "24 months"),
            (730 * 86400, "2 years"),
            (56 * 366 * 86400, "56 years"),
        ] {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
    }

    #[test]
    fn sizes_with_precision_3_match_go_units() {
        for (n, want) in [
            (0.0, "0B"),
            (999.0, "999B"),
            (1000.0, "1kB"),
            (1_982_256.0, "1.98MB"),
            (1_234_567.0, "1.23MB"),
            (12_345_678.0, "12.3MB"),
            (123_456_789.0, "123MB"),
            (999_999.0, "1e+03kB"),
            (5.6e9, "5.6GB"),
            (104_857_600.0, "105MB"),
        ] {
            assert_eq!(human_size_precision(n, 3), want, "{n}");
        }
    }

    #[test]
    fn ids_and_times() {
        assert_eq!(truncate_id(ID1), "48cc1df219fb");
        assert_eq!(truncate_id("48cc1df219fb4c46"), "48cc1df219fb");
        assert_eq!(truncate_id("<missing>"), "<missing>");
        assert_eq!(
            go_time_string(1_709_251_199),
            "2024-02-29 23:59:59 +0000 UTC"
        );
        assert_eq!(rfc3339(1_709_251_199), "2024-02-29T23:59:59Z");
        assert_eq!(ellipsis("abc", 3), "abc");
        assert_eq!(ellipsis("abcd", 3), "ab…");
    }

    #[test]
    fn tag_targets_split_like_the_api_wants() {
        assert_eq!(split_tag_target("bb:2"), ("bb".into(), Some("2".into())));
        assert_eq!(split_tag_target("bb"), ("bb".into(), None));
        assert_eq!(
            split_tag_target("localhost:5000/bb"),
            ("localhost:5000/bb".into(), None)
        );
        assert_eq!(
            split_tag_target("localhost:5000/bb:v"),
            ("localhost:5000/bb".into(), Some("v".into()))
        );
        assert_eq!(split_tag_target("a@sha256:x"), ("a@sha256:x".into(), None));
    }

    #[test]
    fn filters_parse_like_docker() {
        let f = parse_filters(
            &[
                "Dangling = true".into(),
                "label=a=b".into(),
                "label=c".into(),
            ],
            "-f, --filter",
        )
        .unwrap();
        assert_eq!(f["dangling"], ["true"]);
        assert_eq!(f["label"], ["a=b", "c"]);
        let e = parse_filters(&["nope".into()], "-f, --filter").unwrap_err();
        assert_eq!(e.exit_code(), 125);
        assert!(e
            .to_string()
            .contains("bad format of filter (expected name=value)"));
    }

    #[test]
    fn prune_report_matches_docker() {
        let out = render_prune(
            &[(None, Some(ID2.into())), (Some("bb:1".into()), None)],
            1_982_256,
        );
        assert_eq!(
            out,
            format!("Deleted Images:\ndeleted: {ID2}\nuntagged: bb:1\n\nTotal reclaimed space: 1.982MB\n")
        );
        assert_eq!(render_prune(&[], 0), "Total reclaimed space: 0B\n");
    }

    #[test]
    fn inspect_json_is_reindented_like_go() {
        let raw = r#"[{"Id":"x","RepoTags":[], "Config" : {"Cmd":["sh","-c"],"Labels":{}},"Comment":"a \"q\" ,:{[ <&>","Size":1982256,"Null":null}]"#;
        assert_eq!(
            json_indent(raw, "    "),
            "[\n    {\n        \"Id\": \"x\",\n        \"RepoTags\": [],\n        \"Config\": {\n            \"Cmd\": [\n                \"sh\",\n                \"-c\"\n            ],\n            \"Labels\": {}\n        },\n        \"Comment\": \"a \\\"q\\\" ,:{[ <&>\",\n        \"Size\": 1982256,\n        \"Null\": null\n    }\n]"
        );
        assert_eq!(json_indent("[]", "    "), "[]");
        // Same text as serde's pretty printer for the same (sorted) value.
        let v = json!({"a": [1, {"b": null}], "c": {}});
        assert_eq!(
            json_indent(&v.to_string(), "  "),
            serde_json::to_string_pretty(&v).unwrap()
        );
    }

    fn msg(v: Value) -> JsonMessage {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn progress_off_a_terminal_prints_plain_lines() {
        let mut p = ProgressPrinter::new(false, 200).with_now(100);
        let mut out = String::new();
        for m in [
            json!({"status": "Pulling from library/busybox", "id": "latest"}),
            json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "abc"}),
            json!({"status": "Downloading", "progressDetail": {"current": 10, "total": 100}, "progress": "[=>  ]", "id": "abc"}),
            json!({"status": "Pull complete", "progressDetail": {}, "id": "abc"}),
            json!({"status": "Digest: sha256:1"}),
            json!({"stream": "Loaded image: bb:1\n"}),
            json!({"aux": {"ID": "sha256:1"}}),
        ] {
            p.message(&msg(m), &mut out).unwrap();
        }
        assert_eq!(
            out,
            "latest: Pulling from library/busybox\nabc: Pulling fs layer\nabc: Pull complete\nDigest: sha256:1\nLoaded image: bb:1\n"
        );
    }

    #[test]
    fn progress_on_a_terminal_rewrites_each_layer_line() {
        let mut p = ProgressPrinter::new(true, 80).with_now(100);
        let mut out = String::new();
        p.message(
            &msg(json!({"status": "Pulling from library/x", "id": "latest"})),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, "latest: Pulling from library/x\n");
        out.clear();
        p.message(
            &msg(json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "a"})),
            &mut out,
        )
        .unwrap();
        p.message(
            &msg(json!({"status": "Pulling fs layer", "progressDetail": {}, "id": "b"})),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            "\n\x1b[1A\x1b[2K\ra: Pulling fs layer \r\x1b[1B\n\x1b[1A\x1b[2K\rb: Pulling fs layer \r\x1b[1B"
        );
        out.clear();
        // Layer a is two lines up from the bottom.
        p.message(
            &msg(json!({"status": "Downloading", "progressDetail": {"current": 500000, "total": 1000000, "start": 90}, "id": "a"})),
            &mut out,
        )
        .unwrap();
        assert_eq!(
            out,
            "\x1b[2A\x1b[2K\ra: Downloading    500kB/1MB 10s\r\x1b[2B"
        );
        out.clear();
        p.message(
            &msg(json!({"status": "Status: Downloaded newer image for x:latest"})),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, "Status: Downloaded newer image for x:latest\n");
        assert!(p.ids.is_empty());
    }

    #[test]
    fn progress_bar_on_wide_terminals() {
        let p = JsonProgress {
            current: 25,
            total: 100,
            ..Default::default()
        };
        assert_eq!(
            p.render(120, 0),
            format!("[{}>{}]      25B/100B", "=".repeat(12), " ".repeat(38))
        );
        assert_eq!(p.render(80, 0), "     25B/100B");
        let over = JsonProgress {
            current: 200,
            total: 100,
            ..Default::default()
        };
        assert_eq!(over.render(80, 0), "    200B");
        let units = JsonProgress {
            current: 3,
            total: 0,
            units: "layers".into(),
            ..Default::default()
        };
        assert_eq!(units.render(80, 0), "3 layers");
        assert_eq!(JsonProgress::default().render(200, 0), "");
        assert_eq!(go_duration(3723), "1h2m3s");
        assert_eq!(go_duration(65), "1m5s");
        assert_eq!(go_duration(0), "0s");
    }

    #[test]
    fn stream_errors_stop_the_display() {
        let mut p = ProgressPrinter::new(false, 80);
        let mut out = String::new();
        let e = p
            .message(
                &msg(json!({"errorDetail": {"message": "boom"}, "error": "boom"})),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e, "boom");
        let e = p
            .message(
                &msg(json!({"errorDetail": {"code": 401, "message": "unauthorized"}})),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(e, "authentication is required");
        assert_eq!(out, "");
    }

    #[test]
    fn json_lines_split_across_chunks() {
        let mut l = JsonLines::default();
        assert!(l.push(b"{\"status\":\"a\"}\r\n{\"sta").unwrap().len() == 1);
        let m = l.push(b"tus\":\"b\"}\n\n{\"id\":\"c\"}").unwrap();
        assert_eq!(m[0].status.as_deref(), Some("b"));
        let last = l.finish().unwrap();
        assert_eq!(last[0].id.as_deref(), Some("c"));
        assert!(l.push(b"not json\n").is_err());
    }

    fn parse(args: &[&str]) -> crate::cli::Cli {
        use clap::Parser;
        crate::cli::Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn command_lines_parse_like_docker() {
        use clap::Parser;

        use crate::cli::Command;
        let Some(Command::ImageShortcut(ImageShortcut::History(h))) =
            parse(&["history", "-H=false", "--no-trunc", "bb:1"]).command
        else {
            panic!("not history")
        };
        assert!(!h.human && h.no_trunc);
        let Some(Command::ImageShortcut(ImageShortcut::History(h))) =
            parse(&["history", "bb:1"]).command
        else {
            panic!("not history")
        };
        assert!(h.human);
        let Some(Command::ImageShortcut(ImageShortcut::Images(i))) = parse(&[
            "images",
            "-a",
            "-q",
            "-f",
            "dangling=true",
            "--filter",
            "label=a",
            "bb",
        ])
        .command
        else {
            panic!("not images")
        };
        assert!(i.all && i.quiet);
        assert_eq!(i.filter, ["dangling=true", "label=a"]);
        assert_eq!(i.reference.as_deref(), Some("bb"));
        let Some(Command::Image(ImageCommand::Ls(_))) = parse(&["image", "list"]).command else {
            panic!("not image ls")
        };
        let Some(Command::Image(ImageCommand::Inspect(i))) =
            parse(&["image", "inspect", "-f", "{{.Id}}", "a", "b"]).command
        else {
            panic!("not inspect")
        };
        assert_eq!((i.format.as_deref(), i.images.len()), (Some("{{.Id}}"), 2));
        let Some(Command::ImageShortcut(ImageShortcut::Import(i))) = parse(&[
            "import",
            "-c",
            "CMD [\"sh\"]",
            "--change",
            "LABEL a=b",
            "-m",
            "msg",
            "-",
            "bb:1",
        ])
        .command
        else {
            panic!("not import")
        };
        assert_eq!(i.change, ["CMD [\"sh\"]", "LABEL a=b"]);
        assert_eq!(
            (i.source.as_str(), i.reference.as_deref()),
            ("-", Some("bb:1"))
        );
        let Some(Command::Image(ImageCommand::Rm(r))) =
            parse(&["image", "remove", "-f", "--no-prune", "x"]).command
        else {
            panic!("not image rm")
        };
        assert!(r.force && r.no_prune);
        let Some(Command::Image(ImageCommand::Prune(p))) =
            parse(&["image", "prune", "-a", "-f", "--filter", "until=1h"]).command
        else {
            panic!("not prune")
        };
        assert!(p.all && p.force);
        for args in [
            &["pull", "--disable-content-trust=false", "x"][..],
            &["push", "--disable-content-trust", "x"],
        ] {
            parse(args);
        }
        for bad in [
            &["rmi"][..],
            &["tag", "a"],
            &["save"],
            &["history"],
            &["image", "inspect"],
        ] {
            assert!(
                crate::cli::Cli::try_parse_from(
                    std::iter::once("berth").chain(bad.iter().copied())
                )
                .is_err(),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(query_escape("CMD [\"sh\"]"), "CMD%20%5B%22sh%22%5D");
        assert_eq!(query_escape("LABEL a=b&c"), "LABEL%20a%3Db%26c");
        assert_eq!(
            path_escape("localhost:5000/a/b:v1"),
            "localhost:5000/a/b:v1"
        );
        assert_eq!(path_escape("a b?"), "a%20b%3F");
        assert_eq!(
            platform_json("linux/ARM64/v8").unwrap(),
            r#"{"architecture":"arm64","os":"linux","variant":"v8"}"#
        );
        assert!(platform_json("/x").is_err());
    }
}
