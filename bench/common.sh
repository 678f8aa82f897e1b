# shellcheck shell=bash
# Shared by bench/server.sh and bench/startup.sh (sourced, not run): paths, tool checks, process
# bookkeeping. Every pid added to `bench_pids` is stopped, and `bench_work` removed, by `bench_cleanup`
# (the scripts set it as their EXIT trap).

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # used by server.sh
tools="${DISTTAGS_TOOLS:-$repo/.tools}"
shared="${DISTTAGS_PACKUMENTS:-$repo/../shared/packuments}"
me=$(basename "$0")

die() { echo "$me: $*" >&2; exit 1; }
say() { echo "$me: $*" >&2; }

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is required and not installed${2:+ ($2)}"
}

# wrk from Debian's package; installed once when missing.
ensure_wrk() {
  command -v wrk >/dev/null 2>&1 && return 0
  command -v apt-get >/dev/null 2>&1 ||
    die "wrk is not installed and apt-get is not available: install wrk (Debian package 'wrk') and rerun"
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "wrk is not installed and installing it needs root: run 'apt-get install -y wrk' as root"
    sudo="sudo -n"
  fi
  say "installing wrk (apt-get)"
  $sudo apt-get update >/dev/null 2>&1 || die "apt-get update failed: install wrk (Debian package 'wrk') by hand"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y wrk >/dev/null 2>&1 ||
    die "apt-get install wrk failed: install wrk (Debian package 'wrk') by hand"
  command -v wrk >/dev/null 2>&1 || die "wrk still not on PATH after installing it"
}

check_packuments() {
  local f
  for f in "$@"; do
    [ -f "$shared/$f.json.gz" ] ||
      die "packument $shared/$f.json.gz is missing (set DISTTAGS_PACKUMENTS to the directory holding the *.json.gz)"
  done
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_ok URL [SECONDS]: until URL answers 200.
wait_ok() {
  local url=$1 tries=$(( ${2:-30} * 20 ))
  for _ in $(seq "$tries"); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

bench_pids=()
bench_work=""
bench_cleanup() {
  local p
  for p in "${bench_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${bench_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$bench_work" ]; then rm -rf "$bench_work"; fi
}

# Machine and load, printed above every table.
machine_line() {
  local model mem load
  model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
  mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "machine: $(nproc) cores, ${model:-unknown CPU}, $mem RAM; load average before the run: $load"
}
