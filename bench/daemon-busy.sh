#!/usr/bin/env bash
# A webhook while the daemon is saturated: SLOW ImageRepositories (each with
# a policy, all applied by the one automation) on a registry that answers
# every request DELAY_MS late, plus one fast repository with a Receiver.
# Measures, in one run:
#  - webhook POST -> pushed commit while the slow scans are in flight (median
#    of RUNS; goal < 1 s), against the same on an idle daemon (no slow ones);
#  - the daemon's CPU while it waits on the slow registry (goal ~0%).
# Usage: bench/daemon-busy.sh [RUNS] [SLOW] [DELAY_MS] [INTERVAL]
# INTERVAL (default 30s) is the slow repositories'; their scans then take
# longer than it, so the daemon stays saturated.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
slow=${2:-200}
delay=${3:-2000}
interval=${4:-30s}
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
coproc REG { exec "$target/release/examples/serve-registry" 100 "$slow" "$delay"; }
read -r host repo slow_host <&"${REG[0]}"
bench_git_home "$work"
manifest=$(curl -sf -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' "http://$host/v2/$repo/manifests/0.0.0")

# One daemon over N slow repositories; prints the median latency in ms.
latency() {
  local n=$1 dir=$work/case-$1 tag i t0 t1 latencies="" port
  mkdir -p "$dir/flux"
  git init -q --bare "$dir/repo.git"
  git clone -q "$dir/repo.git" "$dir/seed" 2>/dev/null
  mkdir -p "$dir/seed/deploy"
  echo "image: $host/$repo:0.0.0 # {\"\$imagepolicy\": \"flux-system:app\"}" > "$dir/seed/deploy/app.yaml"
  (cd "$dir/seed" && git add -A && git commit -qm seed && git push -q origin HEAD:main)
  cat > "$dir/flux/app.yaml" <<YAML
apiVersion: source.toolkit.fluxcd.io/v1
kind: GitRepository
metadata: {name: repo, namespace: flux-system}
spec: {interval: 1h, ref: {branch: main}, url: "file://$dir/repo.git"}
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
  for i in $(seq "$n"); do
    printf -- "---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImageRepository\nmetadata: {name: slow-%d, namespace: flux-system}\nspec: {image: \"%s/%s-%d\", interval: %s, timeout: 60s}\n---\napiVersion: image.toolkit.fluxcd.io/v1\nkind: ImagePolicy\nmetadata: {name: slow-%d, namespace: flux-system}\nspec: {imageRepositoryRef: {name: slow-%d}, policy: {semver: {range: \">=0.0.0\"}}}\n" \
      "$i" "$slow_host" "$repo" "$i" "$interval" "$i" "$i"
  done > "$dir/flux/slow.yaml"
  hook=/hook/$(printf '%s' "bench-tokenhookflux-system" | sha256sum | cut -d' ' -f1)
  port=$(free_port)
  "$bin" run -f "$dir/flux" --state-dir "$dir/state" --listen "127.0.0.1:$port" 2>"$dir/daemon.log" &
  daemon_pid=$!
  # The first pass with the slow registry fast (an automation needs every
  # policy Ready), then every later scan of it slow: on its interval, its
  # scans fill their host's budget from then on.
  echo fast >&"${REG[1]}"
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do sleep 0.05; done
  echo slow >&"${REG[1]}"
  if [ "$n" -gt 0 ]; then
    until [ "$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^tagwarden_reconcile_total\{kind="ImageRepository",result="success"\}/ {print $2}')" -gt "$((n + 1))" ]; do sleep 0.2; done
  fi
  sleep 2
  c0=$(cpu_ms "$daemon_pid"); sleep 5; c1=$(cpu_ms "$daemon_pid")
  echo "$(( (c1 - c0) / 50 ))" > "$dir/cpu"
  for i in $(seq "$runs"); do
    tag="9.$n.$i"
    curl -sf -X PUT -H 'Content-Type: application/vnd.docker.distribution.manifest.v2+json' \
      --data-binary "$manifest" "http://$host/v2/$repo/manifests/$tag" >/dev/null
    t0=$(date +%s%N)
    curl -sf -X POST "http://127.0.0.1:$port$hook" >/dev/null
    local k=0
    until git -C "$dir/repo.git" show main:deploy/app.yaml 2>/dev/null | grep -q "$repo:$tag #"; do
      sleep 0.005; k=$((k+1))
      [ $k -lt 12000 ] || { echo "no commit for $tag within 60 s" >&2; tail -5 "$dir/daemon.log" >&2; exit 1; }
    done
    t1=$(date +%s%N)
    latencies="$latencies $(( (t1 - t0) / 1000 ))"
  done
  kill -TERM "$daemon_pid"; wait "$daemon_pid" || true; daemon_pid=""
  echo $latencies | tr ' ' '\n' | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}
idle=$(latency 0)
busy=$(latency "$slow")
echo "webhook POST -> pushed commit, median of $runs: idle ${idle} ms; with $slow scans of a ${delay} ms registry in flight ${busy} ms (goal < 1000 ms)"
echo "daemon CPU while waiting on the slow registry: $(cat "$work/case-$slow/cpu")% of a core (goal ~0)"
