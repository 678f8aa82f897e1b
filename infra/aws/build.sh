#!/usr/bin/env bash
# Builds disttags-lambda for the Lambda architecture into infra/aws/build/bootstrap, the layout SAM
# packages for provided.al2023. Usage: infra/aws/build.sh [arm64|x86_64]   (default arm64)
#
# Building for the other architecture needs a cross linker: with cargo-zigbuild installed
# (`cargo install --locked cargo-zigbuild` and zig, e.g. `pip install ziglang`) it is used;
# otherwise only the machine's own architecture can be built, and the script says so.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
arch="${1:-arm64}"
case "$arch" in
  arm64) target=aarch64-unknown-linux-gnu ;;
  x86_64) target=x86_64-unknown-linux-gnu ;;
  *) echo "build.sh: architecture must be arm64 or x86_64, not $arch" >&2; exit 2 ;;
esac
host="$(uname -m)"
[ "$host" = "aarch64" ] && host=arm64
cd "$root"
if command -v cargo-zigbuild >/dev/null 2>&1; then
  # glibc 2.34 is what provided.al2023 ships; zig links against exactly that.
  rustup target add "$target" >/dev/null 2>&1 || true
  cargo zigbuild --release --locked -p disttags-lambda --target "$target.2.34"
  binary="target/$target/release/disttags-lambda"
elif [ "$host" = "$arch" ]; then
  cargo build --release --locked -p disttags-lambda
  binary="target/release/disttags-lambda"
else
  echo "build.sh: building for $arch on a $host machine needs cargo-zigbuild (and zig); install them or build on $arch" >&2
  exit 1
fi
mkdir -p "$here/build"
cp "$binary" "$here/build/bootstrap"
echo "infra/aws/build/bootstrap: $(du -h "$here/build/bootstrap" | cut -f1) for $arch ($target)"
