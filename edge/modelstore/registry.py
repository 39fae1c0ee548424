"""The registry: which stored model is active, which is the candidate, what to roll back to, and a log of changes.

One small JSON file, ``<state>/models/registry.json``, is the only record of the device's model
choice. :class:`Registry` is a pure value with one method per action (each returns the next
registry, with a log entry and a new generation); :class:`RegistryFile` reads it and replaces it
atomically (write, fsync, rename, fsync the folder) under an exclusive lock, and only when an
action changed something: a device that is not being managed never writes to its flash.

``active: null`` means the model at the config's ``model.path`` runs; ``history`` holds the models
active before (``null`` again meaning the config's model), most recent last: ``rollback`` goes back
one step. The log keeps the last :data:`MAX_LOG` changes; the daemon announces each on the ``event``
topic (edge.modelstore.manager), whichever process made it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from edge.modelstore.errors import StoreError
from edge.modelstore.files import adopt, replace_atomically

REGISTRY_FORMAT = "conveyor-watch-model-registry/1"
ACTIONS = ("installed", "promoted", "rolled_back", "refused")
MAX_LOG = 32
MAX_HISTORY = 8
LOCK_TIMEOUT_S = 30.0
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_REGISTRY_BYTES = 256 * 1024


@dataclass(frozen=True)
class Change:
    """One entry of the registry's log: a model change, or a refusal."""

    generation: int
    action: str  # one of ACTIONS
    sha256: str | None  # the model concerned (None: the config's model.path, or a bundle that could not be read)
    active: str | None  # the active model after the change (None: the config's)
    previous: str | None  # the active model before it
    by: str  # "cli", "command", "auto", "startup"
    reason: str
    time: float  # wall clock
    clock_synced: bool
    key_id: str | None = None  # who signed the model concerned (None: unsigned or unknown)


@dataclass(frozen=True)
class Registry:
    """The device's model choice (a value; see the module docstring)."""

    generation: int = 0
    active: str | None = None
    candidate: str | None = None
    history: tuple[str | None, ...] = ()
    log: tuple[Change, ...] = field(default_factory=tuple)

    def _logged(self, action: str, sha256: str | None, by: str, reason: str, now: float, synced: bool,
                key_id: str | None = None, **state: Any) -> Registry:
        after = replace(self, **state)
        entry = Change(self.generation + 1, action, sha256, after.active, self.active, by, reason, now, synced, key_id)
        return replace(after, generation=entry.generation, log=(*self.log, entry)[-MAX_LOG:])

    def installed(self, sha256: str, key_id: str | None, by: str, reason: str, now: float, synced: bool) -> Registry | None:
        """``sha256`` stored and made the candidate; None when that changes nothing (already active or candidate)."""
        if sha256 in (self.active, self.candidate):
            return None
        return self._logged("installed", sha256, by, reason, now, synced, key_id, candidate=sha256)

    def promoted(self, sha256: str, by: str, reason: str, now: float, synced: bool, key_id: str | None = None) -> Registry:
        """``sha256`` becomes active; the active one goes on the history (the candidate slot empties if it was it)."""
        if sha256 == self.active:
            raise StoreError(f"model {sha256[:12]} is already active")
        history = (*self.history, self.active)[-MAX_HISTORY:]
        candidate = None if self.candidate == sha256 else self.candidate
        return self._logged("promoted", sha256, by, reason, now, synced, key_id, active=sha256, candidate=candidate, history=history)

    def rolled_back(self, by: str, reason: str, now: float, synced: bool) -> Registry:
        """The model active before the current one is active again."""
        if not self.history:
            raise StoreError("nothing to roll back to: no model was active before this one")
        target = self.history[-1]
        return self._logged("rolled_back", target, by, reason, now, synced, active=target, history=self.history[:-1])

    def refused(self, sha256: str | None, key_id: str | None, by: str, reason: str, now: float, synced: bool) -> Registry:
        """A bundle or model was refused: only the log changes."""
        return self._logged("refused", sha256, by, reason, now, synced, key_id)

    def referenced(self) -> set[str]:
        """Stored models the registry still needs (active, candidate, history)."""
        return {sha for sha in (self.active, self.candidate, *self.history) if sha is not None}

    def to_json(self) -> bytes:
        data = {"format": REGISTRY_FORMAT, "generation": self.generation, "active": self.active, "candidate": self.candidate,
                "history": list(self.history), "log": [asdict(c) for c in self.log]}
        return (json.dumps(data, indent=1) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes, where: str) -> Registry:
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or data.get("format") != REGISTRY_FORMAT:
                raise ValueError(f"expected \"format\": \"{REGISTRY_FORMAT}\"")
            registry = cls(int(data["generation"]), _sha_or_none(data["active"]), _sha_or_none(data["candidate"]),
                           tuple(_sha_or_none(s) for s in data["history"]), tuple(_change(c) for c in data["log"]))
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise StoreError(f"{where}: not a readable model registry ({exc}); move it aside to start again from model.path") from None
        return registry


