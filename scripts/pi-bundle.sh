#!/usr/bin/env bash
# make pi-bundle: one file, dist/conveyor-watch-<version>-pi-aarch64.tar, that installs conveyor-watch
# on a Raspberry Pi (64-bit Raspberry Pi OS Bookworm) with no network. Runs on any Linux machine
# with Python 3 and access to PyPI; nothing here needs root or an ARM machine. About a minute.
#
# The tar holds one folder, conveyor-watch-<version>-pi-aarch64/, with install.sh at its top, the
# systemd unit, constraints.txt (systemd/bundle-pins.txt: the exact version of every wheel),
# wheels/ (the project's wheel and CPython 3.11 manylinux-aarch64 wheels of every edge dependency,
# both TFLite runtimes and OpenCV, plus pip itself), BUNDLE (what it is) and SHA256SUMS.
#
# Usage: scripts/pi-bundle.sh [--out DIR] [--source DIR] [--local-version LABEL]
#        scripts/pi-bundle.sh --update-pins     re-resolve systemd/bundle-pins.txt for the Pi
#   --source DIR          build the project wheel from this checkout (default: this one)
#   --local-version LABEL version <version>+LABEL (PEP 440 local label), e.g. for a site rebuild
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
OUT="$REPO/dist" SOURCE="$REPO" LOCAL_VERSION="" UPDATE_PINS=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --source) SOURCE="$(cd "$2" && pwd)"; shift 2 ;;
    --local-version) LOCAL_VERSION="$2"; shift 2 ;;
    --update-pins) UPDATE_PINS=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "pi-bundle: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$LOCAL_VERSION" in ""|[A-Za-z0-9]|[A-Za-z0-9]*[A-Za-z0-9]) ;; *) echo "pi-bundle: --local-version '$LOCAL_VERSION': letters, digits and dots only" >&2; exit 2 ;; esac
case "$LOCAL_VERSION" in *[!A-Za-z0-9.]*) echo "pi-bundle: --local-version '$LOCAL_VERSION': letters, digits and dots only" >&2; exit 2 ;; esac

PLATFORM=aarch64
PINS="$REPO/systemd/bundle-pins.txt"
EXTRAS="litert,tflite,camera"
log() { echo "pi-bundle: $*" >&2; }

# pip for a foreign platform: only wheels, CPython 3.11, every manylinux level glibc 2.36 (Bookworm)
# runs. pip does not expand --platform itself, so ai-edge-litert (manylinux_2_27) and
# tflite-runtime (manylinux_2_34) are only found when their levels are listed.
PLATFORM_ARGS=(--only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none)
for minor in $(seq 17 36); do PLATFORM_ARGS+=(--platform "manylinux_2_${minor}_$PLATFORM"); done
PLATFORM_ARGS+=(--platform "manylinux2014_$PLATFORM" --platform any)

if [ -n "${PI_BUNDLE_PYTHON:-}" ]; then
  PY="$PI_BUNDLE_PYTHON"
else
  scripts/setup-env.sh edge >&2
  PY="$REPO/.venv-edge/bin/python"
