//! List output: a command's `--format` resolved, its rows rendered with it (`table ...`
//! with a header row, `json`, or a template per row), the prune commands' `Deleted ...:`
//! report, and Go's `text/tabwriter` column alignment that `table` output and
//! `docker version` use.

use serde_json::Value;

use crate::error::Error;
use crate::format::{Template, TemplateError};
use crate::humanize::human_size;

/// A list command's format: `quiet` (`-q`) wins, then a non-empty `--format`, else the
/// command's default table.
pub fn list_format(format: Option<&str>, quiet: bool, quiet_format: &str, table: &str) -> String {
    match format {
        _ if quiet => quiet_format,
        Some(f) if !f.is_empty() => f,
        _ => table,
    }
    .to_string()
}

/// The `Deleted <kind>:` list of a prune command (cli/command/{container,volume}/prune.go),
/// a blank line after it, and with `reclaimed` (`None` for `network prune`, which prints
/// only the list) the `Total reclaimed space` line.
pub fn prune_report(kind: &str, deleted: &[String], reclaimed: Option<i64>) -> String {
    let mut out = String::new();
    if !deleted.is_empty() {
        out.push_str(&format!("Deleted {kind}:\n"));
        for d in deleted {
            out.push_str(d);
            out.push('\n');
        }
        if reclaimed.is_some() {
            out.push('\n');
        }
    }
    if let Some(r) = reclaimed {
        out.push_str(&format!(
            "Total reclaimed space: {}\n",
            human_size(r.max(0) as f64)
        ));
    }
    out
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

/// Aligns tab-separated cells like Go's `text/tabwriter` with flags 0 and padding char
/// `' '`: each column block (consecutive lines having that column) is as wide as its widest
/// cell plus `padding`, at least `minwidth`; the last cell of a line is not aligned.
/// `docker version` uses `(minwidth 20, padding 1)`, docker tables `(10, 3)`.
pub fn tabwrite(text: &str, minwidth: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
    let mut tw = TabWriter {
        lines: &lines,
        minwidth,
        padding,
        widths: Vec::new(),
        out: Vec::with_capacity(lines.len()),
    };
    tw.format(0, lines.len());
    tw.out.join("\n")
}

struct TabWriter<'a> {
    lines: &'a [Vec<&'a str>],
    minwidth: usize,
    padding: usize,
    widths: Vec<usize>,
    out: Vec<String>,
}

impl TabWriter<'_> {
    // Go's (*tabwriter.Writer).format: recursive over column blocks.
    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if column + 1 >= self.lines[this].len() {
                this += 1;
                continue;
            }
            self.write_lines(line0, this);
            line0 = this;
            let mut width = self.minwidth;
            while this < line1 {
                let line = &self.lines[this];
                if column + 1 >= line.len() {
                    break;
                }
                width = width.max(line[column].chars().count() + self.padding);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for line in &self.lines[line0..line1] {
            let mut s = String::new();
            for (j, cell) in line.iter().enumerate() {
                s.push_str(cell);
                if j + 1 < line.len() {
                    if let Some(w) = self.widths.get(j) {
                        let pad = w.saturating_sub(cell.chars().count());
                        s.extend(std::iter::repeat_n(' ', pad));
                    }
                }
            }
            self.out.push(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_format_prefers_quiet_then_format() {
        let f = |format, quiet| list_format(format, quiet, "{{.ID}}", "table {{.ID}}");
        assert_eq!(f(Some("{{.Name}}"), true), "{{.ID}}");
        assert_eq!(f(Some("{{.Name}}"), false), "{{.Name}}");
        assert_eq!(f(Some(""), false), "table {{.ID}}");
        assert_eq!(f(None, false), "table {{.ID}}");
    }

    #[test]
    fn prune_reports_as_docker() {
        let ids = ["a".to_string(), "b".to_string()];
        assert_eq!(
            prune_report("Networks", &ids, None),
            "Deleted Networks:\na\nb\n"
        );
        assert_eq!(prune_report("Networks", &[], None), "");
        assert_eq!(
            prune_report("Volumes", &ids[..1], Some(2048)),
            "Deleted Volumes:\na\n\nTotal reclaimed space: 2.048kB\n"
        );
        assert_eq!(
            prune_report("Containers", &[], Some(-1)),
            "Total reclaimed space: 0B\n"
        );
    }

    #[test]
    fn tabwriter_matches_docker_version_layout() {
        let text = "Client:\n Version:\t28.2.2\n API version:\t1.41 (downgraded from 1.50)\n Context:\tdefault\n\nServer:\n Engine:\n  Version:\t20.10.24\n  GitCommit:\t\n";
        let want = "Client:\n Version:           28.2.2\n API version:       1.41 (downgraded from 1.50)\n Context:           default\n\nServer:\n Engine:\n  Version:          20.10.24\n  GitCommit:        \n";
        assert_eq!(tabwrite(text, 20, 1), want);
    }

    #[test]
    fn tabwriter_widens_a_block_for_a_long_cell_only() {
        let text = "a\tx\na-very-long-label-here:\ty\n\nb\tz";
        let want = "a                        x\na-very-long-label-here:  y\n\nb         z";
        assert_eq!(tabwrite(text, 10, 2), want);
    }

    #[test]
    fn tabwriter_multiple_columns() {
        let text = "ID\tNAME\tSTATUS\n1\tlongername\tup\n22\tn\tdown\n";
        let want = "ID   NAME         STATUS\n1    longername   up\n22   n            down\n";
        assert_eq!(tabwrite(text, 0, 3), want);
    }

    #[test]
    fn tabwriter_counts_characters_not_bytes() {
        assert_eq!(tabwrite("é\tx\nab\ty", 0, 1), "é  x\nab y");
    }
}
