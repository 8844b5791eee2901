#!/bin/sh
# AppArmor for real: runs inside the v2vm guest (Debian 12's kernel has AppArmor; these
# hosts' kernel has none), started by tests/vm/run, which builds the guest image with the
# apparmor package and puts the busybox image's tar in target/vm/.
# Checks that berthd loads `berth-default`, that containers run confined by it (and
# denied what it denies), that `apparmor=` is honoured and that privileged containers
# are unconfined; then the same through the CRI (crictl, which tests/vm/run puts in
# target/vm/): a pod's container gets berth-default, Unconfined, a loaded Localhost
# profile (as a SecurityProfile and as the deprecated apparmor_profile string), and an
# unloaded one is refused at create. Prints one line per check; exits non-zero on the
# first failure.
set -eu
bin=${BERTH_BIN_DIR:-target/debug}
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

[ "$(cat /sys/module/apparmor/parameters/enabled)" = Y ] || fail "kernel without AppArmor"
[ -x /sbin/apparmor_parser ] || fail "the guest image lacks apparmor_parser"
tmp=$(mktemp -d /tmp/berth-aa.XXXXXX)
$bin/berthd --data-root "$tmp/data" --exec-root "$tmp/exec" -H "unix://$tmp/sock" \
    --pidfile "$tmp/pid" --bridge=none --cri-socket "$tmp/cri.sock" >"$tmp/log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; tail -n 20 "$tmp/log"' EXIT
b() { $bin/berth -H "unix://$tmp/sock" "$@"; }
i=0
until b version >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 600 ] || fail "berthd did not answer"; sleep 0.1
done
b import -c 'CMD ["sh"]' target/vm/busybox.tar busybox:latest >/dev/null

label=$(b run --rm busybox cat /proc/self/attr/current)
[ "$label" = "berth-default (enforce)" ] || fail "default label: $label"
ok "a container runs confined: $label"
grep -q '^berth-default (enforce)$' /sys/kernel/security/apparmor/profiles || fail "profile not listed"
ok "berth-default is loaded in the kernel"

# systempaths=unconfined lifts the read-only /proc paths, so what refuses is the profile.
out=$(b run --rm --security-opt systempaths=unconfined busybox sh -c 'echo h > /proc/sysrq-trigger' 2>&1 || true)
case "$out" in *"Permission denied"*) ;; *) fail "sysrq-trigger: $out" ;; esac
ok "berth-default denies /proc/sysrq-trigger (root, read-only paths lifted): $out"
out=$(b run --rm --cap-add SYS_ADMIN --security-opt seccomp=unconfined busybox sh -c 'mkdir -p /tmp/m && mount -t tmpfs none /tmp/m' 2>&1 || true)
case "$out" in *"Permission denied"*) ;; *) fail "mount with CAP_SYS_ADMIN: $out" ;; esac
ok "berth-default denies mount even with CAP_SYS_ADMIN and no seccomp: $out"
# The controls: the same two with apparmor=unconfined succeed, so the profile is what refused.
b run --rm --security-opt systempaths=unconfined --security-opt apparmor=unconfined busybox \
    sh -c 'echo h > /proc/sysrq-trigger' || fail "control: sysrq-trigger unconfined"
b run --rm --cap-add SYS_ADMIN --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    busybox sh -c 'mkdir -p /tmp/m && mount -t tmpfs none /tmp/m' || fail "control: mount unconfined"
ok "controls: both succeed with apparmor=unconfined"

label=$(b run --rm --security-opt apparmor=unconfined busybox cat /proc/self/attr/current)
[ "$label" = unconfined ] || fail "apparmor=unconfined: $label"
ok "apparmor=unconfined is honoured"
label=$(b run --rm --privileged busybox cat /proc/self/attr/current)
[ "$label" = unconfined ] || fail "privileged: $label"
ok "a privileged container is unconfined"
out=$(b exec "$(b run -d busybox sleep 60)" cat /proc/self/attr/current)
[ "$out" = "berth-default (enforce)" ] || fail "exec label: $out"
ok "exec runs under the container's profile"

