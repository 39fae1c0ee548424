"""The CPU model and its feature flags, read from /proc/cpuinfo (x86 ``flags``, ARM ``Features``)."""

from __future__ import annotations

from pathlib import Path

UNKNOWN_CPU = "unknown"


def read_cpuinfo(text: str | None = None) -> tuple[str, set[str]]:
    """(model name, feature flags) of the first CPU listed; ("unknown", empty) where /proc/cpuinfo cannot be read."""
    if text is None:
        try:
            text = Path("/proc/cpuinfo").read_text()
        except OSError:
            text = ""
    model, flags = UNKNOWN_CPU, set[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model == UNKNOWN_CPU:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags
