"""Session-wide fixtures: one real Kafka broker for the whole run, and topics per test.

Tiers (markers): ``kafka`` needs the broker, ``engine`` runs the real vLLM engine, ``slow`` takes
more than a few seconds. ``make test`` runs everything; ``pytest -m "not kafka and not engine"``
is the fast tier. Set ``EARWITNESS_TEST_BOOTSTRAP=host:port`` to use an existing cluster instead
of starting one (tests that restart a broker are then skipped).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.kafka import LocalBroker, create_topic, unique_name

KAFKA_FIXTURES = {"kafka_bootstrap", "new_topic", "private_broker"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that touches the broker carries the ``kafka`` marker, declared or not."""
    for item in items:
        if KAFKA_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("EARWITNESS_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    broker = LocalBroker(tmp_path_factory.mktemp("kafka"))
    yield broker.start()
    broker.stop()


@pytest.fixture
def new_topic(kafka_bootstrap: str, request: pytest.FixtureRequest) -> Callable[..., str]:
    """Factory: ``new_topic(partitions=1, config=None) -> name`` of a fresh, unique topic."""
    prefix = request.node.name.replace("[", "-").replace("]", "")[:60]

    def make(partitions: int = 1, config: dict[str, str] | None = None) -> str:
        return create_topic(kafka_bootstrap, unique_name(prefix), partitions, config)

    return make


@pytest.fixture
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker of the test's own, for tests that stop or restart it."""
    if os.environ.get("EARWITNESS_TEST_BOOTSTRAP"):
        pytest.skip("restarts need a local broker; EARWITNESS_TEST_BOOTSTRAP points elsewhere")
    broker = LocalBroker(tmp_path_factory.mktemp("private-kafka"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen3-Omni thinker directory (``earwitness make-test-model``)."""
    from stream.engine.testmodel import write_test_model

    return write_test_model(tmp_path_factory.mktemp("tiny-qwen3-omni"))


@pytest.fixture(scope="session")
def family_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """``family -> directory``: one tiny test model per family, written once per session."""
    from stream.engine.families import ModelFamily
    from stream.engine.testmodel import write_test_model

    made: dict[ModelFamily, Path] = {}

    def model_dir(family: str) -> Path:
        chosen = ModelFamily(family)
        if chosen not in made:
            folder = tmp_path_factory.mktemp(f"tiny-{chosen.value}")
            made[chosen] = write_test_model(folder, family=chosen)
        return made[chosen]

    return model_dir
