#!/usr/bin/env bash
# The controller, measured against testkit's API server stand-in and the
# real docker-registry: peak RSS while it holds N_REPOS ImageRepositories x
# N_TAGS tags, each its own registry repository (goal < 64 MiB), and the time from Flux's reconcile annotation
# (what `flux reconcile image repository` sets) to the status saying it was
# handled (median of RUNS).
# Usage: bench/controller.sh [RUNS] [N_REPOS] [N_TAGS]
# With PASSES=K the repositories scan every INTERVAL (default 1m) and the
# RSS is printed after each of K more full passes (goal: flat).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
passes=${PASSES:-0}
interval=${INTERVAL:-$([ "$passes" -gt 0 ] && echo 1m || echo 1h)}
n_repos=${2:-1000}
n_tags=${3:-1000}
work=$(mktemp -d)
ctl_pid=""
cleanup() {
  [ -n "$ctl_pid" ] && kill "$ctl_pid" 2>/dev/null
  [ -n "${REG[1]:-}" ] && eval "exec ${REG[1]}>&-"
  exec 8>&- 2>/dev/null || true
  wait 2>/dev/null
  cp "$work/ctl.log" /tmp/ctl-last.log 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

source bench/lib.sh
cargo build --release -q -p tagwarden
cargo build --release -q -p tagwarden-testkit --example serve-registry --example serve-apiserver
bin=${BIN:-$PWD/target/release/tagwarden}
coproc REG { exec target/release/examples/serve-registry "$n_tags" "$n_repos"; }
read -r host repo <&"${REG[0]}"
# The API server serves until its stdin (a fifo held open here) closes.
mkfifo "$work/api.in"
target/release/examples/serve-apiserver "$work/kubeconfig" <"$work/api.in" >"$work/api.out" &
exec 8>"$work/api.in"
until [ -s "$work/api.out" ]; do sleep 0.05; done
read -r api <"$work/api.out"

python3 - "$api" "$host/$repo" "$n_repos" "$interval" <<'PY'
import json, sys, urllib.request
api, image, n, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
for i in range(n):
    body = {"apiVersion": "image.toolkit.fluxcd.io/v1", "kind": "ImageRepository",
            "metadata": {"name": f"app-{i}", "namespace": "flux-system"},
            "spec": {"image": f"{image}-{i + 1}", "interval": interval}}
    req = urllib.request.Request(f"{api}/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imagerepositories",
                                 data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    urllib.request.urlopen(req).read()
PY

scanned() {
  python3 - "$api" <<'PY'
import json, sys, urllib.request
api = sys.argv[1]
items = json.load(urllib.request.urlopen(f"{api}/apis/image.toolkit.fluxcd.io/v1/imagerepositories"))["items"]
print(sum(1 for i in items if i.get("status", {}).get("lastScanResult")))
PY
}

t0=$(date +%s%N)
"$bin" controller --kubeconfig "$work/kubeconfig" --storage-path "$work/data" \
  --metrics-addr 127.0.0.1:0 --health-addr 127.0.0.1:0 --log-encoding console 2>"$work/ctl.log" &
ctl_pid=$!
until [ "$(scanned)" -ge "$n_repos" ]; do
  sleep 0.2
  kill -0 "$ctl_pid" || { tail -20 "$work/ctl.log" >&2; exit 1; }
done
t1=$(date +%s%N)
sleep 1
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$ctl_pid/status")
echo "$n_repos ImageRepositories x $n_tags tags: all scanned and status applied in $(( (t1 - t0) / 1000000 )) ms, peak RSS $((hwm / 1024)) MiB, RSS now $(( $(awk '/VmRSS/ {print $2}' "/proc/$ctl_pid/status") / 1024 )) MiB, CPU $(cpu_ms "$ctl_pid") ms (goal < 64 MiB)"
# Anonymous memory (the heap) against file pages and threads, to tell growth from mapping.
grep -E '^(RssAnon|RssFile|RssShmem|Threads)' "/proc/$ctl_pid/status" | tr -s ' \t' ' ' | paste -sd ' ' >&2

median=$(python3 - "$api" "$runs" <<'PY'
import json, sys, time, urllib.request
api, runs = sys.argv[1], int(sys.argv[2])
url = f"{api}/apis/image.toolkit.fluxcd.io/v1/namespaces/flux-system/imagerepositories/app-1"
took = []
for i in range(runs):
    token = f"bench-{i}-{time.time_ns()}"
    patch = {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}
    t0 = time.perf_counter()
    urllib.request.urlopen(urllib.request.Request(url, data=json.dumps(patch).encode(), method="PATCH",
                           headers={"Content-Type": "application/merge-patch+json"})).read()
    while json.load(urllib.request.urlopen(url)).get("status", {}).get("lastHandledReconcileAt") != token:
        time.sleep(0.001)
    took.append((time.perf_counter() - t0) * 1000)
took.sort()
print(f"{took[(len(took) - 1) // 2]:.1f}")
PY
)
echo "annotation -> status.lastHandledReconcileAt: median ${median} ms over $runs runs"

# Every repository scanned again since the pass began, then the RSS.
for pass in $(seq 1 "$passes"); do
  since=$(date -u +%s)
  python3 - "$api" "$since" "$n_repos" <<'PY'
import datetime, json, sys, time, urllib.request
api, since, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def at(t):
    return datetime.datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc).timestamp()
while True:
    items = json.load(urllib.request.urlopen(f"{api}/apis/image.toolkit.fluxcd.io/v1/imagerepositories"))["items"]
    done = sum(1 for i in items if at(i.get("status", {}).get("lastScanResult", {}).get("scanTime", "1970-01-01T00:00:00Z")) >= since)
    if done >= n:
        break
    time.sleep(2)
PY
  echo "after pass $((pass + 1)): RSS $(( $(awk '/VmRSS/ {print $2}' "/proc/$ctl_pid/status") / 1024 )) MiB, peak $(( $(awk '/VmHWM/ {print $2}' "/proc/$ctl_pid/status") / 1024 )) MiB, CPU $(cpu_ms "$ctl_pid") ms"
done
