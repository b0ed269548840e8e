"""Artifacts and side runs that are not the run mirror: comparisons of two runs."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from audit.errors import TrackingError
from audit.tracking.mirroring import slug
from audit.tracking.store import default_tracking_uri, log_metrics, open_experiment, sqlite_path

COMPARE_EXPERIMENT = "audit-compare"


def existing_store_uri(runs_dir: Path) -> str | None:
    """The tracking URI to log side runs to, or None.

    An explicitly configured ``MLFLOW_TRACKING_URI`` is used as given; the default
    embedded store only when it already exists, so a comparison never creates an empty
    store as a side effect.
    """
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    uri = default_tracking_uri(runs_dir)
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        return None
    return uri


def log_comparison(
    payload: dict[str, Any],
    runs_dir: Path,
    *,
    run_a: str,
    run_b: str,
    parent_a: str | None,
    parent_b: str | None,
) -> str | None:
    """Log a comparison as a run of experiment ``audit-compare``: one metric
    ``delta/{suite}/{category}/{metric}`` (+ interval bounds) per compared metric and the
    full comparison JSON as an artifact. Returns the MLflow run id, or None without a store.

    Raises:
        TrackingError: the store refused the run (the comparison itself is unaffected).
    """
    uri = existing_store_uri(runs_dir)
    if uri is None:
        return None
    client, exp_id = open_experiment(uri, COMPARE_EXPERIMENT, runs_dir)
    try:
        tags = {"audit.run_a": run_a, "audit.run_b": run_b}
        for k, parent in (("a", parent_a), ("b", parent_b)):
            if parent:
                tags[f"audit.mlflow_parent_{k}"] = parent
        run = client.create_run(exp_id, run_name=f"{run_a} vs {run_b}", tags=tags)
        rid = run.info.run_id
        flat: dict[str, float] = {}
        for s in payload["suites"]:
            for cat, c in s["categories"].items():
                for m, d in c["metrics"].items():
                    if d["delta"] is None:
                        continue
                    key = slug(f"delta/{s['suite']}/{cat}/{m}")
                    flat[key] = d["delta"]
                    if d["lo"] is not None:
                        flat[key + "_ci_low"], flat[key + "_ci_high"] = d["lo"], d["hi"]
        log_metrics(client, rid, flat)
        with tempfile.TemporaryDirectory() as td:
            p = Path(td) / "comparison.json"
            p.write_text(json.dumps(payload, indent=2), encoding="utf-8")
            client.log_artifact(rid, str(p))
        client.set_terminated(rid, status="FINISHED")
        return str(rid)
    except Exception as exc:
        raise TrackingError(
            f"logging the comparison failed: {type(exc).__name__}: {exc}",
            where=uri,
            fix="pass --no-mlflow",
        ) from None
