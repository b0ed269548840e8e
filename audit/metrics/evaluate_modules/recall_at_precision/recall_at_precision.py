"""``recall_at_precision`` as a local Hugging Face ``evaluate`` module (offline).

``evaluate.load(audit.metrics.evaluate_module_path("recall_at_precision"))``; built by
:func:`audit.metrics.evaluate_base.metric_module` from the registered metric.
"""

from audit.metrics.evaluate_base import metric_module

Metric = metric_module("recall_at_precision")
