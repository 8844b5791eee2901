//! The daemon.json reference in `docs/configuration.md`, generated from the code that
//! reads the file: every key of `config::KNOWN_KEYS` with the flag of the same meaning and
//! that flag's help text, so the page cannot drift from what berthd accepts (a unit test
//! compares the page with this rendering; `BERTH_BLESS=1 cargo test -p berthd` rewrites it).

use clap::CommandFactory;

use crate::config::KNOWN_KEYS;
use crate::flags::Flags;

/// Keys dockerd does not have (the rest are spelled and meant as dockerd's).
const BERTH_ONLY: &[&str] = &[
    "tlscrl",
    "audit-log",
    "audit-log-max-size",
    "audit-log-max-files",
    "authorization",
    "authorization-policy",
    "cri",
    "health-on-failure",
];

/// Keys without a flag, described here.
const FILE_ONLY: &[(&str, &str)] = &[
    (
        "live-restore",
        "Keep containers running while berthd is stopped or restarted, and adopt them at start (default true; false stops them at daemon shutdown, as dockerd's default)",
    ),
    (
        "default-address-pools",
        "Subnets that user networks are carved from: [{\"base\": \"10.10.0.0/16\", \"size\": 24}, ...]",
    ),
];

/// The generated part of the page.
pub fn config_table() -> String {
    let cmd = Flags::command();
    let mut out =
        String::from("| daemon.json key | flag | meaning | dockerd |\n| --- | --- | --- | --- |\n");
    for (key, flag) in KNOWN_KEYS {
        let (flag_text, help) =
            match flag.and_then(|id| cmd.get_arguments().find(|a| a.get_id() == id)) {
                Some(arg) => (
                    arg.get_long()
                        .map_or_else(String::new, |l| format!("`--{l}`")),
                    arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
                ),
                None => (
                    "(file only)".to_string(),
                    FILE_ONLY
                        .iter()
                        .find(|(k, _)| k == key)
                        .map(|(_, h)| h.to_string())
                        .unwrap_or_default(),
                ),
            };
        let dockerd = if BERTH_ONLY.contains(key) {
            "Berth only"
        } else {
            "same key"
        };
        let help = help.replace('|', "\\|").replace('\n', " ");
        out.push_str(&format!("| `{key}` | {flag_text} | {help} | {dockerd} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- begin generated: daemon.json keys -->\n";
    const END: &str = "<!-- end generated -->";

    #[test]
    fn every_key_is_described() {
        let table = config_table();
        for (key, _) in KNOWN_KEYS {
            let row = table
                .lines()
                .find(|l| l.starts_with(&format!("| `{key}` |")))
                .unwrap_or_else(|| panic!("{key} missing"));
            let cells: Vec<&str> = row.split(" | ").collect();
            assert!(
                cells.len() >= 4 && !cells[2].trim().is_empty(),
                "{key}: no meaning: {row}"
            );
        }
        for k in BERTH_ONLY.iter().chain(FILE_ONLY.iter().map(|(k, _)| k)) {
            assert!(
                KNOWN_KEYS.iter().any(|(known, _)| known == k),
                "{k} is not a key"
            );
        }
    }

    #[test]
    fn docs_configuration_page_is_current() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let page = std::fs::read_to_string(&path).unwrap();
        let start = page.find(BEGIN).expect("begin marker") + BEGIN.len();
        let end = page.find(END).expect("end marker");
        let table = config_table();
        if page[start..end] != table {
            if std::env::var_os("BERTH_BLESS").is_some() {
                let updated = format!("{}{table}{}", &page[..start], &page[end..]);
                std::fs::write(&path, updated).unwrap();
            } else {
                panic!(
                    "docs/configuration.md's key table differs from the code: run `BERTH_BLESS=1 cargo test -p berthd docs_configuration` and commit the page"
                );
            }
        }
    }
}
