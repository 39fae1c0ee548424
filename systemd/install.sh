#!/usr/bin/env bash
# conveyor-watch installer for 64-bit Raspberry Pi OS Bookworm (or Debian 12 arm64), run as root from
# an unpacked offline bundle (make pi-bundle). It never uses the network: Python packages come from
# the bundle's wheels with pip --no-index.
#
#   sudo ./install.sh --offline [site options] [--runtime litert|tflite] [--with-opencv]
#                     [--no-start] [--ready-timeout SECONDS] [--reinstall] [--console-edits|--no-console-edits]
#   sudo ./install.sh --rollback              back to the previous version, restarted and checked
#   sudo ./install.sh --uninstall [--purge]   keeps /etc/conveyor-watch and the outbox unless --purge
#   sudo ./install.sh --status
#
# Site options, for the first install (asked on a terminal when missing; --yes never asks):
#   --site NAME --line NAME --device NAME --broker HOST[:PORT] --protocol 3.1.1|5 --username NAME
#   --password-file FILE --tls --ca-file FILE --cert-file FILE --key-file FILE
#   --camera picamera2[:N]|opencv:URI|images:FOLDER|synthetic --size WxH --fps N --yes
#
# --console-edits lets the commissioning console save lanes into config.yaml: a unit drop-in gives the
# service ReadWritePaths=/etc/conveyor-watch, the folder becomes sticky and group-writable (the service
# can replace only files it owns: config.yaml and its backups, never the root-owned credentials) and
# config.yaml belongs to the service user. It is remembered; --no-console-edits takes it back.
#
# Versions live side by side in /opt/conveyor-watch/<version>, with `current` and `previous` links.
# An upgrade installs beside the running version, switches `current`, restarts the service and
# waits until it reports READY (after its first inference); if it does not within --ready-timeout
# seconds (default 90), it switches back and restarts the old version by itself.
# The unit is enabled and started only when `edge-daemon check-config` accepts the config and its
# credentials. Where systemd is not running (a container or chroot) the unit is installed and
# enabled, not started, and install.sh says so.
# Exit codes: 0 done; 1 installed but not running (config problems, not READY, rolled back);
#             2 nothing changed (bad option, wrong system, damaged bundle).
set -euo pipefail
umask 022

PREFIX=/opt/conveyor-watch
CONF=/etc/conveyor-watch
STATE=/var/lib/conveyor-watch
UNIT_NAME=conveyor-watch.service
UNIT_FILE=/etc/systemd/system/$UNIT_NAME
CONSOLE_DROPIN=/etc/systemd/system/$UNIT_NAME.d/console-edits.conf
USER_NAME=conveyor
CLI_LINK=/usr/local/bin/edge-daemon
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

say() { echo "== $*"; }
note() { echo "   $*"; }
die() { echo "install.sh: $*" >&2; exit 2; }    # nothing was changed
fail() { echo "install.sh: $*" >&2; exit 1; }   # installed, but not running as asked
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

