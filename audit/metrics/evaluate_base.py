"""Build a Hugging Face ``evaluate`` module class for any registered metric.

Each local module (``evaluate_modules/<name>/<name>.py``) is two lines that call
:func:`metric_module`; the number is the pure function's, with the same exclusions
(labels ``-1`` = unknown and NaN scores are excluded, never counted as negatives).

* threshold metrics (``needs == "pred"``): ``predictions`` are 0/1 decisions, an
  optional ``scores`` list excludes NaN-scored items;
* score metrics (``needs == "score"``): ``predictions`` are scores in [0, 1];
  metric parameters (``target``, ``n_bins``) are keyword arguments of ``compute``.
"""

from __future__ import annotations

from typing import Any

_CITATION = (
    "audit metrics layer; see docs/methods.md (sections 1, 2 and 4) in the audit repository."
)


def metric_module(name: str) -> type:
    """A concrete ``evaluate.Metric`` subclass computing metric ``name``."""
    import datasets
    import evaluate
    import numpy as np

    from audit.metrics.registry import get_metric

    spec = get_metric(name)
    by_pred = spec.needs == "pred"
    pred_type = "int32" if by_pred else "float64"
    params = ", ".join(f"{k}={v!r}" for k, v in spec.params.items())
    inputs = (
        "Args:\n"
        f"    predictions: {'decisions at the threshold (1 flagged, 0 not)' if by_pred else 'scores in [0, 1]; NaN = not scored (excluded)'}.\n"
        "    references: gold labels, 1 positive, 0 negative, -1 unknown (excluded).\n"
        + ("    scores (optional): items with a NaN score are excluded.\n" if by_pred else "")
        + (f"    keyword parameters: {params}.\n" if params else "")
        + f"Returns:\n    {name}: the metric, NaN when undefined; n; n_excluded; reason.\n"
    )

    def _info(self: Any) -> Any:
        return evaluate.MetricInfo(
            description=spec.description,
            citation=_CITATION,
            inputs_description=inputs,
            features=datasets.Features(
                {"predictions": datasets.Value(pred_type), "references": datasets.Value("int32")}
            ),
        )

    def _compute(self: Any, predictions: Any, references: Any, **kwargs: Any) -> dict[str, Any]:
        y = np.asarray(references, dtype=np.int64)
        if by_pred:
            scores = kwargs.pop("scores", None)
            score = None if scores is None else np.asarray(scores, dtype=np.float64)
            res = spec.fn(y, np.asarray(predictions, dtype=np.int64).astype(bool), score=score)
        else:
            res = spec.fn(y, np.asarray(predictions, dtype=np.float64), **kwargs)
        return {name: res.value, "n": res.n, "n_excluded": res.n_excluded, "reason": res.reason}

    cls_name = "".join(p.title() for p in name.split("_"))
    return type(
        cls_name,
        (evaluate.Metric,),
        {"_info": _info, "_compute": _compute, "__doc__": f"``{name}``: {spec.description}"},
    )
