//! The content of a container's `/etc/hosts` and `/etc/resolv.conf`, as Docker writes
//! them (moby `libnetwork/etcchecks`, `resolvconf`).

use std::net::IpAddr;

const HOSTS_HEAD: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";

/// `/etc/hosts`: the standard head, `--add-host` entries (`name:ip`), then the
/// container's own addresses (none for `--network none`; IPv4, then IPv6 on a network
/// with `EnableIPv6`).
pub fn hosts(
    hostname: &str,
    domainname: &str,
    ips: impl IntoIterator<Item = IpAddr>,
    extra: &[String],
) -> String {
    let mut s = HOSTS_HEAD.to_string();
    for e in extra {
        if let Some((name, addr)) = e.split_once(':').or_else(|| e.split_once('=')) {
            s += &format!("{addr}\t{name}\n");
        }
    }
    for ip in ips {
        if domainname.is_empty() {
            s += &format!("{ip}\t{hostname}\n");
        } else {
            s += &format!("{ip}\t{hostname}.{domainname} {hostname}\n");
        }
    }
    s
}

/// `hosts` without the entries named `names` (`alias hostname name`, whitespace as it
/// comes): a removed legacy link's lines.
pub fn without_entry(hosts: &str, names: &str) -> String {
    let want: Vec<&str> = names.split_whitespace().collect();
    hosts
        .split_inclusive('\n')
        .filter(|l| l.split_whitespace().skip(1).ne(want.iter().copied()))
        .collect()
}

/// DNS settings a container asked for (`--dns`, `--dns-search`, `--dns-option`).
#[derive(Debug, Clone, Default)]
pub struct DnsSettings {
    pub servers: Vec<String>,
    pub search: Vec<String>,
    pub options: Vec<String>,
}

fn is_loopback(addr: &str) -> bool {
    addr.starts_with("127.") || addr == "::1"
}

/// The host's upstream resolvers (loopback ones included: the daemon can reach them).
pub fn host_nameservers(host_resolv: &str) -> Vec<String> {
    host_resolv
        .lines()
        .filter_map(|l| {
            let mut t = l.split_whitespace();
            (t.next() == Some("nameserver")).then(|| t.next().map(String::from))?
        })
        .collect()
}

/// `/etc/resolv.conf`. `embedded`: the container uses the embedded DNS at 127.0.0.11
/// (user-defined networks), which forwards to the servers the container would have had.
pub fn resolv_conf(host_resolv: &str, dns: &DnsSettings, embedded: bool) -> String {
    let mut search: Vec<String> = Vec::new();
    let mut options: Vec<String> = Vec::new();
    let mut servers: Vec<String> = Vec::new();
    for l in host_resolv.lines() {
        let t: Vec<&str> = l.split_whitespace().collect();
        match t.first() {
            Some(&"nameserver") if t.len() > 1 && !is_loopback(t[1]) => servers.push(t[1].into()),
            Some(&"search") | Some(&"domain") => {
                search = t[1..].iter().map(|s| s.to_string()).collect()
            }
            Some(&"options") => options.extend(t[1..].iter().map(|s| s.to_string())),
            _ => {}
        }
    }
    if !dns.servers.is_empty() {
        servers = dns.servers.clone();
    }
    if !dns.search.is_empty() {
        search = dns
            .search
            .iter()
            .filter(|s| s.as_str() != ".")
            .cloned()
            .collect();
    }
    if !dns.options.is_empty() {
        options = dns.options.clone();
    }
    if embedded {
        servers = vec!["127.0.0.11".into()];
        if !options.iter().any(|o| o.starts_with("ndots:")) {
            options.push("ndots:0".into());
        }
    } else if servers.is_empty() {
        // moby resolvconf: the defaults when the host has only local resolvers.
        servers = vec!["8.8.8.8".into(), "8.8.4.4".into()];
    }
    let mut s = String::new();
    for n in servers {
        s += &format!("nameserver {n}\n");
    }
    if !search.is_empty() {
        s += &format!("search {}\n", search.join(" "));
    }
    if !options.is_empty() {
        s += &format!("options {}\n", options.join(" "));
    }
    s
}

/// The servers the embedded DNS forwards to for a container: its `--dns`, else the host's.
pub fn upstreams(host_resolv: &str, dns: &DnsSettings) -> Vec<String> {
    if dns.servers.is_empty() {
        host_nameservers(host_resolv)
    } else {
        dns.servers.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_link_leaves_the_other_entries() {
        let h = hosts(
            "web",
            "",
            ["10.0.0.3".parse().unwrap()],
            &[
                "store abc123 db:10.0.0.2".into(),
                "db abc123:10.0.0.2".into(),
                "store:192.0.2.1".into(),
            ],
        );
        let got = without_entry(&h, "store abc123 db");
        assert!(!got.contains("store abc123"), "{got}");
        for kept in [
            "10.0.0.2\tdb abc123\n",
            "192.0.2.1\tstore\n",
            "10.0.0.3\tweb\n",
        ] {
            assert!(got.contains(kept), "{kept:?} in {got}");
        }
        assert_eq!(got.lines().count(), h.lines().count() - 1);
    }

    #[test]
    fn resolv_filters_loopback_and_falls_back() {
        let host = "nameserver 127.0.0.53\nsearch corp\noptions edns0\n";
        assert_eq!(
            resolv_conf(host, &DnsSettings::default(), false),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch corp\noptions edns0\n"
        );
        let host = "nameserver 10.0.0.1\nnameserver 127.0.0.1\n";
        assert_eq!(
            resolv_conf(host, &DnsSettings::default(), false),
            "nameserver 10.0.0.1\n"
        );
        let dns = DnsSettings {
            servers: vec!["1.1.1.1".into()],
            search: vec!["a.b".into()],
            options: vec!["ndots:2".into()],
        };
        assert_eq!(
            resolv_conf(host, &dns, false),
            "nameserver 1.1.1.1\nsearch a.b\noptions ndots:2\n"
        );
        assert_eq!(
            resolv_conf(host, &DnsSettings::default(), true),
            "nameserver 127.0.0.11\noptions ndots:0\n"
        );
        assert_eq!(host_nameservers("nameserver 127.0.0.53\n"), ["127.0.0.53"]);
    }

    #[test]
    fn hosts_has_extra_then_own_address() {
        let h = hosts(
            "c1",
            "",
            ["10.0.0.2".parse().unwrap(), "fd00:1::2".parse().unwrap()],
            &["db:10.1.1.1".into()],
        );
        assert!(
            h.ends_with("10.1.1.1\tdb\n10.0.0.2\tc1\nfd00:1::2\tc1\n"),
            "{h}"
        );
        assert!(!hosts("c1", "", None, &[]).contains("c1"));
    }
}
