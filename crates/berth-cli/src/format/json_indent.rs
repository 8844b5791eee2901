//! Go's `json.Indent`, which docker's `inspect` output and `context inspect` print with.

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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
}
