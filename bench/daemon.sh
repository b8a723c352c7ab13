#!/usr/bin/env bash
# The daemon, measured: (1) latency from a webhook POST to the pushed commit
# on loopback (median of RUNS; goal < 1 s), (2) peak RSS while holding
# N_REPOS ImageRepositories x N_TAGS tags (goal < 30 MB).
# Usage: bench/daemon.sh [RUNS] [N_REPOS] [N_TAGS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
n_repos=${2:-1000}
n_tags=${3:-1000}
work=$(mktemp -d)
daemon_pid=""
# The registry serves until its stdin closes: close it before waiting, or
# the wait never ends.
cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
  [ -n "${REG[1]:-}" ] && eval "exec ${REG[1]}>&-"
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
source bench/lib.sh

cargo build --release -q -p tagwarden
cargo build --release -q -p tagwarden-testkit --example serve-registry
bin=$PWD/target/release/tagwarden
coproc REG { exec target/release/examples/serve-registry "$n_tags"; }
read -r host repo <&"${REG[0]}"
bench_git_home "$work"
wait_ready() { for _ in $(seq 600); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 0.1; done; echo "daemon not ready" >&2; exit 1; }

# --- (1) webhook latency --------------------------------------------------
git init -q --bare "$work/repo.git"
git clone -q "$work/repo.git" "$work/seed" 2>/dev/null
mkdir -p "$work/seed/deploy"
echo "image: $host/$repo:0.0.0 # {\"\$imagepolicy\": \"flux-system:app\"}" > "$work/seed/deploy/app.yaml"
(cd "$work/seed" && git add -A && git commit -qm seed && git push -q origin HEAD:main)
mkdir -p "$work/flux"
cat > "$work/flux/app.yaml" <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: repo, namespace: flux-system}
spec: {interval: 1h, ref: {branch: main}, url: "file://$work/repo.git"}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageRepository
metadata: {name: app, namespace: flux-system}
spec: {image: "$host/$repo", interval: 1h}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImagePolicy
metadata: {name: app, namespace: flux-system}
spec: {imageRepositoryRef: {name: app}, policy: {semver: {range: ">=0.0.0"}}}
---
apiVersion: image.toolkit.fluxcd.io/v1
kind: ImageUpdateAutomation
metadata: {name: app, namespace: flux-system}
spec:
  interval: 1h
  sourceRef: {kind: GitRepository, name: repo}
  git: {checkout: {ref: {branch: main}}, commit: {author: {name: bot, email: bot@example.com}}, push: {branch: main}}
  update: {path: ./deploy, strategy: Setters}
---
apiVersion: notification.toolkit.fluxcd.io/v1
kind: Receiver
metadata: {name: hook, namespace: flux-system}
spec: {type: generic, secretRef: {name: hook-token}, resources: [{kind: ImageRepository, name: app}]}
---
apiVersion: v1
kind: Secret
metadata: {name: hook-token, namespace: flux-system}
stringData: {token: bench-token}
YAML
hook=/hook/$(printf '%s' "bench-tokenhookflux-system" | sha256sum | cut -d' ' -f1)
port=$(free_port)
"$bin" run -f "$work/flux" --state-dir "$work/state1" --listen "127.0.0.1:$port" 2>"$work/daemon1.log" &
daemon_pid=$!
wait_ready "$port"
manifest=$(curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$host/v2/$repo/manifests/0.0.0")
latencies=""
for i in $(seq "$runs"); do
  tag="9.0.$i"
  curl -sf -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' \
    --data-binary "$manifest" "http://$host/v2/$repo/manifests/$tag" >/dev/null
  t0=$(date +%s%N)
  curl -sf -X POST "http://127.0.0.1:$port$hook" >/dev/null
  n=0; until git -C "$work/repo.git" show main:deploy/app.yaml 2>/dev/null | grep -q "$repo:$tag #"; do sleep 0.005; n=$((n+1)); [ $n -lt 2000 ] || { echo "no commit for $tag; daemon log:" >&2; tail -20 "$work/daemon1.log" >&2; exit 1; }; done
  t1=$(date +%s%N)
  latencies="$latencies $(( (t1 - t0) / 1000 ))"
done
kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
median=$(echo $latencies | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}')
echo "webhook POST -> pushed commit: median ${median} ms over $runs runs (goal < 1000 ms)"

# --- (2) memory with many repositories -----------------------------------
mkdir -p "$work/many"
for i in $(seq "$n_repos"); do
  printf -- "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: app-%d, namespace: flux-system}\nspec: {image: \"%s/%s\", interval: 1h}\n" "$i" "$host" "$repo"
done > "$work/many/repos.yaml"
port=$(free_port)
"$bin" run -f "$work/many" --state-dir "$work/state2" --listen "127.0.0.1:$port" 2>/dev/null &
daemon_pid=$!
t0=$(date +%s%N)
wait_ready "$port"
t1=$(date +%s%N)
sleep 1
hwm=$(awk '/VmHWM/ {print $2}' "/proc/$daemon_pid/status")
scans=$(curl -sf "http://127.0.0.1:$port/metrics" | awk -F' ' '/^tagwarden_reconcile_total\{kind="ImageRepository",result="success"\}/ {print $2}')
kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
echo "$n_repos ImageRepositories x $n_tags tags: $scans scans in $(( (t1 - t0) / 1000000 )) ms, peak RSS $((hwm / 1024)) MiB (goal < 30 MB)"
