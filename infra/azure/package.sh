#!/usr/bin/env bash
# Builds disttags-azure and packs the Function App: infra/azure/build/disttags.zip holding host.json,
# disttags/function.json and the executable, the layout the Functions host runs a custom handler from.
#   usage: infra/azure/package.sh
# Upload the zip to the package URL the Bicep deployment outputs (infra/README.md).
#
# Linux Function Apps run x86_64 on the Functions host image, whose glibc is 2.31 (Debian 11): a
# binary linked on a newer distribution would not start there. With cargo-zigbuild (and zig, e.g.
# `pip install ziglang`) the binary is linked against glibc 2.31 wherever it is built; without it
# the machine's own toolchain is used, and the script refuses a binary that needs a newer glibc.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
package=disttags-azure
target=x86_64-unknown-linux-gnu
max_glibc=2.31

die() { echo "package.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null 2>&1 || die "cargo is not installed: install Rust (rustup) first"
command -v python3 >/dev/null 2>&1 || die "python3 is needed to write the zip"
cd "$root"

if command -v cargo-zigbuild >/dev/null 2>&1; then
  command -v zig >/dev/null 2>&1 || python3 -c 'import ziglang' >/dev/null 2>&1 \
    || die "cargo-zigbuild is installed but zig is not: install zig (or \`pip install ziglang\`)"
  rustup target list --installed 2>/dev/null | grep -qx "$target" \
    || die "the Rust target $target is not installed: rustup target add $target"
  cargo zigbuild --release --locked -p "$package" --target "$target.$max_glibc"
  binary="target/$target/release/$package"
elif [ "$(uname -m)" = x86_64 ]; then
  cargo build --release --locked -p "$package"
  binary="target/release/$package"
else
  die "Function Apps run x86_64: on a $(uname -m) machine install cargo-zigbuild and zig (cargo install --locked cargo-zigbuild; pip install ziglang)"
fi

command -v readelf >/dev/null 2>&1 || die "readelf (binutils) is needed to check the glibc the binary needs"
needed="$(readelf -W --version-info "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n1 || true)"
if [ -n "$needed" ] && [ "$(printf '%s\n%s\n' "$needed" "$max_glibc" | sort -V | tail -n1)" != "$max_glibc" ]; then
  die "$binary needs glibc $needed, newer than the Functions host's $max_glibc: install cargo-zigbuild and zig, and run this again"
fi

mkdir -p "$here/build"
python3 - "$here" "$binary" "$package" <<'PY'
import sys
import zipfile

here, binary, package = sys.argv[1:]
files = [
    (f"{here}/host.json", "host.json", 0o644),
    (f"{here}/disttags/function.json", "disttags/function.json", 0o644),
    (binary, package, 0o755),
]
with zipfile.ZipFile(f"{here}/build/disttags.zip", "w", zipfile.ZIP_DEFLATED) as out:
    for source, name, mode in files:
        info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
        info.external_attr = (0o100000 | mode) << 16  # a regular file with its Unix mode
        info.create_system = 3  # Unix, so the mode is honoured
        info.compress_type = zipfile.ZIP_DEFLATED
        with open(source, "rb") as f:
            out.writestr(info, f.read())
PY
echo "infra/azure/build/disttags.zip: $(du -h "$here/build/disttags.zip" | cut -f1) ($package for $target, glibc ${needed:-none} needed)"
