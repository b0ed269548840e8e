"""Recalibration of moderator scores (docs/methods.md §4, ``docs/methods/calibration.md``).

* :func:`calibrate_run` fits per-category Platt / isotonic / temperature maps on one
  split of a run and reports ECE/Brier before and after on another;
* :func:`save_artifact` / :func:`load_artifact` write and read the versioned
  JSON + safetensors artifact that a moderator applies with ``calibration: <path>``;
* :func:`apply_calibration` maps a score matrix through an artifact (used by the run
  after the prediction cache, before thresholds).
"""

from __future__ import annotations

from audit.calibration.artifact import file_digest, load_artifact, save_artifact
from audit.calibration.calibrators import METHODS, Calibrator, Method, apply_calibration, fit
from audit.calibration.fitting import CalibrationFit, CategoryFit, calibrate_run, half_split

__all__ = [
    "METHODS",
    "CalibrationFit",
    "Calibrator",
    "CategoryFit",
    "Method",
    "apply_calibration",
    "calibrate_run",
    "file_digest",
    "fit",
    "half_split",
    "load_artifact",
    "save_artifact",
]
