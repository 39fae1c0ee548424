"""Errors the edge daemon raises on purpose.

    EdgeError
    ├── ConfigError       the YAML file or a value in it is wrong
    ├── ModelError        the .tflite file or its model card is wrong or missing
    ├── SourceError       a camera/video/folder source cannot deliver frames
    └── PublishError      MQTT or the outbox cannot do what was asked

Adapters translate library exceptions into these (``raise SourceError(...) from exc``);
the command line turns them into one-line messages and exit codes.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base class: a problem the user can act on, reported in one line."""


class ConfigError(EdgeError):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class ModelError(EdgeError):
    """The model file or its card cannot be used."""


class SourceError(EdgeError):
    """A frame source failed to open or to read."""


class PublishError(EdgeError):
    """Publishing or storing a message failed."""
