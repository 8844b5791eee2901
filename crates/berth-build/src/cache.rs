//! What dockerd's classic builder records in history and probes its cache with (moby
//! `daemon/builder/dockerfile/dispatchers.go`, `internals.go`,
//! `daemon/internal/image/cache/compare.go`): the `Cmd` it sets on the step's container
//! config (`#(nop)` comments for metadata instructions, `|N K=V` prefixes for RUN with
//! build args, `COPY file:<sha> in /dst `), the `created_by` history string (that `Cmd`
//! joined by spaces), the source hashes of COPY/ADD (tarsum v1 of each context entry:
//! `file:`, `dir:`, `multi:`), and a cache key over the parent image and the config fields
//! dockerd compares. The engine reads the files; these functions only hash what it feeds.

use sha2::{Digest, Sha256};

use crate::instructions::{Health, KeyValue};

/// The shell dockerd uses when the image sets none.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// `Cmd` of a metadata instruction (moby `withCmdComment`): `shell + ["#(nop) ", comment]`.
pub fn nop_cmd(shell: &[String], comment: &str) -> Vec<String> {
    let mut v = shell.to_vec();
    v.push("#(nop) ".into());
    v.push(comment.into());
    v
}

/// `Cmd` of WORKDIR, COPY and ADD (moby `withCmdCommentString`): one `#(nop) comment` arg.
pub fn nop_cmd_string(shell: &[String], comment: &str) -> Vec<String> {
    let mut v = shell.to_vec();
    v.push(format!("#(nop) {comment}"));
    v
}

/// The history `created_by` of a step: its `Cmd` joined with spaces (so metadata steps
/// read `/bin/sh -c #(nop)  CMD ["sh"]`, with two spaces).
pub fn created_by(cmd: &[String]) -> String {
    cmd.join(" ")
}

/// Go's `%q` of a string slice, as `CMD %q` and `ENTRYPOINT %q` print: `["a" "b"]`.
pub fn go_quote_slice(v: &[String]) -> String {
    let inner: Vec<String> = v.iter().map(|s| crate::error::go_quote(s)).collect();
    format!("[{}]", inner.join(" "))
}

/// Go's `%v` of a string slice: `[a b]`.
pub fn go_slice(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// The comment each metadata instruction commits with (moby `dispatch*`).
pub fn env_comment(env: &[KeyValue]) -> String {
    let mut s = String::from("ENV");
    for kv in env {
        s.push(' ');
        s.push_str(&kv.as_env());
    }
    s
}

pub fn label_comment(labels: &[KeyValue]) -> String {
    let mut s = String::from("LABEL");
    for kv in labels {
        s.push(' ');
        s.push_str(&kv.as_env());
    }
    s
}

/// `ARG a b=c`, values as given after expansion.
pub fn arg_comment(args: &[(String, Option<String>)]) -> String {
    let parts: Vec<String> = args
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!("{k}={v}"),
            None => k.clone(),
        })
        .collect();
    format!("ARG {}", parts.join(" "))
}

pub fn cmd_comment(cmd: &[String]) -> String {
    format!("CMD {}", go_quote_slice(cmd))
}

pub fn entrypoint_comment(ep: &[String]) -> String {
    format!("ENTRYPOINT {}", go_quote_slice(ep))
}

pub fn expose_comment(ports: &[String]) -> String {
    format!("EXPOSE {}", ports.join(" "))
}

pub fn user_comment(user: &str) -> String {
    format!("USER {user}")
}

pub fn volume_comment(volumes: &[String]) -> String {
    format!("VOLUME {}", go_slice(volumes))
}

pub fn stopsignal_comment(sig: &str) -> String {
    format!("STOPSIGNAL {sig}")
}

pub fn shell_comment(shell: &[String]) -> String {
    format!("SHELL {}", go_slice(shell))
}

pub fn onbuild_comment(expr: &str) -> String {
    format!("ONBUILD {expr}")
}

pub fn maintainer_comment(m: &str) -> String {
    format!("MAINTAINER {m}")
}

