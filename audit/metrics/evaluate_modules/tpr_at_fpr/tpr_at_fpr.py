"""TPRAtFPR as a local Hugging Face ``evaluate`` module of ``audit``.

A thin wrapper around :func:`audit.metrics.tpr_at_fpr`: same number, same exclusions (labels
``-1`` = unknown and NaN scores are excluded, never counted as negatives). Load offline with
``evaluate.load(audit.metrics.evaluate_module_path("tpr_at_fpr"))``; the module imports
:mod:`audit.metrics`, so ``audit`` must be importable.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import numpy as np

from audit.metrics import tpr_at_fpr as _metric

_DESCRIPTION = """\
Max TPR over thresholds whose FPR is <= target (1% by default), on the ROC curve (no
interpolation).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `float`): scores in [0, 1]; NaN = not scored (excluded).
    references (`list` of `int`): gold labels, 1 positive, 0 negative, -1 unknown (excluded).
    target (`float`): FPR target, default 0.01.
Returns:
    tpr_at_fpr (`float`): the metric, NaN when undefined.
    n (`int`): items used. n_excluded (`int`): items excluded.
    reason (`str` or None): why the value is NaN.
"""

_CITATION = """\
audit metrics layer; see METHODS.md (sections 1, 2 and 4) in the audit repository.
"""


class TPRAtFPR(evaluate.Metric):  # type: ignore[misc]
    """``tpr_at_fpr`` over continuous scores."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions: Any, references: Any, target: float = 0.01) -> dict[str, Any]:
        res = _metric(
            np.asarray(references, dtype=np.int64),
            np.asarray(predictions, dtype=np.float64),
            target=target,
        )
        return {
            "tpr_at_fpr": res.value,
            "n": res.n,
            "n_excluded": res.n_excluded,
            "reason": res.reason,
        }
