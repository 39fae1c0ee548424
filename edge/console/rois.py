"""Lanes drawn in the console, saved to the config file and applied without a restart.

:meth:`RoiEditor.save` takes the ROIs as the browser sends them and

1. validates the whole file with them through the same code as ``check-config``
   (:func:`edge.config.parse_config`): a bad box or name is refused with the same one-line messages;
2. rewrites only the top-level ``rois:`` block of the file's text (every other line, comments
   included, stays as the operator wrote it), checks that the result parses to exactly the intended
   config, and writes it atomically: the previous file is kept as ``<file>.bak``, the new text goes
   to a temporary file beside it, is synced, and renamed over the original;
3. hands the new ROIs to the running daemon (``apply``: in the frame loop, via ``Daemon.call_soon``).

The file is written before the daemon changes, so the file always says what runs after a restart.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import yaml

from edge.config import EdgeConfig, Roi, parse_config, safe_load
from edge.errors import ConfigError, EdgeError

TOP_LEVEL_KEY = re.compile(r"^[^\s#-][^:]*:")
ROIS_KEY = re.compile(r"^rois\s*:")
DECIMALS = 4


class RoiSaveError(EdgeError):
    """The ROIs were valid but could not be saved or applied; nothing changed."""


def normalise(rois: Any) -> Any:
    """Round box values to 4 decimals (a tenth of a pixel at 1000 px) and keep each box inside the frame
    after rounding. Anything that is not a list of ROI mappings goes through unchanged for the validator."""
    if not isinstance(rois, list):
        return rois
    out = []
    for roi in rois:
        if isinstance(roi, dict) and isinstance(roi.get("box"), list) and len(roi["box"]) == 4 \
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in roi["box"]):
            x, y, w, h = (round(float(v), DECIMALS) for v in roi["box"])
            roi = {**roi, "box": [x, y, min(w, round(1.0 - x, DECIMALS)), min(h, round(1.0 - y, DECIMALS))]}
        out.append(roi)
    return out


def with_flows(rois: Any, running: Iterable[Roi]) -> Any:
    """Each lane's ``flow`` as sent, else as that lane (by name) runs now: a client that knows nothing of ``flow``
    keeps it. The default, ``across``, is left out, as the file would say it. Anything that is not a list of ROI
    mappings goes through unchanged for the validator."""
    if not isinstance(rois, list):
        return rois
    flows = {roi.name: roi.flow for roi in running}
    out = []
    for roi in rois:
        if isinstance(roi, dict):
            name = roi.get("name")
            flow = roi["flow"] if "flow" in roi else flows.get(name, "across") if isinstance(name, str) else "across"
            roi = {key: value for key, value in roi.items() if key != "flow"} | ({} if flow == "across" else {"flow": flow})
        out.append(roi)
    return out


def rois_block(rois: list[dict[str, Any]]) -> str:
    """The ``rois:`` section as YAML text (names quoted: ``no`` or ``123`` are names here, not booleans or numbers;
    ``flow`` written only when it is not the default)."""
    lines = ["rois:"]
    for roi in rois:
        box = ", ".join(repr(float(v)) for v in roi["box"])
        lines += [f"  - name: \"{roi['name']}\"", f"    box: [{box}]"]
        if roi.get("flow", "across") != "across":
            lines.append(f"    flow: {roi['flow']}")
    return "\n".join(lines) + "\n"


def replace_rois(text: str, rois: list[dict[str, Any]]) -> str:
    """``text`` with its top-level ``rois:`` block replaced by ``rois`` (appended when there is none)."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if ROIS_KEY.match(line)), None)
    block = rois_block(rois)
    if start is None:
        return text + ("" if not text or text.endswith("\n") else "\n") + block
    end = start + 1
    last_content = start + 1
    while end < len(lines):
        line = lines[end]
        if TOP_LEVEL_KEY.match(line) or line.startswith("---") or line.startswith("..."):
            break
        end += 1
        if line.strip() and not line.startswith("#"):
            last_content = end
    # Comment and blank lines between the block and the next key belong to what follows.
    return "".join(lines[:start]) + block + "".join(lines[last_content:])


def _write_atomically(path: Path, data: bytes, like: Path | None = None) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        if like is not None and like.exists():
            os.chmod(tmp, like.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


class RoiEditor:
    """Saves and applies ROI edits (one at a time)."""

    def __init__(self, config_path: Path | None, running: Callable[[], EdgeConfig], apply: Callable[[EdgeConfig], None]) -> None:
        self.config_path = config_path
        self._running = running
        self._apply = apply
        self._lock = threading.Lock()

    @property
    def backup_path(self) -> Path | None:
        return self.config_path.with_name(self.config_path.name + ".bak") if self.config_path else None

    def writable(self) -> str | None:
        """Why edits cannot be saved, or None when they can."""
        if self.config_path is None:
            return "this daemon was not started from a config file (edge-daemon run --config FILE)"
        if not os.access(self.config_path.parent, os.W_OK) or not os.access(self.config_path, os.W_OK):
            return f"{self.config_path} is not writable by this service (see docs/console.md)"
        return None

    def save(self, rois: Any) -> EdgeConfig:
        """Validate, write and apply ``rois``; the running config afterwards.

        Raises :class:`ConfigError` (the ``check-config`` messages) for invalid ROIs and
        :class:`RoiSaveError` when the file cannot be written or the daemon did not take them.
        """
        with self._lock:
            path = self.config_path
            if path is None:
                raise RoiSaveError(f"cannot save: {self.writable()}")
            name = str(path)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise RoiSaveError(f"{name}: cannot read ({exc})") from exc
            try:
                data = safe_load(text) or {}
            except yaml.YAMLError as exc:
                raise RoiSaveError(f"{name}: the file no longer parses as YAML; fix it by hand ({exc})") from exc
            if not isinstance(data, dict):
                raise RoiSaveError(f"{name}: expected a mapping of sections at the top level")
            wanted = {**data, "rois": with_flows(normalise(rois), self._running().rois)}
            parse_config(wanted, name)  # raises ConfigError worded as check-config words it
            new_text = replace_rois(text, wanted["rois"])
            if safe_load(new_text) != wanted:  # unusual YAML (anchors, flow style across keys): write it plainly
                new_text = ("# Rewritten by the conveyor-watch console when the lanes were saved; the previous file is "
                            f"{path.name}.bak\n") + yaml.safe_dump(wanted, sort_keys=False)
            new_config = parse_config(safe_load(new_text), name)
            why_not = self.writable()
            if why_not is not None:
                raise RoiSaveError(f"cannot save: {why_not}; the running lanes are unchanged")
            try:
                _write_atomically(path.with_name(path.name + ".bak"), text.encode("utf-8"), like=path)
                _write_atomically(path, new_text.encode("utf-8"), like=path)
            except OSError as exc:
                raise RoiSaveError(f"{name}: cannot write ({exc.strerror}); the running lanes are unchanged") from exc
            running = self._running().model_copy(update={"rois": new_config.rois})
            try:
                self._apply(running)
            except Exception as exc:
                raise RoiSaveError(f"saved to {name}, but the running daemon did not take the new lanes ({exc}); "
                                   "they apply at the next restart") from exc
            return running


__all__ = ["ConfigError", "RoiEditor", "RoiSaveError", "normalise", "replace_rois", "rois_block", "with_flows"]
