"""Fixtures shared by the engine tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def ray_local(request: pytest.FixtureRequest) -> Iterator[None]:
    """A local Ray session for one test module, shut down after it; the module's own
    classes travel to the workers by value (workers cannot import a test module)."""
    import ray
    from ray import cloudpickle

    from audit.engine import ray_session

    cloudpickle.register_pickle_by_value(request.module)
    ray_session.ensure_ray(None, "tests")
    yield
    ray.shutdown()
