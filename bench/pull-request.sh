#!/usr/bin/env bash
# What pull-request mode costs per run: `tagwarden run --once` with
# `tagwarden.io/pull-request: "true"` after the base branch moved (clone,
# set the marker, rebuild the head branch, push it under a lease, find the
# open PR, nothing to rewrite), against a shell script doing the same with
# the git CLI and curl (clone, sed, commit, push --force-with-lease, GET the
# PR). Same GitHub stand-in over smart HTTP, same run. The base is moved
# outside the timing before every run.
# Usage: bench/pull-request.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-15}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p tagwarden
cargo build --release -q -p tagwarden-testkit --example serve-github
bin=$PWD/target/release/tagwarden
coproc GH { exec target/release/examples/serve-github; }
read -r reg git_url api bare <&"${GH[0]}"
export GIT_CONFIG_NOSYSTEM=1 HOME=$work
git config --global user.name bench && git config --global user.email bench@example.com
auth_url=${git_url/http:\/\//http://git:bench-token@}

cat > "$work/flux.yaml" <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: flux-system, namespace: flux-system}
spec: {interval: 1h, ref: {branch: main}, url: "$git_url", secretRef: {name: forge-token}}
---
apiVersion: v1
kind: Secret
metadata: {name: forge-token, namespace: flux-system}
stringData: {username: git, password: bench-token}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: web, namespace: flux-system}
spec: {image: "$reg/team/web", interval: 1h}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: web, namespace: flux-system}
spec: {imageRepositoryRef: {name: web}, policy: {semver: {range: ">=1.0.0"}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata:
  name: apps
  namespace: flux-system
  annotations:
    tagwarden.io/pull-request: "true"
    tagwarden.io/forge: github
    tagwarden.io/forge-api-url: "$api"
spec:
  interval: 1h
  sourceRef: {kind: GitRepository, name: flux-system}
  git:
    checkout: {ref: {branch: main}}
    commit: {author: {name: bench, email: bench@example.com}}
  update: {path: ./apps, strategy: Setters}
YAML

git clone -q "$bare" "$work/mover"
move_main() {
  echo "$RANDOM" >> "$work/mover/README"
  git -C "$work/mover" commit -qam move && git -C "$work/mover" push -q origin HEAD:main
}
tagwarden_run() { "$bin" run --once -f "$work/flux.yaml" >/dev/null 2>&1; }
script_run() {
  rm -rf "$work/c"
  git clone -q -b main "$auth_url" "$work/c"
  sed -i "s|$reg/team/web:1.0.0|$reg/team/web:1.1.0|" "$work/c/apps/web.yaml"
  git -C "$work/c" commit -qam "Update web"
  old=$(git -C "$work/c" ls-remote origin refs/heads/tagwarden/apps | cut -f1)
  git -C "$work/c" push -q --force-with-lease="refs/heads/tagwarden/apps:$old" origin HEAD:refs/heads/tagwarden/apps
  curl -sf -H "Authorization: Bearer bench-token" -H "User-Agent: bench" \
    "$api/repos/org/repo/pulls?state=open&head=org:tagwarden/apps&base=main" >/dev/null
}
"$bin" run --once -f "$work/flux.yaml" | grep -q "pull request #1 opened"  # setup; fails loudly
median() {
  local f=$1 t0 t1
  for _ in $(seq "$runs"); do
    move_main
    t0=$(date +%s%N); "$f"; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}
t=$(median tagwarden_run); s=$(median script_run)
printf 'pull-request run after the base moved: tagwarden %s ms, git CLI + curl %s ms, ratio %.2f\n' \
  "$t" "$s" "$(echo "$t / $s" | bc -l)"
"$bin" run --once -f "$work/flux.yaml" | grep -q "pull request #1" && echo "still one pull request"
