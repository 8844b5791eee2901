//! iptables rules in chains this daemon owns: `BERTH-FWD-<tag>` and `BERTH-ISO-<tag>` in
//! `filter` (forwarding, isolation between bridges, internal networks) and
//! `BERTH-POST-<tag>` in `nat` (outbound MASQUERADE). `<tag>` is the daemon's default
//! bridge name, so two daemons on one host never share a chain.
//!
//! The chains are rewritten whole from the list of networks with `iptables-restore
//! --noflush` (only the chains named are flushed), and one jump into each is kept at the
//! top of `FORWARD` / `POSTROUTING`. Nothing else is touched. Networks with IPv6 get the
//! same chains and rules in ip6tables (their IPv6 subnets masqueraded); those chains exist
//! only while such a network does.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::cmd::run;
use crate::{Ipv4Net, Ipv6Net, NetError};

/// One bridge network as the firewall sees it.
#[derive(Debug, Clone)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// With `EnableIPv6`: the IPv6 subnet (the same rules then go into ip6tables).
    pub subnet6: Option<Ipv6Net>,
    pub internal: bool,
    /// `com.docker.network.bridge.enable_ip_masquerade`: outbound traffic is NATed.
    pub masquerade: bool,
    /// `com.docker.network.bridge.enable_icc`: containers of the network reach each other.
    pub icc: bool,
    /// Without icc: the legacy links whose exposed ports stay open (IPv4 only).
    pub links: Vec<LinkRule>,
}

/// One exposed port of a linked container, open to the container that links to it (and
/// its answers back), as dockerd's `ProgramExternalConnectivity` for links does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRule {
    pub parent: std::net::Ipv4Addr,
    pub child: std::net::Ipv4Addr,
    pub port: u16,
    pub proto: String,
}

#[derive(Debug, Clone)]
pub struct Firewall {
    tag: String,
    enabled: bool,
}

impl Firewall {
    /// `enabled: false` is `--iptables=false`: every call does nothing.
    pub fn new(tag: &str, enabled: bool) -> Self {
        Self {
            tag: tag.to_string(),
            enabled,
        }
    }

    fn fwd(&self) -> String {
        format!("BERTH-FWD-{}", self.tag)
    }
    fn iso(&self) -> String {
        format!("BERTH-ISO-{}", self.tag)
    }
    fn post(&self) -> String {
        format!("BERTH-POST-{}", self.tag)
    }

    /// The `iptables-restore` input that makes our chains say exactly this.
    pub fn render(&self, nets: &[BridgeRules]) -> String {
        let subnets: Vec<(&BridgeRules, String)> =
            nets.iter().map(|n| (n, n.subnet.to_string())).collect();
        self.render_family(&subnets, true)
    }

    /// The `ip6tables-restore` input: the same rules for the networks with IPv6, the
    /// IPv6 subnets masqueraded.
    pub fn render6(&self, nets: &[BridgeRules]) -> String {
        let subnets: Vec<(&BridgeRules, String)> = nets
            .iter()
            .filter_map(|n| Some((n, n.subnet6?.to_string())))
            .collect();
        self.render_family(&subnets, false)
    }

