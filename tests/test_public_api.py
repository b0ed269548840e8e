"""The curated public API: exactly these names, each importable and documented, and
``import audit`` stays light (the rest loads on first use)."""

from __future__ import annotations

import inspect
import subprocess
import sys

import audit

PUBLIC = {
    "__version__",
    # running and reading runs
    "run",
    "load_run",
    "RunResult",
    "compare",
    "gate",
    # typed records
    "RunRecord",
    "ResultEntry",
    "MetricValue",
    "Check",
    "Verdict",
    # configuration and extension
    "load_config",
    "RunConfig",
    "Moderator",
    "ModeratorBase",
    "register_moderator",
    # the error tree
    "AuditError",
    "UsageError",
    "ConfigError",
    "SuiteError",
    "ModeratorError",
    "RunError",
    "TrackingError",
    "GateError",
}


def test_all_is_exactly_the_curated_set() -> None:
    assert set(audit.__all__) == PUBLIC
    assert len(audit.__all__) == len(PUBLIC)  # no duplicates


def test_every_name_imports_and_is_documented() -> None:
    for name in sorted(PUBLIC - {"__version__"}):
        obj = getattr(audit, name)
        doc = inspect.getdoc(obj)
        assert doc and doc.strip(), f"audit.{name} has no docstring"
        mod = getattr(obj, "__module__", "")
        assert mod.startswith("audit."), (name, mod)
    assert isinstance(audit.__version__, str)


def test_error_tree_has_one_root() -> None:
    for name in ("UsageError", "ConfigError", "SuiteError", "ModeratorError", "RunError"):
        assert issubclass(getattr(audit, name), audit.AuditError)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        audit.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("expected AttributeError")


def test_import_audit_is_light() -> None:
    code = (
        "import sys, audit\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets', 'mlflow', 'pandas',"
        " 'numpy', 'audit.api', 'audit.engine') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "audit.RunResult\n"
        "assert 'audit.api' in sys.modules and 'pandas' not in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
