//! Test fixtures (feature `fixtures`, and this crate's own tests): the network records
//! the unit tests here and in the engine start from.

use std::collections::BTreeMap;

use crate::manager::{NetRecord, DEFAULT};

/// Two bridge networks: the default one (`aaa111`, 10.0.0.0/24) and "user" (`bbb222`,
/// 10.0.1.0/24, its subnet given by the client).
pub fn two_bridges() -> BTreeMap<String, NetRecord> {
    let mut nets = BTreeMap::new();
    for (id, name, subnet) in [
        ("aaa111", DEFAULT, "10.0.0.0/24"),
        ("bbb222", "user", "10.0.1.0/24"),
    ] {
        let subnet = subnet.parse().expect("a fixed subnet");
        nets.insert(
            id.to_string(),
            NetRecord {
                id: id.into(),
                name: name.into(),
                driver: "bridge".into(),
                subnet: Some(subnet),
                bridge: format!("br-{id}"),
                mtu: 1500,
                user_ipam: name != DEFAULT,
                ..Default::default()
            },
        );
    }
    nets
}
