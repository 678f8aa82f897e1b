#!/usr/bin/env bash
# Server throughput (issue 6, item 5). In one run, on 127.0.0.1 only:
#   - `disttags serve` (release build) on a file store holding is-odd, left-pad, react and typescript
#     (the `.front` packuments, dist-tags near the start as codebox stores them), three times: as
#     shipped (every lookup revalidates: one `stat()`; one JSON log line per request, to a file), with
#     RUST_LOG=warn (no request lines), and with DISTTAGS_REVALIDATE_MS=1000 (within the window a
#     lookup makes no system call beyond the socket's);
#   - Verdaccio 6 from npm (pinned, installed by scripts/install-tools into .tools/verdaccio), no
#     uplinks, the same packages in its own storage layout (`storage/{name}/package.json`; the `.tail`
#     documents where there is one, dist-tags last as Verdaccio writes them), log level `warn`;
#   - a bare hyper server answering a fixed 40-byte JSON body (bench/src/bin/bare.rs), the ceiling
#     of a hyper server on this machine;
# then drives each with wrk (Debian's package, installed when missing): one thread, c=1, 10, 100,
# DURATION per cell (10 s; `--quick`: 1 s, no warm-up, for CI), small (left-pad), react and typescript
# (bare: its one path). Prints markdown tables: req/s, p50, p99, the server's CPU time per request
# (user + system, from /proc/PID/stat over the cell), and the ratios disttags/Verdaccio and
# disttags/bare. Figures are printed, never asserted.
#
#   bench/server.sh [--quick] [--pin]
#
# By default the servers and wrk share both cores as the scheduler places them. `--pin` puts every
# server on CPU 0 and wrk on CPU 1 instead (taskset).
set -euo pipefail
# A failure inside $(...) (a server gone mid-run) stops the script too.
shopt -s inherit_errexit
# shellcheck source-path=SCRIPTDIR source=common.sh
source "$(dirname "$0")/common.sh"

duration=10s
warmup=2s
pin=false
for arg in "$@"; do
  case "$arg" in
    --quick) duration=1s; warmup="" ;;
    --pin) pin=true ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument $arg (use --quick, --pin)" ;;
  esac
done
packages=(left-pad react typescript)

need cargo "Rust toolchain"
need curl
need python3
need gzip
need node "Node.js 20 or later, for Verdaccio"
# wrk and Verdaccio (pinned there).
install_tools bench
verdaccio_version=$(node -p "require('$tools/verdaccio/node_modules/verdaccio/package.json').version")
check_packuments is-odd.front left-pad.front react.front react.tail typescript.front typescript.tail
if $pin; then
  need taskset "util-linux, for --pin"
  [ "$(nproc)" -ge 2 ] || die "--pin needs at least 2 CPUs"
  server_on=(taskset -c 0)
  wrk_on=(taskset -c 1)
else
  server_on=()
  wrk_on=()
fi

cd "$repo"
build_release

start_work

# The same packages in both stores.
store=$work/disttags
DISTTAGS_LOG=none "$bin/disttags" import --store "file://$store" \
  "$shared"/{is-odd,left-pad,react,typescript}.front.json.gz >/dev/null
mkdir -p "$work/verdaccio/storage"
for name in is-odd left-pad react typescript; do
  mkdir -p "$work/verdaccio/storage/$name"
  src=$shared/$name.tail.json.gz
  [ -f "$src" ] || src=$shared/$name.front.json.gz
  gzip -dc "$src" >"$work/verdaccio/storage/$name/package.json"
done
verdaccio_config "$work/verdaccio/config.yaml"

d_addr=127.0.0.1:$(free_port)
w_addr=127.0.0.1:$(free_port)
q_addr=127.0.0.1:$(free_port)
v_addr=127.0.0.1:$(free_port)
b_addr=127.0.0.1:$(free_port)
DISTTAGS_LOG=stdout "${server_on[@]}" "$bin/disttags" serve --listen "$d_addr" --store "file://$store" --upstream off \
  >"$work/disttags.log" 2>&1 &
bench_pids+=($!)
(cd "$work/verdaccio" && exec "${server_on[@]}" "$tools/bin/verdaccio" --config ./config.yaml --listen "$v_addr") \
  >"$work/verdaccio.log" 2>&1 &
