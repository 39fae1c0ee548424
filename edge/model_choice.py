"""Pick the model form to run by measuring it on this CPU at start-up, not by assuming int8 wins.

The converter ships the full-integer int8 model and, beside it, a dynamic-range variant
(``<stem>.dynamic.tflite``: int8 weights, float activations) with the same byte interface and
its own card. Which is faster depends on the CPU's instructions, not on the file: on an x86 core
with AVX-512 VNNI (or an Arm core with dot-product instructions) the int8 model is about twice as
fast as float32; on AVX2-only x86 XNNPACK's int8 convolutions lose to float and the
dynamic-range variant is the fastest correct form (docs/performance.md has the per-op figures).

``model.form: auto`` (the default) loads both, runs them interleaved on a zero batch for a
fixed, small budget, keeps the faster and logs both figures with the CPU's ISA. Each figure is
the fastest of several short interleaved blocks, an estimate that load from other processes can
only push up, not down; the int8 model wins near-ties (within ``TIE_MARGIN``): it is the
product's reference form. Where the forms differ a lot (AVX2: about 1.8x) the choice is clear;
where they are close (VNNI: about 1.1x) a wrong pick under load costs at most the margin. A missing, mismatched
(built for another int8 model) or unloadable variant is skipped with a warning; ``form: int8``
or ``form: dynamic`` fixes the choice.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from edge.cpuinfo import UNKNOWN_CPU, read_cpuinfo
from edge.errors import ModelError
from edge.inference import Classifier, Runtime
from edge.modelcard import card_path_for, load_card

log = logging.getLogger(__name__)

Form = Literal["auto", "int8", "dynamic"]
VARIANT_SUFFIX = ".dynamic.tflite"
TIE_MARGIN = 0.10  # the variant must be more than 10% faster to replace the int8 model
ROUNDS = 9


def variant_path(int8_path: Path) -> Path:
    """``model.tflite`` -> ``model.dynamic.tflite`` beside it."""
    return int8_path.with_name(int8_path.stem + VARIANT_SUFFIX)


@dataclass(frozen=True)
class Choice:
    """The classifier to run, which form it is, and the evidence for the choice."""

    classifier: Classifier
    form: str
    reason: str
    ms_per_invoke: dict[str, float] = field(default_factory=dict)


def invoke_ms(classifiers: dict[str, Classifier], budget_s: float = 0.3) -> dict[str, float]:
    """Milliseconds per ``classify`` of each classifier: the fastest of ``ROUNDS`` interleaved blocks on zero batches.

    Interleaving (round-robin blocks) puts any load from other processes on all candidates alike, and
    the fastest block is the one least disturbed by it.
    """
    batches = {name: np.zeros((c.batch, *c.card.input.shape[1:]), dtype=c.card.input.dtype) for name, c in classifiers.items()}
    single = {}
    for name, c in classifiers.items():  # one warm-up call each, also the estimate for the block size
        start = time.perf_counter()
        c.classify(batches[name])
        single[name] = max(time.perf_counter() - start, 1e-6)
    per_block = budget_s / ROUNDS / len(classifiers)
    calls = {name: max(2, min(500, int(per_block / seconds))) for name, seconds in single.items()}
    samples: dict[str, list[float]] = {name: [] for name in classifiers}
    for _ in range(ROUNDS):
        for name, c in classifiers.items():
            start = time.perf_counter()
            for _ in range(calls[name]):
                c.classify(batches[name])
            samples[name].append((time.perf_counter() - start) / calls[name] * 1000.0)
    return {name: min(values) for name, values in samples.items()}


def _variant(int8: Classifier, runtime: Runtime, num_threads: int, batch: int) -> tuple[Classifier | None, str]:
    path = variant_path(int8.model_path)
    if not path.is_file():
        return None, f"no dynamic-range variant beside {int8.model_path.name}"
    try:
        card = load_card(card_path_for(path))
        belongs_to = card.metrics.get("int8_model_sha256")
        if belongs_to != int8.card.tflite_sha256:
            return None, f"{path.name} was built for another int8 model (its card names {str(belongs_to)[:12]}…)"
        if (card.input, card.output) != (int8.card.input, int8.card.output):
            return None, f"{path.name}: its input/output differ from the int8 model's"
        return Classifier(path, card, runtime, num_threads, batch, integer_only=False), ""
    except ModelError as exc:
        return None, f"{path.name} not usable: {exc}"


def choose_classifier(model_path: Path, runtime: Runtime, num_threads: int = 1, batch: int = 1, form: Form = "auto",
                      budget_s: float = 0.3) -> Choice:
    """Load the model at ``model_path`` (and its variant when ``form`` allows) and return the one to run."""
    int8 = Classifier.from_files(model_path, runtime, num_threads, batch)
    if form == "int8":
        return Choice(int8, "int8", "model.form is int8")
    variant, why_not = _variant(int8, runtime, num_threads, batch)
    if variant is None:
        if form == "dynamic":
            raise ModelError(f"model.form is dynamic but {why_not}")
        if variant_path(model_path).exists():
            log.warning("model choice: %s; running the int8 model", why_not)
        return Choice(int8, "int8", why_not)
    if form == "dynamic":
        return Choice(variant, "dynamic", "model.form is dynamic")
    timings = invoke_ms({"int8": int8, "dynamic": variant}, budget_s)
    faster = "dynamic" if timings["dynamic"] < timings["int8"] * (1.0 - TIE_MARGIN) else "int8"
    reason = (f"measured at start-up: int8 {timings['int8']:.3f} ms, dynamic-range {timings['dynamic']:.3f} ms per invoke "
              f"({num_threads} thread{'s' if num_threads != 1 else ''}, {runtime.name} {runtime.version}, {cpu_isa_summary()})")
    log.info("model choice: %s model; %s", faster, reason)
    return Choice(int8 if faster == "int8" else variant, faster, reason, timings)


def cpu_isa_summary() -> str:
    """The CPU model and the instruction-set extensions that decide int8 speed, from /proc/cpuinfo."""
    model, flags = read_cpuinfo()
    wanted = ["avx2", "avx512f", "avx512_vnni", "avx_vnni", "asimddp", "i8mm"]
    present = [flag for flag in wanted if flag in flags]
    return f"{model if model != UNKNOWN_CPU else 'unknown CPU'}: {' '.join(present) if present else 'no AVX2/VNNI/dot-product'}"
