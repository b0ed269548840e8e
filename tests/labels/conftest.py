"""Fixtures of the label-quality tests (built in tests/labels/synth.py)."""

from tests.labels.synth import synth_card, synth_run

__all__ = ["synth_card", "synth_run"]
