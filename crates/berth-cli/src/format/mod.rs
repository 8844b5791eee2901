//! The `--format` template language shared by every command (column alignment is in
//! `crate::table`, human sizes in `crate::humanize`).
//!
//! Docker's `--format` takes a Go `text/template` evaluated on Go structs. We evaluate a
//! subset of that language on the response's JSON ([`serde_json::Value`]), which is what
//! scripts written for `docker ... --format` actually use:
//!
//! - literal text; `{{.}}`, `{{.Field.Sub}}`, `{{$}}`, `{{$.Field}}`;
//! - trim markers `{{- ` and ` -}}`, comments `{{/* ... */}}`;
//! - pipelines `{{.Names | upper}}` and parenthesised arguments;
//! - `if`/`else if`/`else`, `with`, `range` (arrays, and objects in key order), `end`;
//! - functions `json`, `index`, `join`, `split`, `upper`, `lower`, `title`, `len`, `eq`,
//!   `ne`, `not`, `and`, `or`.
//!
//! Field names are the JSON keys; when no key matches exactly, the first key that matches
//! ignoring ASCII case is used, so Go field names (`.Server.APIVersion`) and JSON keys
//! (`.Server.ApiVersion`) both work. A missing key evaluates like a missing Go map key
//! (prints `<no value>`, is false in `if`), not as an error, because daemons omit empty
//! fields that Docker's structs would still have. JSON objects are printed as Go prints
//! maps (`map[k:v]`), `null` as `<nil>`. It does not own what data a command passes in,
//! nor the `table` directive of list commands.
//!
//! This module holds the [`Template`] API, the node tree both halves share and the
//! position helpers of error messages; `parse` builds the tree, `exec` evaluates it and
//! `functions` holds the template functions.

use std::fmt;

use serde_json::Value;

mod exec;
mod functions;
mod json_indent;
mod parse;
mod value;

pub use json_indent::json_indent;

use exec::Exec;
use parse::Parser;

/// A parsed `--format` template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    source: String,
    nodes: Vec<Node>,
}

/// Why a template could not be parsed or executed. The messages follow Go's
/// (`template: :1:2: executing "" at <.Foo>: ...`) so they read like Docker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// The template is malformed; Docker exits 64 for these.
    Parse(String),
    /// The template is well formed but failed on this data.
    Exec(String),
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Parse(m) => write!(f, "template parsing error: template: :{m}"),
            TemplateError::Exec(m) => write!(f, "template: :{m}"),
        }
    }
}

impl std::error::Error for TemplateError {}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Text(String),
    Action(Pipeline),
    If {
        cond: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        value: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        over: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Pipeline {
    cmds: Vec<Vec<Arg>>,
    /// Byte offset of the action's first token, for error messages.
    pos: usize,
    /// The action's text, for error messages (`<.Foo>`).
    text: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// `.` or `.A.B` (path empty for `.`).
    Dot {
        path: Vec<String>,
        pos: usize,
    },
    /// `$` or `$.A.B`.
    Root {
        path: Vec<String>,
        pos: usize,
    },
    Func(String, usize),
    Str(String),
    Int(i64),
    Bool(bool),
    Nil,
    Sub(Pipeline),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Field(Vec<String>),
    RootField(Vec<String>),
    Ident(String),
    Str(String),
    Int(i64),
    Pipe,
    Open,
    Close,
}

impl Template {
    /// Parses `source`.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let nodes = Parser::new(source).parse()?;
        Ok(Template {
            source: source.to_string(),
            nodes,
        })
    }

    /// Parses a `--format` value: `json` alone means `{{json .}}` (Docker's
    /// `formatter.JSONFormatKey`).
    pub fn parse_format_flag(source: &str) -> Result<Template, TemplateError> {
        if source == "json" {
            Template::parse("{{json .}}")
        } else {
            Template::parse(source)
        }
    }

    /// The template text as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the template with `data` as `.`.
    pub fn render(&self, data: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        let ex = Exec {
            root: data,
            source: &self.source,
        };
        ex.nodes(&self.nodes, &Some(data.clone()), &mut out)?;
        Ok(out)
    }
}

