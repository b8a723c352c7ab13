#!/usr/bin/env bash
# `tagwarden run --once` on a monorepo: P ImageRepositories + P ImagePolicies
# (one registry, 1,000 tags each) and one automation over a Git repository
# of N files, P of them marked (one policy each), every marker behind. Against
# a script doing the same job with curl and the git CLI: fetch the P lists
# (one curl, kept alive), pick each newest with sort -V, clone, sed the P
# files, commit, push. Same registry, same repository (reset between runs,
# outside the timing). Median of RUNS. UPDATE_PATH ./apps (where the marked
# files are) lets the clone check out only them; ./ checks out all N. Also
# prints our set+commit step alone (from the -v log: checkout done to commit
# done) against the script's sed loop + git commit -a.
# Usage: bench/run-once-monorepo.sh [P] [N] [RUNS] [UPDATE_PATH]
set -euo pipefail
cd "$(dirname "$0")/.."
p=${1:-1000}
n=${2:-10000}
runs=${3:-3}
update_path=${4:-./}
work=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
source bench/lib.sh

target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p tagwarden
cargo build --release -q -p tagwarden-testkit --example serve-registry
bin=$PWD/$target/release/tagwarden
coproc REG { exec "$target/release/examples/serve-registry" 1000 "$p"; }
read -r host repo <&"${REG[0]}"
bench_git_home "$work"

python3 bench/gen-tree.py "$work/seed/plain" "$((n - p))" 0 >/dev/null
mkdir -p "$work/seed/apps"
for i in $(seq "$p"); do
  printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app-%d}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: %s/%s-%d:0.0.0 # {"$imagepolicy": "flux-system:r%d"}\n' \
    "$i" "$host" "$repo" "$i" "$i" > "$work/seed/apps/app-$i.yaml"
done
git init -q --bare "$work/pristine.git"
(cd "$work/seed" && git init -q && git add -A && git commit -qm seed && git push -q "$work/pristine.git" HEAD:main)

{
  cat <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: mono, namespace: flux-system}
spec: {interval: 1h, ref: {branch: main}, url: "file://$work/repo.git"}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: mono, namespace: flux-system}
spec:
  interval: 1h
  sourceRef: {kind: GitRepository, name: mono}
  git: {checkout: {ref: {branch: main}}, commit: {author: {name: bot, email: bot@example.com}}, push: {branch: main}}
  update: {path: "$update_path", strategy: Setters}
YAML
  for i in $(seq "$p"); do
    printf -- '---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: r%d, namespace: flux-system}\nspec: {image: "%s/%s-%d", interval: 1h}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: r%d, namespace: flux-system}\nspec: {imageRepositoryRef: {name: r%d}, policy: {semver: {range: ">=0.0.0"}}}\n' \
      "$i" "$host" "$repo" "$i" "$i" "$i"
  done
} > "$work/flux.yaml"
for i in $(seq "$p"); do
  printf 'url = "http://%s/v2/%s-%d/tags/list?n=1000"\noutput = %s/lists/%d\n' "$host" "$repo" "$i" "$work" "$i"
done > "$work/curl.cfg"

reset_repo() { rm -rf "$work/repo.git" "$work/clone" "$work/lists"; cp -r "$work/pristine.git" "$work/repo.git"; mkdir -p "$work/lists"; }
check() {
  local got
  got=$(git -C "$work/repo.git" show "main:apps/app-$p.yaml" | grep -c "0.9.99 #" || true)
  [ "$got" = 1 ] || { echo "the run did not push the update" >&2; exit 1; }
}
ours() {
  reset_repo
  "$bin" run --once -v -f "$work/flux.yaml" >/dev/null 2>"$work/ours.log"
  check
  # ms since the automation started, at checkout and at commit
  awk '/DEBUG/ && / checked out / && /ms=/ {sub(/.*ms=/, ""); c=$1} /DEBUG/ && / committed/ && /ms=/ {sub(/.*ms=/, ""); print $1 - c}' \
    "$work/ours.log" >> "$work/ours-commit.ms"
}
script() {
  reset_repo
  curl -sf -K "$work/curl.cfg"
  git clone -q "$work/repo.git" "$work/clone" 2>/dev/null
  local t0 t1
  t0=$(date +%s%N)
  for i in $(seq "$p"); do
    newest=$(tr -d '{}[]"' < "$work/lists/$i" | tr ',' '\n' | grep -E '^[0-9]' | sort -V | tail -1)
    sed -i "s|$repo-$i:[^ ]* #|$repo-$i:$newest #|" "$work/clone/apps/app-$i.yaml"
  done
  git -C "$work/clone" commit -qam "update images"
  t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )) >> "$work/script-commit.ms"
  git -C "$work/clone" push -q origin HEAD:main
  check
}
t=$(median_ms ours); s=$(median_ms script)
med() { sort -n "$1" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
printf 'run --once, %s policies, %s-file repository, update.path %s: tagwarden %s ms, curl + sort -V + git script %s ms, ratio %.2f (goal <= 1.0)\n' \
  "$p" "$n" "$update_path" "$t" "$s" "$(echo "$t / $s" | bc -l)"
printf 'set + commit of %s files: tagwarden %s ms, sed loop + git commit -a %s ms (goal <= 500 ms)\n' \
  "$p" "$(med "$work/ours-commit.ms")" "$(med "$work/script-commit.ms")"
