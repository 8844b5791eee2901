#!/bin/sh
# The CRI's hugepage limits for real: runs inside the v2vm guest (pure cgroup v2 with the
# hugetlb controller enabled; these hosts leave it unmounted), started by tests/vm/run.
# A pod's container asking 4 MiB of 2 MB pages has hugetlb.2MB.max 4194304 in its cgroup;
# one asking nothing (the kubelet's zeros) keeps "max"; a page size that is not digits and
# a unit is refused at create. Prints one line per check; exits non-zero on the first failure.
set -eu
bin=${BERTH_BIN_DIR:-target/debug}
fail() { echo "FAIL: $*"; exit 1; }
ok() { echo "ok: $*"; echo "ok: $*" >>"${BERTH_VM_PROGRESS:-/dev/null}"; }

grep -qw hugetlb /sys/fs/cgroup/cgroup.controllers || fail "no hugetlb controller in the guest"
tmp=$(mktemp -d /tmp/berth-hugetlb.XXXXXX)
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
printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\ntimeout: 60\n' "$tmp/cri.sock" "$tmp/cri.sock" >"$tmp/crictl.yaml"
crictl() { target/vm/crictl --config "$tmp/crictl.yaml" "$@"; }
printf '{"metadata": {"name": "huge", "namespace": "n", "uid": "u-huge"}, "linux": {}}' >"$tmp/pod.json"
pod=$(crictl runp "$tmp/pod.json") || fail "CRI: RunPodSandbox"
run_with() { # NAME HUGEPAGE_LIMITS_JSON: runs container NAME, prints its hugetlb.2MB.max
    printf '{"metadata": {"name": "%s"}, "image": {"image": "busybox:latest"}, "command": ["sleep", "600"], "linux": {"resources": {"hugepage_limits": %s}}}' \
        "$1" "$2" >"$tmp/$1.json"
    cid=$(crictl create "$pod" "$tmp/$1.json" "$tmp/pod.json" 2>"$tmp/err") || { cat "$tmp/err"; return 1; }
    crictl start "$cid" >/dev/null || return 1
    pid=$(b inspect -f '{{.State.Pid}}' "$cid")
    cat "/sys/fs/cgroup$(cut -d: -f3 "/proc/$pid/cgroup")/hugetlb.2MB.max"
}
out=$(run_with asked '[{"page_size": "2MB", "limit": 4194304}]') || fail "CRI: $out"
[ "$out" = 4194304 ] || fail "hugetlb.2MB.max: $out"
ok "CRI: a container asking 4 MiB of 2MB pages has hugetlb.2MB.max $out"
out=$(run_with zeros '[{"page_size": "2MB", "limit": 0}, {"page_size": "1GB", "limit": 0}]') || fail "CRI: $out"
[ "$out" = max ] || fail "zeros: hugetlb.2MB.max $out"
ok "CRI: zeros only (the kubelet's for sizes not asked) leave hugetlb.2MB.max $out"
if out=$(run_with bad '[{"page_size": "../2MB", "limit": 1}]'); then
    fail "CRI: a page size ../2MB was accepted: $out"
fi
case "$out" in *"invalid hugepage size"*) ;; *) fail "CRI: unclear refusal: $out" ;; esac
ok "CRI: a page size ../2MB is refused at create: $out"
crictl stopp "$pod" >/dev/null && crictl rmp "$pod" >/dev/null || fail "CRI: pod removal"
echo "all hugetlb checks passed"
