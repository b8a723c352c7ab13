#!/usr/bin/env bash
# `tagwarden run --once` over R ImageRepositories and R ImagePolicies (one
# registry, a repository of N tags) against a sequential curl loop fetching
# the same R tag lists, same run. Scans overlap now (at most 4 requests in
# flight per registry host, 32 objects at once).
# Usage: bench/run-once-scans.sh [RUNS] [R] [N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
repos=${2:-1000}
tags=${3:-1000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
source bench/lib.sh

cargo build --release -q -p tagwarden
cargo build --release -q -p tagwarden-testkit --example serve-registry
bin=$PWD/target/release/tagwarden
coproc REG { exec target/release/examples/serve-registry "$tags"; }
read -r host repo <&"${REG[0]}"
for i in $(seq "$repos"); do
  cat <<YAML
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: r$i, namespace: flux-system}
spec: {image: "$host/$repo", interval: 1h}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: r$i, namespace: flux-system}
spec: {imageRepositoryRef: {name: r$i}, policy: {semver: {range: ">=0.0.0"}}}
YAML
done > "$work/flux.yaml"
tagwarden_run() { "$bin" run --once -f "$work/flux.yaml" >/dev/null 2>&1; }
curl_loop() { for _ in $(seq "$repos"); do curl -sf "http://$host/v2/$repo/tags/list?n=1000" >/dev/null; done; }
t=$(median_ms tagwarden_run); c=$(median_ms curl_loop)
printf 'run --once, %s repositories + policies x %s tags: tagwarden %s ms, sequential curl %s ms, ratio %.2f\n' \
  "$repos" "$tags" "$t" "$c" "$(echo "$t / $c" | bc -l)"
