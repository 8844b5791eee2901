#!/bin/sh
# cgroup v2 with real controllers: runs inside the v2vm guest (pure cgroup v2, every
# controller enabled; these hosts' hybrid v1 layout cannot have that), started by
# tests/vm/run in the child cgroup /berthd.service, as a systemd unit with Delegate=yes
# runs berthd. Each limit is checked from outside (the container's cgroup files on the
# host) and from inside (the container's own view through its cgroup namespace), and is
# made to bite where it can: the OOM killer, fork refused, the freezer.
# Prints one line per check; exits non-zero on the first failure.
set -eu
bin=${BERTH_BIN_DIR:-target/debug}
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; echo "ok: $*" >>"${BERTH_VM_PROGRESS:-/dev/null}"; }

[ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || fail "not a pure cgroup v2 guest"
tmp=$(mktemp -d /tmp/berth-v2.XXXXXX)
parent=berth-v2test
$bin/berthd --data-root "$tmp/data" --exec-root "$tmp/exec" -H "unix://$tmp/sock" \
    --pidfile "$tmp/pid" --bridge=none --cgroup-parent "/$parent" >"$tmp/log" 2>&1 &
daemon=$!
trap 'kill $daemon 2>/dev/null; wait $daemon 2>/dev/null; tail -n 20 "$tmp/log"' EXIT
b() { $bin/berth -H "unix://$tmp/sock" "$@"; }
i=0
until b version >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 600 ] || fail "berthd did not answer"; sleep 0.1
done
echo "berthd up" >>"${BERTH_VM_PROGRESS:-/dev/null}"
b import -c 'CMD ["sh"]' target/vm/busybox.tar busybox:latest >/dev/null
[ "$(b info --format '{{.CgroupVersion}}')" = 2 ] || fail "info: cgroup version $(b info --format '{{.CgroupVersion}}')"
ok "berthd reports cgroup v2 (berthd itself in $(cut -d: -f3 /proc/$daemon/cgroup))"

cg() { echo "/sys/fs/cgroup/$parent/$1"; }
full_id() { b inspect -f '{{.Id}}' "$1"; }

# memory.max: the OOM killer ends the container, 137 and OOMKilled.
id=$(b run -d -m 32m --memory-swap 32m busybox sh -c 'cat /sys/fs/cgroup/memory.max; sleep 1; tail /dev/zero')
code=$(b wait "$id")
[ "$code" = 137 ] || fail "memory hog exited $code, not 137"
[ "$(b inspect -f '{{.State.OOMKilled}}' "$id")" = true ] || fail "OOMKilled not set"
[ "$(b logs "$id")" = 33554432 ] || fail "memory.max inside: $(b logs "$id")"
ok "-m 32m: memory.max 33554432 inside, the hog is OOM-killed (exit 137, OOMKilled true)"
b rm "$id" >/dev/null

# pids.max: forks past the limit are refused.
id=$(b run -d --pids-limit 8 busybox sleep 300)
fid=$(full_id "$id")
[ "$(cat "$(cg "$fid")/pids.max")" = 8 ] || fail "pids.max outside: $(cat "$(cg "$fid")/pids.max")"
out=$(b exec "$id" sh -c 'cat /sys/fs/cgroup/pids.max; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 30 & done 2>&1; wait' 2>&1 || true)
case "$out" in 8*"can't fork"*|8*"Resource temporarily unavailable"*) ;; *) fail "pids limit did not bite: $out" ;; esac
ok "--pids-limit 8: pids.max 8 outside and inside, the 9th process is refused"

# cpu.max from --cpus; live update changes memory.max and cpu.max.
b rm -f "$id" >/dev/null
id=$(b run -d --cpus 0.5 -m 64m --cpuset-cpus 0 busybox sleep 300)
fid=$(full_id "$id")
[ "$(cat "$(cg "$fid")/cpu.max")" = "50000 100000" ] || fail "cpu.max: $(cat "$(cg "$fid")/cpu.max")"
[ "$(b exec "$id" cat /sys/fs/cgroup/cpu.max)" = "50000 100000" ] || fail "cpu.max inside"
ok "--cpus 0.5: cpu.max '50000 100000' outside and inside"
[ "$(cat "$(cg "$fid")/cpuset.cpus")" = 0 ] || fail "cpuset.cpus: $(cat "$(cg "$fid")/cpuset.cpus")"
[ "$(b exec "$id" grep Cpus_allowed_list /proc/self/status | tr -d ' \t')" = "Cpus_allowed_list:0" ] \
    || fail "affinity inside: $(b exec "$id" grep Cpus_allowed_list /proc/self/status)"
