"""The model commands on ``<prefix>/command`` (with ``mqtt.commands: true``); replies per schemas/reply.json.

    model_status                      the running model, the candidate's shadow run, the registry
    model_list                        every stored model and its roles
    model_promote  [sha256]           the candidate (or the stored model the sha256 prefix names) becomes active
    model_rollback                    the model active before becomes active again
    model_install  bundle             verify and install <state>/models/inbox/<bundle> as the candidate

Each runs on the model manager's thread; the reply goes out when the action is done (for a promotion:
once the new model decides). Refusals (a tampered bundle, nothing to roll back to) are ``ok: false``
with the reason. Whoever may publish on the command topic may change the model: restrict it in the
broker's ACL (docs/mosquitto-acl.conf).
"""

from __future__ import annotations

import re
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from edge.commands import Command, CommandRouter, Result, text_argument

if TYPE_CHECKING:
    from edge.modelstore.manager import ModelManager

SHA_PREFIX = re.compile(r"^[0-9a-f]{6,64}$")
BUNDLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,120}\.cwm$")


def register_model_commands(router: CommandRouter, manager: ModelManager) -> None:
    def status(command: Command) -> Future[Any]:
        return manager.submit(manager.status)

    def listing(command: Command) -> Future[Any]:
        return manager.submit(manager.listing)

    def promote(command: Command) -> Future[Result]:
        return manager.promote(text_argument(command, "sha256", required=False, pattern=SHA_PREFIX))

    def rollback(command: Command) -> Future[Result]:
        return manager.rollback()

    def install(command: Command) -> Future[Result]:
        name = text_argument(command, "bundle", required=True, pattern=BUNDLE_NAME, max_length=124)
        assert name is not None
        return manager.install_from_inbox(name)

    router.register("model_status", status)
    router.register("model_list", listing)
    router.register("model_promote", promote, frozenset({"sha256"}))
    router.register("model_rollback", rollback)
    router.register("model_install", install, frozenset({"bundle"}))
