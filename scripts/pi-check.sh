#!/usr/bin/env bash
# make pi-check: the offline bundle proven on arm64 Debian Bookworm (what 64-bit Raspberry Pi OS is
# built on), on this x86-64 machine through qemu-user-static. Needs root. Takes about 10 minutes
# on 2 cores (the first run adds about 4 minutes to build the root, cached in build/pi-check/root-base).
#
# 1. scripts/pi-root.sh: the cached arm64 root (Python 3.11, apt's numpy 1.24.2, arm64 Mosquitto).
# 2. Three bundles: make pi-bundle's dist/ bundle (v1), <version>+pc2 (v2), and <version>+pc3bad
#    (v3), whose bundled model no longer matches its card, so the daemon refuses it (exit 3).
# 3. A fresh copy of the root, and scripts/pi-check-guest.sh in it, in three systemd-nspawn runs,
#    each with --private-network (no interface but loopback: offline):
#    phase 1 without systemd (a container), phase 2 booted with systemd as PID 1, phase 3 without
#    apt's numpy and without systemctl. See pi-check-guest.sh for every check.
#
# Two things are set up for qemu and are not part of the product:
#  * qemu-user shows arm64 programs the host's x86 /proc/cpuinfo, and cpuinfo (XNNPACK's CPU
#    detection) crashes on it; a Raspberry Pi 4's /proc/cpuinfo is mounted over it, and qemu
#    emulates the Pi 4's Cortex-A72 (QEMU_CPU): with qemu's default "max" CPU, XNNPACK's int8
#    kernels return wrong results (every probability 0) under qemu 7.2.
#  * In the booted container, systemd cannot set up credentials (EINVAL; its own tmpfiles units
#    fail alike) nor an IPC namespace (EIO), and the unit's private /proc (ProtectProc=invisible)
#    shows the host's cpuinfo again: a drop-in clears LoadCredential=, sets PrivateIPC=no and
#    binds the Pi cpuinfo into the unit's /proc. The checks use no credentials; every other
#    hardening setting of the unit stays in force.
# Usage: sudo scripts/pi-check.sh [--keep]   (--keep leaves build/pi-check/run for inspection)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"
KEEP=0
[ "${1:-}" = --keep ] && KEEP=1
[ "$(id -u)" = 0 ] || { echo "pi-check: needs root (debootstrap, systemd-nspawn): sudo make pi-check" >&2; exit 2; }

CACHE="$REPO/build/pi-check"
RUN="$CACHE/run"
MACHINE=conveyor-pi-check
QEMU_CPU_MODEL=cortex-a72
mkdir -p "$CACHE"
exec 8>"$CACHE/.lock"
flock -n 8 || { echo "pi-check: another pi-check is running" >&2; exit 2; }
LOG="$CACHE/pi-check.log"
exec > >(tee "$LOG") 2>&1
started=$SECONDS
stamp() { echo "[$(date +%H:%M:%S) +$((SECONDS - started)) s] $*"; }

NSPAWN_PID=""
cleanup() {
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    kill -TERM "$NSPAWN_PID" 2>/dev/null || true; sleep 5
    kill -TERM "$NSPAWN_PID" 2>/dev/null || true; sleep 2  # nspawn: a second SIGTERM terminates at once
    kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    wait "$NSPAWN_PID" 2>/dev/null || true
  fi
  rmdir "/run/systemd/nspawn/propagate/$MACHINE" 2>/dev/null || true
  if [ "$KEEP" = 0 ]; then rm -rf "$RUN"; fi
  rm -rf "$CACHE/src-bad"
}
trap cleanup EXIT

stamp "host tools"
if ! command -v systemd-nspawn >/dev/null 2>&1; then
  echo "pi-check: installing systemd-container (systemd-nspawn) from Debian"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd-container >/dev/null
fi
ROOT="$(scripts/pi-root.sh)"
stamp "arm64 root: $ROOT"

stamp "bundles"
V1_TAR="$(scripts/pi-bundle.sh)"
V2_TAR="$(PI_BUNDLE_PYTHON="$REPO/.venv-edge/bin/python" scripts/pi-bundle.sh --out "$CACHE/bundles" --local-version pc2)"
rm -rf "$CACHE/src-bad"
mkdir -p "$CACHE/src-bad"
git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done \
  | tar --null -T - -cf - | tar -C "$CACHE/src-bad" -xf -
git -C "$CACHE/src-bad" init -q
# Same size and structure, different weights: the card's sha256 no longer matches, so the model is refused.
printf '\x5a\x5a\x5a\x5a\x5a\x5a\x5a\x5a' | dd of="$CACHE/src-bad/edge/models/conveyor_int8.tflite" bs=1 seek=400000 conv=notrunc status=none
V3_TAR="$(PI_BUNDLE_PYTHON="$REPO/.venv-edge/bin/python" scripts/pi-bundle.sh --source "$CACHE/src-bad" --out "$CACHE/bundles" --local-version pc3bad)"
ls -l "$V1_TAR" "$V2_TAR" "$V3_TAR"

