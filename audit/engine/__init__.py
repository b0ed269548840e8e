"""Running an audit: config → suites × moderators → predictions → metrics → record.

| module | what |
|---|---|
| ``pipeline`` | :func:`run_audit`: prepare (validate everything), score, record, report, mirror |
| ``runner`` | :func:`score_items`: batches, cache lookups, per-item errors, error budget |
| ``cache`` | :class:`PredictionCache`: content-addressed SQLite cache of moderator outputs |
| ``results`` | :class:`SuiteResult`: thresholds → decisions, metrics, prediction tables |
| ``record`` | :class:`RecordFile`: the typed run record (:mod:`audit.records`) on disk |
| ``validate`` | ``audit validate``: every policy, suite and config checked offline |

The pipeline sits one layer above the others (docs/architecture.md); this face exports
the lower modules only, so importing a record never pulls in the whole pipeline.
"""

from audit.engine.cache import PredictionCache, fingerprint_hash
from audit.engine.record import RecordFile
from audit.engine.results import SuiteResult, build_result
from audit.engine.runner import ScoreResult, score_items

__all__ = [
    "PredictionCache",
    "RecordFile",
    "ScoreResult",
    "SuiteResult",
    "build_result",
    "fingerprint_hash",
    "score_items",
]
