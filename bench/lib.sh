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

# A private git identity under $1 (as HOME), so runs do not read the user's config.
bench_git_home() {
  export GIT_CONFIG_NOSYSTEM=1 HOME=$1
  git config --global user.name bench && git config --global user.email bench@example.com
  git config --global init.defaultBranch main
}

# A free loopback TCP port.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# CPU time (user + system) of process $1 so far, in milliseconds.
cpu_ms() { awk -v t="$(getconf CLK_TCK)" '{print int(($14 + $15) * 1000 / t)}' "/proc/$1/stat"; }
