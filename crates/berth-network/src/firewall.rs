//! iptables rules in chains this daemon owns: `BERTH-FWD-<tag>` and `BERTH-ISO-<tag>` in
//! `filter` (forwarding, isolation between bridges, internal networks) and
//! `BERTH-POST-<tag>` in `nat` (outbound MASQUERADE). `<tag>` is the daemon's default
//! bridge name, so two daemons on one host never share a chain.
//!
//! The chains are rewritten whole from the list of networks with `iptables-restore
//! --noflush` (only the chains named are flushed), and one jump into each is kept at the
//! top of `FORWARD` / `POSTROUTING`. Nothing else is touched.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::cmd::run;
use crate::{Ipv4Net, NetError};

/// One bridge network as the firewall sees it.
#[derive(Debug, Clone)]
pub struct BridgeRules {
    pub bridge: String,
    pub subnet: Ipv4Net,
    pub internal: bool,
    /// `com.docker.network.bridge.enable_ip_masquerade`: outbound traffic is NATed.
    pub masquerade: bool,
    /// `com.docker.network.bridge.enable_icc`: containers of the network reach each other.
    pub icc: bool,
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
        let (fwd, iso, post) = (self.fwd(), self.iso(), self.post());
        let mut s = format!("*filter\n:{fwd} - [0:0]\n:{iso} - [0:0]\n");
        for n in nets {
            let b = &n.bridge;
            s += &format!("-A {fwd} -i {b} ! -o {b} -j {iso}\n");
            s += &format!("-A {iso} -o {b} -j DROP\n");
        }
        for n in nets {
            let b = &n.bridge;
            let icc = if n.icc { "ACCEPT" } else { "DROP" };
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
        for n in nets.iter().filter(|n| !n.internal && n.masquerade) {
            s += &format!(
                "-A {post} -s {} ! -o {} -j MASQUERADE\n",
                n.subnet, n.bridge
            );
        }
        s += "COMMIT\n";
        s
    }

    /// Rewrites our chains for `nets` and makes sure the jumps into them exist.
    pub fn sync(&self, nets: &[BridgeRules]) -> Result<(), NetError> {
        if !self.enabled {
            return Ok(());
        }
        restore(&self.render(nets))?;
        for (table, chain, target) in [
            ("filter", "FORWARD", self.fwd()),
            ("nat", "POSTROUTING", self.post()),
        ] {
            if run("iptables", &["-w", "-t", table, "-C", chain, "-j", &target]).is_err() {
                run(
                    "iptables",
                    &["-w", "-t", table, "-I", chain, "1", "-j", &target],
                )?;
            }
        }
        Ok(())
    }

    /// Removes the jumps and our chains; every step is tried, the first error returned.
    pub fn teardown(&self) -> Result<(), NetError> {
        if !self.enabled {
            return Ok(());
        }
        let mut first = None;
        for (table, chain, target) in [
            ("filter", "FORWARD", self.fwd()),
            ("nat", "POSTROUTING", self.post()),
        ] {
            while run("iptables", &["-w", "-t", table, "-D", chain, "-j", &target]).is_ok() {}
        }
        for (table, chain) in [
            ("filter", self.fwd()),
            ("filter", self.iso()),
            ("nat", self.post()),
        ] {
            for op in ["-F", "-X"] {
                if let Err(e) = run("iptables", &["-w", "-t", table, op, &chain]) {
                    if !e.to_string().contains("No chain")
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

fn restore(input: &str) -> Result<(), NetError> {
    let mut child = Command::new("iptables-restore")
        .args(["-w", "--noflush"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NetError::io("cannot run iptables-restore"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(NetError::io("cannot write to iptables-restore"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(NetError::io("iptables-restore"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetError::Command {
            cmd: "iptables-restore --noflush".into(),
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
                internal: false,
                masquerade: true,
                icc: true,
            },
            BridgeRules {
                bridge: "br-x".into(),
                subnet: "10.2.0.0/24".parse().unwrap(),
                internal: true,
                masquerade: true,
                icc: true,
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
    }

    #[test]
    fn masquerade_and_icc_options() {
        let fw = Firewall::new("bt1", true);
        let net = |masquerade, icc| BridgeRules {
            bridge: "br-y".into(),
            subnet: "10.3.0.0/24".parse().unwrap(),
            internal: false,
            masquerade,
            icc,
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
        assert!(!off.contains("MASQUERADE"), "{off}");
        // Still forwarded out (routed, not NATed), as dockerd does.
        assert!(
            off.contains("-A BERTH-FWD-bt1 -i br-y ! -o br-y -j ACCEPT"),
            "{off}"
        );
    }
}
