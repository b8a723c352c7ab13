#!/usr/bin/env bash
# The daemon at scale: N ImageRepositories (each its own image, N_TAGS tags)
# on one registry host. Measures, in one run:
#  - the first full pass (start -> /readyz) against one curl process fetching
#    the same N lists one after another over a kept-alive connection;
#  - CPU per scan (first pass, and the later passes);
#  - RSS after each of PASSES passes (interval INTERVAL);
#  - the store file against the raw tag bytes.
# Usage: bench/daemon-scale.sh [N] [N_TAGS] [PASSES] [INTERVAL]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000}
n_tags=${2:-1000}
passes=${3:-3}
interval=${4:-60s}
work=$(mktemp -d)
daemon_pid=""
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
  [ -n "${REG[1]:-}" ] && eval "exec ${REG[1]}>&-"
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
source bench/lib.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p tagwarden
cargo build --release -q -p tagwarden-testkit --example serve-registry
bin=$target/release/tagwarden
coproc REG { exec "$target/release/examples/serve-registry" "$n_tags" "$n"; }
read -r host repo <&"${REG[0]}"
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
scans() {
  curl -sf "http://127.0.0.1:$port/metrics" |
    awk '/^tagwarden_reconcile_total\{kind="ImageRepository",result="success"\}/ {print $2}'
}

# Baselines: every list once, (1) one curl process over one kept-alive
# connection, (2) one curl process per list, as a shell loop does. The
# registry's own CPU in (1) is the floor: on this machine it is most of it.
reg_pid=$(pgrep -n -f "docker-registry serve" || true)
for i in $(seq "$n"); do
  printf 'url = "http://%s/v2/%s-%d/tags/list?n=%d"\noutput = /dev/null\n' "$host" "$repo" "$i" "$n_tags"
done > "$work/curl.cfg"
r0=$([ -n "$reg_pid" ] && cpu_ms "$reg_pid" || echo 0)
t0=$(date +%s%N); curl -sf -K "$work/curl.cfg"; t1=$(date +%s%N)
r1=$([ -n "$reg_pid" ] && cpu_ms "$reg_pid" || echo 0)
curl_ms=$(( (t1 - t0) / 1000000 ))
t0=$(date +%s%N)
for i in $(seq "$n"); do curl -sf "http://$host/v2/$repo-$i/tags/list?n=$n_tags" >/dev/null; done
t1=$(date +%s%N)
loop_ms=$(( (t1 - t0) / 1000000 ))
raw=$(curl -sf "http://$host/v2/$repo/tags/list?n=$n_tags" | python3 -c 'import json,sys; t=json.load(sys.stdin)["tags"]; print(len("\n".join(t)))')

mkdir -p "$work/flux"
for i in $(seq "$n"); do
  printf -- "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: app-%d, namespace: flux-system}\nspec: {image: \"%s/%s-%d\", interval: %s}\n" "$i" "$host" "$repo" "$i" "$interval"
done > "$work/flux/repos.yaml"
port=$(free_port)
t0=$(date +%s%N)
"$bin" run -f "$work/flux" --state-dir "$work/state" --listen "127.0.0.1:$port" 2>"$work/daemon.log" &
daemon_pid=$!
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
  kill -0 "$daemon_pid" || { tail "$work/daemon.log"; exit 1; }
  sleep 0.05
done
t1=$(date +%s%N)
first_ms=$(( (t1 - t0) / 1000000 ))
cpu1=$(cpu_ms "$daemon_pid")
rss="$(( $(rss_kb "$daemon_pid") / 1024 ))"
for p in $(seq 2 "$passes"); do
  until [ "$(scans)" -ge $((p * n)) ]; do sleep 0.2; done
  rss="$rss $(( $(rss_kb "$daemon_pid") / 1024 ))"
done
cpu_all=$(cpu_ms "$daemon_pid")
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon_pid/status")
live_kb=$(du -k "$work/state/state.redb" | cut -f1)
kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
store_kb=$(du -k "$work/state/state.redb" | cut -f1)

echo "$n repositories x $n_tags tags, $passes passes, interval $interval"
awk -v a="$first_ms" -v b="$curl_ms" -v c="$loop_ms" -v r="$((r1 - r0))" -v n="$n" 'BEGIN {
  printf "first pass: tagwarden %d ms; one curl, kept-alive: %d ms (ratio %.2f); a curl per list: %d ms (ratio %.2f; goal <= 0.5)\n", a, b, a/b, c, a/c
  printf "registry CPU per list (kept-alive curl): %.2f ms, so on 2 cores no client can list them all in under %d ms (ratio %.2f)\n", r/n, r/2, r/2/b }'
awk -v c="$cpu1" -v n="$n" 'BEGIN {printf "CPU per scan, first pass: %.2f ms\n", c/n}'
[ "$passes" -gt 1 ] && awk -v c="$((cpu_all - cpu1))" -v n="$(( n * (passes - 1) ))" 'BEGIN {printf "CPU per scan, later passes: %.2f ms (goal <= 2)\n", c/n}'
echo "RSS after each pass (MiB): $rss; peak $((hwm / 1024)) MiB (goal < 64, flat)"
awk -v s="$store_kb" -v l="$live_kb" -v r="$raw" -v n="$n" 'BEGIN {printf "store file: %.1f MiB after stop (%.1f MiB while running) for %.1f MiB of raw tags, ratio %.2f (goal <= 0.5)\n", s/1024, l/1024, r*n/1048576, s*1024/(r*n)}'
