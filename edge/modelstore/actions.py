"""The model actions, shared by ``edge-daemon model ...`` and the running daemon (MQTT commands, the console).

Each verifies before it changes anything, changes the store under its lock, and records what it
did in the registry's log (refusals too), from which the running daemon publishes the events.
``check`` loads the model in a real interpreter before it is registered: a bundle whose model the
runtime cannot load is refused at install, not at promotion.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ModelError
from edge.modelstore.bundle import VerifiedBundle, verify_bundle
from edge.modelstore.errors import BundleRefused, StoreError
from edge.modelstore.faults import step
from edge.modelstore.keys import Trust
from edge.modelstore.registry import Registry
from edge.modelstore.store import ModelStore

log = logging.getLogger(__name__)
# Loads the model at a path in a real interpreter (raising ModelError when it cannot); what it returns
# is handed back, so the daemon can keep the interpreter it just built.
Check = Callable[[Path], Any]
Clock = Callable[[], tuple[float, bool]]  # wall time and whether it is synchronised


@dataclass(frozen=True)
class Outcome:
    """What an action did."""

    action: str  # installed, promoted, rolled_back, unchanged
    sha256: str | None  # the model concerned (None: the config's model.path)
    registry: Registry
    key_id: str | None = None
    source: str = ""
    loaded: Any = None  # what ``check`` returned

    def line(self) -> str:
        who = self.sha256 or "the config's model.path"
        if self.action == "installed":
            signer = f"signed by key {self.key_id}" if self.key_id else "UNSIGNED"
            return f"installed {who} ({self.source or 'unnamed'}, {signer}) as the candidate"
        if self.action == "unchanged":
            role = "active" if self.registry.active == self.sha256 else "the candidate"
            return f"{who} is already stored and {role}; nothing changed"
        previous = self.registry.log[-1].previous if self.registry.log else None
        verb = "promoted" if self.action == "promoted" else "rolled back to"
        return f"{verb} {who}; previous: {previous or 'the config model.path'}"


def record_refusal(store: ModelStore, sha256: str | None, key_id: str | None, by: str, reason: str, clock: Clock) -> None:
    """Put a refusal in the registry's log (so the daemon publishes it); a store that cannot be written only loses the log entry."""
    try:
        with store.registry.locked():
            registry = store.registry.read()
            now, synced = clock()
            store.registry.write(registry.refused(sha256, key_id, by, reason, now, synced))
    except StoreError as exc:
        log.warning("could not log the refusal in the registry: %s", exc)


def install(store: ModelStore, trust: Trust, data: bytes, where: str, by: str, clock: Clock, check: Check | None = None) -> Outcome:
    """Verify a bundle, store it and make it the candidate. :class:`BundleRefused` (logged) when it is not accepted."""
    try:
        bundle = verify_bundle(data, trust, where)
    except BundleRefused as exc:
        record_refusal(store, None, None, by, str(exc), clock)
        raise
    step("install.verified")
    with store.registry.locked():
        store.clean_leftovers()
        registry = store.registry.read()
        now, synced = clock()
        store.store(bundle, data, by, now)
        loaded = _checked(store, bundle, by, clock, check)
        reason = f"from {bundle.source or 'an unnamed source'}, {'signed by key ' + bundle.key_id if bundle.key_id else 'unsigned'}"
        changed = registry.installed(bundle.model_sha256, bundle.key_id, by, reason, now, synced)
        if changed is not None:
            store.registry.write(changed)
            step("install.registered")
        removed = store.prune(changed or registry)
        if removed:
            log.info("removed %d stored model(s) no longer needed: %s", len(removed), ", ".join(s[:12] for s in removed))
    return Outcome("installed" if changed is not None else "unchanged", bundle.model_sha256, changed or registry, bundle.key_id,
                   bundle.source, loaded)


def _checked(store: ModelStore, bundle: VerifiedBundle, by: str, clock: Clock, check: Check | None) -> Any:
    if check is None:
        return None
    try:
        return check(store.model_path(bundle.model_sha256))
    except ModelError as exc:
        reason = f"{bundle.source or bundle.model_sha256[:12]}: the runtime cannot load it: {exc}"
        registry = store.registry.read()  # the lock is held by the caller
        now, synced = clock()
        store.registry.write(registry.refused(bundle.model_sha256, bundle.key_id, by, reason, now, synced))
        raise BundleRefused(reason) from None


def promote(store: ModelStore, trust: Trust, target: str | None, by: str, clock: Clock, check: Check | None = None,
            reason: str = "") -> Outcome:
    """Make ``target`` (a sha256 prefix; None: the candidate) the active model, after verifying it again."""
    with store.registry.locked():
        registry = store.registry.read()
        if target is None:
            if registry.candidate is None:
                raise StoreError("no candidate to promote: install a bundle first, or name a stored model (edge-daemon model list)")
            sha = registry.candidate
        else:
            sha = store.resolve(target)
        if sha == registry.active:
            raise StoreError(f"model {sha[:12]} is already active")
        bundle = _verified(store, trust, sha, by, clock)
        loaded = _checked(store, bundle, by, clock, check)
        now, synced = clock()
        changed = registry.promoted(sha, by, reason or "promoted", now, synced, bundle.key_id)
        step("promote.verified")
        store.registry.write(changed)
        step("promote.registered")
    return Outcome("promoted", sha, changed, bundle.key_id, bundle.source, loaded)


def rollback(store: ModelStore, trust: Trust, by: str, clock: Clock, check: Check | None = None,
             config_model: Path | None = None) -> Outcome:
    """Make the model active before the current one active again, after verifying it (``config_model``:
    the config's model.path, checked when that is what the history goes back to)."""
    with store.registry.locked():
        registry = store.registry.read()
        if not registry.history:
            raise StoreError("nothing to roll back to: no model was active before this one")
        target = registry.history[-1]
        key_id, loaded = None, None
        if target is not None:
            bundle = _verified(store, trust, target, by, clock)
            key_id = bundle.key_id
            loaded = _checked(store, bundle, by, clock, check)
        elif check is not None and config_model is not None:
            loaded = check(config_model)
        now, synced = clock()
        changed = registry.rolled_back(by, f"rolled back from {registry.active or 'the config model.path'}", now, synced)
        store.registry.write(changed)
        step("rollback.registered")
    return Outcome("rolled_back", target, changed, key_id, "", loaded)


def _verified(store: ModelStore, trust: Trust, sha256: str, by: str, clock: Clock) -> VerifiedBundle:
    try:
        return store.verified(sha256, trust)
    except BundleRefused as exc:
        registry = store.registry.read()  # the caller holds the lock
        now, synced = clock()
        store.registry.write(registry.refused(sha256, None, by, str(exc), now, synced))
        raise
