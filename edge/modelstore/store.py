"""Stored models: ``<state>/models/<sha256>/``, one folder per verified bundle, named by its int8 model's sha256.

    <state>/models/
      registry.json            which model is active / candidate, history, change log (registry.py)
      announced.json           the last registry change the daemon published as an event
      .lock                    writers' lock
      <sha256>/
        bundle.cwm             the bundle exactly as received (re-verified before every use)
        model.tflite           the int8 model, model.card.json its card
        model.dynamic.tflite   the dynamic-range variant and model.dynamic.card.json (when the bundle has one)
        installed.json         when, by whom, signed by which key, from which source

A model folder is filled under a temporary name (``.incoming-*``), every file fsynced, then renamed
to its sha256 in one step: a folder named by a sha256 is always complete. Leftovers of an install
killed half-way are removed by the next writer. File names come from this module, never from the
bundle.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.modelstore.bundle import CARD, MODEL, VARIANT, VARIANT_CARD, VerifiedBundle, read_bundle_file, verify_bundle
from edge.modelstore.errors import BundleRefused, StoreError
from edge.modelstore.faults import step
from edge.modelstore.files import adopt, fsync_dir, write_synced
from edge.modelstore.keys import Trust
from edge.modelstore.registry import SHA256, Registry, RegistryFile, ensure_folder

log = logging.getLogger(__name__)
STORE_FOLDER = "models"  # under the state folder
BUNDLE_FILE = "bundle.cwm"
INFO_FILE = "installed.json"
KEEP_UNREFERENCED = 4  # stored models no longer in the registry kept for a later promote (the oldest go first)


@dataclass(frozen=True)
class StoredModel:
    """What ``installed.json`` says about one stored model (not verified: see :meth:`ModelStore.verified`)."""

    sha256: str
    source: str
    key_id: str | None
    bundle_sha256: str
    installed_at: float
    installed_by: str
    created: str
    has_variant: bool

    def describe(self) -> str:
        signer = f"signed by key {self.key_id}" if self.key_id else "UNSIGNED"
        return f"{self.sha256} ({self.source or 'unnamed'}, {signer})"


class ModelStore:
    """The model folders and the registry under ``folder`` (``<state>/models``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.registry = RegistryFile(folder)

    def model_dir(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise StoreError(f"{sha256!r} is not a model sha256")
        return self.folder / sha256

    def model_path(self, sha256: str) -> Path:
        """The int8 ``.tflite`` of a stored model (its card and variant beside it, as edge.model_choice expects)."""
        return self.model_dir(sha256) / MODEL

    def has(self, sha256: str) -> bool:
        return (self.model_dir(sha256) / BUNDLE_FILE).is_file()

    # --- writing (hold self.registry.locked()) -------------------------------------------------------

    def clean_leftovers(self) -> None:
        """Remove what an install killed half-way left behind (hold the lock)."""
        for stale in [*self.folder.glob(".incoming-*"), *self.folder.glob(".trash-*")]:
            shutil.rmtree(stale, ignore_errors=True)

    def store(self, bundle: VerifiedBundle, raw: bytes, by: str, now: float) -> Path:
        """Put a verified bundle into its folder (hold the lock); nothing is rewritten when it is already there intact."""
        target = self.model_dir(bundle.model_sha256)
        if target.is_dir():
            try:
                self._check_files(bundle, target)
                return target
            except BundleRefused as exc:
                log.warning("stored copy of %s is damaged (%s); storing it again", bundle.model_sha256[:12], exc)
                os.rename(target, self.folder / f".trash-{bundle.model_sha256}-{os.getpid()}")
        ensure_folder(self.folder)
        incoming = Path(tempfile.mkdtemp(prefix=".incoming-", dir=self.folder))
        adopt(incoming)
        step("install.folder-made")
        info = {"sha256": bundle.model_sha256, "source": bundle.source, "key_id": bundle.key_id, "bundle_sha256": bundle.bundle_sha256,
                "installed_at": now, "installed_by": by, "created": str(bundle.manifest.get("created", "")),
                "has_variant": bundle.content.variant is not None}
        files = {BUNDLE_FILE: raw, **bundle.content.files(), INFO_FILE: (json.dumps(info, indent=1) + "\n").encode()}
        for name, data in files.items():
            write_synced(incoming / name, data, 0o644, crash_step=f"install.writing-{name}")
            adopt(incoming / name)
        step("install.files-written")
        fsync_dir(incoming)
        os.rename(incoming, target)
        step("install.folder-renamed")
        fsync_dir(self.folder)
        step("install.stored")
        return target

    def prune(self, registry: Registry) -> list[str]:
        """Delete stored models the registry no longer needs, beyond the newest :data:`KEEP_UNREFERENCED` (hold the lock)."""
        keep = registry.referenced()
        spare = sorted((m for m in self.stored() if m.sha256 not in keep), key=lambda m: m.installed_at, reverse=True)
        removed = []
        for model in spare[KEEP_UNREFERENCED:]:
            shutil.rmtree(self.model_dir(model.sha256), ignore_errors=True)
            removed.append(model.sha256)
        return removed

    # --- reading ---------------------------------------------------------------------------------

    def verified(self, sha256: str, trust: Trust) -> VerifiedBundle:
        """A stored model checked again as if it were new: its bundle against today's trust, and every
        extracted file against the bundle. :class:`BundleRefused` when anything differs."""
        folder = self.model_dir(sha256)
        where = f"stored model {sha256[:12]}"
        if not (folder / BUNDLE_FILE).is_file():
            raise BundleRefused(f"{where}: not in the store ({folder} has no {BUNDLE_FILE})")
        bundle = verify_bundle(read_bundle_file(folder / BUNDLE_FILE), trust, where)
        if bundle.model_sha256 != sha256:
            raise BundleRefused(f"{where}: its bundle holds model {bundle.model_sha256[:12]}, not the one its folder is named for")
        self._check_files(bundle, folder)
        return bundle

    @staticmethod
    def _check_files(bundle: VerifiedBundle, folder: Path) -> None:
        expected = bundle.content.files()
        for name in (MODEL, CARD, VARIANT, VARIANT_CARD):
            path = folder / name
            if name not in expected:
                if path.exists():
                    raise BundleRefused(f"stored model {bundle.model_sha256[:12]}: {name} is not in its bundle")
                continue
            try:
                same = path.read_bytes() == expected[name]
            except OSError as exc:
                raise BundleRefused(f"stored model {bundle.model_sha256[:12]}: {name}: cannot read ({exc.strerror})") from None
            if not same:
                raise BundleRefused(f"stored model {bundle.model_sha256[:12]}: {name} differs from its bundle (changed on disk)")

    def info(self, sha256: str) -> StoredModel | None:
        try:
            raw: dict[str, Any] = json.loads((self.model_dir(sha256) / INFO_FILE).read_text(encoding="utf-8"))
            return StoredModel(str(raw["sha256"]), str(raw.get("source", "")), raw.get("key_id"), str(raw.get("bundle_sha256", "")),
                               float(raw.get("installed_at", 0.0)), str(raw.get("installed_by", "")), str(raw.get("created", "")),
                               bool(raw.get("has_variant", False)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def stored(self) -> list[StoredModel]:
        """Every stored model, oldest install first."""
        if not self.folder.is_dir():
            return []
        found = [self.info(p.name) for p in self.folder.iterdir() if p.is_dir() and SHA256.match(p.name)]
        return sorted((m for m in found if m is not None), key=lambda m: m.installed_at)

    def resolve(self, prefix: str) -> str:
        """The full sha256 of the one stored model whose sha256 starts with ``prefix`` (at least 6 hex digits)."""
        prefix = prefix.strip().lower()
        if len(prefix) < 6 or any(c not in "0123456789abcdef" for c in prefix):
            raise StoreError(f"{prefix!r}: give at least 6 hex digits of a stored model's sha256 (edge-daemon model list)")
        matches = [m.sha256 for m in self.stored() if m.sha256.startswith(prefix)]
        if not matches:
            raise StoreError(f"no stored model's sha256 starts with {prefix} (edge-daemon model list)")
        if len(matches) > 1:
            raise StoreError(f"{prefix} matches {len(matches)} stored models; give more digits")
        return matches[0]
