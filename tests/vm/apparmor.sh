#!/bin/sh
# AppArmor for real: runs inside the v2vm guest (Debian 12's kernel has AppArmor; these
# hosts' kernel has none), started by tests/vm/run, which builds the guest image with the
# apparmor package and puts the busybox image's tar in target/vm/.
# Checks that berthd loads `berth-default`, that containers run confined by it (and
# denied what it denies), that `apparmor=` is honoured and that privileged containers
# are unconfined. Prints one line per check; exits non-zero on the first failure.
set -eu
bin=${BERTH_BIN_DIR:-target/debug}
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; }

[ "$(cat /sys/module/apparmor/parameters/enabled)" = Y ] || fail "kernel without AppArmor"
[ -x /sbin/apparmor_parser ] || fail "the guest image lacks apparmor_parser"
tmp=$(mktemp -d /tmp/berth-aa.XXXXXX)
$bin/berthd --data-root "$tmp/data" --exec-root "$tmp/exec" -H "unix://$tmp/sock" \
    --pidfile "$tmp/pid" --bridge=none >"$tmp/log" 2>&1 &
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

printf 'profile berth-test-aa flags=(attach_disconnected) {\n  file,\n  capability,\n  deny /etc/hostname r,\n}\n' | apparmor_parser -Kr 2>/dev/null
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
echo "all AppArmor checks passed"
