"""AUROC as a local Hugging Face ``evaluate`` module of ``audit``.

A thin wrapper around :func:`audit.metrics.auroc`: same number, same exclusions (labels
``-1`` = unknown and NaN scores are excluded, never counted as negatives). Load offline with
``evaluate.load(audit.metrics.evaluate_module_path("auroc"))``; the module imports
:mod:`audit.metrics`, so ``audit`` must be importable.
"""

from __future__ import annotations

from typing import Any

import datasets
import evaluate
import numpy as np

from audit.metrics import auroc as _metric

_DESCRIPTION = """\
Area under the ROC curve (ties count one half); NaN (with a reason) unless both classes
are present.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (`list` of `float`): scores in [0, 1]; NaN = not scored (excluded).
    references (`list` of `int`): gold labels, 1 positive, 0 negative, -1 unknown (excluded).
Returns:
    auroc (`float`): the metric, NaN when undefined.
    n (`int`): items used. n_excluded (`int`): items excluded.
    reason (`str` or None): why the value is NaN.
"""

_CITATION = """\
audit metrics layer; see METHODS.md (sections 1, 2 and 4) in the audit repository.
"""


class AUROC(evaluate.Metric):  # type: ignore[misc]
    """``auroc`` over continuous scores."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self, predictions: Any, references: Any) -> dict[str, Any]:
        res = _metric(
            np.asarray(references, dtype=np.int64),
            np.asarray(predictions, dtype=np.float64),
        )
        return {"auroc": res.value, "n": res.n, "n_excluded": res.n_excluded, "reason": res.reason}
