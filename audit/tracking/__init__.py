"""MLflow: the only package that imports it.

| module | what |
|---|---|
| ``store`` | tracking URI, opening a store under a creation lock, fail-fast probes, batched logging |
| ``mirroring`` | a run record → a parent run per audit and a child run per suite × moderator |
| ``artifacts`` | side runs and artifacts: comparisons of two runs |

``import mlflow`` costs about a second, so every function imports it lazily.
"""

from audit.tracking.mirroring import metric_key, mirror, slug
from audit.tracking.store import default_tracking_uri, open_experiment

__all__ = ["default_tracking_uri", "metric_key", "mirror", "open_experiment", "slug"]