bench_pids+=($!)
"${server_on[@]}" "$bin/bare" "$b_addr" >"$work/bare.log" 2>&1 &
bench_pids+=($!)
DISTTAGS_LOG=stdout DISTTAGS_REVALIDATE_MS=1000 "${server_on[@]}" "$bin/disttags" serve --listen "$w_addr" \
  --store "file://$store" --upstream off >"$work/window.log" 2>&1 &
bench_pids+=($!)
DISTTAGS_LOG=stdout RUST_LOG=warn "${server_on[@]}" "$bin/disttags" serve --listen "$q_addr" \
  --store "file://$store" --upstream off >"$work/quiet.log" 2>&1 &
bench_pids+=($!)
d_pid=${bench_pids[0]} v_pid=${bench_pids[1]} b_pid=${bench_pids[2]} w_pid=${bench_pids[3]} q_pid=${bench_pids[4]}
wait_ok "http://$d_addr/-/ping" 10 || die "disttags serve did not start: $(tail -3 "$work/disttags.log")"
wait_ok "http://$w_addr/-/ping" 10 || die "disttags serve (window) did not start: $(tail -3 "$work/window.log")"
wait_ok "http://$q_addr/-/ping" 10 || die "disttags serve (quiet) did not start: $(tail -3 "$work/quiet.log")"
wait_ok "http://$b_addr/" 10 || die "the bare server did not start: $(tail -3 "$work/bare.log")"
wait_ok "http://$v_addr/-/package/left-pad/dist-tags" 60 || die "Verdaccio did not start: $(tail -5 "$work/verdaccio.log")"

# Both must answer the same tags, or the comparison means nothing.
for name in is-odd "${packages[@]}"; do
  d=$(curl -fsS "http://$d_addr/-/package/$name/dist-tags") || die "disttags: no dist-tags for $name"
  v=$(curl -fsS "http://$v_addr/-/package/$name/dist-tags") || die "Verdaccio: no dist-tags for $name"
  python3 -c 'import json,sys; sys.exit(json.loads(sys.argv[1]) != json.loads(sys.argv[2]))' "$d" "$v" ||
    die "disttags and Verdaccio disagree on $name: $d vs $v"
done
say "disttags and Verdaccio answer the same dist-tags for is-odd ${packages[*]}"

# bench_wrk PID C URL [DURATION] -> "req/s p50_ms p99_ms errors cpu_us_per_request"
# (the server's own CPU time, user and system, over the cell divided by the requests it answered)
bench_wrk() {
  local out before after
  before=$(cpu_ticks "$1")
  out=$("${wrk_on[@]}" wrk -t1 -c"$2" -d"${4:-$duration}" --timeout 30s --latency "$3" 2>&1) ||
    die "wrk failed against $3: $out"
  after=$(cpu_ticks "$1")
  awk -v ticks=$((after - before)) -v hz="$tick" '
    function ms(v,  n) { n = v + 0
      if (v ~ /us$/) return n / 1000; if (v ~ /ms$/) return n; if (v ~ /m$/) return n * 60000
      if (v ~ /s$/) return n * 1000; return n }
    /^Requests\/sec:/ { rps = $2 }
    / requests in / { n = $1 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx or 3xx responses:/ { err += $NF }
    /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.4f %.4f %d %.2f\n", rps, p50, p99, err, n ? ticks / hz / n * 1e6 : 0 }' <<<"$out"
}

results=$work/results.tsv
: >"$results"
machine=$(machine_line)
say "wrk -t1, $duration per cell$([ -n "$warmup" ] && echo ", $warmup warm-up per server and package")"
for c in 1 10 100; do
  [ -n "$warmup" ] && [ "$c" = 1 ] && bench_wrk "$b_pid" 10 "http://$b_addr/" "$warmup" >/dev/null
  row=$(bench_wrk "$b_pid" "$c" "http://$b_addr/") || exit 1
  printf 'bare\t-\t%s\t%s\n' "$c" "$row" >>"$results"
done
for name in "${packages[@]}"; do
  for server in disttags quiet window verdaccio; do
    case $server in
      disttags) addr=$d_addr pid=$d_pid ;;
      quiet) addr=$q_addr pid=$q_pid ;;
      window) addr=$w_addr pid=$w_pid ;;
      *) addr=$v_addr pid=$v_pid ;;
    esac
    url="http://$addr/-/package/$name/dist-tags"
    [ -n "$warmup" ] && bench_wrk "$pid" 10 "$url" "$warmup" >/dev/null
    for c in 1 10 100; do
      say "$server $name c=$c"
      row=$(bench_wrk "$pid" "$c" "$url") || exit 1
      printf '%s\t%s\t%s\t%s\n' "$server" "$name" "$c" "$row" >>"$results"
    done
  done
