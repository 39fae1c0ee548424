"""What ``check-config`` verifies beyond the schema and the named files: that start-up will succeed here.

* Credentials: outside systemd there is no ``$CREDENTIALS_DIRECTORY``, so ``--credentials-dir``
  names the folder the unit's ``LoadCredential=`` lines read (install.sh passes
  /etc/conveyor-watch/credentials), and the secrets are read exactly as the daemon reads them
  (one non-empty line for a password; a readable key file).
* The camera library the source needs: Picamera2 present and new enough, OpenCV installed.

Install.sh enables and starts the unit only when this passes, so a fresh install never
starts a service that cannot run.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from edge.config import EdgeConfig, OpenCVSource, Picamera2Source, load_config
from edge.errors import ConfigError
from edge.secrets import load_secrets


def camera_library_problems(config: EdgeConfig) -> list[str]:
    """Problems with the library the configured source needs (empty for synthetic and image folders)."""
    if isinstance(config.source, Picamera2Source):
        from edge.sources.picamera2 import load_picamera2

        try:
            load_picamera2()
        except ConfigError as exc:
            return exc.problems
    if isinstance(config.source, OpenCVSource) and importlib.util.find_spec("cv2") is None:
        return ["source.type: 'opencv' needs OpenCV, which is not installed: install.sh --with-opencv (or pip install 'conveyor-watch[camera]')"]
    return []


def checked_config(path: Path, credentials_dir: Path | None = None) -> EdgeConfig:
    """Load and validate ``path`` as ``run`` would, reading credentials from ``credentials_dir`` if given."""
    if credentials_dir is not None:
        if not credentials_dir.is_dir():
            raise ConfigError([f"--credentials-dir: folder {str(credentials_dir)!r} does not exist"])
        # The schema's file checks and load_secrets both read credentials where systemd puts them.
        os.environ["CREDENTIALS_DIRECTORY"] = str(credentials_dir.resolve())
    config = load_config(path)
    problems = []
    try:
        load_secrets(config)
    except ConfigError as exc:
        problems.extend(exc.problems)
    problems.extend(camera_library_problems(config))
    if problems:
        raise ConfigError([f"{path}: {problem}" for problem in problems])
    return config
