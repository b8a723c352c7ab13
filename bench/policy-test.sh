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

source bench/lib.sh

ours_ms=$(median_ms ours)
base_ms=$(median_ms baseline)
peak=$(peak_kb "$bin" policy test --select-semver "$range" --filter-regex "$pattern" --tags "$work/tags")
sel=$("$bin" policy test --select-semver "$range" --filter-regex "$pattern" --tags "$work/tags")

echo "tags: $n  runs: $runs  selected: $sel"
echo "tagwarden policy test: ${ours_ms} ms (median), peak RSS ${peak} KiB"
echo "grep -E | sort -V | tail -1: ${base_ms} ms (median)"
awk -v a="$ours_ms" -v b="$base_ms" 'BEGIN {printf "ratio tagwarden/baseline: %.3f (goal <= 0.5)\n", a/b}'
