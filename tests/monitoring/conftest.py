"""Fixtures of the monitoring tests."""

from tests.helpers.drift_runs import make_run  # noqa: F401  (a pytest fixture)