stamp "a fresh copy of the root"
rm -rf "$RUN"
cp -a "$ROOT" "$RUN"
GUEST="$RUN/root/pi-check"
mkdir -p "$GUEST/bundles/v1" "$GUEST/bundles/v2" "$GUEST/bundles/v3" "$RUN/usr/local/share/pi-check"
tar -C "$GUEST/bundles/v1" -xf "$V1_TAR"
tar -C "$GUEST/bundles/v2" -xf "$V2_TAR"
tar -C "$GUEST/bundles/v3" -xf "$V3_TAR"
install -m 0755 scripts/pi-check-guest.sh "$GUEST/guest.sh"
# A Raspberry Pi 4 Model B's /proc/cpuinfo (two of its four Cortex-A72 cores: this VM has two CPUs).
cpuinfo="$RUN/usr/local/share/pi-check/cpuinfo"
: >"$cpuinfo"
for cpu in $(seq 0 $(( $(nproc) - 1 ))); do
  printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\nCPU revision\t: 3\n\n' "$cpu" >>"$cpuinfo"
done
printf 'Revision\t: c03114\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n' >>"$cpuinfo"
# For the booted phase: every service gets the emulated CPU, the Pi cpuinfo is mounted at boot,
# and the unit gets the qemu drop-in described above.
mkdir -p "$RUN/etc/systemd/system.conf.d" "$RUN/etc/systemd/system/sysinit.target.wants" "$RUN/etc/systemd/system/conveyor-watch.service.d"
printf '[Manager]\nDefaultEnvironment=QEMU_CPU=%s\n' "$QEMU_CPU_MODEL" >"$RUN/etc/systemd/system.conf.d/pi-check-qemu.conf"
cat >"$RUN/etc/systemd/system/pi-check-cpuinfo.service" <<'EOF'
[Unit]
Description=pi-check: a Raspberry Pi 4 /proc/cpuinfo (qemu-user shows arm64 programs the host's)
DefaultDependencies=no
Before=sysinit.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/mount --bind /usr/local/share/pi-check/cpuinfo /proc/cpuinfo
[Install]
WantedBy=sysinit.target
EOF
ln -sf ../pi-check-cpuinfo.service "$RUN/etc/systemd/system/sysinit.target.wants/pi-check-cpuinfo.service"
cat >"$RUN/etc/systemd/system/conveyor-watch.service.d/pi-check-qemu.conf" <<'EOF'
# pi-check only (qemu-user in systemd-nspawn): see scripts/pi-check.sh
[Service]
LoadCredential=
PrivateIPC=no
BindReadOnlyPaths=/usr/local/share/pi-check/cpuinfo:/proc/cpuinfo
EOF
rm -f "$RUN/usr/sbin/policy-rc.d"  # the booted phase starts services (Mosquitto) like a real system

NSPAWN=(systemd-nspawn --quiet --register=no --keep-unit --machine="$MACHINE" --private-network -D "$RUN"
        --setenv=QEMU_CPU="$QEMU_CPU_MODEL")
results=()
run_phase() {  # run_phase NAME COMMAND...
  local t0=$SECONDS rc=0
  stamp "$1"
  "${@:2}" || rc=$?
  results+=("$1: $([ "$rc" = 0 ] && echo passed || echo FAILED) in $((SECONDS - t0)) s")
}

# shellcheck disable=SC2016  # expanded inside the container
run_phase "phase 1 (container, no systemd)" "${NSPAWN[@]}" /bin/bash -c \
  'mount --bind /usr/local/share/pi-check/cpuinfo /proc/cpuinfo && exec /root/pi-check/guest.sh phase1'

phase2() {
  "${NSPAWN[@]}" --boot --console=pipe </dev/null >"$CACHE/boot.log" 2>&1 &
  NSPAWN_PID=$!
  local leader="" state=""
  for _ in $(seq 120); do
    leader="$(pgrep -P "$NSPAWN_PID" | head -n 1 || true)"
    [ -n "$leader" ] && state="$(nsenter -t "$leader" -a /bin/systemctl is-system-running 2>/dev/null || true)"
    case "$state" in running|degraded) break ;; esac
    sleep 2
  done
  echo "container's systemd: ${state:-not up} after $((SECONDS - started)) s"
  [ -n "$leader" ] || return 1
  nsenter -t "$leader" -a /bin/systemctl --no-pager --failed | sed 's/^/    /' || true
  local rc=0
  nsenter -t "$leader" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root QEMU_CPU="$QEMU_CPU_MODEL" \
    /root/pi-check/guest.sh phase2 || rc=$?
  nsenter -t "$leader" -a /bin/systemctl --no-block poweroff >/dev/null 2>&1 || true
  for _ in $(seq 60); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 1; done
  if kill -0 "$NSPAWN_PID" 2>/dev/null; then kill -TERM "$NSPAWN_PID"; sleep 2; kill -TERM "$NSPAWN_PID" 2>/dev/null || true; fi
  wait "$NSPAWN_PID" 2>/dev/null || true
  NSPAWN_PID=""
  return $rc
}
run_phase "phase 2 (booted with systemd)" phase2

# shellcheck disable=SC2016
run_phase "phase 3 (no apt numpy, no systemctl)" "${NSPAWN[@]}" /bin/bash -c \
  'mount --bind /usr/local/share/pi-check/cpuinfo /proc/cpuinfo && exec /root/pi-check/guest.sh phase3'

echo
stamp "summary (log: $LOG)"
printf '  %s\n' "${results[@]}"
echo "  bundle: $V1_TAR ($(du -m "$V1_TAR" | cut -f1) MB)"
passes="$(grep -c '^PASS:' "$LOG" || true)" fails="$(grep -c '^FAIL:' "$LOG" || true)"
echo "  checks: $passes passed, $fails failed; total $((SECONDS - started)) s"
[ "$fails" = 0 ] && ! printf '%s\n' "${results[@]}" | grep -q FAILED
