//! `inspect` output as docker prints it: the daemon's JSON bodies re-indented as Go's
//! `json.Indent` does (key order kept), or one `--format` rendering per object, with the
//! missing objects reported after the others (exit status 1).

use serde_json::Value;

use crate::connect::Client;
use crate::error::Error;
use crate::format::{json_indent, Template};
use crate::request::query_escape;
use crate::write_out;

/// `network inspect`, `volume inspect`: `GET <collection>/<name>` for each name, printed
/// by [`print_inspect`] (missing ones reported after, exit status 1).
pub(crate) async fn inspect_each(
    client: &Client,
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

/// The `--format` of `inspect` and `image inspect`: none (or empty) prints the JSON; a
/// malformed template exits 64 as docker's does.
pub(crate) fn inspect_template(format: Option<&str>) -> Result<Option<Template>, Error> {
    Ok(format
        .filter(|f| !f.is_empty())
        .map(Template::parse_format_flag)
        .transpose()?)
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
    Error::from_each(errors)
}
