"""Small planted decision logs for the production tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit.production.synthetic import Population, plant, write_logs


@pytest.fixture(scope="module")
def pop() -> Population:
    return plant(6_000, ("hate", "spam"), seed=3)


@pytest.fixture
def card(tmp_path: Path, pop: Population) -> Path:
    return write_logs(pop, tmp_path / "logs")
