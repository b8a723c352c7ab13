# Shared by the bench/ scripts: source it after setting `runs`.

# Median of $runs wall times of the function $1, in milliseconds, after one warm-up run.
median_ms() {
  local f=$1 t0 t1
  "$f"
  for _ in $(seq "$runs"); do
    t0=$(date +%s%N); "$f"; t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 ))
  done | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'
}

# Peak resident memory of a command, in KiB.
peak_kb() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
