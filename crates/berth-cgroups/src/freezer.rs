//! Freezing state of a cgroup by its files (v2 `cgroup.freeze`, v1 `freezer.state`): what
//! berthd checks at start to thaw a container an earlier run left frozen. Freezing itself
//! is the runtime's (libcontainer's freezer, through the shim).

use crate::Dirs;

impl Dirs {
    /// Whether the cgroup is frozen or freezing.
    pub fn frozen(&self) -> bool {
        let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
        match self {
            Dirs::V2(d) => read(&d.join("cgroup.freeze")).trim() == "1",
            Dirs::V1(m) => m.get("freezer").is_some_and(|d| {
                matches!(read(&d.join("freezer.state")).trim(), "FROZEN" | "FREEZING")
            }),
        }
    }

    /// Thaws the cgroup by its files: what the runtime does, for when its shim cannot.
    pub fn thaw(&self) -> std::io::Result<()> {
        match self {
            Dirs::V2(d) => std::fs::write(d.join("cgroup.freeze"), "0"),
            Dirs::V1(m) => match m.get("freezer") {
                Some(d) => std::fs::write(d.join("freezer.state"), "THAWED"),
                None => Ok(()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn frozen_and_thawed_by_files() {
        let tmp = tempfile::tempdir().unwrap();
        let v2 = Dirs::V2(tmp.path().to_path_buf());
        assert!(!v2.frozen());
        std::fs::write(tmp.path().join("cgroup.freeze"), "1\n").unwrap();
        assert!(v2.frozen());
        v2.thaw().unwrap();
        assert!(!v2.frozen());
        let v1 = Dirs::V1(HashMap::from([(
            "freezer".to_string(),
            tmp.path().to_path_buf(),
        )]));
        std::fs::write(tmp.path().join("freezer.state"), "FROZEN\n").unwrap();
        assert!(v1.frozen());
        std::fs::write(tmp.path().join("freezer.state"), "FREEZING\n").unwrap();
        assert!(v1.frozen());
        v1.thaw().unwrap();
        assert!(!v1.frozen());
        assert!(!Dirs::V1(HashMap::new()).frozen());
    }
}
