#!/usr/bin/env bash
# Install conveyor-watch as a systemd service on a Raspberry Pi (Raspberry Pi OS Bookworm) or any
# Debian box. Idempotent: run it again to upgrade. Usage (as root, from a checkout):
#   sudo systemd/install.sh [--runtime litert|tflite] [--no-start]
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
PREFIX=/opt/conveyor-watch
CONF=/etc/conveyor-watch
STATE=/var/lib/conveyor-watch
USER_NAME=conveyor
RUNTIME=litert
START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime) RUNTIME="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1 (expected --runtime litert|tflite, --no-start)" >&2; exit 2 ;;
  esac
done
case "$RUNTIME" in litert|tflite) ;; *) echo "install.sh: --runtime must be litert or tflite, got '$RUNTIME'" >&2; exit 2 ;; esac
[ "$(id -u)" = 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 2; }

echo "== packages"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
# apt's Picamera2 (libcamera bindings are not on PyPI); present on Raspberry Pi OS only.
if apt-cache show python3-picamera2 >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-picamera2 >/dev/null
fi

echo "== user $USER_NAME (groups: video)"
if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
fi
getent group video >/dev/null && usermod -a -G video "$USER_NAME"

echo "== venv in $PREFIX/venv (system site-packages, so apt's picamera2 is visible)"
install -d -m 0755 "$PREFIX"
[ -x "$PREFIX/venv/bin/python" ] || python3 -m venv --system-site-packages "$PREFIX/venv"
constraints="$(mktemp)"
# Keep Debian's numpy when apt's picamera2 (built against it) is installed: a numpy 2 in the venv
# would shadow it and break picamera2's compiled dependencies.
if /usr/bin/python3 -c 'import picamera2' >/dev/null 2>&1; then
  /usr/bin/python3 -c 'import numpy; print("numpy==" + numpy.__version__)' > "$constraints"
fi
[ "$RUNTIME" = tflite ] && echo "numpy<2" >> "$constraints"
"$PREFIX/venv/bin/pip" install -q --upgrade pip
"$PREFIX/venv/bin/pip" install -q --constraint "$constraints" "$SRC[$RUNTIME]"
rm -f "$constraints"

echo "== configuration in $CONF"
install -d -m 0750 -o root -g "$USER_NAME" "$CONF"
install -d -m 0700 -o root -g root "$CONF/credentials"
for cred in mqtt-password mqtt-client-key; do
  # LoadCredential= needs the files to exist; empty ones are never used unless the config names them.
  [ -e "$CONF/credentials/$cred" ] || install -m 0600 -o root -g root /dev/null "$CONF/credentials/$cred"
done
if [ ! -e "$CONF/config.yaml" ]; then
  install -m 0640 -o root -g "$USER_NAME" "$SRC/edge/examples/config.yaml" "$CONF/config.yaml"
  echo "   wrote $CONF/config.yaml from the example: edit device, mqtt and source, then restart"
fi
"$PREFIX/venv/bin/edge-daemon" check-config "$CONF/config.yaml" >/dev/null || \
  echo "   $CONF/config.yaml has problems (above); fix them before starting" >&2

echo "== unit"
install -m 0644 "$SRC/systemd/conveyor-watch.service" /etc/systemd/system/conveyor-watch.service
systemd-analyze verify /etc/systemd/system/conveyor-watch.service
systemctl daemon-reload
systemctl enable conveyor-watch.service
if [ "$START" = 1 ]; then
  systemctl restart conveyor-watch.service
  systemctl --no-pager --lines=5 status conveyor-watch.service || true
fi
echo "done: journalctl -u conveyor-watch -f   shows the log"