def roles_of(sha256: str, registry: Registry) -> list[str]:
    """What a stored model is to the registry: active, candidate, previous (rollback goes to it), history."""
    roles = []
    if registry.active == sha256:
        roles.append("active")
    if registry.candidate == sha256:
        roles.append("candidate")
    if sha256 in registry.history:
        roles.append("previous" if registry.history[-1] == sha256 else "history")
    return roles


def _sha_or_none(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not SHA256.match(value):
        raise ValueError(f"{value!r} is not a sha256")
    return value


def _change(raw: Any) -> Change:
    if not isinstance(raw, dict) or raw.get("action") not in ACTIONS:
        raise ValueError("a log entry without a known action")
    return Change(int(raw["generation"]), str(raw["action"]), _sha_or_none(raw["sha256"]), _sha_or_none(raw["active"]),
                  _sha_or_none(raw["previous"]), str(raw["by"]), str(raw["reason"]), float(raw["time"]), bool(raw["clock_synced"]),
                  None if raw.get("key_id") is None else str(raw["key_id"]))


class RegistryFile:
    """``registry.json`` in the store's folder, with ``.lock`` beside it for writers."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "registry.json"
        self.lock_path = folder / ".lock"

    def stamp(self) -> tuple[int, int, int] | None:
        """Changes whenever the file is replaced: a cheap way to notice another process's write."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def read(self) -> Registry:
        """The registry (an empty one when there is none yet); :class:`StoreError` if it is unreadable."""
        try:
            with self.path.open("rb") as handle:
                raw = handle.read(MAX_REGISTRY_BYTES + 1)
        except FileNotFoundError:
            return Registry()
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot read ({exc.strerror})") from None
        if len(raw) > MAX_REGISTRY_BYTES:
            raise StoreError(f"{self.path}: larger than {MAX_REGISTRY_BYTES} bytes; not a registry this device wrote")
        return Registry.from_json(raw, str(self.path))

    @contextmanager
    def locked(self, timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
        """Hold the store's write lock (released by the kernel if the holder dies, even by SIGKILL)."""
        ensure_folder(self.folder)
        try:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreError(f"{self.lock_path}: cannot open the store's lock ({exc.strerror}); "
                             "run as the service user or root") from None
        try:
            adopt(self.lock_path)
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise StoreError(f"{self.lock_path}: another model command has held the store for {timeout_s:.0f} s") from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)

    def write(self, registry: Registry) -> None:
        """Replace the registry durably (hold :meth:`locked`)."""
        for stale in self.folder.glob(".registry.json.tmp-*"):
            stale.unlink(missing_ok=True)
        try:
            replace_atomically(self.path, registry.to_json(), "registry")
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot write ({exc.strerror})") from None


def ensure_folder(folder: Path) -> None:
    """Create the store's folder (and give it to the state folder's owner when we are root)."""
    if folder.is_dir():
        return
    try:
        folder.mkdir(mode=0o750, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{folder}: cannot create the model store ({exc.strerror})") from None
    adopt(folder)
