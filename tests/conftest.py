"""Shared fixtures: a real Mosquitto on a free loopback port, a subscriber, schemas, the bundled model."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers.broker import Mosquitto
from helpers.subscriber import Subscriber

REPO = Path(__file__).resolve().parent.parent
BUNDLED_MODEL = REPO / "edge" / "models" / "conveyor_int8.tflite"
HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None


def expected_runtime() -> str:
    """The runtime this environment must use: the two test environments each pin one."""
    return os.environ.get("CONVEYOR_TEST_RUNTIME", "auto")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The numpy<2 environment has no TensorFlow by design; its converter tests run in the main one.
    if HAS_TENSORFLOW:
        return
    marker = pytest.mark.skip(reason="TensorFlow tests run in the converter environment (.venv), not this edge one")
    for item in items:
        if "tensorflow" in item.keywords:
            item.add_marker(marker)


@pytest.fixture(scope="session")
def runtime_name() -> str:
    from edge.inference import load_runtime

    return load_runtime(expected_runtime()).name


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path / "broker")
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def subscriber_factory() -> Iterator[list[Subscriber]]:
    made: list[Subscriber] = []
    yield made
    for sub in made:
        sub.close()


@pytest.fixture
def subscribe(subscriber_factory: list[Subscriber]):  # type: ignore[no-untyped-def]
    def make(broker: Mosquitto, topic: str = "plant/#", **kwargs: object) -> Subscriber:
        sub = Subscriber(broker.host, broker.port, topic, **kwargs)  # type: ignore[arg-type]
        subscriber_factory.append(sub)
        return sub

    return make