# --- options -------------------------------------------------------------------------------------
MODE=install PURGE=0 START=1 REINSTALL=0 READY_TIMEOUT=90 RUNTIME="" WITH_OPENCV="" YES=0 CONSOLE_EDITS=""
INIT_ARGS=()
need_value() { if [ $# -lt 2 ] || [ -z "$2" ]; then die "$1 needs a value"; fi; }
while [ $# -gt 0 ]; do
  case "$1" in
    --offline) shift ;;  # always true: the bundle is the only package source
    --rollback) MODE=rollback; shift ;;
    --uninstall) MODE=uninstall; shift ;;
    --status) MODE=status; shift ;;
    --purge) PURGE=1; shift ;;
    --no-start) START=0; shift ;;
    --reinstall) REINSTALL=1; shift ;;
    --with-opencv) WITH_OPENCV=1; shift ;;
    --console-edits) CONSOLE_EDITS=1; shift ;;
    --no-console-edits) CONSOLE_EDITS=0; shift ;;
    --yes) YES=1; INIT_ARGS+=(--yes); shift ;;
    --tls) INIT_ARGS+=(--tls); shift ;;
    --runtime) need_value "$@"; RUNTIME="$2"; shift 2 ;;
    --ready-timeout) need_value "$@"; READY_TIMEOUT="$2"; shift 2 ;;
    --site|--line|--device|--broker|--protocol|--username|--camera|--size|--fps)
      need_value "$@"; INIT_ARGS+=("$1" "$2"); shift 2 ;;
    --password-file|--ca-file|--cert-file|--key-file)
      need_value "$@"; [ -f "$2" ] || die "$1 $2: file does not exist"
      INIT_ARGS+=("$1" "$(cd "$(dirname "$2")" && pwd)/$(basename "$2")"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done
case "$RUNTIME" in ""|litert|tflite) ;; *) die "--runtime must be litert or tflite, got '$RUNTIME'" ;; esac
case "$READY_TIMEOUT" in ''|*[!0-9]*) die "--ready-timeout must be a whole number of seconds, got '$READY_TIMEOUT'" ;; esac
[ "$PURGE" = 0 ] || [ "$MODE" = uninstall ] || die "--purge goes with --uninstall"
[ "$(id -u)" = 0 ] || die "run as root: sudo $0 $MODE"
if [ "$MODE" != status ]; then
  mkdir -p /run/lock
  exec 9>/run/lock/conveyor-watch-install.lock
  flock -n 9 || die "another install.sh is running"
fi

# --- systemd -------------------------------------------------------------------------------------
systemd_running() { [ -d /run/systemd/system ]; }  # sd_booted(): what systemctl itself checks
unit_state() { systemctl show -p "$1" --value "$UNIT_NAME" 2>/dev/null || true; }

# Restart the service and wait until it is active, which for Type=notify means READY=1 was sent.
restart_and_wait() {
  local timeout="$1"
  systemctl reset-failed "$UNIT_NAME" 2>/dev/null || true
  timeout "$timeout" systemctl restart "$UNIT_NAME" 2>/dev/null || true
  [ "$(unit_state ActiveState)" = active ]
}

describe_failure() {
  local status
  status="$(unit_state ExecMainStatus)"
  note "state $(unit_state ActiveState)/$(unit_state SubState), result $(unit_state Result), last exit status ${status:-?}"
  case "$status" in
    2) note "exit status 2: the configuration was refused (the unit does not retry it)" ;;
    3) note "exit status 3: the model was refused (the unit does not retry it)" ;;
  esac
  journalctl -u "$UNIT_NAME" -n 8 --no-pager -o cat 2>/dev/null | sed 's/^/   | /' || true
}

use_unit() {  # use_unit VERSION: the unit file that version was installed with (rolled back with it)
  local unit="$PREFIX/$1/$UNIT_NAME"
  [ -f "$unit" ] || unit="$HERE/$UNIT_NAME"
  cmp -s "$unit" "$UNIT_FILE" && return 0
  install -d "$(dirname "$UNIT_FILE")"
  install -m 0644 "$unit" "$UNIT_FILE"
  if systemd_running; then systemctl daemon-reload; fi
}

enable_unit() {
  if command -v systemctl >/dev/null 2>&1; then
    systemctl enable --quiet "$UNIT_NAME"   # also works offline in a chroot: it only makes links
  else
    install -d /etc/systemd/system/multi-user.target.wants
    ln -sfn "$UNIT_FILE" "/etc/systemd/system/multi-user.target.wants/$UNIT_NAME"
  fi
}

disable_unit() {
  if systemd_running; then
    systemctl disable --now --quiet "$UNIT_NAME" 2>/dev/null || true
  elif command -v systemctl >/dev/null 2>&1; then
    systemctl disable --quiet "$UNIT_NAME" 2>/dev/null || true
  fi
  rm -f "/etc/systemd/system/multi-user.target.wants/$UNIT_NAME"
}

