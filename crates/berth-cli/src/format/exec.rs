//! Evaluation of a parsed template on JSON data: actions, `if`/`with`/`range`, pipelines,
//! field lookup (exact key, then ignoring ASCII case; a missing key is Go's `<no value>`),
//! truthiness and printing values as Go prints them (`map[k:v]`, `<nil>`).

use std::fmt;

use serde_json::Value;

use super::functions::call;
use super::value::{print_value, truthy, type_name, Val};
use super::{line_col, Arg, Node, Pipeline, TemplateError};

pub(super) struct Exec<'a> {
    pub(super) root: &'a Value,
    pub(super) source: &'a str,
}

impl Exec<'_> {
    fn err(&self, pipe: &Pipeline, pos: usize, msg: impl fmt::Display) -> TemplateError {
        TemplateError::Exec(format!(
            "{}: executing \"\" at <{}>: {msg}",
            line_col(self.source, pos),
            pipe.text
        ))
    }

    pub(super) fn nodes(
        &self,
        nodes: &[Node],
        dot: &Val,
        out: &mut String,
    ) -> Result<(), TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => out.push_str(t),
                Node::Action(p) => out.push_str(&print_value(&self.pipeline(p, dot)?)),
                Node::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    if truthy(&self.pipeline(cond, dot)?) {
                        self.nodes(then, dot, out)?;
                    } else {
                        self.nodes(otherwise, dot, out)?;
                    }
                }
                Node::With {
                    value,
                    then,
                    otherwise,
                } => {
                    let v = self.pipeline(value, dot)?;
                    if truthy(&v) {
                        self.nodes(then, &v, out)?;
                    } else {
                        self.nodes(otherwise, dot, out)?;
                    }
                }
                Node::Range {
                    over,
                    body,
                    otherwise,
                } => {
                    let items: Vec<Value> = match self.pipeline(over, dot)? {
                        None | Some(Value::Null) => Vec::new(),
                        Some(Value::Array(a)) => a,
                        Some(Value::Object(m)) => m.into_iter().map(|(_, v)| v).collect(),
                        Some(other) => {
                            return Err(self.err(
                                over,
                                over.pos,
                                format!("range can't iterate over {}", print_value(&Some(other))),
                            ))
                        }
                    };
                    if items.is_empty() {
                        self.nodes(otherwise, dot, out)?;
                    }
                    for item in items {
                        self.nodes(body, &Some(item), out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn pipeline(&self, pipe: &Pipeline, dot: &Val) -> Result<Val, TemplateError> {
        let mut piped: Option<Val> = None;
        for cmd in &pipe.cmds {
            piped = Some(self.command(pipe, cmd, dot, piped)?);
        }
        Ok(piped.flatten())
    }

    fn command(
        &self,
        pipe: &Pipeline,
        cmd: &[Arg],
        dot: &Val,
        piped: Option<Val>,
    ) -> Result<Val, TemplateError> {
        match &cmd[0] {
            Arg::Func(name, pos) => {
                let mut args = Vec::with_capacity(cmd.len());
                for a in &cmd[1..] {
                    args.push(self.arg(pipe, a, dot)?);
                }
                if let Some(p) = piped {
                    args.push(p);
                }
                call(name, &args)
                    .map_err(|m| self.err(pipe, *pos, format!("error calling {name}: {m}")))
            }
            single => {
                if piped.is_some() {
                    return Err(self.err(pipe, pipe.pos, "can't give argument to non-function"));
                }
                self.arg(pipe, single, dot)
            }
        }
    }

    fn arg(&self, pipe: &Pipeline, arg: &Arg, dot: &Val) -> Result<Val, TemplateError> {
        match arg {
            Arg::Dot { path, pos } => self.walk(pipe, dot.clone(), path, *pos),
            Arg::Root { path, pos } => self.walk(pipe, Some(self.root.clone()), path, *pos),
            Arg::Str(s) => Ok(Some(Value::String(s.clone()))),
            Arg::Int(n) => Ok(Some(Value::from(*n))),
            Arg::Bool(b) => Ok(Some(Value::Bool(*b))),
            Arg::Nil => Ok(Some(Value::Null)),
            Arg::Sub(p) => self.pipeline(p, dot),
            Arg::Func(name, pos) => call(name, &[])
                .map_err(|m| self.err(pipe, *pos, format!("error calling {name}: {m}"))),
        }
    }

    fn walk(
        &self,
        pipe: &Pipeline,
        start: Val,
        path: &[String],
        pos: usize,
    ) -> Result<Val, TemplateError> {
        let mut cur = start;
        for (i, name) in path.iter().enumerate() {
            cur = match cur {
                None => None,
                Some(Value::Object(m)) => lookup(&m, name).cloned(),
                Some(Value::Null) => {
                    return Err(self.err(
                        pipe,
                        pos,
                        format!("nil pointer evaluating .{}", path[..=i].join(".")),
                    ))
                }
                Some(other) => {
                    return Err(self.err(
                        pipe,
                        pos,
                        format!("can't evaluate field {name} in type {}", type_name(&other)),
                    ))
                }
            };
        }
        Ok(cur)
    }
}

/// Looks `name` up in `m`: exact key first, then ignoring ASCII case.
fn lookup<'m>(m: &'m serde_json::Map<String, Value>, name: &str) -> Option<&'m Value> {
    m.get(name).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}
