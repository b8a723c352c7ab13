#!/usr/bin/env bash
# Wall time and peak memory of `tagwarden scan` against `skopeo list-tags`
# (Debian's skopeo) and a raw `curl` of the tag list, same registry (Debian's
# docker-registry on 127.0.0.1), same run.
# Usage: bench/scan.sh [N_TAGS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-20000}
runs=${2:-9}
command -v skopeo >/dev/null || { echo "needs skopeo: sudo apt-get install skopeo" >&2; exit 1; }

cargo build --release -q -p tagwarden
cargo build --release -q -p tagwarden-testkit --example serve-registry
bin=target/release/tagwarden
# The registry serves until its stdin closes, which happens when this script exits.
coproc REG { exec target/release/examples/serve-registry "$n"; }
read -r host repo <&"${REG[0]}"

ours() { "$bin" scan "$host/$repo" --insecure --exclude '^$' >/dev/null 2>&1; }
skopeo_() { skopeo list-tags --tls-verify=false "docker://$host/$repo" >/dev/null; }
curl_() { curl -sf "http://$host/v2/$repo/tags/list?n=$((n + 1))" -o /dev/null; }

source bench/lib.sh

count=$("$bin" scan "$host/$repo" --insecure --exclude '^$' 2>/dev/null | wc -l)
ours_ms=$(median_ms ours)
skopeo_ms=$(median_ms skopeo_)
curl_ms=$(median_ms curl_)
ours_kb=$(peak_kb "$bin" scan "$host/$repo" --insecure --exclude '^$')
skopeo_kb=$(peak_kb skopeo list-tags --tls-verify=false "docker://$host/$repo")

echo "tags: $count  runs: $runs (median wall time)"
echo "tagwarden scan:    ${ours_ms} ms, peak RSS ${ours_kb} KiB"
echo "skopeo list-tags:  ${skopeo_ms} ms, peak RSS ${skopeo_kb} KiB"
echo "curl tags/list:    ${curl_ms} ms"
awk -v a="$ours_ms" -v s="$skopeo_ms" -v c="$curl_ms" 'BEGIN {
  printf "ratio tagwarden/skopeo: %.3f (goal <= 0.8)\n", a/s
  printf "ratio tagwarden/curl:   %.3f (goal <= 1.2)\n", a/c }'
