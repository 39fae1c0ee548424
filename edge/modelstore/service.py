"""Start-up wiring of the model store: what ``build_daemon`` calls (edge.service.lifecycle)."""

from __future__ import annotations

import logging
from pathlib import Path

from edge.commands import CommandRouter
from edge.config import EdgeConfig
from edge.daemon import Daemon
from edge.inference import Runtime
from edge.modelstore.commands import register_model_commands
from edge.modelstore.errors import StoreError
from edge.modelstore.keys import Trust, trust_from_config
from edge.modelstore.loader import startup_model
from edge.modelstore.manager import ModelManager, Startup
from edge.modelstore.registry import Registry
from edge.modelstore.shadow import ShadowObserver
from edge.modelstore.store import STORE_FOLDER, ModelStore

log = logging.getLogger(__name__)


def trust_of(config: EdgeConfig) -> Trust:
    """Whom the device trusts (``model.trusted_keys``, ``model.allow_unsigned``)."""
    return trust_from_config(config.model.trusted_keys, config.model.allow_unsigned)


def open_models(config: EdgeConfig, state: Path, runtime: Runtime) -> Startup:
    """The store under ``state``, whom it trusts, and the model to start with (see edge.modelstore.loader)."""
    trust = trust_of(config)
    if trust.allow_unsigned:
        log.warning("!!! model.allow_unsigned is true: UNSIGNED model bundles are accepted. Development only: "
                    "anyone who can reach this device's store can make it run any model !!!")
    store = ModelStore(state / STORE_FOLDER)
    try:
        registry = store.registry.read()
    except StoreError as exc:
        log.error("%s; running the config's model.path", exc)
        registry = Registry()
    running, refusals = startup_model(store, registry, trust, config, runtime)
    return Startup(store, trust, registry, running, refusals)


def attach_models(daemon: Daemon, startup: Startup, config: EdgeConfig, runtime: Runtime, observer: ShadowObserver,
                  router: CommandRouter | None) -> ModelManager:
    """The manager that follows the registry for ``daemon``: telemetry, MQTT commands, started."""
    manager = ModelManager(daemon, startup, config, runtime, observer)
    daemon.parts.figures.append(manager.figures)
    if router is not None:
        register_model_commands(router, manager)
    manager.start()
    return manager
