#!/usr/bin/env bash
# Builds disttags-lambda for a Lambda architecture into infra/aws/build/bootstrap, the file SAM
# packages (CodeUri: build/) and provided.al2023 runs.
#   usage: infra/aws/build.sh [arm64|x86_64]        (default arm64, the template's default)
#
# Tools, first found wins:
#   cargo lambda build   (cargo-lambda; cross-compiles with zig)
#   cargo zigbuild       (cargo-zigbuild plus zig, e.g. `pip install ziglang`; links against glibc 2.34)
#   cargo build          only for the machine's own architecture: building arm64 on x86_64 (or the
#                        reverse) needs a cross linker, which the two tools above bring.
# provided.al2023 has glibc 2.34: a binary built natively on a newer distribution may need a newer
# glibc, so the script checks the result and refuses one that would not start on Lambda.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
package=disttags-lambda
max_glibc=2.34

die() { echo "build.sh: $*" >&2; exit 1; }

arch="${1:-arm64}"
case "$arch" in
  arm64) target=aarch64-unknown-linux-gnu; lambda_flag=--arm64 ;;
  x86_64) target=x86_64-unknown-linux-gnu; lambda_flag=--x86-64 ;;
  *) echo "build.sh: the architecture is arm64 or x86_64, not $arch" >&2; exit 2 ;;
esac
host="$(uname -m)"
[ "$host" = aarch64 ] && host=arm64

command -v cargo >/dev/null 2>&1 || die "cargo is not installed: install Rust (rustup) first"
cd "$root"

has_zig() { command -v zig >/dev/null 2>&1 || python3 -c 'import ziglang' >/dev/null 2>&1; }

if command -v cargo-lambda >/dev/null 2>&1; then
  tool="cargo lambda"
  cargo lambda build --release --locked "$lambda_flag" -p "$package"
  binary="target/lambda/$package/bootstrap"
elif command -v cargo-zigbuild >/dev/null 2>&1; then
  has_zig || die "cargo-zigbuild is installed but zig is not: install zig (or \`pip install ziglang\`)"
  tool="cargo zigbuild"
  rustup target list --installed 2>/dev/null | grep -qx "$target" \
    || die "the Rust target $target is not installed: rustup target add $target"
  # The suffix pins the glibc the binary links against to provided.al2023's.
  cargo zigbuild --release --locked -p "$package" --target "$target.$max_glibc"
  binary="target/$target/release/$package"
elif [ "$host" = "$arch" ]; then
  tool="cargo build"
  cargo build --release --locked -p "$package"
  binary="target/release/$package"
else
  die "building for $arch on a $host machine needs a cross linker: install cargo-lambda, or cargo-zigbuild and zig (cargo install --locked cargo-zigbuild; pip install ziglang), or build on $arch"
fi
[ -f "$binary" ] || die "$tool finished but $binary is missing"

# The newest glibc symbol version the binary needs must exist on provided.al2023 (readelf reads
# any architecture's ELF).
if command -v readelf >/dev/null 2>&1; then
  needed="$(readelf -W --version-info "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1 || true)"
  if [ -n "$needed" ] && [ "$(printf '%s\n%s\n' "$needed" "$max_glibc" | sort -V | tail -n1)" != "$max_glibc" ]; then
    die "$binary needs glibc $needed, newer than provided.al2023's $max_glibc: build with cargo-lambda or cargo-zigbuild"
  fi
else
  echo "build.sh: readelf not found, so the glibc version the binary needs is not checked" >&2
fi

mkdir -p "$here/build"
install -m 0755 "$binary" "$here/build/bootstrap"
echo "infra/aws/build/bootstrap: $(du -h "$here/build/bootstrap" | cut -f1), $arch ($target), built with $tool"
