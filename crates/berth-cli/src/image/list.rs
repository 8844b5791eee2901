//! The image commands that read and name local images: `images` (`image ls`),
//! `image inspect`, `history`, `tag`, `rmi` and `image prune`, with their pure rendering
//! (list rows grouped by repository as docker groups them, history rows, the prune report).

use std::fmt::Write as _;

use bollard::models::{ImageHistoryResponseItem, ImageSummary};
use bollard::query_parameters::{
    ListImagesOptions, PruneImagesOptions, RemoveImageOptions, TagImageOptions,
};
use http::Method;
use serde_json::{json, Value};

use berth_api_types::reference::Reference;

use super::{HistoryArgs, ImagesArgs, InspectArgs, PruneArgs, RmiArgs, TagArgs};
use crate::error::Error;
use crate::humanize::{ellipsis, human_duration, human_size, human_size_precision, truncate_id};
use crate::inspect::{inspect_template, print_inspect};
use crate::prompt::confirm;
use crate::request::{collect, parse_filters, path_escape, raw_request};
use crate::table::render_list;
use crate::timefmt::{go_time_string, now_unix, rfc3339};
use crate::{write_err, write_out, Session};

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

/// `image inspect`: the daemon's JSON as sent (see [`crate::connect::Client::get_json`]), as a 4-space
/// indented array, or one template rendering per image. Missing images are reported after
/// the others, exit status 1.
pub async fn inspect(session: &Session, args: &InspectArgs) -> Result<(), Error> {
    let template = inspect_template(args.format.as_deref())?;
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
}