    fn render_family(&self, nets: &[(&BridgeRules, String)], links: bool) -> String {
        let (fwd, iso, post) = (self.fwd(), self.iso(), self.post());
        let mut s = format!("*filter\n:{fwd} - [0:0]\n:{iso} - [0:0]\n");
        for (n, _) in nets {
            let b = &n.bridge;
            s += &format!("-A {fwd} -i {b} ! -o {b} -j {iso}\n");
            s += &format!("-A {iso} -o {b} -j DROP\n");
        }
        for (n, _) in nets {
            let b = &n.bridge;
            let icc = if n.icc { "ACCEPT" } else { "DROP" };
            for l in n.links.iter().filter(|_| links && !n.icc) {
                let (p, c, port, proto) = (l.parent, l.child, l.port, &l.proto);
                s += &format!(
                    "-A {fwd} -i {b} -o {b} -s {p} -d {c} -p {proto} --dport {port} -j ACCEPT\n"
                );
                s += &format!(
                    "-A {fwd} -i {b} -o {b} -s {c} -d {p} -p {proto} --sport {port} -j ACCEPT\n"
                );
            }
            s += &format!("-A {fwd} -i {b} -o {b} -j {icc}\n");
            if n.internal {
                s += &format!("-A {fwd} -i {b} ! -o {b} -j DROP\n");
                s += &format!("-A {fwd} -o {b} ! -i {b} -j DROP\n");
            } else {
                s += &format!(
                    "-A {fwd} -o {b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                );
                s += &format!("-A {fwd} -i {b} ! -o {b} -j ACCEPT\n");
                s += &format!("-A {fwd} -o {b} -j DROP\n");
            }
        }
        s += "COMMIT\n*nat\n";
        s += &format!(":{post} - [0:0]\n");
        for (n, subnet) in nets.iter().filter(|(n, _)| !n.internal && n.masquerade) {
            s += &format!("-A {post} -s {subnet} ! -o {} -j MASQUERADE\n", n.bridge);
        }
        s += "COMMIT\n";
        s
    }

    /// Rewrites our chains for `nets` and makes sure the jumps into them exist.
    pub fn sync(&self, nets: &[BridgeRules]) -> Result<(), NetError> {
        self.sync_family(Family::V4, &self.render(nets))
    }

    /// The same in ip6tables, for the networks with IPv6 (call it only when there are
    /// some: a host without ip6tables then never needs it).
    pub fn sync6(&self, nets: &[BridgeRules]) -> Result<(), NetError> {
        self.sync_family(Family::V6, &self.render6(nets))
    }

    fn sync_family(&self, f: Family, rules: &str) -> Result<(), NetError> {
        if !self.enabled {
            return Ok(());
        }
        restore(f, rules)?;
        for (table, chain, target) in [
            ("filter", "FORWARD", self.fwd()),
            ("nat", "POSTROUTING", self.post()),
        ] {
            if run(f.tool(), &["-w", "-t", table, "-C", chain, "-j", &target]).is_err() {
                run(
                    f.tool(),
                    &["-w", "-t", table, "-I", chain, "1", "-j", &target],
                )?;
            }
        }
        Ok(())
    }

    /// Removes the jumps and our chains; every step is tried, the first error returned.
    pub fn teardown(&self) -> Result<(), NetError> {
        self.teardown_family(Family::V4)
    }

    /// The same in ip6tables (nothing to do where there is no ip6tables).
    pub fn teardown6(&self) -> Result<(), NetError> {
        self.teardown_family(Family::V6)
    }

    fn teardown_family(&self, f: Family) -> Result<(), NetError> {
        if !self.enabled {
            return Ok(());
        }
        let tool = f.tool();
        let mut first = None;
        for (table, chain, target) in [
            ("filter", "FORWARD", self.fwd()),
            ("nat", "POSTROUTING", self.post()),
        ] {
            while run(tool, &["-w", "-t", table, "-D", chain, "-j", &target]).is_ok() {}
        }
        for (table, chain) in [
            ("filter", self.fwd()),
            ("filter", self.iso()),
            ("nat", self.post()),
        ] {
            for op in ["-F", "-X"] {
                if let Err(e) = run(tool, &["-w", "-t", table, op, &chain]) {
                    let missing = matches!(&e, NetError::Io { source, .. }
                        if source.kind() == std::io::ErrorKind::NotFound);
                    if !missing
                        && !e.to_string().contains("No chain")
                        && !e.to_string().contains("does not exist")
                    {
                        first.get_or_insert(e);
                    }
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// Which of iptables and ip6tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }
}

fn restore(f: Family, input: &str) -> Result<(), NetError> {
    let tool = format!("{}-restore", f.tool());
    let mut child = Command::new(&tool)
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NetError::io(format!("cannot run {tool}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(NetError::io(format!("cannot write to {tool}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(NetError::io(tool.clone()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            cmd: format!("{tool} --noflush"),
            msg: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_only_our_chains() {
        let fw = Firewall::new("bt1", true);
        let s = fw.render(&[
            BridgeRules {
                bridge: "bt1".into(),
                subnet: "10.1.0.0/24".parse().unwrap(),
                subnet6: Some("fd00:1::/64".parse().unwrap()),
                internal: false,
                masquerade: true,
                icc: true,
                links: Vec::new(),
            },
            BridgeRules {
                bridge: "br-x".into(),
                subnet: "10.2.0.0/24".parse().unwrap(),
                subnet6: None,
                internal: true,
                masquerade: true,
                icc: true,
                links: Vec::new(),
            },
        ]);
        for line in s
            .lines()
            .filter(|l| l.starts_with("-A") || l.starts_with(':'))
        {
            assert!(line.contains("-bt1"), "{line}");
        }
        assert!(s.contains("-A BERTH-ISO-bt1 -o br-x -j DROP"));
        assert!(s.contains("-A BERTH-POST-bt1 -s 10.1.0.0/24 ! -o bt1 -j MASQUERADE"));
        assert!(!s.contains("10.2.0.0/24"));
        assert!(!s.contains("fd00"));
    }

    /// ip6tables gets the rules of the networks with IPv6 only, their IPv6 subnets
    /// masqueraded.
    #[test]
    fn ipv6_rules_mirror_the_ipv4_ones() {
        let fw = Firewall::new("bt1", true);
        let net = |bridge: &str, v6: Option<&str>| BridgeRules {
            bridge: bridge.into(),
            subnet: "10.4.0.0/24".parse().unwrap(),
            subnet6: v6.map(|s| s.parse().unwrap()),
            internal: false,
            masquerade: true,
            icc: true,
            links: Vec::new(),
        };
        let s = fw.render6(&[net("br-6", Some("fd00:9::/64")), net("br-4", None)]);
        assert!(
            s.contains("-A BERTH-POST-bt1 -s fd00:9::/64 ! -o br-6 -j MASQUERADE"),
            "{s}"
        );
        assert!(s.contains("-A BERTH-ISO-bt1 -o br-6 -j DROP"), "{s}");
        assert!(
            s.contains("-A BERTH-FWD-bt1 -i br-6 -o br-6 -j ACCEPT"),
            "{s}"
        );
        assert!(!s.contains("br-4") && !s.contains("10.4.0.0"), "{s}");
    }

    #[test]
    fn masquerade_and_icc_options() {
        let fw = Firewall::new("bt1", true);
        let net = |masquerade, icc| BridgeRules {
            bridge: "br-y".into(),
            subnet: "10.3.0.0/24".parse().unwrap(),
            subnet6: None,
            internal: false,
            masquerade,
            icc,
            links: vec![LinkRule {
                parent: "10.3.0.3".parse().unwrap(),
                child: "10.3.0.2".parse().unwrap(),
                port: 5432,
                proto: "tcp".into(),
            }],
        };
        let on = fw.render(&[net(true, true)]);
        assert!(
            on.contains("-A BERTH-FWD-bt1 -i br-y -o br-y -j ACCEPT"),
            "{on}"
        );
        assert!(
            on.contains("-s 10.3.0.0/24 ! -o br-y -j MASQUERADE"),
            "{on}"
        );
        let off = fw.render(&[net(false, false)]);
        assert!(
            off.contains("-A BERTH-FWD-bt1 -i br-y -o br-y -j DROP"),
            "{off}"
        );
        assert!(!off.contains("-i br-y -o br-y -j ACCEPT"), "{off}");
        // Without icc, a legacy link's exposed port stays open both ways, before the DROP.
        let open = "-A BERTH-FWD-bt1 -i br-y -o br-y -s 10.3.0.3 -d 10.3.0.2 -p tcp --dport 5432 -j ACCEPT";
        let back = "-A BERTH-FWD-bt1 -i br-y -o br-y -s 10.3.0.2 -d 10.3.0.3 -p tcp --sport 5432 -j ACCEPT";
        let (o, b, d) = (
            off.find(open),
            off.find(back),
            off.find("-i br-y -o br-y -j DROP"),
        );
        assert!(o.is_some() && b.is_some() && o < d && b < d, "{off}");
        assert!(!on.contains("--dport 5432"), "{on}");
        assert!(!off.contains("MASQUERADE"), "{off}");
        // Still forwarded out (routed, not NATed), as dockerd does.
        assert!(
            off.contains("-A BERTH-FWD-bt1 -i br-y ! -o br-y -j ACCEPT"),
            "{off}"
        );
    }
}
