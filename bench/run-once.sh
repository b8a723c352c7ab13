#!/usr/bin/env bash
# Wall time of `tagwarden run --once` making one change (scan, select,
# clone, set the marker, commit, push) against a shell script doing the
# same change with the git CLI (clone, sed, commit, push), same repository,
# same run. The repository is reset between runs and outside the timing.
# Usage: bench/run-once.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p tagwarden
cargo build --release -q -p tagwarden-testkit --example serve-registry
bin=$PWD/target/release/tagwarden
# The registry serves until its stdin closes, which happens when this script exits.
coproc REG { exec target/release/examples/serve-registry 50; }
read -r host repo <&"${REG[0]}"

source bench/lib.sh
bench_git_home "$work"

# A pristine repository with one marked Deployment.
git init -q --bare "$work/pristine.git"
git clone -q "$work/pristine.git" "$work/seed" 2>/dev/null
mkdir -p "$work/seed/clusters/my-cluster"
cat > "$work/seed/clusters/my-cluster/podinfo-deployment.yaml" <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
  namespace: default
spec:
  template:
    spec:
      containers:
      - name: podinfod
        image: $host/$repo:0.0.0 # {"\$imagepolicy": "flux-system:podinfo"}
YAML
(cd "$work/seed" && git add -A && git commit -qm seed && git push -q origin HEAD:main)
newest=$(curl -sf "http://$host/v2/$repo/tags/list" | tr -d '{}[]"' | tr ',' '\n' | grep -E '^[0-9]' | sort -V | tail -1)

cat > "$work/flux.yaml" <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec: {interval: 1m0s, ref: {branch: main}, url: "file://$work/repo.git"}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: podinfo, namespace: flux-system}
spec: {image: "$host/$repo", interval: 1m0s}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: podinfo, namespace: flux-system}
spec: {imageRepositoryRef: {name: podinfo}, policy: {semver: {range: ">=0.0.0"}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: flux-system, namespace: flux-system}
spec:
  interval: 1m0s
  sourceRef: {kind: GitRepository, name: flux-system}
  git:
    checkout: {ref: {branch: main}}
    commit: {author: {name: fluxcdbot, email: fluxcdbot@users.noreply.github.com}}
    push: {branch: main}
  update: {path: ./clusters/my-cluster, strategy: Setters}
YAML

reset() { rm -rf "$work/repo.git" "$work/clone"; cp -a "$work/pristine.git" "$work/repo.git"; }
ours() { "$bin" run --once -f "$work/flux.yaml" >/dev/null; }
baseline() {
  git clone -q "$work/repo.git" "$work/clone"
  sed -i "s|$repo:0.0.0 #|$repo:$newest #|" "$work/clone/clusters/my-cluster/podinfo-deployment.yaml"
  git -C "$work/clone" commit -qam "Update from image update automation"
  git -C "$work/clone" push -q origin HEAD:main
}
check() { git -C "$work/repo.git" show main:clusters/my-cluster/podinfo-deployment.yaml | grep -q "$repo:$newest #"; }

median_reset_ms() {
  local f=$1 t0 t1
  for _ in $(seq "$runs"); do
    reset
    t0=$(date +%s%N); "$f"; t1=$(date +%s%N)
    check || { echo "$f did not make the change" >&2; exit 1; }
    echo $(( (t1 - t0) / 1000 ))
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}

ours_ms=$(median_reset_ms ours)
base_ms=$(median_reset_ms baseline)
echo "runs: $runs (median wall time, one change to $newest each run)"
echo "tagwarden run --once (scan+select+clone+set+commit+push): ${ours_ms} ms"
echo "git clone + sed + commit + push:                         ${base_ms} ms"
awk -v a="$ours_ms" -v b="$base_ms" 'BEGIN {printf "ratio tagwarden/git CLI: %.3f (goal <= 1.5)\n", a/b}'
