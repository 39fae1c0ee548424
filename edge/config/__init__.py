"""The daemon's configuration: one YAML file, validated once into frozen, typed objects.

    schema.py   the sections and their fields (pure data)
    load.py     reading the file: YAML, validation, checks of the files it names
    wording.py  how a validation problem is worded for the user

``load_config`` raises :class:`edge.errors.ConfigError` listing *every* problem as
``file: key.path: what is expected``. Secrets are never in the YAML: only paths to them
(or systemd credential names).
"""

from edge.config.load import effective_config, load_config, parse_config, safe_load
from edge.config.schema import (
    BUNDLED_MODEL,
    SOURCE_TYPES,
    Band,
    Belt,
    Capture,
    Console,
    Device,
    EdgeConfig,
    Evidence,
    Health,
    ImagesSource,
    Levels,
    Model,
    Mqtt,
    OpenCVSource,
    Outbox,
    Picamera2Source,
    Roi,
    Scene,
    ScriptedDrop,
    Service,
    Shadow,
    SyntheticSource,
    Telemetry,
    Tls,
)

__all__ = [
    "BUNDLED_MODEL",
    "SOURCE_TYPES",
    "Band",
    "Belt",
    "Capture",
    "Console",
    "Device",
    "EdgeConfig",
    "Evidence",
    "Health",
    "ImagesSource",
    "Levels",
    "Model",
    "Mqtt",
    "OpenCVSource",
    "Outbox",
    "Picamera2Source",
    "Roi",
    "Scene",
    "ScriptedDrop",
    "Service",
    "Shadow",
    "SyntheticSource",
    "Telemetry",
    "Tls",
    "effective_config",
    "load_config",
    "parse_config",
    "safe_load",
]
