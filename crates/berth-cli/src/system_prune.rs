//! `berth system prune` (containers, networks, optionally volumes, images, build cache, in
//! docker's order, with its prompt and one total; docker/cli `cli/command/system/prune.go`)
//! and `berth search` (`GET /images/search`, docker's table; `cli/command/registry/search.go`
//! and `formatter/search.go`). Rendering is pure and tested here.

use std::collections::HashMap;

use bollard::query_parameters::{
    PruneBuildOptions, PruneContainersOptions, PruneImagesOptions, PruneNetworksOptions,
    PruneVolumesOptions,
};
use clap::Args;
use serde_json::{json, Value};

use crate::error::Error;
use crate::humanize::{ellipsis, human_size};
use crate::prompt::confirm;
use crate::request::{parse_filters, query_escape};
use crate::table::{list_format, render_list};
use crate::{write_out, Session};

#[derive(Debug, Clone, Args)]
pub struct SystemPruneArgs {
    /// Remove all unused images not just dangling ones
    #[arg(short = 'a', long)]
    pub all: bool,
    /// Provide filter values (e.g. "label=<key>=<value>")
    #[arg(long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Do not prompt for confirmation
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Prune anonymous volumes
    #[arg(long)]
    pub volumes: bool,
}

/// docker's confirmation text for `system prune`.
pub fn prune_warning(all: bool, volumes: bool) -> String {
    let mut w = String::from(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n",
    );
    if volumes {
        w.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    if all {
        w.push_str("  - all images without at least one container associated to them\n  - all build cache\n");
    } else {
        w.push_str("  - all dangling images\n  - unused build cache\n");
    }
    w.push_str("\nAre you sure you want to continue?");
    w
}

/// One section of the report (`Deleted Containers:` and its lines), empty when nothing
/// was deleted; docker prints each non-empty one followed by a blank line.
pub fn section(title: &str, lines: &[String]) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let mut s = format!("{title}:\n");
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// The whole report: each non-empty section and a blank line, then the total.
pub fn render_system_prune(sections: &[String], reclaimed: u64) -> String {
    let mut out = String::new();
    for s in sections.iter().filter(|s| !s.is_empty()) {
        out.push_str(s);
        out.push('\n');
    }
    out.push_str(&format!(
        "Total reclaimed space: {}\n",
        human_size(reclaimed as f64)
    ));
    out
}

/// Runs `berth system prune`.
pub async fn system_prune(session: &Session, args: &SystemPruneArgs) -> Result<(), Error> {
    let filters = parse_filters(&args.filter, "--filter")?;
    if !args.force && !confirm(&prune_warning(args.all, args.volumes))? {
        return Ok(());
    }
    let client = session.client().await?;
    let docker = client.docker();
    let mut sections = Vec::new();
    let mut total: u64 = 0;
    let add = |total: &mut u64, n: Option<i64>| {
        *total = total.saturating_add(n.unwrap_or(0).max(0) as u64);
    };

    let r = docker
        .prune_containers(Some(PruneContainersOptions {
            filters: Some(filters.clone()),
        }))
        .await
        .map_err(|e| client.daemon_err(e))?;
    add(&mut total, r.space_reclaimed);
    sections.push(section(
        "Deleted Containers",
        &r.containers_deleted.unwrap_or_default(),
    ));

    let r = docker
        .prune_networks(Some(PruneNetworksOptions {
            filters: Some(filters.clone()),
        }))
        .await
        .map_err(|e| client.daemon_err(e))?;
    sections.push(section(
        "Deleted Networks",
        &r.networks_deleted.unwrap_or_default(),
    ));

    if args.volumes {
        let r = docker
            .prune_volumes(Some(PruneVolumesOptions {
                filters: Some(filters.clone()),
            }))
            .await
            .map_err(|e| client.daemon_err(e))?;
        add(&mut total, r.space_reclaimed);
        sections.push(section(
            "Deleted Volumes",
            &r.volumes_deleted.unwrap_or_default(),
        ));
    }

    let mut image_filters: HashMap<String, Vec<String>> = filters.clone();
    image_filters
        .entry("dangling".into())
        .or_default()
        .push((!args.all).to_string());
    let r = docker
        .prune_images(Some(PruneImagesOptions {
            filters: Some(image_filters),
        }))
        .await
        .map_err(|e| client.daemon_err(e))?;
    add(&mut total, r.space_reclaimed);
    let mut lines = Vec::new();
    for d in r.images_deleted.unwrap_or_default() {
        if let Some(u) = d.untagged.filter(|u| !u.is_empty()) {
            lines.push(format!("untagged: {u}"));
        }
        if let Some(x) = d.deleted.filter(|x| !x.is_empty()) {
            lines.push(format!("deleted: {x}"));
        }
    }
    sections.push(section("Deleted Images", &lines));

    let r = docker
        .prune_build(Some(PruneBuildOptions {
            all: Some(args.all),
            filters: Some(filters),
            ..Default::default()
        }))
        .await
        .map_err(|e| client.daemon_err(e))?;
    add(&mut total, r.space_reclaimed);
    sections.push(section(
        "Deleted build cache objects",
        &r.caches_deleted.unwrap_or_default(),
    ));

    write_out(&render_system_prune(&sections, total))
}

// ---------------------------------------------------------------------------------------
// search

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Filter output based on conditions provided
    #[arg(short = 'f', long, value_name = "filter")]
    pub filter: Vec<String>,
    /// Pretty-print search using a Go template
    #[arg(long, value_name = "string")]
    pub format: Option<String>,
    /// Max number of search results
    #[arg(long, value_name = "int")]
    pub limit: Option<u32>,
    /// Don't truncate output
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(value_name = "TERM")]
    pub term: String,
}