fi
pip() { "$PY" -m pip --disable-pip-version-check "$@"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pi-bundle.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# --- the project wheel, from a clean copy of the checkout (tracked and new files, nothing ignored) ---
mkdir -p "$WORK/src" "$WORK/project"
(cd "$SOURCE" && git ls-files -z --cached --others --exclude-standard) | while IFS= read -r -d '' file; do
  [ -e "$SOURCE/$file" ] && printf '%s\0' "$file"
done | (cd "$SOURCE" && tar --null -T - -cf -) | tar -C "$WORK/src" -xf -
if [ -n "$LOCAL_VERSION" ]; then
  sed -i -E "s/^(version = \"[^\"+]+)\"/\\1+$LOCAL_VERSION\"/" "$WORK/src/pyproject.toml"
  sed -i -E "s/^(__version__ = \"[^\"+]+)\"/\\1+$LOCAL_VERSION\"/" "$WORK/src/edge/__init__.py"
fi
log "building the project wheel"
pip wheel -q --no-deps -w "$WORK/project" "$WORK/src" >&2
PROJECT_WHEEL="$(find "$WORK/project" -name 'conveyor_watch-*.whl' | head -n 1)"
[ -n "$PROJECT_WHEEL" ] || { log "no project wheel was built"; exit 1; }
VERSION="$(basename "$PROJECT_WHEEL" | cut -d- -f2)"
EDGE_VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' "$WORK/src/edge/__init__.py")"
[ "$VERSION" = "$EDGE_VERSION" ] || { log "pyproject says $VERSION but edge/__init__.py says $EDGE_VERSION"; exit 1; }

canonical() {  # wheel file name -> "name==version" with the name normalised as pip does
  local base="${1##*/}"
  local name="${base%%-*}" rest="${base#*-}"
  name="$(echo "$name" | tr 'A-Z_.' 'a-z--')"
  echo "$name==${rest%%-*}"
}

if [ "$UPDATE_PINS" = 1 ]; then
  caps="$(sed -n 's/^# caps (used by --update-pins): //p' "$PINS")"
  log "resolving the newest allowed versions for cp311 manylinux $PLATFORM (caps: $caps)"
  # shellcheck disable=SC2086  # the caps are separate requirement strings
  pip download -q "${PLATFORM_ARGS[@]}" -d "$WORK/resolved" "${PROJECT_WHEEL}[${EXTRAS}]" pip $caps >&2
  { sed -n '/^#/p' "$PINS"
    for wheel in "$WORK"/resolved/*.whl; do
      [ "$wheel" -ef "$WORK/resolved/$(basename "$PROJECT_WHEEL")" ] || canonical "$wheel"
    done | grep -v "^conveyor-watch==" | LC_ALL=C sort; } > "$WORK/pins"
  mv "$WORK/pins" "$PINS"
  log "wrote $PINS; review it (git diff) and run make pi-check"
  exit 0
fi

# --- the dependency wheels, exactly as pinned ----------------------------------------------------
NAME="conveyor-watch-$VERSION-pi-$PLATFORM"
STAGE="$WORK/$NAME"
mkdir -p "$STAGE/wheels"
log "downloading pinned cp311 manylinux-$PLATFORM wheels"
pip download -q "${PLATFORM_ARGS[@]}" --constraint "$PINS" -d "$STAGE/wheels" "${PROJECT_WHEEL}[${EXTRAS}]" pip >&2

# Every wheel must be for this platform and pinned, and every pin present: a new dependency or a
# stale pin is an error here, not a surprise on a Pi without network.
problems=0
for wheel in "$STAGE"/wheels/*.whl; do
  base="$(basename "$wheel")"
  case "$base" in
    conveyor_watch-*) continue ;;
    *-py3-none-any.whl|*-py2.py3-none-any.whl) ;;
    *-cp311-cp311-*"_$PLATFORM.whl"|*-abi3-*"_$PLATFORM.whl") ;;
    *) log "$base is not a CPython 3.11 $PLATFORM or pure-Python wheel"; problems=1 ;;
  esac
  grep -qx "$(canonical "$base")" "$PINS" || { log "$base is not pinned in $PINS (scripts/pi-bundle.sh --update-pins)"; problems=1; }
done
while read -r pin; do
  found=0
  for wheel in "$STAGE"/wheels/*.whl; do [ "$(canonical "$wheel")" = "$pin" ] && found=1; done
  [ "$found" = 1 ] || { log "pin $pin matches no downloaded wheel (a stale pin?)"; problems=1; }
done < <(grep -v '^#' "$PINS" | grep -v '^$')
[ "$problems" = 0 ] || { log "the bundle is inconsistent with its pins; nothing written"; exit 1; }

# --- assemble ------------------------------------------------------------------------------------
cp "$WORK/src/systemd/install.sh" "$STAGE/install.sh"
chmod 0755 "$STAGE/install.sh"
cp "$WORK/src/systemd/conveyor-watch.service" "$STAGE/"
cp "$PINS" "$STAGE/constraints.txt"
commit="$(git -C "$SOURCE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
git -C "$SOURCE" diff --quiet HEAD 2>/dev/null || commit="$commit+changes"
cat > "$STAGE/BUNDLE" <<EOF
name=conveyor-watch
version=$VERSION
platform=$PLATFORM
python=cp311
os=Raspberry Pi OS Bookworm 64-bit (Debian 12 arm64)
commit=$commit
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
EOF
cat > "$STAGE/INSTALL.txt" <<EOF
conveyor-watch $VERSION for 64-bit Raspberry Pi OS Bookworm (aarch64). No network needed.

  sudo ./install.sh --offline                  # asks for site, line, device, broker, camera
  sudo ./install.sh --offline --yes --site plant-a --line biscuit-3 --broker 10.0.0.5 [--camera picamera2]
  sudo ./install.sh --status | --rollback | --uninstall [--purge]
  ./install.sh --help                          # every option

Upgrades: unpack the newer bundle and run its install.sh the same way; it installs beside the
running version, switches, and rolls back by itself if the service is not READY in time.
EOF
(cd "$STAGE" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum) > "$STAGE/SHA256SUMS"

mkdir -p "$OUT"
TAR="$OUT/$NAME.tar"
mtime="$(git -C "$SOURCE" log -1 --format=%ct 2>/dev/null || date +%s)"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" -C "$WORK" -cf "$TAR.partial" "$NAME"
mv "$TAR.partial" "$TAR"
log "$(find "$STAGE/wheels" -name '*.whl' | wc -l) wheels, $(du -m "$TAR" | cut -f1) MB"
echo "$TAR"
