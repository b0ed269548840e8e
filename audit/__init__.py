"""audit: benchmark and audit harness for Trust & Safety moderation models.

The public Python API (the names in ``__all__``; anything else is internal)::

    import audit

    r = audit.run("configs/quickstart.yaml")        # or a dict, or an audit.RunConfig
    r.metrics                                       # long DataFrame: one row per metric
    r.predictions("short_video_v1", "profanity")    # per-item scores from the run's Parquet
    past = audit.load_run(r.record.run_id)          # the same object for a past run
    audit.gate(r, "configs/baselines/release.json", "configs/gates/release.yaml").word

Import-light on purpose: only the error tree loads with ``import audit``; every other
name is imported on first use (module ``__getattr__``), and heavy libraries (torch,
transformers, datasets, mlflow, pandas) load only inside the functions that need them,
so ``audit --help`` stays instant.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audit.errors import (
    AuditError,
    ConfigError,
    GateError,
    ModeratorError,
    RunError,
    SuiteError,
    TrackingError,
    UsageError,
)

if TYPE_CHECKING:
    from audit.api import RunResult, compare, gate, load_config, load_run, run
    from audit.config import RunConfig
    from audit.moderators.base import Moderator, ModeratorBase, register_moderator
    from audit.records import Check, MetricValue, ResultEntry, RunRecord, Verdict

__version__ = "0.1.0"

#: Lazily imported public names → the module that defines them (and the name there).
_LAZY: dict[str, tuple[str, str]] = {
    "run": ("audit.api", "run"),
    "load_run": ("audit.api", "load_run"),
    "compare": ("audit.api", "compare"),
    "gate": ("audit.api", "gate"),
    "RunResult": ("audit.api", "RunResult"),
    "RunRecord": ("audit.records", "RunRecord"),
    "ResultEntry": ("audit.records", "ResultEntry"),
    "MetricValue": ("audit.records", "MetricValue"),
    "Check": ("audit.records", "Check"),
    "Verdict": ("audit.records", "Verdict"),
    "RunConfig": ("audit.config", "RunConfig"),
    "load_config": ("audit.api", "load_config"),
    "Moderator": ("audit.moderators.base", "Moderator"),
    "ModeratorBase": ("audit.moderators.base", "ModeratorBase"),
    "register_moderator": ("audit.moderators.base", "register_moderator"),
}

__all__ = [
    "AuditError",
    "Check",
    "ConfigError",
    "GateError",
    "MetricValue",
    "Moderator",
    "ModeratorBase",
    "ModeratorError",
    "ResultEntry",
    "RunConfig",
    "RunError",
    "RunRecord",
    "RunResult",
    "SuiteError",
    "TrackingError",
    "UsageError",
    "Verdict",
    "__version__",
    "compare",
    "gate",
    "load_config",
    "load_run",
    "register_moderator",
    "run",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first access (PEP 562) and cache it on the module."""
    try:
        module_name, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'audit' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
