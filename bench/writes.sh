#!/usr/bin/env bash
# Tag writes: the time of one `npm dist-tag add` and the server's memory while doing them. On
# 127.0.0.1 only, for typescript's packument (10 MB) in both layouts (`.front`: dist-tags near the
# start; `.tail`: dist-tags last, as Verdaccio writes them):
#   - `disttags serve` (release build, DISTTAGS_WRITES=anyone) on a file store (a write: read the
#     packument, change the dist-tags bytes, write a temp file and rename it, under a file lock);
#   - the same on S3, on moto's emulator and on SeaweedFS (started by tests/emulators/run.py, as the
#     tests start them; the write is conditional,
#     If-Match on the ETag it read);
#   - Verdaccio 6 (pinned, installed by scripts/install-tools into .tools/verdaccio), no uplinks, the
#     packument in its storage (`storage/typescript/package.json`), an htpasswd user created through
#     `PUT /-/user/org.couchdb.user:NAME`, whose token authorises the writes (publish: $authenticated).
# Each (server, store, layout) gets a fresh server and a fresh copy of the packument. After one
# warm-up read, WRITES writes (20; `--quick`: 3, for CI) are sent with curl as npm sends them, one
# connection each: `PUT /-/package/typescript/dist-tags/bench` with a JSON string body, alternating
# between two versions in the packument's `versions`, so that every write changes the document. Then
# one run of the real npm CLI (`npm dist-tag add typescript@VERSION bench`, timed once, node's
# start-up included) shows the CLI path works. Prints a markdown table: median and p90 wall time per
# write (curl's time_total); the server's peak RSS (VmHWM) before the writes, after the first one
# (the memory of one write, on a fresh server; also over the packument's size) and after all of
# them (freed buffers a malloc arena keeps count there); then Verdaccio's median over disttags'. Figures are
# printed, never asserted; a write that fails is shown with its status and body, and makes the exit
# status 1 (after the table).
#
#   bench/writes.sh [--quick]
set -euo pipefail
# A failure inside $(...) (a server gone mid-run) stops the script too.
shopt -s inherit_errexit
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

writes=20
for arg in "$@"; do
  case "$arg" in
    --quick) writes=3 ;;
    -h|--help) sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (use --quick)" ;;
  esac
done
layouts=(front tail)
name=typescript
tag=bench
bucket=disttags-bench

need cargo "Rust toolchain"
need curl
need python3
need gzip
need node "Node.js 20 or later, for Verdaccio and npm"
need npm "npm, the CLI whose dist-tag add is timed"
install_tools verdaccio moto seaweedfs
verdaccio_version=$(node -p "require('$tools/verdaccio/node_modules/verdaccio/package.json').version")
check_packuments "${layouts[@]/#/$name.}"
# Nothing here may go through a proxy.
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

cd "$repo"
build_release

start_work
results=$work/results.tsv
notes=$work/notes.txt
: >"$results"
: >"$notes"
machine=$(machine_line)