done

sizes=""
for name in "${packages[@]}"; do sizes+="$name=$(stat -c %s "$store/$name/index.json") "; done
placement="servers and wrk share all $(nproc) cores (not pinned)"
$pin && placement="servers pinned to CPU 0, wrk to CPU 1 (taskset)"
echo
echo "$machine"
echo "wrk -t1, $duration per cell$([ -n "$warmup" ] && echo " after a $warmup warm-up"); $placement; Verdaccio $verdaccio_version on Node.js $(node --version), log level warn"
echo
python3 - "$results" "$sizes" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
sizes = dict(kv.split("=") for kv in sys.argv[2].split())
res = {}
for server, pkg, c, fig in rows:
    rps, p50, p99, err, cpu = fig.split()
    res[(server, pkg, c)] = (float(rps), float(p50), float(p99), int(err), float(cpu))
notes = []

def ms(v):
    return f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:.0f}"

def rate(key):
    rps, _, _, err, _ = res[key]
    if err:
        notes.append(f"{key[0]} {key[1]} c={key[2]}: wrk counted {err} errors (non-2xx, socket errors or timeouts)")
        return f"{rps:,.0f}*"
    return f"{rps:,.0f}"

def size(n):
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"

print("Ceiling: bare hyper server, fixed 40-byte body")
print()
print("| c | req/s | p50 ms | p99 ms | CPU µs/req |")
print("|---:|---:|---:|---:|---:|")
for c in ("1", "10", "100"):
    r = res[("bare", "-", c)]
    print(f"| {c} | {rate(('bare', '-', c))} | {ms(r[1])} | {ms(r[2])} | {r[4]:.2f} |")
print()
print("`GET /-/package/{name}/dist-tags`")
print()
print("| package (stored) | c | disttags req/s | p50 ms | p99 ms | CPU µs/req | Verdaccio req/s | p50 ms | p99 ms | CPU µs/req | disttags ÷ Verdaccio | disttags ÷ bare |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
window_rows = []
quiet_rows = []
pkgs = [p for p in dict.fromkeys(pkg for _, pkg, _, _ in rows) if p != "-"]
for pkg in pkgs:
    for c in ("1", "10", "100"):
        d = res[("disttags", pkg, c)]
        v = res[("verdaccio", pkg, c)]
        b = res[("bare", "-", c)]
        vs_v = f"{d[0] / v[0]:,.0f}×" if v[0] else "∞"
        vs_b = f"{100 * d[0] / b[0]:.0f}%" if b[0] else "-"
        print(f"| {pkg} ({size(int(sizes[pkg]))}) | {c} | {rate(('disttags', pkg, c))} | {ms(d[1])} | {ms(d[2])} | {d[4]:.2f} "
              f"| {rate(('verdaccio', pkg, c))} | {ms(v[1])} | {ms(v[2])} | {v[4]:,.0f} | {vs_v} | {vs_b} |")
        q = res[("quiet", pkg, c)]
        quiet_rows.append(
            f"| {pkg} | {c} | {rate(('quiet', pkg, c))} | {q[4]:.2f} | {rate(('disttags', pkg, c))} | {d[4]:.2f} "
            f"| {100 * (d[4] / q[4] - 1):+.0f}% |")
        w = res[("window", pkg, c)]
        window_rows.append(
            f"| {pkg} | {c} | {rate(('disttags', pkg, c))} | {d[4]:.2f} | {rate(('window', pkg, c))} | {ms(w[1])} | {ms(w[2])} "
            f"| {w[4]:.2f} | {100 * (w[0] / d[0] - 1):+.0f}% |")
print()
print("The same, with and without a revalidation window (`DISTTAGS_REVALIDATE_MS=1000`: no `stat()` inside it)")
print()
print("| package | c | revalidating req/s | CPU µs/req | window req/s | p50 ms | p99 ms | CPU µs/req | window vs revalidating |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for row in window_rows:
    print(row)
print()
print("Request lines on (as shipped: one JSON line per request) and off (`RUST_LOG=warn`)")
print()
print("| package | c | lines off req/s | CPU µs/req | lines on req/s | CPU µs/req | CPU per request, on vs off |")
print("|---|---:|---:|---:|---:|---:|---:|")
for row in quiet_rows:
    print(row)
if notes:
    print()
    for n in notes:
        print(f"\\* {n}")
EOF
