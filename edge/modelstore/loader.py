"""Which model the daemon runs, and loading one to switch to while it runs.

At start-up (:func:`startup_model`): the registry's active model, verified again (its bundle against
today's trusted keys, its files against its bundle); if it is refused, the models active before it,
newest first; then the model at the config's ``model.path``, which is trusted as the config itself
is. So every config that validates still runs, whatever happened to the store, and a refused model
is reported, never run. Start-up picks the form (int8 or dynamic-range) by measurement
(edge.model_choice).

At run time (:func:`load_form`) a model is loaded in the form the daemon already runs, without
measuring: measuring needs both forms loaded at once, and the daemon holds at most one interpreter
beside the active one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edge.config import EdgeConfig
from edge.errors import ModelError
from edge.inference import Classifier, Runtime
from edge.model_choice import choose_classifier, variant_path
from edge.modelcard import card_path_for, load_card
from edge.modelstore.keys import Trust
from edge.modelstore.registry import Registry
from edge.modelstore.store import ModelStore

log = logging.getLogger(__name__)
CONFIG, REGISTRY = "config", "registry"


@dataclass(frozen=True)
class RunningModel:
    """The model the frame loop runs and where it came from."""

    classifier: Classifier
    sha256: str | None  # the stored model's id (its int8 sha256); None: the config's model.path
    form: str  # "int8" or "dynamic"
    key_id: str | None  # who signed it (None: unsigned, or the config's model)
    reason: str  # why this form

    @property
    def source(self) -> str:
        return CONFIG if self.sha256 is None else REGISTRY

    @property
    def model_id(self) -> str:
        """The int8 model's sha256 (for the config's model too): the id the registry and the bundles use."""
        if self.sha256 is not None:
            return self.sha256
        if self.form == "dynamic":
            return str(self.classifier.card.metrics.get("int8_model_sha256", self.classifier.card.tflite_sha256))
        return str(self.classifier.card.tflite_sha256)


def model_file(store: ModelStore, config: EdgeConfig, sha256: str | None) -> Path:
    return Path(config.model.path) if sha256 is None else store.model_path(sha256)


def load_form(model_path: Path, runtime: Runtime, num_threads: int, batch: int, form: str) -> tuple[Classifier, str]:
    """The model at ``model_path`` in ``form`` ("dynamic" falls back to int8 when the model has no usable variant)."""
    variant = variant_path(model_path)
    if form == "dynamic" and variant.is_file():
        int8_card = load_card(card_path_for(model_path))
        card = load_card(card_path_for(variant))
        if card.metrics.get("int8_model_sha256") == int8_card.tflite_sha256 and (card.input, card.output) == (int8_card.input, int8_card.output):
            return Classifier(variant, card, runtime, num_threads, batch, integer_only=False), "dynamic"
        log.warning("%s does not belong to %s; loading the int8 model", variant.name, model_path.name)
    return Classifier.from_files(model_path, runtime, num_threads, batch), "int8"


def _chain(registry: Registry) -> list[str | None]:
    """The registry's active model, then those active before it (newest first), then the config's (None)."""
    out: list[str | None] = []
    for sha in (registry.active, *reversed(registry.history)):
        if sha is not None and sha not in out:
            out.append(sha)
    return [*out, None]


def startup_model(store: ModelStore, registry: Registry, trust: Trust, config: EdgeConfig,
                  runtime: Runtime) -> tuple[RunningModel, list[tuple[str, str]]]:
    """The model to start with, and the (sha256, reason) of every stored model refused on the way to it.

    A ModelError escapes only for the config's own model, as it always has (exit code 3)."""
    m = config.model
    refusals: list[tuple[str, str]] = []
    for sha in _chain(registry):
        if sha is None:
            choice = choose_classifier(Path(m.path), runtime, m.num_threads, len(config.rois), m.form)
            if refusals:
                log.error("running the config's model.path %s instead of the refused registry model(s)", m.path)
            return RunningModel(choice.classifier, None, choice.form, None, choice.reason), refusals
        try:
            bundle = store.verified(sha, trust)
            choice = choose_classifier(store.model_path(sha), runtime, m.num_threads, len(config.rois), m.form)
        except ModelError as exc:
            log.error("model %s refused at start-up: %s", sha[:12], exc)
            refusals.append((sha, str(exc)))
            continue
        signer = f"signed by key {bundle.key_id}" if bundle.key_id else "UNSIGNED (model.allow_unsigned)"
        log.info("model %s from the store (%s, %s), %s form", sha[:12], bundle.source or "unnamed", signer, choice.form)
        return RunningModel(choice.classifier, sha, choice.form, bundle.key_id, choice.reason), refusals
    raise AssertionError("the chain ends with the config's model")