# The two versions the writes alternate between (the latest, and the first version listed), and the
# packument's size (the same document in both layouts).
read -r version_a version_b size < <(gzip -dc "$shared/$name.front.json.gz" | python3 -c '
import json, sys
raw = sys.stdin.buffer.read()
doc = json.loads(raw)
latest = doc["dist-tags"]["latest"]
other = next(v for v in doc["versions"] if v != latest)
print(latest, other, len(raw))')

# stop_server PID: stops one server started here and forgets it.
stop_server() {
  local p keep=()
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for p in "${bench_pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  bench_pids=("${keep[@]}")
}

# peak_kib PID: the process's peak resident set so far (VmHWM, KiB).
peak_kib() {
  local status
  status=$(cat "/proc/$1/status" 2>/dev/null) || die "process $1 is gone (a server stopped mid-run)"
  awk '/^VmHWM:/ { print $2 }' <<<"$status"
}

# now: seconds since the epoch, with nanoseconds.
now() { date +%s.%N; }

# measure SERVER STORE LAYOUT ADDR PID TOKEN: the warm-up read, the writes, the npm run; one row of
# $results. TOKEN is sent as `Authorization: Bearer` (empty: none) and written into npm's .npmrc
# (disttags with DISTTAGS_WRITES=anyone reads no token, but npm is given one all the same).
measure() {
  local server=$1 store=$2 layout=$3 addr=$4 pid=$5 token=$6
  local url="http://$addr/-/package/$name/dist-tags" cell="$1-$2-$3"
  local auth=() times=() i version out code took before first peak failed=0 got last
  [ -n "$token" ] && auth=(-H "Authorization: Bearer $token")
  say "$server $store $name.$layout: one read, then $writes writes"
  curl -fsS -o /dev/null "$url" || die "$server ($store, $layout): the warm-up read of $url failed"
  before=$(peak_kib "$pid")
  for ((i = 0; i < writes; i++)); do
    if ((i % 2 == 0)); then version=$version_b; else version=$version_a; fi
    out=$(curl -sS -o "$work/body" -w '%{http_code} %{time_total}' -X PUT "${auth[@]}" \
      -H 'Content-Type: application/json' --data "\"$version\"" "$url/$tag" 2>"$work/curl.err") ||
      out="000 0"
    read -r code took <<<"$out"
    times+=("$took")
    # The peak of one write: the first one on a fresh server.
    [ "$i" = 0 ] && first=$(peak_kib "$pid")
    if [[ "$code" != 2?? ]]; then
      failed=$((failed + 1))
      if [ "$failed" = 1 ]; then
        printf '%s %s %s.%s: write %d (%s=%s) answered HTTP %s: %s%s\n' "$server" "$store" "$name" \
          "$layout" $((i + 1)) "$tag" "$version" "$code" "$(cat "$work/body" 2>/dev/null)" \
          "$(sed 's/^/ (curl: /; s/$/)/' "$work/curl.err")" >>"$notes"
      fi
    fi
    last=$version
  done
  peak=$(peak_kib "$pid")
  got=$(curl -fsS "$url") || die "$server ($store, $layout): the read after the writes failed"
  if ! python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1]).get(sys.argv[2]) != sys.argv[3])' \
    "$got" "$tag" "$last"; then
    echo "$server $store $name.$layout: after the writes $tag should be $last; the server answers $got" >>"$notes"
    failed=$((failed + 1))
  fi

  # The real CLI, once, to the other version (so that it writes too).
  if [ "$last" = "$version_a" ]; then version=$version_b; else version=$version_a; fi
  local home=$work/npm-$cell npm_took npm_result
  mkdir -p "$home"
  printf '//%s/:_authToken=%s\n' "$addr" "${token:-unused-by-disttags}" >"$home/.npmrc"
  local t0
  t0=$(now)
  if env -u npm_config_registry -u NPM_CONFIG_REGISTRY \
    npm_config_userconfig="$home/.npmrc" npm_config_cache="$home/cache" \
    npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false \
    npm_config_fetch_retries=0 \
    npm dist-tag add "$name@$version" "$tag" --registry "http://$addr/" >"$home/out" 2>&1; then
    npm_took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
    got=$(curl -fsS "$url") || die "$server ($store, $layout): the read after npm failed"
    if python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1]).get(sys.argv[2]) != sys.argv[3])' \
      "$got" "$tag" "$version"; then
      npm_result="ok: $(head -1 "$home/out")"
    else
      npm_result="npm succeeded but $tag is not $version: $got"
      echo "$server $store $name.$layout: $npm_result" >>"$notes"
      failed=$((failed + 1))
    fi
  else
    npm_took=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
    npm_result="failed"
    echo "$server $store $name.$layout: npm dist-tag add failed: $(tr '\n' ' ' <"$home/out")" >>"$notes"
    failed=$((failed + 1))
  fi
  local IFS=,
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$store" "$layout" "$writes" \
    "${times[*]}" "$before" "$peak" "$failed" "$npm_took" "$npm_result" "$first" >>"$results"
}

