#!/bin/bash
# The checks make pi-check runs inside the arm64 Bookworm root (scripts/pi-check.sh copies this file
# to /root/pi-check/guest.sh, with three offline bundles in /root/pi-check/bundles/v1..v3).
#   phase1  a container without systemd (systemd-nspawn, private network): first install from the
#           bundle with apt's numpy, the daemon on the synthetic camera against an arm64 Mosquitto on
#           loopback until an alert and its recovery arrive, XNNPACK with and without /proc/cpuinfo,
#           an idempotent re-run
#   phase2  the same root booted with systemd as PID 1: the unit starts and reports READY, events,
#           upgrade, upgrade to a version whose model is refused (automatic rollback), --rollback,
#           --uninstall, the check-config gate, --uninstall --purge
#   phase3  no apt numpy and no systemctl: install with tflite-runtime and the bundle's numpy, events
# Prints PASS:/FAIL: lines; exits 1 if any check failed.
set -uo pipefail
PC=/root/pi-check
V1_DIR="$(echo "$PC"/bundles/v1/conveyor-watch-*/)" V2_DIR="$(echo "$PC"/bundles/v2/conveyor-watch-*/)"
V3_DIR="$(echo "$PC"/bundles/v3/conveyor-watch-*/)"
bundle_version() { sed -n 's/^version=//p' "$1/BUNDLE"; }
V1="$(bundle_version "$V1_DIR")" V2="$(bundle_version "$V2_DIR")" V3="$(bundle_version "$V3_DIR")"
PREFIX=/opt/conveyor-watch CONF=/etc/conveyor-watch STATE=/var/lib/conveyor-watch
VENV_PY="$PREFIX/current/venv/bin/python"
SITE_ARGS=(--yes --site plant-a --line biscuit-3 --device pi-01 --broker 127.0.0.1 --camera synthetic)
EVENT_TIMEOUT="${EVENT_TIMEOUT:-420}"
mkdir -p "$PC/logs"
FAILS=0 N=0 T0=0

pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
check() { local what="$1"; shift; if "$@" >/dev/null 2>&1; then pass "$what"; else fail "$what"; fi; }
check_shown() { local what="$1"; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }  # the command's output stays
step() { T0=$SECONDS; echo; echo "### $*"; }
took() { echo "    (${1:-step} took $((SECONDS - T0)) s)"; }
link() { basename "$(readlink "$PREFIX/$1" 2>/dev/null)" 2>/dev/null; }
is() { [ "$1" = "$2" ]; }
has() { grep -q -- "$2" "$1"; }
fails() { ! "$@"; }
as_service() {  # run "$@" as the service user in a probe unit with the service's file-system sandbox
  # nsenter into the running unit cannot work here (setns() is not emulated by qemu-user: EINVAL), nor
  # systemd-run (no D-Bus in this root): a one-shot unit file, started with systemctl, does. Its sandbox
  # properties are the service's own, read back from systemd, so the service's drop-ins count; systemd
  # applies ConfigurationDirectoryMode= at the probe's start as it does at the service's.
  local show=(systemctl show --value conveyor-watch.service -p) unit=/run/systemd/system/cw-probe.service
  local out=/run/cw-probe.out rc=0 arg
  {
    printf '[Service]\nType=oneshot\nUser=conveyor\nGroup=conveyor\nProtectSystem=strict\n'
    printf 'ReadWritePaths=%s\n' "$("${show[@]}" ReadWritePaths)"
    printf 'ConfigurationDirectory=conveyor-watch\nConfigurationDirectoryMode=%s\n' "$("${show[@]}" ConfigurationDirectoryMode)"
    printf 'StandardOutput=append:%s\nStandardError=append:%s\nExecStart=' "$out" "$out"
    for arg in "$@"; do printf '"%s" ' "$arg"; done
    printf '\n'
  } > "$unit"
  rm -f "$out"
  systemctl daemon-reload
  systemctl start cw-probe.service 2>/dev/null || rc=$?
  cat "$out" 2>/dev/null
  rm -f "$unit" "$out"
  systemctl daemon-reload
  return "$rc"
}
probe_is_service_user() {
  local out
  out="$(as_service id -un 2>&1)"
  [ "$(printf '%s\n' "$out" | tail -n 1)" = conveyor ] || { printf '    the probe said: %s\n' "$out"; return 1; }
}
active() { systemctl is-active --quiet conveyor-watch.service; }
service_runs() {  # the main process has mapped files from /opt/conveyor-watch/<version>/ (the resolved link)
  local pid
  active && pid="$(systemctl show -p MainPID --value conveyor-watch.service)" && [ "$pid" -gt 0 ] && grep -q "$PREFIX/$1/" "/proc/$pid/maps"
}

