"""MLflow: the only package that imports it. Store location, run mirroring, lookups.

``import mlflow`` costs about a second, so every function imports it lazily.
"""

from audit.tracking.mirror import default_tracking_uri, metric_key, mirror, slug

__all__ = ["default_tracking_uri", "metric_key", "mirror", "slug"]