/// docker's `search` default table.
const SEARCH_TABLE: &str = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}";

/// The rows of `search` as docker's formatter shows them: the description cut to 45
/// characters (unless `--no-trunc`), `[OK]` for official and automated images.
pub fn search_rows(results: &[Value], no_trunc: bool) -> Vec<Value> {
    let ok = |v: &Value| {
        if v.as_bool() == Some(true) {
            "[OK]"
        } else {
            ""
        }
    };
    results
        .iter()
        .map(|r| {
            let desc = r["description"].as_str().unwrap_or("").replace('\n', " ");
            let desc = if no_trunc { desc } else { ellipsis(&desc, 45) };
            json!({
                "Name": r["name"].as_str().unwrap_or(""),
                "Description": desc,
                "StarCount": r["star_count"].as_i64().unwrap_or(0).to_string(),
                "IsOfficial": ok(&r["is_official"]),
                "IsAutomated": ok(&r["is_automated"]),
            })
        })
        .collect()
}

/// Runs `berth search`.
pub async fn search(session: &Session, args: &SearchArgs) -> Result<(), Error> {
    let mut q = vec![format!("term={}", query_escape(&args.term))];
    if let Some(l) = args.limit {
        q.push(format!("limit={l}"));
    }
    if !args.filter.is_empty() {
        let f = parse_filters(&args.filter, "--filter")?;
        q.push(format!("filters={}", query_escape(&json!(f).to_string())));
    }
    let client = session.client().await?;
    let v = client
        .get_json(&format!("/images/search?{}", q.join("&")))
        .await?;
    let results = v.as_array().cloned().unwrap_or_default();
    let format = list_format(args.format.as_deref(), false, "", SEARCH_TABLE);
    let format = if format == "table" {
        SEARCH_TABLE.to_string()
    } else {
        format
    };
    let headers = json!({"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
                         "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"});
    write_out(&render_list(
        &format,
        &headers,
        &search_rows(&results, args.no_trunc),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_is_dockers() {
        assert_eq!(
            prune_warning(false, false),
            "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue?"
        );
        let w = prune_warning(true, true);
        assert!(w.contains("  - all anonymous volumes not used by at least one container\n  - all images without at least one container associated to them\n  - all build cache\n"), "{w}");
    }

    #[test]
    fn report_has_each_section_then_total() {
        let s = vec![
            section("Deleted Containers", &["c1".into(), "c2".into()]),
            section("Deleted Networks", &[]),
            section(
                "Deleted Images",
                &["untagged: x:1".into(), "deleted: sha256:ab".into()],
            ),
        ];
        assert_eq!(
            render_system_prune(&s, 2048),
            "Deleted Containers:\nc1\nc2\n\nDeleted Images:\nuntagged: x:1\ndeleted: sha256:ab\n\nTotal reclaimed space: 2.048kB\n"
        );
        assert_eq!(render_system_prune(&[], 0), "Total reclaimed space: 0B\n");
    }

    #[test]
    fn search_rows_truncate_and_mark_official() {
        let r = json!([{"name": "busybox", "description": "x".repeat(60), "star_count": 3,
                        "is_official": true, "is_automated": false}]);
        let rows = search_rows(r.as_array().unwrap(), false);
        assert_eq!(rows[0]["Description"].as_str().unwrap().chars().count(), 45);
        assert_eq!(rows[0]["IsOfficial"], "[OK]");
        assert_eq!(rows[0]["StarCount"], "3");
        let rows = search_rows(r.as_array().unwrap(), true);
        assert_eq!(rows[0]["Description"].as_str().unwrap().len(), 60);
    }
}
