//! Stage lookup and `--target` (moby `daemon/builder/dockerfile/builder.go`,
//! `evaluator.go` `stagesBuildResults`): stage names are case-insensitive and unique, a
//! `COPY --from`/`FROM` reference is a stage name, a stage index, or an image; the classic
//! builder runs every stage up to the target, and [`needed_stages`] says which of them the
//! target actually depends on.

use std::collections::BTreeSet;

use crate::instructions::{Dockerfile, Instruction, Stage};
use crate::Error;

/// What a `FROM` base or `COPY --from` value designates, from a stage's point of view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageRef {
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference.
    Image(String),
}

/// The stages up to and including `target` (all when `None`), as dockerd's classic
/// builder runs them; `target "x" could not be found` otherwise. Duplicate stage names
/// are refused first (`x stage name already used`).
pub fn select_target<'a>(df: &'a Dockerfile, target: Option<&str>) -> Result<&'a [Stage], Error> {
    check_names(&df.stages)?;
    let Some(t) = target.filter(|t| !t.is_empty()) else {
        return Ok(&df.stages);
    };
    let lower = t.to_ascii_lowercase();
    match df.stages.iter().position(|s| s.name == lower) {
        Some(i) => Ok(df.stages.get(..=i).unwrap_or(&df.stages)),
        None => Err(Error::Invalid(format!(
            "target stage {} could not be found",
            crate::error::go_quote(t)
        ))),
    }
}

/// moby `checkStageNameAvailable`.
pub fn check_names(stages: &[Stage]) -> Result<(), Error> {
    let mut seen = BTreeSet::new();
    for s in stages {
        if !s.name.is_empty() && !seen.insert(s.name.as_str()) {
            return Err(Error::Invalid(format!(
                "{} stage name already used",
                s.name
            )));
        }
    }
    Ok(())
}

/// Resolves a `COPY --from` value (already as written; the classic builder does not expand
/// it) or a `FROM` base name (expanded) seen from stage `current`: an earlier stage's name,
/// an index, or an image (moby `stagesBuildResults.get`).
pub fn resolve(stages: &[Stage], current: usize, name_or_index: &str) -> Result<StageRef, Error> {
    let lower = name_or_index.to_ascii_lowercase();
    if let Some(i) = stages
        .iter()
        .take(current)
        .position(|s| !s.name.is_empty() && s.name == lower)
    {
        return Ok(StageRef::Stage(i));
    }
    match name_or_index.parse::<i64>() {
        Ok(ix) if ix == current as i64 => {
            Err(Error::Invalid("refers to current build stage".into()))
        }
        Ok(ix) if ix < 0 || ix > current as i64 => {
            Err(Error::Invalid("index out of bounds".into()))
        }
        Ok(ix) => Ok(StageRef::Stage(ix as usize)),
        Err(_) => Ok(StageRef::Image(name_or_index.to_string())),
    }
}

/// The stages `target` depends on through `FROM <stage>` and `COPY --from=<stage|index>`,
/// itself included, in order. `base_names` are the stages' `FROM` values after meta-arg
/// expansion (the caller expands them).
pub fn needed_stages(stages: &[Stage], base_names: &[String], target: usize) -> BTreeSet<usize> {
    let mut needed = BTreeSet::new();
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        let Some(stage) = stages.get(i) else { continue };
        if !needed.insert(i) {
            continue;
        }
        let base = base_names
            .get(i)
            .map(String::as_str)
            .unwrap_or(&stage.base_name);
        let mut refs = vec![base.to_string()];
        for c in &stage.commands {
            if let Instruction::Copy(c) = &c.instruction {
                if !c.from.is_empty() {
                    refs.push(c.from.clone());
                }
            }
        }
        for r in refs {
            if let Ok(StageRef::Stage(j)) = resolve(stages, i, &r) {
                todo.push(j);
            }
        }
    }
    needed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_dockerfile;

    const MULTI: &str = "FROM busybox AS base\nRUN a\nFROM busybox AS other\nRUN b\nFROM base AS Final\nCOPY --from=0 /a /a\nFROM scratch\nCOPY --from=other /b /b\n";

    #[test]
    fn target_selects_a_prefix() {
        let df = parse_dockerfile(MULTI.as_bytes()).unwrap();
        assert_eq!(select_target(&df, None).unwrap().len(), 4);
        assert_eq!(select_target(&df, Some("FINAL")).unwrap().len(), 3);
        assert_eq!(
            select_target(&df, Some("nope")).unwrap_err().to_string(),
            "target stage \"nope\" could not be found"
        );
    }

    #[test]
    fn dependencies() {
        let df = parse_dockerfile(MULTI.as_bytes()).unwrap();
        let bases: Vec<String> = df.stages.iter().map(|s| s.base_name.clone()).collect();
        assert_eq!(needed_stages(&df.stages, &bases, 2), BTreeSet::from([0, 2]));
        assert_eq!(needed_stages(&df.stages, &bases, 3), BTreeSet::from([1, 3]));
    }

    #[test]
    fn duplicate_names() {
        let df = parse_dockerfile(b"FROM a AS x\nFROM b AS X\n").unwrap();
        assert_eq!(
            select_target(&df, None).unwrap_err().to_string(),
            "x stage name already used"
        );
    }

    #[test]
    fn references() {
        let df = parse_dockerfile(MULTI.as_bytes()).unwrap();
        let s = &df.stages;
        assert_eq!(resolve(s, 2, "base").unwrap(), StageRef::Stage(0));
        assert_eq!(resolve(s, 2, "0").unwrap(), StageRef::Stage(0));
        assert_eq!(
            resolve(s, 2, "2").unwrap_err().to_string(),
            "refers to current build stage"
        );
        assert_eq!(
            resolve(s, 2, "3").unwrap_err().to_string(),
            "index out of bounds"
        );
        assert_eq!(
            resolve(s, 2, "-1").unwrap_err().to_string(),
            "index out of bounds"
        );
        // A later stage's name is an image reference.
        assert_eq!(
            resolve(s, 0, "other").unwrap(),
            StageRef::Image("other".into())
        );
        assert_eq!(
            resolve(s, 2, "busybox").unwrap(),
            StageRef::Image("busybox".into())
        );
    }
}
