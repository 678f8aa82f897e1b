# shellcheck shell=bash
# Shared by the bench/*.sh scripts and scripts/load (sourced, not run): paths, tool checks, CPU time,
# ports, process bookkeeping. Every pid added to `bench_pids` is stopped, and `bench_work` removed, by
# `bench_cleanup` (the scripts set it as their EXIT trap). Tools come from scripts/install-tools.

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

# install_tools GROUP|TOOL...: scripts/install-tools (the one installer, every version pinned there).
install_tools() { "$repo/scripts/install-tools" "$@" || die "scripts/install-tools $* failed"; }

# The profile the benchmarks build: `release` (fat LTO, codegen-units 1, stripped: the binaries users
# get, and the README's figures) unless DISTTAGS_BENCH_PROFILE names another. scripts/bench-smoke sets
# `dev`, the test command's own build, so that CI compiles nothing more for it; its figures are not
# the README's.
bench_profile="${DISTTAGS_BENCH_PROFILE:-release}"
# shellcheck disable=SC2034 # used by the scripts that source this
bin="${CARGO_TARGET_DIR:-$repo/target}/$([ "$bench_profile" = dev ] && echo debug || echo "$bench_profile")"

# Every release binary the benchmarks run, built by one command with the same packages each time:
# Cargo unifies dependency features over the packages it is given, so building other subsets would
# compile (and link) the dependencies again for each script.
build_release() {
  say "building the $bench_profile binaries (the same set for every benchmark)"
  cargo build --profile "$bench_profile" --locked -q -p disttags -p disttags-cloudrun -p disttags-azure \
    -p disttags-lambda -p disttags-bench
}

# The debug binaries, built as the test command builds the workspace (so nothing is built twice).
build_debug() {
  cargo build --locked -q --workspace --bins
}

check_packuments() {
  local f
  for f in "$@"; do
    [ -f "$shared/$f.json.gz" ] ||
      die "packument $shared/$f.json.gz is missing (set DISTTAGS_PACKUMENTS to the directory holding the *.json.gz)"
  done
}

# cpu_ticks PID -> user+system clock ticks the process has used so far (fields 14 and 15 of
# /proc/PID/stat, counted after the parenthesised name, which may hold spaces); `tick` ticks a second.
cpu_ticks() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || die "process $1 is gone (a server stopped mid-run)"
  awk '{ print $12 + $13 }' <<<"${stat##*) }"
}
# shellcheck disable=SC2034 # used by the scripts that source this
tick=$(getconf CLK_TCK)

# free_port: a free port of 127.0.0.1, from the one Python helper (tests/emulators/ports.py).
free_port() {
  python3 "$repo/tests/emulators/ports.py"
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

# start_work: a scratch directory, `bench_work` (and `work`), removed on exit with every server in
# `bench_pids`; Ctrl-C and SIGTERM end the script through that cleanup too.
start_work() {
  bench_work=$(mktemp -d)
  # shellcheck disable=SC2034 # used by the scripts that source this
  work=$bench_work
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM
}

# left_pad_store: the release binaries built, a scratch directory (`work`) made, and `store` a file
# store in it holding left-pad: what the request-line benchmarks serve.
left_pad_store() {
  check_packuments left-pad.front
  cd "$repo" || die "cannot enter $repo"
  build_release
  start_work
  # shellcheck disable=SC2034 # used by the scripts that source this
  store=$work/store
  DISTTAGS_LOG=none "$bin/disttags" import --store "file://$store" "$shared/left-pad.front.json.gz" >/dev/null
}

# Machine and load, printed above every table.
machine_line() {
  local model mem load
  model=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
  mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  echo "machine: $(nproc) cores, ${model:-unknown CPU}, $mem RAM; load average before the run: $load"
}

# verdaccio_config FILE [users]: Verdaccio's configuration for the benchmarks: storage ./storage, no
# uplinks, anyone reads, log level warn; with `users`, an htpasswd file beside it whose users may
# publish (tag writes are publish rights).
verdaccio_config() {
  local auth=""
  [ "${2:-}" = users ] && auth=$'auth:\n  htpasswd:\n    file: ./htpasswd\n    max_users: 10\n'
  cat >"$1" <<EOF
storage: ./storage
${auth}uplinks: {}
packages:
  '**':
    access: \$all
    publish: \$authenticated
web:
  enable: false
log: { type: stdout, format: pretty, level: warn }
EOF
}
