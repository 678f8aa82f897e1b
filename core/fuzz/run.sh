#!/usr/bin/env bash
# Bounded fuzzing of disttags-core: `core/fuzz/run.sh SECONDS` (per target, default 60).
#
# Always replays the committed corpus first (stable toolchain, no libFuzzer). Then, when cargo-fuzz
# (scripts/install-tools fuzz puts it in .tools/bin, looked in first) and a nightly toolchain are
# installed, fuzzes each target for SECONDS with libFuzzer; new inputs go to a scratch directory, so
# the committed corpus changes only when someone copies them in.
# Exits non-zero on any failed check, panic or crash (libFuzzer leaves the input in artifacts/).
# FUZZ_REPLAY_ONLY=1 skips the fuzzing.
set -euo pipefail
seconds="${1:-60}"
cd "$(dirname "$0")"
PATH="${DISTTAGS_TOOLS:-$PWD/../../.tools}/bin:$PATH"
targets=(extract names)

cargo build --quiet --release --no-default-features --bin replay
for target in "${targets[@]}"; do
    "${CARGO_TARGET_DIR:-target}/release/replay" "$target" "corpus/$target" 2>/dev/null
done

if [ "${FUZZ_REPLAY_ONLY:-0}" = 1 ]; then
    exit 0
fi
if ! cargo fuzz --version >/dev/null 2>&1 || ! rustup run nightly rustc --version >/dev/null 2>&1; then
    echo "fuzz: cargo-fuzz or the nightly toolchain is missing; the corpus replay above is all that ran" \
        "(install: rustup toolchain install nightly && scripts/install-tools fuzz)"
    exit 0
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
cargo +nightly fuzz build --release >/dev/null
for target in "${targets[@]}"; do
    mkdir -p "$scratch/$target"
    echo "fuzz: $target for ${seconds}s"
    cargo +nightly fuzz run --release "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=16384 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 2>"$scratch/$target.log" || {
        tail -n 60 "$scratch/$target.log"
        echo "fuzz: $target FAILED (input saved under core/fuzz/artifacts/$target/)"
        exit 1
    }
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added)' \
        "$scratch/$target.log" || true
    echo "fuzz: $target passed"
done
