"""Named crash points for the kill -9 tests: the store's writes are only as safe as their worst moment.

Every step of an install, a promotion or a switch that leaves something on disk calls
:func:`step` with its name. When ``CONVEYOR_CRASH_AT`` names that step, the process sends itself
SIGKILL right there: exactly what a power cut or ``kill -9`` does at that moment, reproducibly.
Unset (always, outside the tests) it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

CRASH_ENV = "CONVEYOR_CRASH_AT"


def step(name: str) -> None:
    """A step boundary; dies here with SIGKILL when ``$CONVEYOR_CRASH_AT`` is ``name``."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
