"""Reuse the synthetic run-record fixture of the drift tests."""

from tests.helpers.drift_runs import make_run  # noqa: F401  (a pytest fixture)
