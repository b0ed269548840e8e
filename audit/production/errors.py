"""Errors of the production audit: bad logs, plans, manifests and labels.

All derive from :class:`audit.errors.AuditError`, so the CLI boundary renders them
as one line (file, field, expected, got, fix) with exit code 2 (bad input).
"""

from __future__ import annotations

from audit.errors import EXIT_USAGE, AuditError


class ProductionError(AuditError):
    """Invalid logs card, decision logs, plan, sample manifest or labels file."""

    exit_code = EXIT_USAGE


class LogsError(ProductionError):
    """The decision logs (or their card) break the canonical schema."""


class PlanError(ProductionError):
    """A sampling plan cannot be built or read."""


class LabelsError(ProductionError):
    """A human or reference labels file is inconsistent with the sample manifest."""
