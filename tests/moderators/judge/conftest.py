"""Judge tests use the real platform-v1 policy (the moderator tests one level up use a
small test policy under the same fixture name)."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # tests that need a CUDA GPU (test_vllm_real.py); they skip with the reason elsewhere
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (and vLLM); skipped without one")


@pytest.fixture(scope="session")
def policy() -> Any:
    from audit.policy import load_policy

    return load_policy("platform-v1")