/// `line` (1-based) of byte offset `pos`, Go's parse error prefix.
fn line_of(src: &str, pos: usize) -> usize {
    src[..pos.min(src.len())].matches('\n').count() + 1
}

/// `line:col` of byte offset `pos`, Go's execution error prefix (col is 0-based bytes).
fn line_col(src: &str, pos: usize) -> String {
    let before = &src[..pos.min(src.len())];
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1);
    format!("{}:{col}", line_of(src, pos))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn render(t: &str, data: &Value) -> String {
        Template::parse(t)
            .unwrap_or_else(|e| panic!("parse {t:?}: {e}"))
            .render(data)
            .unwrap_or_else(|e| panic!("render {t:?}: {e}"))
    }

    fn version_data() -> Value {
        json!({
            "Client": {"Version": "0.1.0", "ApiVersion": "1.50", "Context": "default"},
            "Server": {
                "Version": "20.10.24", "ApiVersion": "1.41", "MinAPIVersion": "1.12",
                "Platform": {"Name": ""},
                "Components": [
                    {"Name": "Engine", "Version": "20.10.24", "Details": {"ApiVersion": "1.41"}},
                    {"Name": "runc", "Version": "1.1.5", "Details": {"GitCommit": "abc"}}
                ],
                "Experimental": false,
                "Labels": {"b": "2", "a": "1"},
                "Warnings": null,
                "List": ["x", "y"],
                "Num": 25276510208u64
            }
        })
    }

    #[test]
    fn bad_templates_are_parse_errors() {
        for t in [
            "{{",
            "{{.Foo",
            "{{nosuchfunc .}}",
            "{{if .A}}x",
            "{{end}}",
            "{{else}}",
            "{{.A \"x\"}}",
            "{{\"unterminated}}",
            "{{(json .}}",
            "{{json .)}}",
            "{{|json}}",
            "{{.A.}}",
            "{{$x := 1}}",
            "{{define \"x\"}}{{end}}",
            "{{/* unclosed }}",
            "{{if .A}}{{else}}{{else}}{{end}}",
        ] {
            match Template::parse(t) {
                Err(TemplateError::Parse(_)) => {}
                other => panic!("{t:?}: expected a parse error, got {other:?}"),
            }
        }
    }

    #[test]
    fn parse_error_message_reads_like_docker() {
        let e = Template::parse("{{nosuch .}}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "template parsing error: template: :1: function \"nosuch\" not defined"
        );
    }

    #[test]
    fn literal_text_passes_through() {
        assert_eq!(render("hello } { world", &json!({})), "hello } { world");
        assert_eq!(render("", &json!({})), "");
    }

    #[test]
    fn fields_and_nested_fields() {
        let d = version_data();
        assert_eq!(render("{{.Server.ApiVersion}}", &d), "1.41");
        assert_eq!(
            render("v{{.Client.Version}}/{{.Server.MinAPIVersion}}", &d),
            "v0.1.0/1.12"
        );
        assert_eq!(render("{{ .Server.Version }}", &d), "20.10.24");
    }

    #[test]
    fn go_field_names_match_json_keys_ignoring_case() {
        let d = version_data();
        assert_eq!(render("{{.Server.APIVersion}}", &d), "1.41");
        assert_eq!(render("{{.server.apiversion}}", &d), "1.41");
    }

    #[test]
    fn exact_key_wins_over_case_insensitive_match() {
        let d = json!({"id": "lower", "ID": "upper"});
        assert_eq!(render("{{.ID}}", &d), "upper");
        assert_eq!(render("{{.id}}", &d), "lower");
    }

    #[test]
    fn missing_field_prints_no_value() {
        let d = version_data();
        assert_eq!(render("{{.Server.Nope}}", &d), "<no value>");
        assert_eq!(render("{{.Nope.Deeper}}", &d), "<no value>");
        assert_eq!(render("{{json .Nope}}", &d), "null");
    }

    #[test]
    fn field_of_null_or_scalar_is_an_exec_error() {
        let d = json!({"P": null, "S": "x"});
        let e = Template::parse("{{.P.Name}}")
            .unwrap()
            .render(&d)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "template: :1:2: executing \"\" at <.P.Name>: nil pointer evaluating .P.Name"
        );
        let e = Template::parse("ab\n{{.S.Name}}")
            .unwrap()
            .render(&d)
            .unwrap_err();
        assert!(matches!(e, TemplateError::Exec(_)));
        assert!(e.to_string().starts_with("template: :2:2: "), "{e}");
    }

    #[test]
    fn json_function() {
        let d = version_data();
        assert_eq!(
            render("{{json .Client}}", &d),
            r#"{"ApiVersion":"1.50","Context":"default","Version":"0.1.0"}"#
        );
        assert_eq!(render("{{json .Server.Warnings}}", &d), "null");
        assert_eq!(render("{{json .Server.List}}", &d), r#"["x","y"]"#);
        assert_eq!(render("{{json \"<&>\"}}", &d), r#""<&>""#);
        let whole = render("{{json .}}", &d);
        assert_eq!(serde_json::from_str::<Value>(&whole).unwrap(), d);
        assert_eq!(render("{{. | json}}", &json!(1)), "1");
    }

    #[test]
    fn json_format_key() {
        let t = Template::parse_format_flag("json").unwrap();
        assert_eq!(t.render(&json!({"a": 1})).unwrap(), r#"{"a":1}"#);
        let t = Template::parse_format_flag("json ").unwrap();
        assert_eq!(t.render(&json!({"a": 1})).unwrap(), "json ");
    }

    #[test]
    fn values_print_like_go() {
        let d = version_data();
        assert_eq!(render("{{.Server.Experimental}}", &d), "false");
        assert_eq!(render("{{.Server.Num}}", &d), "25276510208");
        assert_eq!(render("{{.Server.List}}", &d), "[x y]");
        assert_eq!(render("{{.Server.Labels}}", &d), "map[a:1 b:2]");
        assert_eq!(render("{{.Server.Warnings}}", &d), "<nil>");
        assert_eq!(render("{{.Server.Platform}}", &d), "map[Name:]");
        assert_eq!(render("{{.}}", &json!("plain")), "plain");
        assert_eq!(render("{{$}}", &json!(7)), "7");
    }

    #[test]
    fn trim_markers() {
        let d = json!({"A": "a", "B": "b"});
        assert_eq!(render("x  {{- .A -}}  \n y", &d), "xay");
        assert_eq!(render("x {{.A}} y", &d), "x a y");
        // "{{-3}}" is the number -3, not a trim marker.
        assert_eq!(render("x {{-3}}", &d), "x -3");
        assert_eq!(render("{{.A}}\n{{- .B}}", &d), "ab");
    }

    #[test]
    fn comments_render_nothing() {
        assert_eq!(render("a{{/* note */}}b", &json!({})), "ab");
        assert_eq!(render("a {{- /* note */ -}} b", &json!({})), "ab");
    }

    #[test]
    fn braces_inside_strings_do_not_close_actions() {
        assert_eq!(render(r#"{{"}}"}}"#, &json!({})), "}}");
        assert_eq!(render("{{`a}}b`}}", &json!({})), "a}}b");
    }

    #[test]
    fn if_else_chains() {
        let t = "{{if .A}}A{{else if .B}}B{{else}}none{{end}}";
        assert_eq!(render(t, &json!({"A": true})), "A");
        assert_eq!(render(t, &json!({"A": false, "B": "x"})), "B");
        assert_eq!(render(t, &json!({"A": 0, "B": ""})), "none");
        assert_eq!(render(t, &json!({})), "none");
        let nested = "{{if .A}}{{if .B}}ab{{else}}a{{end}}{{end}}.";
        assert_eq!(render(nested, &json!({"A": 1, "B": []})), "a.");
        assert_eq!(render(nested, &json!({"A": 1, "B": [1]})), "ab.");
    }

    #[test]
    fn with_rebinds_dot() {
        let d = version_data();
        assert_eq!(
            render("{{with .Server}}{{.Version}}{{end}}", &d),
            "20.10.24"
        );
        assert_eq!(
            render("{{with .Nope}}x{{else}}{{.Client.Context}}{{end}}", &d),
            "default"
        );
        assert_eq!(
            render("{{with .Server}}{{$.Client.Version}}{{end}}", &d),
            "0.1.0"
        );
    }

    #[test]
    fn range_over_arrays_and_maps() {
        let d = version_data();
        assert_eq!(
            render(
                "{{range .Server.Components}}{{.Name}}={{.Version}};{{end}}",
                &d
            ),
            "Engine=20.10.24;runc=1.1.5;"
        );
        assert_eq!(render("{{range .Server.Labels}}{{.}}{{end}}", &d), "12");
        assert_eq!(
            render("{{range .Server.Warnings}}x{{else}}empty{{end}}", &d),
            "empty"
        );
        let e = Template::parse("{{range .Server.Version}}{{end}}")
            .unwrap()
            .render(&d);
        assert!(matches!(e, Err(TemplateError::Exec(_))));
    }

    #[test]
    fn functions() {
        let d = version_data();
        assert_eq!(render("{{index .Server.Labels \"a\"}}", &d), "1");
        assert_eq!(render("{{index .Server.List 1}}", &d), "y");
        assert_eq!(
            render(
                "{{index .Server.Components 0 \"Details\" \"ApiVersion\"}}",
                &d
            ),
            "1.41"
        );
        assert_eq!(render("{{join .Server.List \", \"}}", &d), "x, y");
        assert_eq!(render("{{.Client.Context | upper}}", &d), "DEFAULT");
        assert_eq!(render("{{lower \"AbC\"}}", &d), "abc");
        assert_eq!(
            render("{{title \"hello big world\"}}", &d),
            "Hello Big World"
        );
        assert_eq!(render("{{len .Server.List}}", &d), "2");
        assert_eq!(render("{{split \"a:b\" \":\"}}", &d), "[a b]");
        assert_eq!(render("{{join (split \"a:b\" \":\") \"-\"}}", &d), "a-b");
        assert_eq!(render("{{eq .Server.ApiVersion \"1.41\"}}", &d), "true");
        assert_eq!(
            render("{{eq .Server.ApiVersion \"1.0\" \"1.41\"}}", &d),
            "true"
        );
        assert_eq!(render("{{ne .Server.ApiVersion \"1.41\"}}", &d), "false");
        assert_eq!(
            render("{{eq 1 1}} {{not .Server.Experimental}}", &d),
            "true true"
        );
        assert_eq!(render("{{and 1 0}} {{or 0 \"x\"}}", &d), "0 x");
        assert_eq!(
            render("{{if eq .Server.ApiVersion \"1.41\"}}old{{end}}", &d),
            "old"
        );
    }

    #[test]
    fn function_errors_are_exec_errors() {
        let d = version_data();
        for t in [
            "{{json}}",
            "{{index .Server.List 5}}",
            "{{index .Server.Version \"x\"}}",
            "{{join .Server.Version \",\"}}",
            "{{eq 1}}",
            "{{.Server.Version | .Client}}",
        ] {
            match Template::parse(t).map(|t| t.render(&d)) {
                Ok(Err(TemplateError::Exec(_))) => {}
                other => panic!("{t:?}: expected an exec error, got {other:?}"),
            }
        }
    }
}