run_install() {  # run_install SCRIPT ARGS...: output in $OUT, exit code in $RC
  N=$((N + 1)); OUT="$PC/logs/install-$N.log"
  echo "    \$ install.sh ${*:2}"
  "$1" "${@:2}" >"$OUT" 2>&1
  RC=$?
  sed 's/^/    | /' "$OUT"
  echo "    exit $RC"
}

# Subscribe to the device's events, then run "$@" (which starts or restarts the daemon); succeed once
# an alert event and a later ok event arrive (the synthetic belt's scripted gap and its recovery).
events_after() {
  local log="$PC/logs/events-$N.txt" sub result=1
  : >"$log"
  mosquitto_sub -h 127.0.0.1 -q 1 -t 'plant/+/+/+/event' >"$log" 2>&1 &
  sub=$!
  sleep 2
  "$@"
  if /usr/bin/python3 - "$log" "$EVENT_TIMEOUT" <<'EOF'
import json, sys, time
path, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    levels = []
    for line in open(path, encoding="utf-8", errors="replace"):
        try:
            levels.append(json.loads(line).get("level"))
        except ValueError:
            pass
    if "alert" in levels and "ok" in levels[levels.index("alert"):]:
        print("    events seen:", " -> ".join(l for l in levels if l))
        sys.exit(0)
    time.sleep(1)
print("    events seen before the timeout:", levels)
sys.exit(1)
EOF
  then result=0; fi
  kill "$sub" 2>/dev/null; wait "$sub" 2>/dev/null
  return $result
}

start_broker() {  # an arm64 Mosquitto from Debian, loopback only
  printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' >"$PC/mosquitto.conf"
  mosquitto -d -c "$PC/mosquitto.conf"
  for _ in $(seq 50); do mosquitto_sub -h 127.0.0.1 -t x -W 1 -C 1 >/dev/null 2>&1; [ $? = 27 ] && return 0; sleep 0.2; done
  return 0
}

DAEMON=""
start_daemon() {  # as the unit would: service user, state directory, the installed config
  setpriv --reuid=conveyor --regid=conveyor --init-groups \
    env -i PATH=/usr/bin:/bin STATE_DIRECTORY="$STATE" QEMU_CPU="${QEMU_CPU:-}" \
    "$PREFIX/current/venv/bin/edge-daemon" run --config "$CONF/config.yaml" >"$PC/logs/daemon-$N.log" 2>&1 &
  DAEMON=$!
}
stop_daemon() { kill -TERM "$DAEMON" 2>/dev/null; wait "$DAEMON"; }

delegate_nodes() {  # XNNPACK delegate nodes LiteRT applies to the bundled model
  "$VENV_PY" - <<'EOF' 2>/dev/null | tail -n 1
from ai_edge_litert.interpreter import Interpreter
from edge.config import BUNDLED_MODEL
interpreter = Interpreter(model_path=str(BUNDLED_MODEL), num_threads=1)
interpreter.allocate_tensors()
print([op["op_name"] for op in interpreter._get_ops_details()].count("DELEGATE"))
EOF
}

only_loopback() { /usr/bin/python3 -c 'import socket, sys; sys.exit(0 if [n for _, n in socket.if_nameindex()] == ["lo"] else 1)'; }