# --- disttags: a file store, and S3 on moto and on SeaweedFS ---------------------------------------
# start_emulator KIND: starts it with tests/emulators/run.py (as the tests do); its READY line is the
# environment object_store reads (AWS_ENDPOINT, AWS_ALLOW_HTTP, keys, region, bucket,
# DISTTAGS_STORE=s3://bucket), kept in $work/KIND.env, one VAR=value a line.
start_emulator() {
  local kind=$1 port pid
  port=$(free_port)
  python3 "$repo/tests/emulators/run.py" "$kind" --port "$port" --data "$work/$kind" --bucket "$bucket" \
    --tools "$tools" </dev/null >"$work/$kind.ready" 2>"$work/$kind.log" &
  pid=$!
  bench_pids+=("$pid")
  for _ in $(seq 1800); do
    grep -q '^READY ' "$work/$kind.ready" && break
    kill -0 "$pid" 2>/dev/null || die "$kind did not start: $(tail -5 "$work/$kind.log")"
    sleep 0.05
  done
  grep -q '^READY ' "$work/$kind.ready" || die "$kind not ready after 90 s: $(tail -5 "$work/$kind.log")"
  sed -n 's/^READY //p' "$work/$kind.ready" |
    python3 -c 'import json, sys; [print(f"{k}={v}") for k, v in json.load(sys.stdin).items()]' >"$work/$kind.env"
  emulator_pid=$pid
}
start_emulator moto
moto_pid=$emulator_pid
start_emulator seaweedfs
seaweedfs_pid=$emulator_pid

for store in file s3 seaweedfs; do
  for layout in "${layouts[@]}"; do
    src=$shared/$name.$layout.json.gz
    if [ "$store" = file ]; then
      url=file://$work/store-$layout
      store_env=()
    else
      url=s3://$bucket
      mapfile -t store_env <"$work/$([ "$store" = s3 ] && echo moto || echo seaweedfs).env"
    fi
    # A fresh copy of this layout (on S3 it replaces the object the previous cell wrote).
    env "${store_env[@]}" DISTTAGS_LOG=none "$bin/disttags" import --store "$url" "$src" >/dev/null
    addr=127.0.0.1:$(free_port)
    env "${store_env[@]}" DISTTAGS_LOG=stdout DISTTAGS_WRITES=anyone \
      "$bin/disttags" serve --listen "$addr" --store "$url" --upstream off \
      >"$work/disttags-$store-$layout.log" 2>&1 &
    bench_pids+=($!)
    pid=$!
    wait_ok "http://$addr/-/ping" 10 ||
      die "disttags serve ($store) did not start: $(tail -3 "$work/disttags-$store-$layout.log")"
    measure disttags "$store" "$layout" "$addr" "$pid" ""
    stop_server "$pid"
  done
done
stop_server "$moto_pid"
stop_server "$seaweedfs_pid"

# --- Verdaccio ------------------------------------------------------------------------------------
for layout in "${layouts[@]}"; do
  dir=$work/verdaccio-$layout
  mkdir -p "$dir/storage/$name"
  gzip -dc "$shared/$name.$layout.json.gz" >"$dir/storage/$name/package.json"
  verdaccio_config "$dir/config.yaml" users
  addr=127.0.0.1:$(free_port)
  (cd "$dir" && exec "$tools/bin/verdaccio" --config ./config.yaml --listen "$addr") \
    >"$work/verdaccio-$layout.log" 2>&1 &
  bench_pids+=($!)
  pid=$!
  wait_ok "http://$addr/-/ping" 60 || die "Verdaccio did not start: $(tail -5 "$work/verdaccio-$layout.log")"
  # The pid must be node's own (the subshell execs the launcher, which execs node), or VmHWM means nothing.
  # (Verdaccio renames its process, so look at the executable, not the name.)
  exe=$(readlink "/proc/$pid/exe")
  [ "${exe##*/}" = node ] || die "Verdaccio's pid $pid runs $exe, not node"
  user=$(curl -sS -w '\n%{http_code}' -X PUT -H 'Content-Type: application/json' \
    --data '{"name":"bench","password":"bench-password"}' "http://$addr/-/user/org.couchdb.user:bench")
  [ "${user##*$'\n'}" = 201 ] || die "Verdaccio did not create the user: $user"
  token=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["token"])' "${user%$'\n'*}")
  measure verdaccio storage "$layout" "$addr" "$pid" "$token"
  stop_server "$pid"
