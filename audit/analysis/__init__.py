"""Post-run analysis of a run record: root causes by slice, operating points,
disagreements, post-hoc explanations.

| module | what |
|---|---|
| ``slices`` | slice root-cause analysis with BH q-values (``audit rca``) |
| ``thresholds`` | operating points with Wilson-bound scans (``audit thresholds``) |
| ``disagreements`` | moderator × moderator × gold tables, review-queue export |
| ``explain`` | post-hoc rationales for a judge's disagreements |
"""

from __future__ import annotations

from audit.analysis._data import (
    analysable_categories,
    category_arrays,
    load_predictions,
    load_record,
    select_results,
)

__all__ = [
    "analysable_categories",
    "category_arrays",
    "load_predictions",
    "load_record",
    "select_results",
]