# --- versions --------------------------------------------------------------------------------------
link_target() { if [ -L "$PREFIX/$1" ]; then basename "$(readlink "$PREFIX/$1")"; fi; }
set_link() {  # set_link NAME VERSION: atomic (rename over the old link)
  ln -sfn "$2" "$PREFIX/.$1.new"
  mv -Tf "$PREFIX/.$1.new" "$PREFIX/$1"
}
installed() { [ -n "$1" ] && [ -f "$PREFIX/$1/.installed" ]; }

# Make NEW current and running; if it is not READY in time, go back to OLD (when there is one).
activate() {
  local new="$1" old="$2" old_previous
  old_previous="$(link_target previous)"
  use_unit "$new"
  set_link current "$new"
  if [ -n "$old" ] && [ "$old" != "$new" ]; then set_link previous "$old"; fi
  if ! systemd_running; then
    note "systemd is not running here (container or chroot): $UNIT_NAME is installed and enabled, NOT started"
    note "it starts at the next boot; current -> $new"
    return 0
  fi
  if [ "$START" = 0 ]; then
    note "--no-start: current -> $new; the service was not (re)started"
    return 0
  fi
  say "restarting $UNIT_NAME on $new; waiting up to ${READY_TIMEOUT} s for READY"
  if restart_and_wait "$READY_TIMEOUT"; then
    note "READY: $(unit_state StatusText)"
    return 0
  fi
  if [ "$(unit_state ActiveState)" = failed ]; then
    echo "install.sh: $new failed before reporting READY" >&2
  else
    echo "install.sh: $new did not report READY within ${READY_TIMEOUT} s" >&2
  fi
  describe_failure >&2
  if [ -z "$old" ] || [ "$old" = "$new" ] || ! installed "$old"; then
    fail "the service is not running; fix the cause above (journalctl -u conveyor-watch), then: sudo systemctl restart conveyor-watch"
  fi
  say "rolling back to $old"
  use_unit "$old"
  set_link current "$old"
  if [ -n "$old_previous" ] && [ "$old_previous" != "$old" ]; then set_link previous "$old_previous"; else rm -f "$PREFIX/previous"; fi
  if restart_and_wait "$READY_TIMEOUT"; then
    fail "rolled back: $old is running again (READY); $new stays installed beside it"
  fi
  describe_failure >&2
  fail "rolled back to $old, but it did not report READY either; see journalctl -u conveyor-watch"
}