done

commit=$(git -C "$repo" rev-parse --short HEAD)
[ -z "$(git -C "$repo" --no-optional-locks status --porcelain)" ] || commit+=" with uncommitted changes"
echo
echo "$machine"
echo "commit $commit; $writes writes per row after one warm-up read, curl one connection each; Verdaccio $verdaccio_version on Node.js $(node --version), log level warn; npm $(npm --version)"
echo
python3 - "$results" "$notes" "$size" "$name" "$tag" "$version_a" "$version_b" <<'EOF'
import math, statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
notes = [l.rstrip("\n") for l in open(sys.argv[2]) if l.strip()]
size, name, tag, va, vb = int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
mib = lambda kib: kib / 1024
stores = {"file": "file", "s3": "S3 (moto)", "seaweedfs": "S3 (SeaweedFS)", "storage": "its storage"}
medians = {}

def ms(v):
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"

print(f"`PUT /-/package/{name}/dist-tags/{tag}`, alternating {va} and {vb}")
print()
print("| server | store | packument | size | writes | median ms | p90 ms | RSS before MiB | peak, one write MiB | one write ÷ size | peak, all writes MiB |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for server, store, layout, n, times, before, peak, failed, _, _, first in rows:
    t = sorted(float(x) * 1000 for x in times.split(","))
    med, p90 = statistics.median(t), t[math.ceil(0.9 * len(t)) - 1]
    medians[(server, store, layout)] = med
    mark = "*" if int(failed) else ""
    print(f"| {server} | {stores[store]} | {name}.{layout} | {size / 1048576:.1f} MiB | {n}{mark} | {ms(med)} | {ms(p90)} "
          f"| {mib(int(before)):.1f} | {mib(int(first)):.1f} | {int(first) * 1024 / size:.2f}× | {mib(int(peak)):.1f} |")
growth = [f"{r[0]} {stores[r[1]]} .{r[2]} {(int(r[6]) - int(r[5])) * 1024 / size:.2f}×" for r in rows]
print()
print(f"Growth during the writes, (RSS peak − RSS before) ÷ size: {'; '.join(growth)}")
print()
for layout in dict.fromkeys(r[2] for r in rows):
    v = medians.get(("verdaccio", "storage", layout))
    parts = [f"{stores[s]} {v / medians[('disttags', s, layout)]:.0f}×"
             for s in ("file", "s3", "seaweedfs") if v and medians.get(("disttags", s, layout))]
    print(f"- {name}.{layout}: Verdaccio median ÷ disttags median: {', '.join(parts) or '-'}")
print()
print(f"One `npm dist-tag add {name}@VERSION {tag}` per row (wall time of the npm process, node's start-up included):")
print()
print("| server | store | packument | npm s | result |")
print("|---|---|---|---:|---|")
for server, store, layout, _, _, _, _, _, took, result, _ in rows:
    print(f"| {server} | {stores[store]} | {name}.{layout} | {took} | {result.replace('|', '/')} |")
if notes:
    print()
    print("\\* failed:")
    for n in notes:
        print(f"- {n}")
EOF
[ ! -s "$notes" ] || exit 1