pub fn workdir_comment(dir: &str) -> String {
    format!("WORKDIR {dir}")
}

/// Go's `time.Duration.String()`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut s = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", trim_frac(u, 1_000))
    } else if u < 1_000_000_000 {
        format!("{}ms", trim_frac(u, 1_000_000))
    } else {
        let secs_total = u / 1_000_000_000;
        let frac = u % 1_000_000_000;
        let h = secs_total / 3600;
        let m = (secs_total % 3600) / 60;
        let sec = secs_total % 60;
        let sec_str = trim_frac(sec * 1_000_000_000 + frac, 1_000_000_000);
        match (h, m) {
            (0, 0) => format!("{sec_str}s"),
            (0, m) => format!("{m}m{sec_str}s"),
            (h, m) => format!("{h}h{m}m{sec_str}s"),
        }
    };
    if neg {
        s.insert(0, '-');
    }
    s
}

fn trim_frac(v: u64, unit: u64) -> String {
    let whole = v / unit;
    let frac = v % unit;
    if frac == 0 {
        return whole.to_string();
    }
    let width = unit.to_string().len() - 1;
    let f = format!("{frac:0width$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// `HEALTHCHECK %+v` of the config current moby stores (`&{Test:[CMD-SHELL x]
/// Interval:5s ...}`); dockerd 20.10 printed it with `%q` (`&{["CMD-SHELL" "true"] "5s"
/// "0s" "1m30s" '\x03'}`).
pub fn healthcheck_comment(h: &Health) -> String {
    format!(
        "HEALTHCHECK &{{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        go_slice(&h.test),
        go_duration(h.interval),
        go_duration(h.timeout),
        go_duration(h.start_period),
        go_duration(h.start_interval),
        h.retries
    )
}

/// The `Cmd` of a COPY/ADD step (moby `performCopy`): `#(nop) COPY [--chown=x ]<hash> in
/// <dest> ` with its trailing space. Current moby puts a space after `--chown=x`; dockerd
/// 20.10 did not (`ADD --chown=1:2file:61f4... in /a `, seen on these machines).
/// `--chmod=x ` follows in the same form (dockerd 20.10 refused the flag; later classic
/// builders take it).
pub fn copy_cmd(
    shell: &[String],
    name: &str,
    chown: &str,
    chmod: &str,
    src_hash: &str,
    dest: &str,
) -> Vec<String> {
    let flag = |name: &str, v: &str| {
        if v.is_empty() {
            String::new()
        } else {
            format!("--{name}={v} ")
        }
    };
    let (chown, chmod) = (flag("chown", chown), flag("chmod", chmod));
    nop_cmd_string(
        shell,
        &format!("{name} {chown}{chmod}{src_hash} in {dest} "),
    )
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn sha256_hex(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The hash naming COPY/ADD sources (moby `getSourceHashFromInfos`): one source keeps its
/// own `file:<sha>`/`dir:<sha>`, several become `multi:<sha256 of the hashes joined by ,>`.
pub fn source_hash(hashes: &[String]) -> String {
    if let [one] = hashes {
        return one.clone();
    }
    format!("multi:{}", sha256_hex(hashes.join(",").as_bytes()))
}

/// The fields of a context tar entry that name its content in the cache (tarsum v1 as
/// moby's `remotecontext/internal/tarsum` selects them: mtime left out; uname and gname
/// empty for context entries, the owner's names for an `ADD` URL's downloaded file).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TarsumHeader<'a> {
    /// The entry's name as in the tar (`d/c`, `d/` for a directory).
    pub name: &'a str,
    pub mode: i64,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub typeflag: u8,
    pub linkname: &'a str,
    pub devmajor: i64,
    pub devminor: i64,
    pub uname: &'a str,
    pub gname: &'a str,
    /// Extended attributes (PAX `SCHILY.xattr.*`), any order.
    pub xattrs: &'a [(String, Vec<u8>)],
}

/// The hash of one context entry, fed its content after the header (moby `tarsumHash`).
pub struct EntryHasher(Sha256);

impl EntryHasher {
    pub fn new(h: &TarsumHeader) -> EntryHasher {
        let mut s = Sha256::new();
        let mut put = |k: &str, v: &[u8]| {
            s.update(k.as_bytes());
            s.update(v);
        };
        put("name", h.name.as_bytes());
        put("mode", h.mode.to_string().as_bytes());
        put("uid", h.uid.to_string().as_bytes());
        put("gid", h.gid.to_string().as_bytes());
        put("size", h.size.to_string().as_bytes());
        put("typeflag", &[h.typeflag]);
        put("linkname", h.linkname.as_bytes());
        put("uname", h.uname.as_bytes());
        put("gname", h.gname.as_bytes());
        put("devmajor", h.devmajor.to_string().as_bytes());
        put("devminor", h.devminor.to_string().as_bytes());
        let mut x: Vec<&(String, Vec<u8>)> = h.xattrs.iter().collect();
        x.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in x {
            put(k, v);
        }
        EntryHasher(s)
    }

    pub fn update(&mut self, content: &[u8]) {
        self.0.update(content);
    }

    /// The hex digest (a COPY of this one file is `file:<hex>`).
    pub fn finish(self) -> String {
        self.0
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The source hash of a directory COPY/ADD (moby `walkSource`): `dir:` + sha256 of the
/// hashes of the directory itself and everything under it, sorted, joined by `,`.
pub fn dir_hash(entry_hashes: &[String]) -> String {
    let mut v = entry_hashes.to_vec();
    v.sort();
    format!("dir:{}", sha256_hex(v.join(",").as_bytes()))
}

/// The config fields dockerd's local cache compares (moby `cache.compare`: Cmd, Env,
/// Entrypoint, Shell, OnBuild, ExposedPorts, Volumes, Labels, User, WorkingDir,
/// StopSignal, StopTimeout, ArgsEscaped, Healthcheck; the attach/tty flags are constant in
/// a build) with the step's `Cmd`, and the parent image: two steps with equal keys are the
/// same step.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheProbe<'a> {
    pub parent: &'a str,
    pub cmd: &'a [String],
    pub env: &'a [String],
    pub entrypoint: &'a [String],
    pub shell: &'a [String],
    pub on_build: &'a [String],
    /// Sorted keys of `ExposedPorts`, `Volumes`; sorted `k=v` of `Labels`.
    pub exposed_ports: &'a [String],
    pub volumes: &'a [String],
    pub labels: &'a [String],
    pub user: &'a str,
    pub working_dir: &'a str,
    pub stop_signal: &'a str,
    pub stop_timeout: Option<i64>,
    pub args_escaped: bool,
    pub healthcheck: Option<&'a Health>,
}

impl CacheProbe<'_> {
    /// A sha256 over a length-prefixed encoding of every field (no field can bleed into the
    /// next), as `sha256:<hex>`.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        let mut put = |tag: &str, items: &[&str]| {
            h.update(tag.as_bytes());
            h.update((items.len() as u64).to_le_bytes());
            for i in items {
                h.update((i.len() as u64).to_le_bytes());
                h.update(i.as_bytes());
            }
        };
        put("parent", &[self.parent]);
        put("cmd", &refs(self.cmd));
        put("env", &refs(self.env));
        put("entrypoint", &refs(self.entrypoint));
        put("shell", &refs(self.shell));
        put("onbuild", &refs(self.on_build));
        put("ports", &refs(self.exposed_ports));
        put("volumes", &refs(self.volumes));
        put("labels", &refs(self.labels));
        put("user", &[self.user]);
        put("workdir", &[self.working_dir]);
        put("stopsignal", &[self.stop_signal]);
        let timeout = self.stop_timeout.map(|t| t.to_string());
        put(
            "stoptimeout",
            &timeout.as_deref().into_iter().collect::<Vec<_>>(),
        );
        put("argsescaped", &[if self.args_escaped { "1" } else { "0" }]);
        match self.healthcheck {
            None => put("health", &[]),
            Some(h) => {
                let nums = [
                    h.interval,
                    h.timeout,
                    h.start_period,
                    h.start_interval,
                    h.retries,
                ]
                .map(|n| n.to_string());
                put("health", &refs(&h.test));
                put(
                    "healthnums",
                    &nums.iter().map(String::as_str).collect::<Vec<_>>(),
                );
            }
        }
        let d = h.finalize();
        format!(
            "sha256:{}",
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh() -> Vec<String> {
        default_shell()
    }

    // Strings as dockerd 20.10 shows them in `docker history --no-trunc`.
    #[test]
    fn created_by_strings() {
        assert_eq!(
            created_by(&nop_cmd(&sh(), &cmd_comment(&["sh".into()]))),
            r#"/bin/sh -c #(nop)  CMD ["sh"]"#
        );
        assert_eq!(
            created_by(&nop_cmd(
                &sh(),
                &env_comment(&[KeyValue {
                    key: "A".into(),
                    value: "1 2".into(),
                    no_delim: false
                }])
            )),
            "/bin/sh -c #(nop)  ENV A=1 2"
        );
        assert_eq!(
            created_by(&nop_cmd_string(&sh(), &workdir_comment("/app"))),
            "/bin/sh -c #(nop) WORKDIR /app"
        );
        assert_eq!(
            created_by(&copy_cmd(&sh(), "COPY", "", "", "file:abc", "/dst")),
            "/bin/sh -c #(nop) COPY file:abc in /dst "
        );
        assert_eq!(
            created_by(&copy_cmd(&sh(), "ADD", "1:2", "", "dir:abc", "/d/")),
            "/bin/sh -c #(nop) ADD --chown=1:2 dir:abc in /d/ "
        );
        assert_eq!(
            created_by(&copy_cmd(&sh(), "COPY", "", "0750", "file:abc", "/x")),
            "/bin/sh -c #(nop) COPY --chmod=0750 file:abc in /x "
        );
        let run: Vec<String> = vec![
            "|1".into(),
            "V=1".into(),
            "/bin/sh".into(),
            "-c".into(),
            "echo hi".into(),
        ];
        assert_eq!(created_by(&run), "|1 V=1 /bin/sh -c echo hi");
        assert_eq!(
            created_by(&nop_cmd(
                &sh(),
                &volume_comment(&["/a".into(), "/b".into()])
            )),
            "/bin/sh -c #(nop)  VOLUME [/a /b]"
        );
        assert_eq!(
            created_by(&nop_cmd(
                &sh(),
                &entrypoint_comment(&["/bin/sh".into(), "-c".into(), "a \"b\"".into()])
            )),
            r#"/bin/sh -c #(nop)  ENTRYPOINT ["/bin/sh" "-c" "a \"b\""]"#
        );
        assert_eq!(
            arg_comment(&[("a".into(), None), ("b".into(), Some("c".into()))]),
            "ARG a b=c"
        );
        assert_eq!(
            shell_comment(&["bash".into(), "-c".into()]),
            "SHELL [bash -c]"
        );
        assert_eq!(expose_comment(&["80/tcp".into()]), "EXPOSE 80/tcp");
    }

    /// `docker history --no-trunc` of dockerd 20.10.24 (DOCKER_BUILDKIT=0) for the same
    /// instructions, built through the crate's parse and expand.
    #[test]
    fn history_matches_dockerd_20_10() {
        use crate::expand::expand;
        use crate::instructions::Instruction as I;
        use crate::lex::{Env, Lex};
        let df = crate::parse_dockerfile(
            br#"FROM scratch
ARG V=1
ARG W
ENV A=1 B="two words"
ENV OLD legacy form
LABEL k=v "x y"=z
WORKDIR /app
EXPOSE 80 443/udp
VOLUME /data /logs
USER nobody
STOPSIGNAL SIGKILL
ONBUILD RUN echo hi
SHELL ["/bin/sh", "-c"]
ENTRYPOINT ["/bin/sh"]
CMD ["-c", "echo"]
MAINTAINER someone
"#,
        )
        .unwrap();
        let want = [
            "/bin/sh -c #(nop)  ARG V=1",
            "/bin/sh -c #(nop)  ARG W",
            "/bin/sh -c #(nop)  ENV A=1 B=two words",
            "/bin/sh -c #(nop)  ENV OLD=legacy form",
            "/bin/sh -c #(nop)  LABEL k=v x y=z",
            "/bin/sh -c #(nop) WORKDIR /app",
            "/bin/sh -c #(nop)  EXPOSE 443/udp 80",
            "/bin/sh -c #(nop)  VOLUME [/data /logs]",
            "/bin/sh -c #(nop)  USER nobody",
            "/bin/sh -c #(nop)  STOPSIGNAL SIGKILL",
            "/bin/sh -c #(nop)  ONBUILD RUN echo hi",
            "/bin/sh -c #(nop)  SHELL [/bin/sh -c]",
            r#"/bin/sh -c #(nop)  ENTRYPOINT ["/bin/sh"]"#,
            r#"/bin/sh -c #(nop)  CMD ["-c" "echo"]"#,
            "/bin/sh -c #(nop)  MAINTAINER someone",
        ];
        let lex = Lex::new('\\');
        let env = Env::default();
        let got: Vec<String> = df.stages[0]
            .commands
            .iter()
            .map(|c| {
                let x = expand(&c.instruction, &lex, &env).unwrap();
                let nop = |s: String| created_by(&nop_cmd(&sh(), &s));
                match x {
                    I::Arg(a) => nop(arg_comment(
                        &a.into_iter().map(|d| (d.key, d.value)).collect::<Vec<_>>(),
                    )),
                    I::Env(e) => nop(env_comment(&e)),
                    I::Label(l) => nop(label_comment(&l)),
                    I::Workdir(w) => created_by(&nop_cmd_string(&sh(), &workdir_comment(&w))),
                    I::Expose(p) => nop(expose_comment(&p)),
                    I::Volume(v) => nop(volume_comment(&v)),
                    I::User(u) => nop(user_comment(&u)),
                    I::StopSignal(s) => nop(stopsignal_comment(&s)),
                    I::Onbuild(o) => nop(onbuild_comment(&o)),
                    I::Shell(s) => nop(shell_comment(&s)),
                    I::Entrypoint(e) => nop(entrypoint_comment(&e.args)),
                    I::Cmd(c) => nop(cmd_comment(&c.args)),
                    I::Maintainer(m) => nop(maintainer_comment(&m)),
                    other => panic!("{other:?}"),
                }
            })
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn healthcheck_and_durations() {
        let h = Health {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: 5_000_000_000,
            timeout: 0,
            start_period: 1_500_000_000,
            start_interval: 0,
            retries: 3,
        };
        assert_eq!(
            healthcheck_comment(&h),
            "HEALTHCHECK &{Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:1.5s StartInterval:0s Retries:3}"
        );
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(1_000_000), "1ms");
        assert_eq!(go_duration(1_500), "1.5µs");
        assert_eq!(go_duration(-2_000_000_000), "-2s");
    }

    /// dockerd 20.10.24 built `COPY a b /dst/`, `COPY d /d/`, `ADD a /a` from a context the
    /// docker CLI sent (uid/gid 0, a = "a\n" 0644, b = "b\n", d/ 0755 holding c = "c\n")
    /// and recorded these hashes in history.
    #[test]
    fn context_hashes_match_dockerd() {
        let file = |name: &str, mode: i64, content: &[u8]| {
            let mut h = EntryHasher::new(&TarsumHeader {
                name,
                mode,
                size: content.len() as u64,
                typeflag: b'0',
                ..TarsumHeader::default()
            });
            h.update(content);
            h.finish()
        };
        let a = file("a", 0o644, b"a\n");
        assert_eq!(
            a,
            "61f4faee8d3546bc59f21fe6168a562bac0717406832d488e77bd582568a57fb"
        );
        let b = file("b", 0o644, b"b\n");
        assert_eq!(
            source_hash(&[format!("file:{a}"), format!("file:{b}")]),
            "multi:589f85986398ec541bcd7106f17d404c5b9d26c1d861b6bd4782559b3ffb35b6"
        );
        let d = EntryHasher::new(&TarsumHeader {
            name: "d/",
            mode: 0o755,
            typeflag: b'5',
            ..TarsumHeader::default()
        })
        .finish();
        let c = file("d/c", 0o644, b"c\n");
        assert_eq!(
            dir_hash(&[c, d]),
            "dir:83dbe011adf35c3106747b251e676252c4b0d35d006e1518fc10bdf78ee33603"
        );
        // Owner, mode and xattrs are part of the name of the content.
        let x = [("security.capability".to_string(), vec![1u8])];
        let with_x = EntryHasher::new(&TarsumHeader {
            name: "a",
            mode: 0o644,
            size: 2,
            typeflag: b'0',
            xattrs: &x,
            ..TarsumHeader::default()
        });
        let mut with_x = with_x;
        with_x.update(b"a\n");
        assert_ne!(with_x.finish(), a);
        assert_ne!(file("a", 0o600, b"a\n"), a);
    }

    /// dockerd 20.10 (Debian's, on these machines) recorded `ADD <2924dac...> in /dst/` for
    /// `ADD http://.../a.txt /dst/` serving "remote\n": moby hashes the downloaded file
    /// with Go's file-info header (type bits in the mode, owner names looked up) and no
    /// `file:` prefix.
    #[test]
    fn downloaded_file_hash_matches_dockerd() {
        let mut h = EntryHasher::new(&TarsumHeader {
            name: "a.txt",
            mode: 0o100600,
            size: 7,
            typeflag: b'0',
            uname: "root",
            gname: "root",
            ..TarsumHeader::default()
        });
        h.update(b"remote\n");
        assert_eq!(
            h.finish(),
            "2924dac1de71a80bade7d9efc1c5553c0b500428f90b7dcf8c4b6c19067ee850"
        );
    }

    #[test]
    fn source_hashes() {
        assert_eq!(source_hash(&["file:x".into()]), "file:x");
        // sha256("file:a,dir:b")
        assert_eq!(
            source_hash(&["file:a".into(), "dir:b".into()]),
            format!("multi:{}", sha256_hex(b"file:a,dir:b"))
        );
    }

    #[test]
    fn cache_keys_differ_when_dockerd_would_miss() {
        let cmd = nop_cmd(&sh(), "CMD [\"sh\"]");
        let base = CacheProbe {
            parent: "sha256:p",
            cmd: &cmd,
            ..CacheProbe::default()
        };
        let k = base.key();
        assert_eq!(k, base.clone().key());
        assert_ne!(
            k,
            CacheProbe {
                parent: "sha256:q",
                ..base.clone()
            }
            .key()
        );
        let env = vec!["A=1".to_string()];
        assert_ne!(
            k,
            CacheProbe {
                env: &env,
                ..base.clone()
            }
            .key()
        );
        let cmd2 = nop_cmd(&sh(), "CMD [\"bash\"]");
        assert_ne!(
            k,
            CacheProbe {
                cmd: &cmd2,
                ..base.clone()
            }
            .key()
        );
        // No bleeding between fields.
        let a = vec!["ab".to_string()];
        let b = vec!["a".to_string(), "b".to_string()];
        assert_ne!(
            CacheProbe {
                env: &a,
                ..base.clone()
            }
            .key(),
            CacheProbe {
                env: &b,
                ..base.clone()
            }
            .key()
        );
        assert!(k.starts_with("sha256:") && k.len() == 71);
        let h = Health {
            test: vec!["NONE".into()],
            ..Health::default()
        };
        assert_ne!(
            k,
            CacheProbe {
                healthcheck: Some(&h),
                ..base.clone()
            }
            .key()
        );
        assert_ne!(
            k,
            CacheProbe {
                stop_timeout: Some(0),
                ..base.clone()
            }
            .key()
        );
        assert_ne!(
            k,
            CacheProbe {
                args_escaped: true,
                ..base.clone()
            }
            .key()
        );
    }
}
