#!/usr/bin/env bash
# Wall time and peak memory of `tagwarden policy test` against the shell
# baseline `grep -E PATTERN tags | sort -V | tail -1`, same file, same run.
# Usage: bench/policy-test.sh [N_TAGS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
runs=${2:-15}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --release -q -p tagwarden
bin=target/release/tagwarden
python3 bench/gen-tags.py "$n" > "$work/tags"
pattern='^v?[0-9]+\.[0-9]+\.[0-9]+$'
range='>=1.0.0 <50.0.0'

ours() { "$bin" policy test --select-semver "$range" --filter-regex "$pattern" --tags "$work/tags" >/dev/null; }
baseline() { grep -E "$pattern" "$work/tags" | sort -V | tail -1 >/dev/null; }

# Median of RUNS wall times in milliseconds, after one warm-up run.
median_ms() {
  local f=$1 t0 t1
  "$f"
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N); "$f"; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}

ours_ms=$(median_ms ours)
base_ms=$(median_ms baseline)
peak_kb=$(/usr/bin/time -f %M "$bin" policy test --select-semver "$range" --filter-regex "$pattern" --tags "$work/tags" 2>&1 >/dev/null | tail -1)
sel=$("$bin" policy test --select-semver "$range" --filter-regex "$pattern" --tags "$work/tags")

echo "tags: $n  runs: $runs  selected: $sel"
echo "tagwarden policy test: ${ours_ms} ms (median), peak RSS ${peak_kb} KiB"
echo "grep -E | sort -V | tail -1: ${base_ms} ms (median)"
awk -v a="$ours_ms" -v b="$base_ms" 'BEGIN {printf "ratio tagwarden/baseline: %.3f (goal <= 0.5)\n", a/b}'
