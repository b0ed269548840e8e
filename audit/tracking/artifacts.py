"""Everything MLflow besides the run mirror: comparison runs, time-series runs
(production periods, drift series), report artifacts, fetching a past audit."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audit.errors import TrackingError
from audit.tracking.mirroring import slug
from audit.tracking.store import (
    bounded_http,
    default_tracking_uri,
    log_metrics,
    open_experiment,
    quiet_logging,
    sqlite_path,
)

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


@dataclass(frozen=True)
class SeriesRun:
    """One MLflow run of a time series (a production period, a drift series).

    ``metrics`` are ``(key, value, step)``; ``timestamp_ms`` dates every metric and the
    run start (the period it describes, so the UI plots the series in order).
    """

    name: str
    tags: dict[str, str]
    metrics: list[tuple[str, float, int]]
    timestamp_ms: int | None = None
    artifacts: tuple[Path, ...] = field(default_factory=tuple)


def log_series_runs(
    experiment: str, runs: list[SeriesRun], runs_dir: Path, *, uri: str | None = None
) -> list[str]:
    """Log each :class:`SeriesRun` as a finished run of ``experiment``; returns run ids.

    Raises:
        TrackingError: the store is unreachable or refused a write (one line).
    """
    from mlflow.entities import Metric

    uri = uri or default_tracking_uri(runs_dir)
    client, exp_id = open_experiment(uri, experiment, runs_dir)
    ids: list[str] = []
    try:
        with bounded_http():
            for r in runs:
                run = client.create_run(
                    exp_id, run_name=r.name[:250], tags=r.tags, start_time=r.timestamp_ms
                )
                rid = run.info.run_id
                ts = r.timestamp_ms if r.timestamp_ms is not None else int(run.info.start_time or 0)
                metrics = [Metric(k, float(v), ts, step) for k, v, step in r.metrics]
                for i in range(0, len(metrics), 900):  # MLflow caps one batch at 1,000
                    client.log_batch(rid, metrics=metrics[i : i + 900])
                for a in r.artifacts:
                    if a.exists():
                        client.log_artifact(rid, str(a))
                client.set_terminated(rid, "FINISHED")
                ids.append(str(rid))
    except Exception as exc:  # the store is the user's; report it in one line
        raise TrackingError(
            f"MLflow logging failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}",
            where=uri,
            fix="check MLFLOW_TRACKING_URI / AUDIT_RUNS_DIR, or pass --no-mlflow",
        ) from None
    return ids


def log_artifact_to_run(uri: str, run_id: str, path: Path) -> str | None:
    """Attach ``path`` to an existing run (the HTML report to an audit's parent run).

    Best effort: returns None (and logs a warning) when the store is absent or refuses;
    never creates an embedded store as a side effect.
    """
    import logging

    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        return None
    try:
        with bounded_http():
            from mlflow.tracking import MlflowClient

            quiet_logging()
            MlflowClient(tracking_uri=uri).log_artifact(run_id, str(path))
        return run_id
    except Exception as exc:
        logging.getLogger(__name__).warning(
            "%s not logged to MLflow (%s: %s)", path.name, type(exc).__name__, exc
        )
        return None


def download_audit_run(ref: str, workdir: Path, runs_dir: Path) -> str:
    """Download an audit's parent ``record.json`` and its children's prediction files
    into ``workdir``; ``ref`` is ``mlflow:<run_id>`` or ``mlflow-tag:key=value`` (the most
    recent parent run carrying that tag). Returns the parent run id.

    Raises:
        TrackingError: no such run, or the store cannot be read.
    """
    uri = default_tracking_uri(runs_dir)
    try:
        with bounded_http():
            from mlflow.tracking import MlflowClient

            quiet_logging()
            client = MlflowClient(tracking_uri=uri)
            if ref.startswith("mlflow:"):
                run = client.get_run(ref.split(":", 1)[1])
            else:
                key, _, val = ref.split(":", 1)[1].partition("=")
                exps = [e.experiment_id for e in client.search_experiments()]
                found = client.search_runs(
                    exps,
                    filter_string=f"tags.`{key}` = '{val}'",
                    order_by=["attributes.start_time DESC"],
                    max_results=50,
                )
                parents = [r for r in found if "mlflow.parentRunId" not in r.data.tags]
                if not parents:
                    raise TrackingError("no MLflow parent run has that tag", where=uri, actual=ref)
                run = parents[0]
            rid = str(run.info.run_id)
            client.download_artifacts(rid, "record.json", str(workdir))
            (workdir / "predictions").mkdir(exist_ok=True)
            children = client.search_runs(
                [run.info.experiment_id],
                filter_string=f"tags.`mlflow.parentRunId` = '{rid}'",
                max_results=1000,
            )
            for ch in children:
                for art in client.list_artifacts(ch.info.run_id, "predictions"):
                    client.download_artifacts(
                        ch.info.run_id, art.path, str(workdir / "predictions")
                    )
    except TrackingError:
        raise
    except Exception as exc:
        raise TrackingError(
            f"cannot fetch the run from MLflow: {type(exc).__name__}: {exc}",
            where=uri,
            actual=ref,
        ) from None
    return rid
