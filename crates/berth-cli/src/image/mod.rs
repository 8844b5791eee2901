//! The image commands: `images` (`image ls`), `image inspect`, `history`, `tag`, `rmi`,
//! `save`, `load`, `import`, `image prune`, `pull` and `push`, with docker's flags, output
//! and exit statuses (docker/cli `cli/command/image/*.go` and
//! `cli/command/formatter/image.go`).
//!
//! This module holds the command line (flags as docker spells them) and the dispatch; the
//! commands are in `list` (ls, inspect, history, tag, rmi, prune, with their pure row
//! rendering), `archive` (save, load, import) and `transfer` (pull, push). What other
//! commands share is not here: tables in [`crate::table`], sizes and ages in
//! [`crate::humanize`], times in [`crate::timefmt`], the progress stream in
//! [`crate::progress`], inspect output in [`crate::inspect`], requests in
//! [`crate::request`]. References are parsed by `berth_api_types::reference` (the same
//! code the daemon uses).
//!
//! Requests go through bollard. Where bollard falls short we still use its transport and
//! say why at the spot: `push` (its `PushImageInfo` has no `id`, so layers could not be
//! told apart) and `import --change` (it joins changes with newlines into one parameter;
//! docker sends one `changes` parameter per change).

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgAction, Args, Subcommand};

use crate::error::Error;
use crate::Session;

mod archive;
pub(crate) use archive::read_in_background;
mod list;
mod transfer;

pub use archive::{import, load, save};
pub use list::{
    history, history_format, history_headers, history_row, image_format, image_headers, image_rows,
    images, inspect, prune, render_prune, rmi, split_tag_target, tag, ImageRow, ListedImage,
};
pub use transfer::{pull, pull_tag, push};

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

/// `--disable-content-trust`, accepted for docker compatibility and hidden: berth has no
/// content trust, so images are neither verified nor signed.
#[derive(Debug, Clone, Args)]
pub struct ContentTrust {
    #[arg(
        long = "disable-content-trust",
        value_name = "bool",
        num_args = 0..=1,
        require_equals = true,
        default_value_t = true,
        default_missing_value = "true",
        action = ArgAction::Set,
        hide = true
    )]
    pub disabled: bool,
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
    #[command(flatten)]
    pub content_trust: ContentTrust,
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
    #[command(flatten)]
    pub content_trust: ContentTrust,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