phase1() {
  step "phase 1: first install in a container without systemd, offline, apt numpy $(/usr/bin/python3 -c 'import numpy; print(numpy.__version__)'), LiteRT + OpenCV"
  check "the container has no network but loopback" only_loopback
  run_install "$V1_DIR/install.sh" --offline "${SITE_ARGS[@]}" --with-opencv
  check "install exits 0" is "$RC" 0
  check "it says the unit was installed and enabled but NOT started" has "$OUT" "NOT started"
  check "current -> $V1" is "$(link current)" "$V1"
  check "the unit is installed and enabled" test -f /etc/systemd/system/conveyor-watch.service -a -L /etc/systemd/system/multi-user.target.wants/conveyor-watch.service
  check "the venv uses apt's numpy 1.24.2 (what python3-picamera2 is built against)" \
    is "$("$VENV_PY" -c 'import numpy; print(numpy.__version__, numpy.__file__.startswith("/usr/lib/python3/"))')" "1.24.2 True"
  check "LiteRT, ml_dtypes and OpenCV load with apt's numpy" "$VENV_PY" -c 'import ai_edge_litert.interpreter, ml_dtypes, cv2'
  check "check-config accepts the written config and its credentials" \
    "$PREFIX/current/venv/bin/edge-daemon" check-config "$CONF/config.yaml" --credentials-dir "$CONF/credentials"
  check "config.yaml is root:conveyor 0640" is "$(stat -c '%U:%G %a' "$CONF/config.yaml")" "root:conveyor 640"
  took "phase 1 install"

  step "XNNPACK needs /proc/cpuinfo (why the unit has no ProcSubset=pid)"
  nodes="$(delegate_nodes)"
  echo "    /proc/cpuinfo visible: $nodes delegate nodes"
  check "with /proc/cpuinfo visible, LiteRT hands the model to XNNPACK (2 delegate nodes)" is "$nodes" 2
  hidden="$(unshare -m /bin/bash -c "mount -t proc -o subset=pid proc /proc && $(declare -f delegate_nodes); VENV_PY=$VENV_PY delegate_nodes")"
  echo "    /proc mounted with subset=pid (what ProcSubset=pid does): ${hidden:-?} delegate nodes"
  check "with ProcSubset=pid's /proc, XNNPACK is silently lost (0 delegate nodes)" is "$hidden" 0

  step "phase 1: the daemon on the synthetic camera -> arm64 Mosquitto on loopback, until events arrive"
  start_broker
  check_shown "alert and recovery events arrive (LiteRT, apt numpy)" events_after start_daemon
  stop_daemon
  check "the daemon stops cleanly on SIGTERM (exit 0)" is "$?" 0
  grep -E "ready|XNNPACK|stopping" "$PC/logs/daemon-$N.log" | sed 's/^/    | /'
  took "daemon run"

  step "phase 1: re-running the same bundle changes nothing"
  before="$(sha256sum "$CONF/config.yaml")"
  run_install "$V1_DIR/install.sh" --offline
  check "re-run exits 0" is "$RC" 0
  check "re-run says the version is already installed" has "$OUT" "already installed"
  check "re-run leaves config.yaml as it was" is "$(sha256sum "$CONF/config.yaml")" "$before"
  check "--status works without the bundle" "$PREFIX/current/install.sh" --status
  took "re-run"
  pkill_broker
}

pkill_broker() { [ -f /run/mosquitto.pid ] && kill "$(cat /run/mosquitto.pid)" 2>/dev/null; for p in /proc/[0-9]*; do [ "$(cat "$p/comm" 2>/dev/null)" = mosquitto ] && kill "${p#/proc/}" 2>/dev/null; done; return 0; }

wait_active() {  # wait_active SECONDS
  local end=$((SECONDS + $1))
  while [ $SECONDS -lt $end ]; do active && return 0; sleep 2; done
  return 1
}

