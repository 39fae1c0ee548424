"""Is the wall clock synchronised? A Raspberry Pi has no RTC: until NTP has set the clock,
timestamps are wrong, so every event and telemetry message says whether it could be trusted.

Read from the kernel's NTP state with ``adjtimex(2)`` in read-only mode (the answer of chrony,
systemd-timesyncd and ntpd alike), with no extra daemon. Where a seccomp filter denies that call,
systemd-timesyncd's flag file is the fallback; if neither can tell, the answer is False: an
unverified clock is not a synchronised one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import lru_cache
from pathlib import Path

log = logging.getLogger(__name__)

TIME_ERROR = 5  # adjtimex(2): "the clock is not synchronised"
STA_UNSYNC = 0x0040
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")


class _Timex(ctypes.Structure):
    # The leading fields of struct timex (identical on x86-64 and aarch64), padded well past its size.
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("_rest", ctypes.c_byte * 256)]


@lru_cache(maxsize=1)
def _adjtimex() -> object | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name, use_errno=True)
    return getattr(libc, "adjtimex", None)


def synced_from(state: int, status: int) -> bool:
    """The kernel's verdict from adjtimex's return value and its status bits."""
    return state != TIME_ERROR and not status & STA_UNSYNC


def clock_synced() -> bool:
    """True when the kernel says NTP has synchronised the wall clock."""
    call = _adjtimex()
    if call is not None:
        timex = _Timex()  # modes = 0: read only, needs no privilege
        state = call(ctypes.byref(timex))  # type: ignore[operator]
        if state >= 0:
            return synced_from(int(state), int(timex.status))
        log.debug("adjtimex failed (errno %d); using %s", ctypes.get_errno(), TIMESYNCD_FLAG)
    return TIMESYNCD_FLAG.exists()