prune() {  # keep current, previous and the versions named
  local keep dir name
  keep=" $(link_target current) $(link_target previous) $* "
  for dir in "$PREFIX"/*/; do
    name="$(basename "$dir")"
    [ -L "${dir%/}" ] && continue
    case "$keep" in *" $name "*) continue ;; esac
    rm -rf "${dir%/}"
    note "removed old version $name"
  done
}

# --- modes that need no bundle -------------------------------------------------------------------
if [ "$MODE" = status ]; then
  echo "installed versions: $(cd "$PREFIX" 2>/dev/null && find . -mindepth 1 -maxdepth 1 -type d -printf '%f ' || echo none)"
  echo "current: $(link_target current)  previous: $(link_target previous)"
  if systemd_running; then
    echo "service: $(unit_state ActiveState)/$(unit_state SubState), enabled: $(systemctl is-enabled "$UNIT_NAME" 2>/dev/null || true)"
  else
    echo "service: systemd is not running here"
  fi
  exit 0
fi

if [ "$MODE" = rollback ]; then
  current="$(link_target current)" previous="$(link_target previous)"
  installed "$previous" || die "nothing to roll back to (no complete previous version in $PREFIX)"
  [ "$previous" != "$current" ] || die "previous and current are both $current"
  say "rolling back from ${current:-nothing} to $previous"
  activate "$previous" "$current"
  say "done: current -> $previous"
  exit 0
fi

if [ "$MODE" = uninstall ]; then
  say "stopping and removing $UNIT_NAME"
  disable_unit
  rm -f "$UNIT_FILE"
  systemd_running && systemctl daemon-reload
  if [ -L "$CLI_LINK" ] && [ "$(readlink "$CLI_LINK")" = "$PREFIX/current/venv/bin/edge-daemon" ]; then rm -f "$CLI_LINK"; fi
  rm -rf "$PREFIX"
  note "removed $PREFIX"
  if [ "$PURGE" = 1 ]; then
    rm -rf "$CONF" "$STATE" "/var/lib/private/conveyor-watch" "/etc/systemd/system/$UNIT_NAME.d"
    if id "$USER_NAME" >/dev/null 2>&1; then userdel "$USER_NAME" 2>/dev/null || note "could not remove user $USER_NAME"; fi
    note "purged $CONF, $STATE and user $USER_NAME"
  else
    note "kept $CONF (config, credentials) and $STATE (undelivered events); --uninstall --purge removes them"
  fi
  say "done"
  exit 0
fi

# --- install: the bundle -------------------------------------------------------------------------
if [ ! -f "$HERE/BUNDLE" ] || [ ! -d "$HERE/wheels" ]; then
  die "run install.sh from an unpacked bundle: make pi-bundle, copy dist/conveyor-watch-<version>-pi-aarch64.tar to the Pi, tar xf it, cd into it"
fi
bundle_value() { sed -n "s/^$1=//p" "$HERE/BUNDLE" | head -n 1; }
VERSION="$(bundle_value version)" PLATFORM="$(bundle_value platform)" PYTAG="$(bundle_value python)"
if [ -z "$VERSION" ] || [ -z "$PLATFORM" ]; then die "$HERE/BUNDLE is incomplete (needs version= and platform=)"; fi
case "$VERSION" in */*|.*) die "bad version '$VERSION' in $HERE/BUNDLE" ;; esac

say "checking the bundle (SHA256SUMS)"
if ! (cd "$HERE" && sha256sum --check --quiet --strict SHA256SUMS >/dev/null 2>&1); then
  bad="$(cd "$HERE" && { sha256sum --check --strict SHA256SUMS 2>/dev/null || true; } | grep -v ': OK$' | head -n 3 | tr '\n' ' ')" || true
  die "the bundle is damaged or was changed: ${bad:-SHA256SUMS cannot be checked}"
