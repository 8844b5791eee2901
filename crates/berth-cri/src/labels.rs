//! How CRI objects live in the engine's container store: the labels that tag a container
//! as a pod sandbox or a pod's container and carry the CRI metadata, the CRI labels and
//! annotations packed beside them under prefixes (so they round-trip exactly and never
//! collide with ours), the container names, and the time and filter helpers both kinds
//! share.

use std::collections::HashMap;

use serde_json::{Map, Value};
use tonic::Status;

/// `sandbox` or `container`: what a CRI object is (absent on Docker-API containers).
pub(crate) const TYPE: &str = "io.kubernetes.cri.type";
pub(crate) const TYPE_SANDBOX: &str = "sandbox";
pub(crate) const TYPE_CONTAINER: &str = "container";
/// The pod's metadata, on the sandbox and on each of its containers.
pub(crate) const POD_NAME: &str = "io.kubernetes.pod.name";
pub(crate) const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub(crate) const POD_UID: &str = "io.kubernetes.pod.uid";
/// The sandbox's attempt (on the sandbox) or the container's (on a container).
pub(crate) const ATTEMPT: &str = "io.berth.cri.attempt";
/// A container's sandbox ID.
pub(crate) const SANDBOX_ID: &str = "io.kubernetes.sandbox.id";
/// A container's CRI name.
pub(crate) const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// The image as the CreateContainer request named it.
pub(crate) const IMAGE: &str = "io.berth.cri.image";
/// The sandbox's `log_directory`; a container's full log path.
pub(crate) const LOG_DIRECTORY: &str = "io.berth.cri.log-directory";
pub(crate) const LOG_PATH: &str = "io.berth.cri.log-path";
/// The sandbox's runtime handler, answered back as given.
pub(crate) const RUNTIME_HANDLER: &str = "io.berth.cri.runtime-handler";
/// Prefixes of the CRI object's own labels and annotations.
pub(crate) const LABEL_PREFIX: &str = "io.berth.cri.label.";
pub(crate) const ANNOTATION_PREFIX: &str = "io.berth.cri.annotation.";

/// The Docker labels for a CRI object: `ours`, then `labels` and `annotations` under
/// their prefixes.
pub(crate) fn pack(
    ours: &[(&str, String)],
    labels: &HashMap<String, String>,
    annotations: &HashMap<String, String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in labels {
        out.insert(format!("{LABEL_PREFIX}{k}"), Value::String(v.clone()));
    }
    for (k, v) in annotations {
        out.insert(format!("{ANNOTATION_PREFIX}{k}"), Value::String(v.clone()));
    }
    for (k, v) in ours {
        out.insert((*k).to_string(), Value::String(v.clone()));
    }
    out
}

/// A container's Docker labels (`Labels` of a summary, `Config.Labels` of an inspect).
#[derive(Debug, Default, Clone)]
pub(crate) struct Labels(pub(crate) HashMap<String, String>);

impl Labels {
    pub(crate) fn of(labels: Option<&Value>) -> Labels {
        Labels(
            labels
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default(),
        )
    }

    pub(crate) fn get(&self, key: &str) -> &str {
        self.0.get(key).map_or("", String::as_str)
    }

    pub(crate) fn attempt(&self) -> u32 {
        self.get(ATTEMPT).parse().unwrap_or(0)
    }

    pub(crate) fn is(&self, kind: &str) -> bool {
        self.get(TYPE) == kind
    }

    fn with_prefix(&self, prefix: &str) -> HashMap<String, String> {
        self.0
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix(prefix)?.to_string(), v.clone())))
            .collect()
    }

    /// The CRI object's own labels.
    pub(crate) fn cri_labels(&self) -> HashMap<String, String> {
        self.with_prefix(LABEL_PREFIX)
    }

    /// The CRI object's annotations.
    pub(crate) fn annotations(&self) -> HashMap<String, String> {
        self.with_prefix(ANNOTATION_PREFIX)
    }

    /// Whether the CRI labels hold every pair of a filter's `label_selector`.
    pub(crate) fn selected(&self, selector: &HashMap<String, String>) -> bool {
        let own = self.cri_labels();
        selector.iter().all(|(k, v)| own.get(k) == Some(v))
    }
}

/// A metadata field that must be there.
pub(crate) fn required<'a>(value: &'a str, what: &str) -> Result<&'a str, Status> {
    if value.is_empty() {
        return Err(Status::invalid_argument(format!(
            "{what} must not be empty"
        )));
    }
    Ok(value)
}

/// Whether `id` names `full` as the CRI filters do (an ID or a prefix of it).
pub(crate) fn id_matches(filter: &str, full: &str) -> bool {
    filter.is_empty() || full.starts_with(filter)
}

/// Nanoseconds since the epoch of an RFC 3339 time; 0 for none (Docker's zero time,
/// `0001-01-01T00:00:00Z`, is before the epoch and reads 0 too).
pub(crate) fn unix_nanos(rfc3339: Option<&Value>) -> i64 {
    rfc3339
        .and_then(Value::as_str)
        .and_then(berth_api_types::timestamp::parse_rfc3339)
        .and_then(|t| i64::try_from(t.unix_timestamp_nanos()).ok())
        .filter(|n| *n > 0)
        .unwrap_or(0)
}

/// The container name part a CRI name may give: Docker names allow `[a-zA-Z0-9_.-]`.
pub(crate) fn name_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn labels_and_annotations_round_trip_beside_ours() {
        let labels: HashMap<String, String> = [("app".to_string(), "web".to_string())].into();
        let annotations: HashMap<String, String> =
            [("io.berth.cri.type".to_string(), "x".to_string())].into();
        let packed = pack(&[(TYPE, TYPE_SANDBOX.into())], &labels, &annotations);
        let back = Labels::of(Some(&Value::Object(packed)));
        assert!(back.is(TYPE_SANDBOX));
        assert_eq!(back.cri_labels(), labels);
        assert_eq!(back.annotations(), annotations);
        assert!(back.selected(&labels));
        assert!(back.selected(&HashMap::new()));
        assert!(!back.selected(&[("app".to_string(), "db".to_string())].into()));
        // Our own labels are not the object's.
        assert!(!back.selected(&[(TYPE.to_string(), TYPE_SANDBOX.to_string())].into()));
    }

    #[test]
    fn times_and_names() {
        assert_eq!(
            unix_nanos(Some(&json!("1970-01-01T00:00:01.5Z"))),
            1_500_000_000
        );
        assert_eq!(unix_nanos(Some(&json!("0001-01-01T00:00:00Z"))), 0);
        assert_eq!(unix_nanos(Some(&json!("junk"))), 0);
        assert_eq!(unix_nanos(None), 0);
        assert_eq!(name_part("a_b/c.d-e"), "a-b-c.d-e");
        assert!(id_matches("", "abc") && id_matches("ab", "abc") && !id_matches("b", "abc"));
        assert!(required("", "metadata.name").is_err());
    }
}
