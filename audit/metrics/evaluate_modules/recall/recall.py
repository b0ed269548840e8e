"""Recall as a local Hugging Face ``evaluate`` module of ``audit``.

A thin wrapper around :func:`audit.metrics.recall`: same number, same exclusions (labels
``-1`` = unknown and items whose optional score is NaN are excluded, never counted as
negatives). Load offline with
``evaluate.load(audit.metrics.evaluate_module_path("recall"))``; the module imports
:mod:`audit.metrics`, so ``audit`` must be importable.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import numpy as np

from audit.metrics import recall as _metric

_DESCRIPTION = """\
Recall (TPR) at the threshold, tp / (tp + fn); NaN (with a reason) without gold positives.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `int`): decisions at the threshold (1 flagged, 0 not).
    references (`list` of `int`): gold labels, 1 positive, 0 negative, -1 unknown (excluded).
    scores (`list` of `float`, optional): scores; items with a NaN score are excluded.
Returns:
    recall (`float`): the metric, NaN when undefined.
    n (`int`): items used. n_excluded (`int`): items excluded.
    reason (`str` or None): why the value is NaN.
"""

_CITATION = """\
audit metrics layer; see METHODS.md (sections 1, 2 and 4) in the audit repository.
"""


class Recall(evaluate.Metric):  # type: ignore[misc]
    """``recall`` over thresholded decisions."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int32"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(
        self, predictions: Any, references: Any, scores: Any | None = None
    ) -> dict[str, Any]:
        score = None if scores is None else np.asarray(scores, dtype=np.float64)
        res = _metric(
            np.asarray(references, dtype=np.int64),
            np.asarray(predictions, dtype=np.int64).astype(bool),
            score=score,
        )
        return {"recall": res.value, "n": res.n, "n_excluded": res.n_excluded, "reason": res.reason}
