"""Judge tests use the real platform-v1 policy (the moderator tests one level up use a
small test policy under the same fixture name)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="session")
def policy() -> Any:
    from audit.policy import load_policy

    return load_policy("platform-v1")