fi
for wheel in "$HERE"/wheels/*.whl; do
  grep -q " wheels/$(basename "$wheel")\$" "$HERE/SHA256SUMS" || die "wheels/$(basename "$wheel") is not in SHA256SUMS: the bundle was changed"
done

say "checking the system"
command -v python3 >/dev/null 2>&1 || die "python3 not found: conveyor-watch needs 64-bit Raspberry Pi OS Bookworm (Debian 12, Python 3.11)"
read -r PY_VERSION PY_BITS MACHINE <<<"$(python3 -c 'import platform, struct, sys; print("%d.%d" % sys.version_info[:2], struct.calcsize("P") * 8, platform.machine())')"
case "$MACHINE" in armv6l|armv7l|armv8l|armhf|i386|i586|i686) PY_BITS=32 ;; esac
[ "$PY_BITS" = 64 ] || die "this is a 32-bit system ($MACHINE): conveyor-watch needs 64-bit Raspberry Pi OS Bookworm (arm64); the TFLite runtimes ship no 32-bit wheels"
[ "$MACHINE" = "$PLATFORM" ] || die "this bundle is for $PLATFORM but this machine is $MACHINE (64-bit Raspberry Pi OS Bookworm is aarch64)"
[ "cp${PY_VERSION/./}" = "${PYTAG:-cp311}" ] || die "this bundle's wheels are for Python ${PYTAG:-cp311}; this system's python3 is $PY_VERSION (Raspberry Pi OS Bookworm has 3.11)"
python3 -c 'import venv' 2>/dev/null || die "python3's venv module is missing (Debian: libpython3.11-stdlib)"

# Runtime and extras: as asked, else as the running version was installed, else LiteRT.
CURRENT="$(link_target current)"
previous_setting() { if installed "$CURRENT"; then sed -n "s/^$1=//p" "$PREFIX/$CURRENT/.installed" | head -n 1; fi; }
[ -n "$RUNTIME" ] || RUNTIME="$(previous_setting runtime)"
[ -n "$RUNTIME" ] || RUNTIME=litert
[ -n "$WITH_OPENCV" ] || WITH_OPENCV="$(previous_setting opencv)"
[ -n "$WITH_OPENCV" ] || WITH_OPENCV=0
EXTRAS="$RUNTIME"
[ "$WITH_OPENCV" = 1 ] && EXTRAS="$EXTRAS,camera"

# numpy: apt's python3-picamera2 (and simplejpeg, av) are built against apt's numpy (1.24 on Bookworm),
# and the venv sees system packages, so a numpy in the venv would shadow it and break them. Use apt's
# when it fits every pinned package (>= 1.24, < 2: tflite-runtime 2.14 needs numpy 1); else the bundle's.
CONSTRAINTS="$(mktemp)"
trap 'rm -f "$CONSTRAINTS"' EXIT
SYSTEM_NUMPY="$(python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true)"
NUMPY_SOURCE=bundle
if [ -n "$SYSTEM_NUMPY" ] && python3 - "$SYSTEM_NUMPY" <<'EOF'
import re, sys
parts = tuple(int(p) for p in re.findall(r"\d+", sys.argv[1])[:2])
sys.exit(0 if (1, 24) <= parts < (2, 0) else 1)
EOF
then
  NUMPY_SOURCE="system-$SYSTEM_NUMPY"
  grep -v -i '^numpy==' "$HERE/constraints.txt" > "$CONSTRAINTS"
  echo "numpy==$SYSTEM_NUMPY" >> "$CONSTRAINTS"
else
  cp "$HERE/constraints.txt" "$CONSTRAINTS"
  [ -z "$SYSTEM_NUMPY" ] || note "apt's numpy $SYSTEM_NUMPY does not fit (needs 1.24-1.x): the venv gets its own, which hides apt's from Picamera2"
fi

say "user $USER_NAME (group video)"
if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin "$USER_NAME"
fi
if getent group video >/dev/null; then usermod -a -G video "$USER_NAME"; fi

# --- the version directory -------------------------------------------------------------------------
TARGET="$PREFIX/$VERSION"
BUNDLE_ID="$(sha256sum "$HERE/SHA256SUMS" | cut -c1-64)"
WANT="$(printf 'bundle=%s\nruntime=%s\nopencv=%s\nnumpy=%s\n' "$BUNDLE_ID" "$RUNTIME" "$WITH_OPENCV" "$NUMPY_SOURCE")"
install -d -m 0755 "$PREFIX"
CHANGED=0  # a re-run that changes nothing must not restart a running service
[ "$CURRENT" = "$VERSION" ] || CHANGED=1
if installed "$VERSION" && [ "$(cat "$TARGET/.installed")" = "$WANT" ] && [ "$REINSTALL" = 0 ]; then
  say "$VERSION is already installed from this bundle ($RUNTIME)"
else
  if installed "$VERSION" && [ "$VERSION" = "$CURRENT" ]; then
    [ "$REINSTALL" = 1 ] || die "$VERSION is the running version, installed from another bundle or with other options; add --reinstall to rebuild it (the service stops meanwhile)"
    if systemd_running; then systemctl stop "$UNIT_NAME" 2>/dev/null || true; fi
  fi
  say "installing $VERSION into $TARGET (runtime $RUNTIME, numpy from ${NUMPY_SOURCE%%-*})"
  CHANGED=1
  rm -rf "$TARGET"
  trap 'rm -f "$CONSTRAINTS"; [ -f "$TARGET/.installed" ] || rm -rf "$TARGET"' EXIT  # never leave half a version
  python3 -m venv --system-site-packages --without-pip "$TARGET/venv"
  pip_wheel="$(find "$HERE/wheels" -maxdepth 1 -name 'pip-*.whl' | head -n 1)"
  [ -n "$pip_wheel" ] || die "the bundle has no pip wheel"
  log="$(mktemp)"
  # pip runs from its wheel, with no config files or PIP_* variables of this machine, from the bundle only.
  if ! env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 PIP_CONFIG_FILE=/dev/null \
      "$TARGET/venv/bin/python" "$pip_wheel/pip" install --no-index --find-links "$HERE/wheels" --only-binary :all: \
      --constraint "$CONSTRAINTS" --no-cache-dir --disable-pip-version-check --no-warn-script-location \
      "conveyor-watch[$EXTRAS]==$VERSION" pip >"$log" 2>&1; then
    tail -n 15 "$log" >&2
    rm -f "$log"
    die "pip could not install $VERSION from the bundle (above); nothing was switched"
  fi
  rm -f "$log"
  case "$RUNTIME" in litert) module=ai_edge_litert.interpreter ;; *) module=tflite_runtime.interpreter ;; esac
  if ! problem="$("$TARGET/venv/bin/python" -c "import numpy, $module" 2>&1)"; then
    die "the $RUNTIME runtime does not load with numpy $("$TARGET/venv/bin/python" -c 'import numpy; print(numpy.__version__)' 2>/dev/null): $(echo "$problem" | tail -n 1)"
  fi
  install -m 0755 "$HERE/install.sh" "$TARGET/install.sh"
  install -m 0644 "$HERE/$UNIT_NAME" "$TARGET/$UNIT_NAME"
  echo "$WANT" > "$TARGET/.installed"
  note "numpy $("$TARGET/venv/bin/python" -c 'import numpy; print(numpy.__version__)'), $("$TARGET/venv/bin/edge-daemon" --version)"
fi

# --- configuration ---------------------------------------------------------------------------------
say "configuration in $CONF"
install -d -m 0750 -o root -g "$USER_NAME" "$CONF"
install -d -m 0700 -o root -g root "$CONF/credentials"
# systemd makes the state folder (StateDirectory=) itself; this one serves edge-daemon run outside systemd.
[ -d "$STATE" ] || install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$STATE"
if [ ! -e "$CONF/config.yaml" ]; then
  [ "$YES" = 1 ] || [ -t 0 ] || [ ${#INIT_ARGS[@]} -gt 0 ] || \
    die "no $CONF/config.yaml yet: give the site options (--site --line --broker ..., --yes) or run on a terminal to be asked"
  "$TARGET/venv/bin/edge-daemon" init --output "$CONF/config.yaml" --credentials-dir "$CONF/credentials" "${INIT_ARGS[@]}" \
    || die "no configuration written (above); nothing was started"
  CHANGED=1
elif [ ${#INIT_ARGS[@]} -gt 0 ] && [ "${INIT_ARGS[*]}" != "--yes" ]; then
  note "$CONF/config.yaml exists: site options ignored (edit it, or remove it to write a new one)"
fi
# Console edits: asked for now, or kept from an earlier install (the drop-in remembers).
if [ -z "$CONSOLE_EDITS" ]; then
  if [ -f "$CONSOLE_DROPIN" ]; then CONSOLE_EDITS=1; else CONSOLE_EDITS=0; fi
fi
if [ "$CONSOLE_EDITS" = 1 ]; then
  chmod 1770 "$CONF"
  chown "$USER_NAME":"$USER_NAME" "$CONF/config.yaml" && chmod 0640 "$CONF/config.yaml"
  # systemd applies ConfigurationDirectoryMode= at every start: the unit's 0750 would take the group's write back.
  dropin="$(printf '# install.sh --console-edits: the console may save lanes into config.yaml\n[Service]\nReadWritePaths=%s\nConfigurationDirectoryMode=1770\n' "$CONF")"
  if [ ! -f "$CONSOLE_DROPIN" ] || [ "$(cat "$CONSOLE_DROPIN")" != "$dropin" ]; then
    install -d "$(dirname "$CONSOLE_DROPIN")"
    printf '%s\n' "$dropin" > "$CONSOLE_DROPIN"
    CHANGED=1
    note "console edits allowed: the service may rewrite $CONF/config.yaml (install.sh --no-console-edits takes it back)"
  fi
else
  chmod 0750 "$CONF"
  chown root:"$USER_NAME" "$CONF/config.yaml" && chmod 0640 "$CONF/config.yaml"
  if [ -f "$CONSOLE_DROPIN" ]; then
    rm -f "$CONSOLE_DROPIN"
    rmdir "$(dirname "$CONSOLE_DROPIN")" 2>/dev/null || true
    CHANGED=1
    note "console edits taken back: $CONF is read-only for the service again"
  fi
fi
if systemd_running && [ "$CHANGED" = 1 ]; then systemctl daemon-reload; fi
for cert in ca.crt client.crt; do
  if [ -f "$CONF/$cert" ]; then chmod 0644 "$CONF/$cert"; fi
done
for cred in mqtt-password mqtt-client-key; do
  # LoadCredential= fails the unit when its file is missing; an empty one is never used unless the config names it.
  [ -e "$CONF/credentials/$cred" ] || install -m 0600 -o root -g root /dev/null "$CONF/credentials/$cred"
done
CONFIG_OK=1
if ! problems="$("$TARGET/venv/bin/edge-daemon" check-config "$CONF/config.yaml" --credentials-dir "$CONF/credentials" 2>&1 >/dev/null)"; then
  CONFIG_OK=0
  printf '%s\n' "$problems" | sed 's/^/   | /' >&2
fi

# --- the unit and the switch -----------------------------------------------------------------------
if [ "$CONFIG_OK" = 0 ]; then
  if [ -n "$CURRENT" ] && [ "$CURRENT" != "$VERSION" ]; then
    fail "$VERSION is installed beside $CURRENT but not switched: $VERSION refuses $CONF/config.yaml (above). Fix it and run install.sh again; $CURRENT keeps running"
  fi
  use_unit "$VERSION"
  set_link current "$VERSION"
  if systemd_running && systemctl is-active --quiet "$UNIT_NAME"; then systemctl stop "$UNIT_NAME"; fi
  disable_unit
  fail "installed $VERSION, but $UNIT_NAME is NOT enabled or started: $CONF/config.yaml has the problems above. Fix them (edge-daemon check-config $CONF/config.yaml --credentials-dir $CONF/credentials), then run install.sh again"
fi

say "unit $UNIT_FILE"
[ -n "$CURRENT" ] || set_link current "$VERSION"  # a first install: nothing runs yet, and verify needs ExecStart
if systemd_running && command -v systemd-analyze >/dev/null 2>&1; then
  # --man=no: a missing man page (no man-db on a Lite image) is not a fault of the unit.
  if ! verify="$(systemd-analyze verify --man=no "$TARGET/$UNIT_NAME" 2>&1)"; then
    printf '%s\n' "$verify" | sed 's/^/   | /' >&2
    fail "systemd-analyze verify rejects $UNIT_NAME of $VERSION (above); the service was not changed"
  fi
fi
cmp -s "$TARGET/$UNIT_NAME" "$UNIT_FILE" || CHANGED=1
[ -f "$UNIT_FILE" ] || use_unit "$VERSION"
if [ ! -L "$CLI_LINK" ] && [ ! -e "$CLI_LINK" ]; then
  install -d "$(dirname "$CLI_LINK")"
  ln -s "$PREFIX/current/venv/bin/edge-daemon" "$CLI_LINK"
fi
enable_unit
if [ "$CHANGED" = 0 ] && [ "$START" = 1 ] && systemd_running && systemctl is-active --quiet "$UNIT_NAME"; then
  say "nothing changed: $VERSION is current and $UNIT_NAME is running (not restarted)"
else
  activate "$VERSION" "$CURRENT"
fi
prune "$VERSION"
say "done: $VERSION ($RUNTIME); journalctl -u conveyor-watch -f shows the log"
