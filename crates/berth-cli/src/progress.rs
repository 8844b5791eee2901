//! The JSON progress stream of pull, push, load and import (moby `pkg/jsonmessage`): its
//! messages, split from the body as they arrive ([`JsonLines`]), and drawn as docker draws
//! them ([`ProgressPrinter`]: per-layer lines rewritten in place on a terminal, plain lines
//! otherwise), with the terminal width the bars are sized to.

use std::collections::HashMap;
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::Value;

use crate::endpoint::process_env;
use crate::error::Error;
use crate::humanize::human_size;
use crate::timefmt::{go_duration, now_unix};
use crate::write_out;

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

/// A line of `POST /images/create` (pull, import from a URL or stdin) as bollard decodes
/// it; its error fields are left out, bollard turns those into the stream's error.
impl From<bollard::models::CreateImageInfo> for JsonMessage {
    fn from(info: bollard::models::CreateImageInfo) -> Self {
        JsonMessage {
            status: info.status,
            id: info.id,
            progress_detail: info.progress_detail.map(JsonProgress::from),
            ..Default::default()
        }
    }
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

pub(crate) fn print_message(printer: &mut ProgressPrinter, jm: &JsonMessage) -> Result<(), Error> {
    let mut out = String::new();
    let result = printer.message(jm, &mut out);
    write_out(&out)?;
    result.map_err(Error::client)
}

/// The terminal's width for progress bars. berth forbids `unsafe`, so instead of the
/// TIOCGWINSZ ioctl docker uses we read `$COLUMNS`, then ask `stty size` on the
/// controlling terminal; 80 when neither answers (narrow enough that no bar wraps).
pub(crate) fn terminal_width(terminal: bool) -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

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
}
