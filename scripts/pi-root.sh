#!/usr/bin/env bash
# Build, once, an arm64 Debian Bookworm root that stands in for a Raspberry Pi (64-bit Raspberry
# Pi OS is Debian Bookworm arm64 plus Raspberry Pi's own packages): Python 3.11, apt's numpy 1.24
# (what python3-picamera2 pulls in), systemd's tools (not running) and an arm64 Mosquitto.
# It runs here through qemu-user-static and binfmt_misc; timings inside it mean nothing.
#
# The root is cached under build/pi-check/ (keyed on this script) and never modified by the
# checks: scripts/pi-check.sh works on a copy. Needs root; installs debootstrap, qemu-user-static
# and binfmt-support from Debian when they are missing.
# Usage: scripts/pi-root.sh [--rebuild]      prints the root's path on stdout
set -euo pipefail
cd "$(dirname "$0")/.."

SUITE=bookworm
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# mosquitto + clients: the broker the daemon talks to inside the root. systemd: systemctl and
# systemd-analyze exist (as on a Pi) but nothing runs them as PID 1 here.
PACKAGES=python3,python3-numpy,mosquitto,mosquitto-clients,systemd,ca-certificates
CACHE=build/pi-check
ROOT="$CACHE/root-base"
KEY="$(sha256sum < "$0" | cut -c1-16)"

log() { echo "pi-root: $*" >&2; }
die() { echo "pi-root: $*" >&2; exit 2; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot and mounts): run it with sudo"
[ "${1:-}" = --rebuild ] && rm -rf "$ROOT"

ensure_host_tools() {
  local missing=()
  command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null 2>&1 || missing+=(binfmt-support)
  if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]} from Debian"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # binfmt_misc is usually mounted by systemd; in containers and VMs without it, mount it here.
  # It is left mounted: the registration is host-wide and other users of qemu may rely on it.
  if [ ! -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || die "cannot mount binfmt_misc (is this a container without it?)"
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || die "qemu-aarch64 is not registered with binfmt_misc (update-binfmts --enable qemu-aarch64)"
  # The F (fix-binary) flag lets the kernel run the interpreter inside a chroot that lacks it.
  grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 || die "qemu-aarch64 binfmt entry lacks the F flag; reinstall qemu-user-static"
}

if [ -f "$ROOT/.conveyor-root" ] && [ "$(cat "$ROOT/.conveyor-root")" = "$KEY" ]; then
  ensure_host_tools
  echo "$ROOT"
  exit 0
fi

ensure_host_tools
mkdir -p "$CACHE"
work="$CACHE/root-building"
# shellcheck disable=SC2317  # called by the trap
cleanup() {
  for m in proc dev/pts dev sys; do
    mountpoint -q "$work/$m" 2>/dev/null && umount -l "$work/$m"
  done
  return 0
}
trap cleanup EXIT
cleanup
rm -rf "$work"
started=$SECONDS
log "debootstrap $SUITE arm64 into $work (first stage: download and unpack)"
debootstrap --arch=arm64 --variant=minbase --foreign --include="$PACKAGES" "$SUITE" "$work" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
  || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap (first stage) failed; full log in $CACHE/debootstrap.log"; }
# Package scripts must not start daemons (mosquitto) in a root that has no init: policy-rc.d says no.
printf '#!/bin/sh\nexit 101\n' > "$work/usr/sbin/policy-rc.d"
chmod 0755 "$work/usr/sbin/policy-rc.d"
log "second stage (runs arm64 dpkg under qemu: several minutes)"
chroot "$work" /debootstrap/debootstrap --second-stage >>"$CACHE/debootstrap.log" 2>&1 \
  || { tail -20 "$CACHE/debootstrap.log" >&2; die "debootstrap (second stage) failed; full log in $CACHE/debootstrap.log"; }
chroot "$work" /usr/bin/python3 -c 'import numpy, platform, struct; assert platform.machine() == "aarch64" and struct.calcsize("P") == 8' \
  || die "the root's python3 does not run as 64-bit aarch64"
chroot "$work" apt-get clean
echo "$KEY" > "$work/.conveyor-root"
rm -rf "$ROOT"
mv "$work" "$ROOT"
log "root ready in $((SECONDS - started)) s: $ROOT ($(du -sh "$ROOT" | cut -f1))"
echo "$ROOT"