# (Signals from the unconfined shim allowed, so that the CRI's pod can be stopped below.)
printf 'profile berth-test-aa flags=(attach_disconnected) {\n  file,\n  capability,\n  signal (receive) peer=unconfined,\n  deny /etc/hostname r,\n}\n' | apparmor_parser -Kr 2>/dev/null
label=$(b run --rm --security-opt apparmor=berth-test-aa busybox cat /proc/self/attr/current)
[ "$label" = "berth-test-aa (enforce)" ] || fail "apparmor=berth-test-aa: $label"
out=$(b run --rm --security-opt apparmor=berth-test-aa busybox sh -c 'cat /etc/hostname >/dev/null 2>&1 && echo read || echo refused')
[ "$out" = refused ] || fail "custom profile did not deny: $out"
ok "a loaded custom profile is applied (apparmor=berth-test-aa denies what it says)"
if out=$(b run --rm --security-opt apparmor=no-such-profile busybox true 2>&1); then
    fail "an unknown profile was accepted"
fi
case "$out" in *'"no-such-profile" is not loaded on this host'*) ;; *) fail "unclear refusal: $out" ;; esac
ok "an unloaded profile is refused with a clear error: $out"
# The CRI: a pod on loopback only, its containers' labels read by ExecSync.
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n' "$tmp/cri.sock" "$tmp/cri.sock" >"$tmp/crictl.yaml"
crictl() { target/vm/crictl --config "$tmp/crictl.yaml" "$@"; }
printf '{"metadata": {"name": "aa", "namespace": "n", "uid": "u-aa"}, "linux": {}}' >"$tmp/pod.json"
pod=$(crictl runp "$tmp/pod.json") || fail "CRI: RunPodSandbox"
cri_label() { # NAME SECURITY_CONTEXT_JSON: runs container NAME, prints its process's label
    n=$1
    shift
    printf '{"metadata": {"name": "c%s"}, "image": {"image": "busybox:latest"}, "command": ["sleep", "600"], "linux": {"security_context": %s}}' \
        "$n" "$1" >"$tmp/c$n.json"
    cid=$(crictl create "$pod" "$tmp/c$n.json" "$tmp/pod.json" 2>"$tmp/err") || { cat "$tmp/err"; return 1; }
    crictl start "$cid" >/dev/null || return 1
    crictl exec -s "$cid" cat /proc/self/attr/current
}
label=$(cri_label default '{}') || fail "CRI: $label"
[ "$label" = "berth-default (enforce)" ] || fail "CRI default label: $label"
ok "CRI: a pod's container without a profile runs under berth-default: $label"
label=$(cri_label unconfined '{"apparmor": {"profile_type": 1}}') || fail "CRI: $label"
[ "$label" = unconfined ] || fail "CRI Unconfined: $label"
label=$(cri_label localhost '{"apparmor": {"profile_type": 2, "localhost_ref": "localhost/berth-test-aa"}}') || fail "CRI: $label"
[ "$label" = "berth-test-aa (enforce)" ] || fail "CRI Localhost: $label"
label=$(cri_label legacy '{"apparmor_profile": "localhost/berth-test-aa"}') || fail "CRI: $label"
[ "$label" = "berth-test-aa (enforce)" ] || fail "CRI apparmor_profile: $label"
label=$(cri_label privileged '{"privileged": true, "apparmor": {"profile_type": 0}}') || fail "CRI: $label"
[ "$label" = unconfined ] || fail "CRI privileged RuntimeDefault: $label"
ok "CRI: Unconfined, Localhost (profile and deprecated string) and privileged are honoured"
if out=$(cri_label unloaded '{"apparmor": {"profile_type": 2, "localhost_ref": "no-such-profile"}}'); then
    fail "CRI: an unloaded profile was accepted: $out"
fi
case "$out" in *"apparmor profile not found no-such-profile"*) ;; *) fail "CRI: unclear refusal: $out" ;; esac
ok "CRI: an unloaded profile is refused at create: $out"
crictl stopp "$pod" >/dev/null && crictl rmp "$pod" >/dev/null || fail "CRI: pod removal"
echo "all AppArmor checks passed"
