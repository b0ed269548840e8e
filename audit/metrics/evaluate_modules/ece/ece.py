"""ExpectedCalibrationError as a local Hugging Face ``evaluate`` module of ``audit``.

A thin wrapper around :func:`audit.metrics.ece`: same number, same exclusions (labels ``-1``
= unknown and NaN scores are excluded, never counted as negatives). Load offline with
``evaluate.load(audit.metrics.evaluate_module_path("ece"))``; the module imports
:mod:`audit.metrics`, so ``audit`` must be importable.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import numpy as np

from audit.metrics import ece as _metric

_DESCRIPTION = """\
Expected calibration error with equal-mass bins (Naeini et al. 2015; adaptive bins per
Nixon et al. 2019), 10 bins by default; NaN (with a reason) without items.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `float`): scores in [0, 1]; NaN = not scored (excluded).
    references (`list` of `int`): gold labels, 1 positive, 0 negative, -1 unknown (excluded).
    n_bins (`int`): number of equal-mass bins, default 10.
Returns:
    ece (`float`): the metric, NaN when undefined.
    n (`int`): items used. n_excluded (`int`): items excluded.
    reason (`str` or None): why the value is NaN.
"""

_CITATION = """\
audit metrics layer; see METHODS.md (sections 1, 2 and 4) in the audit repository.
"""


class ExpectedCalibrationError(evaluate.Metric):  # type: ignore[misc]
    """``ece`` over continuous scores."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions: Any, references: Any, n_bins: int = 10) -> dict[str, Any]:
        res = _metric(
            np.asarray(references, dtype=np.int64),
            np.asarray(predictions, dtype=np.float64),
            n_bins=n_bins,
        )
        return {"ece": res.value, "n": res.n, "n_excluded": res.n_excluded, "reason": res.reason}