ok "--cpuset-cpus 0: cpuset.cpus 0, and the container's processes may run on CPU 0 only"
b update --memory 96m --memory-swap 96m --cpus 1.5 --pids-limit 50 "$id" >/dev/null
[ "$(cat "$(cg "$fid")/memory.max")" = 100663296 ] || fail "update memory.max: $(cat "$(cg "$fid")/memory.max")"
[ "$(b exec "$id" cat /sys/fs/cgroup/memory.max)" = 100663296 ] || fail "update memory.max inside"
[ "$(cat "$(cg "$fid")/cpu.max")" = "150000 100000" ] || fail "update cpu.max: $(cat "$(cg "$fid")/cpu.max")"
[ "$(cat "$(cg "$fid")/pids.max")" = 50 ] || fail "update pids.max: $(cat "$(cg "$fid")/pids.max")"
[ "$(b inspect -f '{{.HostConfig.Memory}}' "$id")" = 100663296 ] || fail "update not recorded"
ok "update live: memory.max 100663296, cpu.max '150000 100000', pids.max 50, recorded in inspect"

# io.max from --device-read-bps (major:minor by stat of the host's device); swappiness and
# the OOM-killer switch have no v2 file: dropped with dockerd's warnings.
dev=$(printf '%d:%d' "0x$(stat -c %t /dev/vda)" "0x$(stat -c %T /dev/vda)")
bid=$(b run -d --device-read-bps /dev/vda:1mb --memory-swappiness 10 --oom-kill-disable busybox sleep 300 2>"$tmp/warn")
bfid=$(full_id "$bid")
grep -q "^$dev rbps=1048576 " "$(cg "$bfid")/io.max" || fail "io.max: $(cat "$(cg "$bfid")/io.max")"
grep -q "Memory swappiness discarded" "$tmp/warn" || fail "no swappiness warning: $(cat "$tmp/warn")"
grep -q "OomKillDisable discarded" "$tmp/warn" || fail "no OomKillDisable warning: $(cat "$tmp/warn")"
ok "--device-read-bps /dev/vda:1mb: io.max '$dev rbps=1048576'; swappiness and --oom-kill-disable dropped with dockerd's warnings"
b rm -f "$bfid" >/dev/null

# stats from the v2 files.
stats=$(b stats --no-stream --format '{{.MemUsage}} {{.PIDs}}' "$id")
case "$stats" in *"/ 96MiB 1") ;; *) fail "stats: $stats" ;; esac
ok "stats read memory.current/memory.max and pids.current: $stats"

# pause freezes the cgroup; unpause thaws it.
b pause "$id" >/dev/null
[ "$(cat "$(cg "$fid")/cgroup.freeze")" = 1 ] || fail "cgroup.freeze not 1"
grep -q '^frozen 1$' "$(cg "$fid")/cgroup.events" || fail "cgroup.events not frozen"
state=$(awk '{print $3}' "/proc/$(b inspect -f '{{.State.Pid}}' "$id")/stat")
b unpause "$id" >/dev/null
grep -q '^frozen 0$' "$(cg "$fid")/cgroup.events" || fail "not thawed"
[ "$(b exec "$id" echo alive)" = alive ] || fail "exec after unpause"
ok "pause: cgroup.freeze 1 and frozen 1 (the process in state $state); unpause thaws it"

# cgroup namespaces: private by default on v2, host when asked.
[ "$(b exec "$id" cat /proc/self/cgroup)" = "0::/" ] || fail "private cgroupns: $(b exec "$id" cat /proc/self/cgroup)"
out=$(b run --rm --cgroupns host busybox cat /proc/self/cgroup)
case "$out" in "0::/$parent/"*) ;; *) fail "--cgroupns host: $out" ;; esac
ok "cgroupns private by default (0::/ inside), --cgroupns host shows $out"
b rm -f "$id" >/dev/null

# Nesting: a privileged container manages its own subtree, as systemd in a container does:
# it moves itself into a child cgroup, delegates the memory controller and limits a child.
out=$(b run --rm --privileged busybox sh -c '
    set -e
    mkdir /sys/fs/cgroup/init /sys/fs/cgroup/svc
    echo $$ > /sys/fs/cgroup/init/cgroup.procs
    echo +memory +pids > /sys/fs/cgroup/cgroup.subtree_control
    echo 16777216 > /sys/fs/cgroup/svc/memory.max
    sh -c "echo \$\$ > /sys/fs/cgroup/svc/cgroup.procs; tail /dev/zero" || echo "svc exit $?"
    grep oom_kill /sys/fs/cgroup/svc/memory.events')
case "$out" in *"svc exit 137"*"oom_kill 1"*) ;; *) fail "nesting: $out" ;; esac
ok "nesting: a privileged container delegates memory to a child cgroup it made, whose limit bites ($(echo "$out" | tr '\n' ' '))"

# The shims live outside berthd's (service) cgroup, so stopping the service keeps them.
id=$(b run -d busybox sleep 300)
shim_cg=$(for p in $(pgrep -f berth-shim); do cut -d: -f3 "/proc/$p/cgroup"; done | sort -u)
[ "$shim_cg" = "/$parent/shims" ] || fail "shims in $shim_cg"
ok "shims run in /$parent/shims, not in berthd's /berthd.service"
b rm -f "$id" >/dev/null
echo "all cgroup v2 checks passed"
