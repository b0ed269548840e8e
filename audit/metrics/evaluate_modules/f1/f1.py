"""``f1`` as a local Hugging Face ``evaluate`` module (offline).

``evaluate.load(audit.metrics.evaluate_module_path("f1"))``; built by
:func:`audit.metrics.evaluate_base.metric_module` from the registered metric.
"""

from audit.metrics.evaluate_base import metric_module

Metric = metric_module("f1")
