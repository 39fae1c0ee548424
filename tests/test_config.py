"""Configuration: typed, validated once, every problem reported as one line with its key path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge.config import BUNDLED_MODEL, EdgeConfig, load_config, parse_config

REPO = Path(__file__).resolve().parent.parent
CORPUS = sorted((Path(__file__).parent / "data" / "bad_configs").glob("*.yaml"))
SPECIAL = {"51-not-utf8.yaml": "not UTF-8 text"}


def expectations(path: Path) -> list[str]:
    if path.name in SPECIAL:
        return [SPECIAL[path.name]]
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), path
    return [part.strip() for part in first.removeprefix("# expect: ").split(" | ")]


def test_the_corpus_has_at_least_40_broken_files() -> None:
    """The issue's bar: 40 or more hostile or broken configs."""
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_each_broken_config_gives_exit_2_and_one_line_per_problem(path: Path) -> None:
    """check-config exits 2 and prints one line per problem, naming the file and key, no traceback."""
    result = subprocess.run([sys.executable, "-m", "edge", "check-config", str(path)], capture_output=True, text=True,
                            timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    expected = expectations(path)
    assert len(lines) == len(expected), lines
    for line, text in zip(lines, expected, strict=True):
        assert line.startswith(f"edge-daemon: {path}: "), line
        assert text in line, (text, line)


def test_a_minimal_file_is_a_few_lines(tmp_path: Path) -> None:
    """Defaults fill in everything else; the topic prefix is built from the device names."""
    path = tmp_path / "c.yaml"
    path.write_text("device: {site: a, line: b, name: c}\nmqtt: {host: broker}\n")
    config = load_config(path)
    assert config.topic_prefix == "plant/a/b/c"
    assert config.client_id == "conveyor-c"
    assert config.model.path == str(BUNDLED_MODEL)


def test_config_objects_are_frozen() -> None:
    """Validated config cannot be changed by accident later in the program."""
    config = parse_config({}, check_files=False)
    with pytest.raises(Exception, match="frozen"):
        config.mqtt.port = 1  # type: ignore[misc]


def test_the_annotated_example_config_is_valid_with_its_files_checked(tmp_path: Path) -> None:
    """The shipped example parses with file checks on: it names no site files or credentials a fresh install lacks."""
    example = REPO / "edge" / "examples" / "config.yaml"
    data = yaml.safe_load(example.read_text())
    config = parse_config(data, str(example))
    assert isinstance(config, EdgeConfig) and config.source.type == "picamera2"
    assert config.mqtt.tls is None and config.mqtt.password_credential is None


def test_check_config_prints_the_effective_config_without_secret_values(tmp_path: Path) -> None:
    """check-config echoes paths and defaults, never the password inside the file."""
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-Hunter2\n")
    path = tmp_path / "c.yaml"
    path.write_text(f"mqtt: {{username: u, password_file: {secret}}}\n")
    result = subprocess.run([sys.executable, "-m", "edge", "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["mqtt"]["password_file"] == str(secret)
    # Bands left to the model card are shown as the bundled card gives them (derived from its threshold).
    card = json.loads((Path(__file__).parent.parent / "edge" / "models" / "conveyor_int8.card.json").read_text())
    assert effective["levels"]["alert"] == {"enter": card["levels"]["alert"][0], "exit": card["levels"]["alert"][1], "from": "model card"}
    assert "s3cr3t" not in result.stdout + result.stderr


def test_missing_and_unreadable_config_files_are_one_line_errors(tmp_path: Path) -> None:
    """A wrong path or a folder is reported as such."""
    for target, text in ((tmp_path / "nope.yaml", "file not found"), (tmp_path, "is a folder")):
        result = subprocess.run([sys.executable, "-m", "edge", "check-config", str(target)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and text in result.stderr and len(result.stderr.strip().splitlines()) == 1
