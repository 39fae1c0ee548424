"""ModelManager: keeps the running daemon in line with the model registry, on its own thread.

Whoever changes the registry (``edge-daemon model ...`` in a shell, an MQTT command, the console, an
automatic promotion), the manager notices it (a ``stat`` of registry.json every second; at once for
its own changes) and reconciles:

* **active**: the new model is verified and loaded here, off the frame loop (or taken over from the
  shadow run, which already holds it), then swapped in by the frame loop between two frames
  (``Daemon.call_soon``). The levels' smoothing carries on and the next level event names the new
  model. A model that fails is refused (an event) and the running one stays.
* **candidate**: a shadow run (edge.modelstore.shadow) starts for it; its verdict is an event, and
  with ``model.shadow.auto_promote`` a passed candidate is promoted.
* **log**: each registry change not yet announced goes out as an event on the ``event`` topic, in the
  frame loop with the switch it reports. The generation last announced is kept in announced.json
  (written only when there was something new), so changes made while the daemon was stopped are
  announced when it starts; a crash between the two announces a change twice, never not at all.

Memory: besides the active interpreter the manager holds at most one more (the candidate's, or the
model being switched to); the shadow run is stopped before any other model is loaded.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from edge.commands import CommandFailed
from edge.config import EdgeConfig
from edge.daemon import Daemon
from edge.errors import EdgeError, ModelError
from edge.events import ModelChanged
from edge.inference import Classifier, Runtime
from edge.modelcard import card_path_for, load_card
from edge.modelstore import actions
from edge.modelstore.bundle import read_bundle_file
from edge.modelstore.errors import BundleRefused, StoreError
from edge.modelstore.faults import step
from edge.modelstore.files import replace_atomically
from edge.modelstore.keys import Trust
from edge.modelstore.loader import RunningModel, load_form, model_file
from edge.modelstore.registry import Change, Registry, roles_of
from edge.modelstore.shadow import PASSED, RUNNING, ShadowObserver, ShadowRun, ShadowSettings
from edge.modelstore.store import ModelStore
from edge.preprocess import Box

log = logging.getLogger(__name__)
POLL_S = 1.0
SWITCH_TIMEOUT_S = 60.0
# announced.json is written this long after the events went to the publisher: by then the outbox has stored them.
ANNOUNCE_DELAY_S = 1.0
INBOX = "inbox"
NEVER_SEEN = (-1, -1, -1)


@dataclass(frozen=True)
class Startup:
    """What start-up found: the store, whom it trusts, the registry, the model it runs and what it refused."""

    store: ModelStore
    trust: Trust
    registry: Registry
    running: RunningModel
    refusals: list[tuple[str, str]]


class ModelManager:
    """See the module docstring. ``start`` after the daemon is built; everything else is thread-safe."""

    def __init__(self, daemon: Daemon, startup: Startup, config: EdgeConfig, runtime: Runtime, observer: ShadowObserver,
                 poll_s: float = POLL_S) -> None:
        self.daemon = daemon
        self.store = startup.store
        self.trust = startup.trust
        self.config = config
        self.runtime = runtime
        self.observer = observer
        self.settings = ShadowSettings(**config.model.shadow.model_dump())
        self.poll_s = poll_s
        self._rois = [(roi.name, Box.of_roi(roi.box, roi.flow)) for roi in config.rois]
        self._running = startup.running
        self._registry = startup.registry
        self._stamp: tuple[int, int, int] | None = NEVER_SEEN
        self._shadow: ShadowRun | None = None
        self._refused_active: set[str | None] = {sha for sha, _ in startup.refusals}
        self._refused_candidates: set[str] = set()
        self._startup_refusals = list(startup.refusals)
        self._announced_path = self.store.folder / "announced.json"
        self._announced = self._read_announced()  # the last generation published (announced.json lags it by a second)
        self._announce_due: tuple[int, float] | None = None  # (generation, when its events were handed over)
        self._tasks: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopping = daemon.stop
        self._thread = threading.Thread(target=self._loop, name="model-manager", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def submit(self, work: Callable[[], Any]) -> Future[Any]:
        """Run ``work`` on the manager's thread (one model action at a time); the future carries the result.
        Store and model errors become :class:`edge.commands.CommandFailed`, whose message is the reply's error."""
        future: Future[Any] = Future()
        self._tasks.put((work, future))
        return future

    def _loop(self) -> None:
        self._publish([self._event("refused", sha, None, f"at start-up: {reason}", "daemon", None, None)
                       for sha, reason in self._startup_refusals])
        while not self._stopping.is_set():
            try:
                self.reconcile()
            except Exception:
                log.exception("model manager: reconciling with the registry failed; trying again in %.0f s", self.poll_s)
            try:
                work, future = self._tasks.get(timeout=self.poll_s)
            except queue.Empty:
                continue
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(work())
                except (EdgeError, OSError) as exc:
                    future.set_exception(CommandFailed(str(exc)))
                except Exception as exc:
                    log.exception("model action failed")
                    future.set_exception(exc)
        if self._shadow is not None:
            self._shadow.stop()
        while True:  # actions asked for while stopping: their replies say so
            try:
                _, future = self._tasks.get_nowait()
            except queue.Empty:
                return
            future.cancel()

    # --- reconciling with the registry ---------------------------------------------------------------

    def reconcile(self, force: bool = False) -> None:
        """Bring the running models in line with registry.json (on the manager's thread)."""
        stamp = self.store.registry.stamp()
        if stamp != self._stamp or force:
            self._stamp = stamp
            try:
                registry = self.store.registry.read()
            except StoreError as exc:
                log.error("model registry unreadable, keeping the running model: %s", exc)
                return
            with self._lock:
                self._registry = registry
            self._follow(registry)
        if self._announce_due is not None and time.monotonic() - self._announce_due[1] >= ANNOUNCE_DELAY_S:
            self._write_announced(self._announce_due[0])
            self._announce_due = None
        self._check_shadow()

    def _follow(self, registry: Registry) -> None:
        if self._announced is not None and registry.generation < self._announced:
            log.warning("the model registry was recreated (generation %d < %d announced): announcing its changes afresh",
                        registry.generation, self._announced)
            self._announced = None
        pending = [c for c in registry.log if self._announced is None or c.generation > self._announced]
        events = [self._event_of(c) for c in pending]
        published = self._switch_active(registry, events)
        if published is None:
            published = self._publish(events)
        if pending and published:
            self._announced = pending[-1].generation
            self._announce_due = (pending[-1].generation, time.monotonic())
        self._follow_candidate(registry)

    def _switch_active(self, registry: Registry, events: list[ModelChanged]) -> bool | None:
        """Switch to the registry's active model; whether ``events`` went out with it (None: no switch was due)."""
        want = registry.active
        if want == self._running.sha256 or want in self._refused_active:
            return None
        try:
            running = self._load_running(want)
        except ModelError as exc:
            self._refused_active.add(want)
            log.error("keeping model %s: the registry's active model %s is refused: %s", self._running.model_id[:12],
                      (want or "model.path")[:12], exc)
            return self._publish([*events, self._event("refused", want, None, str(exc), "daemon", None, None)])
        step("switch.loaded")
        previous = self._running

        def swap() -> None:
            self.daemon.use_classifier(running.classifier)
            for event in events:
                self.daemon.parts.publisher.changed(self._decided_by_now(event))
        try:
            self.daemon.call_soon(swap).result(SWITCH_TIMEOUT_S)
        except Exception as exc:  # the daemon is stopping (cancelled) or the swap failed
            log.warning("switching to model %s did not happen: %s", running.model_id[:12], exc)
            return False
        step("switch.done")
        with self._lock:
            self._running = running
        self._refused_active.discard(want)
        log.info("model switched: %s -> %s (%s, %s form)", previous.model_id[:12], running.model_id[:12], running.source, running.form)
        return True

    def _load_running(self, sha256: str | None) -> RunningModel:
        """Verify and load ``sha256`` (None: the config's model) in the running form, reusing the shadow's interpreter."""
        shadow = self._shadow
        if shadow is not None and sha256 is not None and shadow.sha256 == sha256:
            self._stop_shadow()
            bundle = self.store.verified(sha256, self.trust)
            classifier = shadow.classifier
            assert isinstance(classifier, Classifier)
            form = "dynamic" if classifier.model_path.name.endswith(".dynamic.tflite") else "int8"
            return RunningModel(classifier, sha256, form, bundle.key_id, "taken over from the shadow run")
        self._stop_shadow()  # at most one interpreter beside the active one
        key_id = self.store.verified(sha256, self.trust).key_id if sha256 is not None else None
        classifier, form = self._load(model_file(self.store, self.config, sha256))
        return RunningModel(classifier, sha256, form, key_id, f"switched at run time, {form} form as before")

    # --- lane changes from the console ------------------------------------------------------------------

    def exclusive(self, work: Callable[[], None], timeout_s: float = 60.0) -> None:
        """Run ``work`` on the manager's thread and wait for it: no model switch can interleave with it."""
        self.submit(work).result(timeout_s)

    def running_model_for(self, batch: int) -> Classifier:
        """The running model loaded again for ``batch`` ROIs, in its form (call inside :meth:`exclusive`)."""
        m = self.config.model
        return load_form(model_file(self.store, self.config, self._running.sha256), self.runtime, m.num_threads, batch,
                         self._running.form)[0]

    def set_rois(self, config: EdgeConfig) -> None:
        """The lanes changed (inside :meth:`exclusive`): later loads use the new count; a shadow run starts again on them."""
        self.config = config
        self._rois = [(roi.name, Box.of_roi(roi.box, roi.flow)) for roi in config.rois]
        if self._shadow is not None:
            self._stop_shadow()
            self._follow_candidate(self._registry)

    def _load(self, path: Path) -> tuple[Classifier, str]:
        m = self.config.model
        return load_form(path, self.runtime, m.num_threads, len(self.config.rois), self._running.form)

    def _follow_candidate(self, registry: Registry) -> None:
        want = registry.candidate
        if self._shadow is not None and self._shadow.sha256 == want:
            return
        self._stop_shadow()
        if want is None or want == self._running.sha256 or want in self._refused_candidates:
            return
        try:
            self.store.verified(want, self.trust)
            classifier, _ = self._load(self.store.model_path(want))
        except ModelError as exc:
            self._refused_candidates.add(want)
            log.error("candidate %s refused: %s", want[:12], exc)
            self._publish([self._event("refused", want, None, f"candidate not shadowed: {exc}", "daemon", None, None)])
            return
        self._start_shadow(want, classifier)

    def _start_shadow(self, sha256: str, classifier: Classifier) -> None:
        run = ShadowRun(sha256, classifier, self._rois, self.settings)
        with self._lock:
            self._shadow = run
        self.observer.run = run
        s = self.settings
        log.info("shadow run of candidate %s started: every %d frame(s), verdict after %d frames over %.0f s (agreement >= %.3f%s)",
                 sha256[:12], s.every_n_frames, s.min_frames, s.min_duration_s, s.min_agreement, ", then promoted" if s.auto_promote else "")

    def _stop_shadow(self) -> None:
        run = self._shadow
        if run is None:
            return
        self.observer.run = None
        run.stop()
        with self._lock:
            self._shadow = None

    def _check_shadow(self) -> None:
        run = self._shadow
        if run is None or run.reported or run.verdict() == RUNNING:
            return
        run.reported = True
        status = run.status()
        reason = (f"agreement {status['agreement']} over {status['frames']} frames in {status['elapsed_s']} s "
                  f"(needed {self.settings.min_agreement} over {self.settings.min_frames} frames in {self.settings.min_duration_s} s)")
        log.log(logging.INFO if status["state"] == PASSED else logging.WARNING, "shadow run of %s %s: %s", run.sha256[:12],
                status["state"], reason)
        self._publish([self._event(f"shadow_{status['state']}", run.sha256, None, reason, "auto", None, None)])
        if status["state"] == PASSED and self.settings.auto_promote:
            try:
                self._promote(run.sha256, "auto", f"shadow run passed: {reason}")
            except EdgeError as exc:
                log.error("automatic promotion of %s failed: %s", run.sha256[:12], exc)

    # --- events --------------------------------------------------------------------------------------

    def _event(self, action: str, model: str | None, previous: str | None, reason: str, by: str, key_id: str | None,
               generation: int | None, wall: float | None = None, synced: bool | None = None) -> ModelChanged:
        parts = self.daemon.parts
        return ModelChanged(action, model if model is not None else self._config_model_sha(), previous, reason[:500], by, key_id,
                            generation, parts.wall_clock() if wall is None else wall,
                            parts.clock_synced() if synced is None else synced, self.daemon.model_sha256)

    def _event_of(self, change: Change) -> ModelChanged:
        model = change.sha256
        if model is None and change.action != "refused":
            model = self._config_model_sha()
        previous = change.previous if change.action in ("promoted", "rolled_back") else None
        if previous is None and change.action in ("promoted", "rolled_back"):
            previous = self._config_model_sha()
        return ModelChanged(change.action, model, previous, change.reason[:500], change.by, change.key_id, change.generation,
                            change.time, change.clock_synced, self.daemon.model_sha256)

    def _decided_by_now(self, event: ModelChanged) -> ModelChanged:
        """In the frame loop: stamp the model that decides from now on."""
        return replace(event, model_sha256=self.daemon.model_sha256)

    def _publish(self, events: list[ModelChanged]) -> bool:
        """Hand ``events`` to the publisher from the frame loop; whether that happened."""
        if not events:
            return True

        def send() -> None:
            for event in events:
                self.daemon.parts.publisher.changed(self._decided_by_now(event))
        try:
            self.daemon.call_soon(send).result(SWITCH_TIMEOUT_S)
        except Exception as exc:
            log.warning("model events not published (%s); they are announced after the next start", exc)
            return False
        return True

    def _config_model_sha(self) -> str | None:
        try:
            return load_card(card_path_for(Path(self.config.model.path))).tflite_sha256
        except ModelError:
            return None

    def _read_announced(self) -> int | None:
        try:
            return int(json.loads(self._announced_path.read_text())["generation"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_announced(self, generation: int) -> None:
        try:
            replace_atomically(self._announced_path, (json.dumps({"generation": generation}) + "\n").encode(), "announced")
        except OSError as exc:
            log.warning("%s: cannot record the announced model changes (%s); they may be announced again after a restart",
                        self._announced_path, exc.strerror)

    # --- actions (on the manager's thread, through submit) ----------------------------------------------

    def _clock(self) -> tuple[float, bool]:
        return self.daemon.parts.wall_clock(), self.daemon.parts.clock_synced()

    def _promote(self, target: str | None, by: str, reason: str = "") -> dict[str, Any]:
        registry = self.store.registry.read()
        sha = self.store.resolve(target) if target is not None else registry.candidate
        shadowed = self._shadow is not None and self._shadow.sha256 == sha  # loaded and running already: no check needed
        outcome = actions.promote(self.store, self.trust, target, by, self._clock, None if shadowed else self._check, reason)
        self.reconcile(force=True)
        return self._switch_result(outcome)

    def _check(self, path: Path) -> None:
        """Load the model (verified already) and drop it: proves the runtime loads it before the registry changes.
        The shadow run goes first, so no more than one interpreter is ever held beside the active one."""
        self._stop_shadow()
        self._load(path)

    def _switch_result(self, outcome: actions.Outcome) -> dict[str, Any]:
        with self._lock:
            running = self._running
        last = outcome.registry.log[-1]
        return {"active": outcome.registry.active, "previous": last.previous, "running": running.model_id,
                "switched": running.sha256 == outcome.registry.active, "model_sha256": self.daemon.model_sha256}

    def promote(self, target: str | None, by: str = "command") -> Future[Any]:
        """Promote the candidate (or the stored model ``target`` names); the future is done once it decides."""
        return self.submit(lambda: self._promote(target, by))

    def rollback(self, by: str = "command") -> Future[Any]:
        def work() -> dict[str, Any]:
            outcome = actions.rollback(self.store, self.trust, by, self._clock, self._check, Path(self.config.model.path))
            self.reconcile(force=True)
            return self._switch_result(outcome)
        return self.submit(work)

    def install(self, data: bytes, where: str, by: str = "command") -> Future[Any]:
        """Verify and store a bundle and make it the candidate (its shadow run starts); the console's upload uses this."""
        def work() -> dict[str, Any]:
            loaded: list[Classifier] = []

            def check(path: Path) -> None:  # verified and stored: the new candidate replaces the shadowed one
                self._stop_shadow()
                loaded.append(self._load(path)[0])
            outcome = actions.install(self.store, self.trust, data, where, by, self._clock, check)
            if outcome.sha256 is not None and loaded and outcome.registry.candidate == outcome.sha256:
                self._start_shadow(outcome.sha256, loaded[0])
            self.reconcile(force=True)
            return {"sha256": outcome.sha256, "key_id": outcome.key_id, "source": outcome.source, "result": outcome.action,
                    "candidate": outcome.registry.candidate}
        return self.submit(work)

    def install_from_inbox(self, name: str, by: str = "command") -> Future[Any]:
        """Install ``<state>/models/inbox/<name>`` (copied there by scp or the console)."""
        path = self.store.folder / INBOX / name
        try:
            data = read_bundle_file(path)
        except BundleRefused as exc:
            failed: Future[Any] = Future()
            failed.set_exception(CommandFailed(str(exc)))
            return failed
        return self.install(data, f"{INBOX}/{name}", by)

    # --- what the console, the status command and telemetry read -------------------------------------------

    def figures(self) -> dict[str, Any]:
        """The telemetry member ``model``: the running model and the candidate's shadow run."""
        with self._lock:
            running, shadow = self._running, self._shadow
        candidate = None if shadow is None else {"sha256": shadow.sha256, **shadow.status()}
        return {"model": {"active": {"sha256": running.model_id, "source": running.source, "form": running.form,
                                     "key_id": running.key_id}, "candidate": candidate}}

    def status(self) -> dict[str, Any]:
        """Everything about the device's models (the ``model_status`` command, the console)."""
        with self._lock:
            registry = self._registry
        out: dict[str, Any] = dict(self.figures()["model"])
        out["registry"] = {"generation": registry.generation, "active": registry.active, "candidate": registry.candidate,
                           "history": list(registry.history)}
        out["model_sha256"] = self.daemon.model_sha256
        out["shadow_settings"] = {k: v for k, v in vars(self.settings).items()}
        return out

    def listing(self) -> dict[str, Any]:
        with self._lock:
            registry = self._registry
        return {"models": [{"sha256": m.sha256, "source": m.source, "key_id": m.key_id, "installed_by": m.installed_by,
                            "installed_at": m.installed_at, "roles": roles_of(m.sha256, registry)} for m in self.store.stored()]}

