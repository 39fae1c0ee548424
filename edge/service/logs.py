"""Logging set-up for the service: plain lines on a terminal, priority-tagged lines under journald.

systemd reads a ``<N>`` prefix on each line written to a journal stream as its syslog priority
(SyslogLevelPrefix=, on by default), so ``journalctl -p err`` shows our errors. Every line of a
multi-line record (a traceback) gets the prefix, since the journal stores lines separately.
"""

from __future__ import annotations

import logging
import os
import sys

# Python level -> syslog priority (3 err, 4 warning, 6 info, 7 debug).
PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def under_journald() -> bool:
    """True when stderr is connected to the journal (systemd sets $JOURNAL_STREAM to its device:inode)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in stream:
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):
        return False
    return stream == f"{st.st_dev}:{st.st_ino}"


class JournalFormatter(logging.Formatter):
    """Prefixes every line with ``<priority>``; the journal adds its own timestamp."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        priority = PRIORITY.get(record.levelno, 6 if record.levelno < logging.WARNING else 3)
        return "\n".join(f"<{priority}>{line}" for line in super().format(record).splitlines())


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if under_journald():
        handler.setFormatter(JournalFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler], force=True)
    logging.getLogger("paho").setLevel(logging.WARNING)