phase2() {
  step "phase 2: booted with systemd; the unit enabled in phase 1 starts and reports READY"
  check "the container has no network but loopback" only_loopback
  check "Debian's arm64 Mosquitto runs as a service" systemctl is-active --quiet mosquitto.service
  check "conveyor-watch becomes active (READY after its first inference)" wait_active 240
  echo "    status: $(systemctl show -p StatusText --value conveyor-watch.service)"
  check_shown "alert and recovery events arrive from the service" events_after systemctl restart conveyor-watch.service
  check "the service uses XNNPACK under the unit" bash -c "journalctl -u conveyor-watch.service -o cat | grep -q 'XNNPACK delegate'"
  took "boot checks"

  step "phase 2: upgrade $V1 -> $V2 (installed beside, switched, restarted, READY)"
  run_install "$V2_DIR/install.sh" --offline
  check "upgrade exits 0" is "$RC" 0
  check "current -> $V2, previous -> $V1" is "$(link current) $(link previous)" "$V2 $V1"
  check "the service is active and runs $V2's files" service_runs "$V2"
  check "the new version reports its version" is "$("$PREFIX/current/venv/bin/edge-daemon" --version)" "edge-daemon $V2"
  pid="$(systemctl show -p MainPID --value conveyor-watch.service)"
  run_install "$V2_DIR/install.sh" --offline
  check "re-running the same bundle exits 0 and says nothing changed" has "$OUT" "nothing changed"
  check "... and does not restart the running service (same main PID)" is "$(systemctl show -p MainPID --value conveyor-watch.service)" "$pid"
  took "upgrade"

  step "phase 2: the console may rewrite config.yaml only after install.sh --console-edits"
  check_shown "the probe runs as the service user (so its refusals below mean something)" probe_is_service_user
  check "by default the service cannot write in $CONF" fails as_service touch "$CONF/.probe"
  run_install "$V2_DIR/install.sh" --offline --console-edits
  check "--console-edits exits 0" is "$RC" 0
  check "a drop-in gives the unit ReadWritePaths=$CONF" bash -c "systemctl show -p ReadWritePaths --value conveyor-watch.service | grep -q $CONF"
  check "the service is active" wait_active 240
  check_shown "the service user can now write in $CONF under the unit" as_service touch "$CONF/.probe" \
    || { stat -c '    %n: %A %U:%G' "$CONF" "$CONF/config.yaml"; sed 's/^/    drop-in: /' /etc/systemd/system/conveyor-watch.service.d/*.conf; }
  check "... replace config.yaml atomically (it owns it)" as_service bash -c "cp $CONF/config.yaml $CONF/.c && mv -f $CONF/.c $CONF/config.yaml"
  check "... but not move the root-owned credentials away (sticky folder)" fails as_service mv "$CONF/credentials" "$CONF/stolen"
  rm -f "$CONF/.probe"
  run_install "$V2_DIR/install.sh" --offline
  check "a re-run remembers the choice" bash -c "systemctl show -p ReadWritePaths --value conveyor-watch.service | grep -q $CONF"
  run_install "$V2_DIR/install.sh" --offline --no-console-edits
  check "--no-console-edits exits 0" is "$RC" 0
  check "the service is active" wait_active 240
  check "$CONF is read-only for the service again" fails as_service touch "$CONF/.probe"
  check "config.yaml is root:conveyor 0640 again" is "$(stat -c '%U:%G %a' "$CONF/config.yaml")" "root:conveyor 640"
  took "console edits"

  step "phase 2: upgrade to $V3, whose model is refused (exit 3): automatic rollback"
  run_install "$V3_DIR/install.sh" --offline
  check "the failed upgrade exits 1" is "$RC" 1
  check "it names exit status 3 (model refused)" has "$OUT" "exit status 3"
  check "RestartPreventExitStatus stopped the unit retrying (state failed, not auto-restart)" has "$OUT" "state failed/failed"
  check "it rolled back by itself" has "$OUT" "rolled back: $V2 is running again"
  check "current -> $V2 again, previous -> $V1" is "$(link current) $(link previous)" "$V2 $V1"
  check "the service is active again, on $V2's files" service_runs "$V2"
  check "$V3 stays installed beside it" test -f "$PREFIX/$V3/.installed"
  took "failed upgrade"

  step "phase 2: install.sh --rollback (run from the installed copy)"
  run_install "$PREFIX/current/install.sh" --rollback
  check "--rollback exits 0" is "$RC" 0
  check "current -> $V1, previous -> $V2" is "$(link current) $(link previous)" "$V1 $V2"
  check "the service is active and runs $V1's files" service_runs "$V1"
  took "rollback"

  step "phase 2: install.sh --uninstall keeps config and state"
  run_install "$PREFIX/current/install.sh" --uninstall
  check "--uninstall exits 0" is "$RC" 0
  check "the service is stopped and its unit removed" bash -c "! systemctl is-active --quiet conveyor-watch && test ! -e /etc/systemd/system/conveyor-watch.service"
  check "$PREFIX is gone" test ! -e "$PREFIX"
  check "config and credentials are kept" test -f "$CONF/config.yaml" -a -d "$CONF/credentials"
  check "the state folder (outbox) is kept" test -f "$STATE/outbox.sqlite"
  took "uninstall"

  step "phase 2: the check-config gate: a config that cannot run is never enabled or started"
  sed -i 's/^  type: synthetic$/  type: picamera2/' "$CONF/config.yaml"
  run_install "$V2_DIR/install.sh" --offline
  check "install exits 1" is "$RC" 1
  check "it shows check-config's reason (no Picamera2 in this root)" has "$OUT" "needs Picamera2"
  check "it says the unit is NOT enabled or started" has "$OUT" "NOT enabled or started"
  check "the unit is not enabled" bash -c "! systemctl is-enabled --quiet conveyor-watch"
  check "the service is not running" bash -c "! systemctl is-active --quiet conveyor-watch"
  sed -i 's/^  type: picamera2$/  type: synthetic/' "$CONF/config.yaml"
  run_install "$V2_DIR/install.sh" --offline
  check "after the fix, the re-run exits 0" is "$RC" 0
  check "the unit is enabled and active" bash -c "systemctl is-enabled --quiet conveyor-watch && systemctl is-active --quiet conveyor-watch"
  took "gate"

  step "phase 2: install.sh --uninstall --purge"
  run_install "$V2_DIR/install.sh" --uninstall --purge
  check "--purge exits 0" is "$RC" 0
  check "config, state and the service user are gone" bash -c "test ! -e $CONF -a ! -e $STATE && ! id conveyor"
  took "purge"
}

phase3() {
  step "phase 3: no apt numpy, no systemctl: tflite-runtime with the bundle's numpy, OpenCV"
  dpkg --purge --force-depends python3-numpy >/dev/null 2>&1
  mv /usr/bin/systemctl /usr/bin/systemctl.pi-check-hidden 2>/dev/null
  check "apt's numpy is gone" bash -c "! /usr/bin/python3 -c 'import numpy'"
  run_install "$V2_DIR/install.sh" --offline "${SITE_ARGS[@]}" --runtime tflite --with-opencv
  check "install exits 0" is "$RC" 0
  check "it says the unit was not started" has "$OUT" "NOT started"
  check "the unit is enabled without systemctl (wants link)" test -L /etc/systemd/system/multi-user.target.wants/conveyor-watch.service
  check "the venv has the bundle's numpy 1.26.4" is "$("$VENV_PY" -c 'import numpy; print(numpy.__version__, "/opt/" in numpy.__file__)')" "1.26.4 True"
  check "tflite-runtime and OpenCV load" "$VENV_PY" -c 'import tflite_runtime.interpreter, cv2'
  start_broker
  check_shown "alert and recovery events arrive (tflite-runtime, bundle numpy)" events_after start_daemon
  stop_daemon
  grep -E "ready" "$PC/logs/daemon-$N.log" | sed 's/^/    | /'
  pkill_broker
  mv /usr/bin/systemctl.pi-check-hidden /usr/bin/systemctl 2>/dev/null
  took "phase 3"
}

"${1:?phase1, phase2 or phase3}"
echo
echo "$1: $FAILS check(s) failed"
[ "$FAILS" = 0 ]
