"""MLflow mirror of a run record.

Naming scheme:
* one **parent run** per audit (run name = audit run id) with the config's
  params, provenance tags and the record, config and report as artifacts;
* one **child run** per suite × moderator (``<suite>/<moderator>``) with params
  (suite, split, moderator type, thresholds, fingerprint), tags (suite digest,
  policy version, git commit), metrics ``{suite}/{category}/{metric}`` plus
  ``_ci_low``/``_ci_high`` and ``/n``, dataset lineage via ``log_input``, the
  predictions Parquet and the FP/FN table (``log_table``, visible in the UI).

Runs are created only once results exist and are always terminated, so a
killed scoring job never leaves a RUNNING run; a run left RUNNING by a process
killed *during* mirroring is marked KILLED by the next audit on the same host.

Restricted categories: item text never reaches MLflow — tables carry only id and
content hash for those rows (the predictions Parquet carries no text at all). Which
items are restricted is decided once per run, for every moderator's tables alike
(:func:`audit.engine.results.restricted_ids`), not per moderator.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import TrackingError
from audit.tracking.store import log_metrics, log_params, open_experiment

if TYPE_CHECKING:
    from audit.engine.record import RecordFile
    from audit.engine.results import SuiteResult

_KEY_BAD = re.compile(r"[^a-z0-9_/.\-]+")


def slug(key: str) -> str:
    """MLflow key slug: lower-case ``[a-z0-9_/.-]``."""
    return _KEY_BAD.sub("_", key.lower())


def metric_key(suite: str, category: str, metric: str) -> str:
    return slug(f"{suite}/{category}/{metric}")


def _setup(uri: str, experiment: str, runs_dir: Path) -> tuple[Any, str]:
    import mlflow

    client, exp_id = open_experiment(uri, experiment, runs_dir)
    # the fluent calls below (log_table, log_input) go through the global tracking URI
    mlflow.set_tracking_uri(uri)
    return client, exp_id


def reap_orphans(client: Any, exp_id: str) -> int:
    """Terminate (KILLED) runs left RUNNING by a dead audit process on this host."""
    from audit.engine.record import pid_alive

    host = socket.gethostname()
    n = 0
    runs = client.search_runs(
        [exp_id], filter_string="attributes.status = 'RUNNING'", max_results=500
    )
    for r in runs:
        tags = r.data.tags
        pid = tags.get("audit.pid")
        ours = tags.get("audit.host") == host and pid is not None and pid.isdigit()
        if ours and int(pid) != os.getpid() and not pid_alive(int(pid)):
            client.set_terminated(r.info.run_id, status="KILLED")
            n += 1
    return n


def _dataset(res: SuiteResult) -> Any:
    from mlflow.data.huggingface_dataset_source import HuggingFaceDatasetSource
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    src = res.suite.source
    if src.get("kind") == "hub":
        source = HuggingFaceDatasetSource(
            path=src["id"], revision=src["revision"], split=src.get("split")
        )
    else:
        fmt = res.suite.card.source.local.format if res.suite.card.source.local else "json"
        source = HuggingFaceDatasetSource(
            path={"jsonl": "json"}.get(fmt, fmt),
            data_files=[f["path"] for f in src.get("files", [])],
            split=res.suite.split,
        )
    cols: list[Any] = (
        [ColSpec("string", "id"), ColSpec("string", "content_hash")]
        + [ColSpec("long", f"labels.{c}") for c in res.suite.categories]
        + [ColSpec("string", s) for s in res.suite.slice_names]
    )
    schema = Schema(cols)
    # MLflow's stubs mark MetaDataset abstract (``profile``); the class is concrete at run
    # time and is MLflow's documented way to log a dataset by reference only
    return MetaDataset(  # type: ignore[abstract]
        source=source,
        name=f"{res.suite.name}:{res.suite.split}",
        digest=res.suite.digest[:32],
        schema=schema,
    )


# Counts are exact: they get no interval (a "50 (50–50)" band would be a fake interval),
# and ``support`` is logged once, as ``/n``, not under both names.
_COUNTS = frozenset({"support", "n_pos"})
# What the parent run carries per suite × moderator, so two audits compare at the top
PARENT_SUMMARY = ("f1", "recall", "fpr", "auprc")


def _flat_metrics(res: SuiteResult) -> dict[str, float]:
    out: dict[str, float] = {}
    for cat, per in res.metrics.items():
        for m, v in per.items():
            if v["value"] is None or m == "support":
                continue
            base = metric_key(res.suite.name, cat, m)
            out[base] = float(v["value"])
            if m not in _COUNTS and v.get("ci_low") is not None:
                out[base + "_ci_low"] = float(v["ci_low"])
                out[base + "_ci_high"] = float(v["ci_high"])
        n = per.get("support", {}).get("value") if per else None
        if n is not None:
            out[metric_key(res.suite.name, cat, "n")] = float(n)
    for row in getattr(res, "error_slices", None) or []:
        if not row.get("n_errors") and row.get("slice") != "overall":
            continue  # slices without errors: the overall row carries the zero
        where = "overall" if row["slice"] == "overall" else f"slice_{row['slice']}={row['value']}"
        for name in ("error_rate", "parse_failure_rate"):
            rate = row.get(name) or {}
            if rate.get("value") is None:
                continue
            base = f"{slug(res.suite.name)}/errors/{slug(where)}/{name}"
            out[base] = float(rate["value"])
            if rate.get("ci_high") is not None:
                out[base + "_ci_low"] = float(rate["ci_low"])
                out[base + "_ci_high"] = float(rate["ci_high"])
    return out


def parent_summary(results: list[SuiteResult]) -> dict[str, float]:
    """``{moderator}/{suite}/overall/{f1|recall|fpr|auprc}`` with intervals and ``/n``,
    for the parent run: the MLflow runs table then compares two audits at a glance."""
    out: dict[str, float] = {}
    for res in results:
        per = res.metrics.get("overall") or {}
        for m in PARENT_SUMMARY:
            v = per.get(m)
            if not v or v.get("value") is None:
                continue
            base = slug(f"{res.spec.name}/{res.suite.name}/overall/{m}")
            out[base] = float(v["value"])
            if v.get("ci_low") is not None:
                out[base + "_ci_low"] = float(v["ci_low"])
                out[base + "_ci_high"] = float(v["ci_high"])
        n = (per.get("support") or {}).get("value")
        if n is not None:
            out[slug(f"{res.spec.name}/{res.suite.name}/overall/n")] = float(n)
    return out


def _ms(iso: str | None) -> int | None:
    """Epoch milliseconds of a record timestamp (the audit's real start/end)."""
    from datetime import datetime

    return None if not iso else int(datetime.fromisoformat(iso).timestamp() * 1000)


def mirror(
    record: RecordFile,
    results: list[SuiteResult],
    *,
    uri: str,
    experiment: str,
    runs_dir: Path,
    max_table_rows: int,
) -> dict[str, Any]:
    """Write the parent and child runs; returns ids for the record.

    Every run created is registered in the returned ids at once, so a failure part way
    marks each of them FAILED instead of leaving one RUNNING."""
    client, exp_id, reaped = _open_store(uri, experiment, runs_dir)
    rec = record.record
    base_tags = _base_tags(record)
    out: dict[str, Any] = {
        "tracking_uri": uri,
        "experiment_id": exp_id,
        "children": {},
        "reaped": reaped,
    }
    try:
        t = _Target(client, exp_id, base_tags, _ms(rec.started_at), _ms(rec.finished_at))
        pid = _parent_run(t, record)
        out["parent_run_id"] = pid
        for res in results:
            cid = _child_run(t, pid, res)
            out["children"][res.key] = cid
            _fill_child(t, cid, record, res, max_table_rows)
        _finish_parent(t, pid, record, results, max_table_rows)
    except Exception as exc:
        for rid in [out.get("parent_run_id"), *out["children"].values()]:
            if rid:
                with contextlib.suppress(Exception):
                    client.set_terminated(rid, status="FAILED")
        raise TrackingError(
            f"writing to MLflow failed: {type(exc).__name__}: {exc}",
            where=uri,
            fix="the run record on disk is complete; rerun to retry mirroring",
        ) from exc
    return out


@dataclass(frozen=True)
class _Target:
    """Where and how one audit's runs are written: the client, the experiment, the tags
    every run carries and the audit's real start and end (epoch ms)."""

    client: Any
    exp_id: str
    base_tags: dict[str, str]
    start_ms: int | None
    end_ms: int | None


def _open_store(uri: str, experiment: str, runs_dir: Path) -> tuple[Any, str, int]:
    """The client and experiment id, after reaping runs orphaned by a killed mirror."""
    try:
        client, exp_id = _setup(uri, experiment, runs_dir)
        reaped = reap_orphans(client, exp_id)
    except Exception as exc:
        raise TrackingError(
            f"cannot open the MLflow store: {type(exc).__name__}: {exc}",
            where=uri,
            fix="check tracking.uri / MLFLOW_TRACKING_URI, or pass --no-mlflow",
        ) from None
    return client, exp_id, reaped


def _base_tags(record: RecordFile) -> dict[str, str]:
    rec = record.record
    git = rec.provenance.git
    return {
        "audit.run_id": record.run_id,
        "audit.config_hash": rec.config_hash,
        "audit.policy": rec.policy.ref,
        "audit.policy_digest": rec.policy.digest,
        "audit.host": socket.gethostname(),
        "audit.pid": str(os.getpid()),
        "audit.record": str(record.path),
        "mlflow.source.git.commit": git.commit or "",
        "audit.git_dirty": str(git.dirty),
        **{f"user.{k}": v for k, v in rec.config.get("tags", {}).items()},
    }


def _parent_run(t: _Target, record: RecordFile) -> str:
    """Create the parent run (named by the audit run id) with the config's params."""
    rec = record.record
    parent = t.client.create_run(
        t.exp_id, run_name=record.run_id, tags=t.base_tags, start_time=t.start_ms
    )
    pid: str = parent.info.run_id
    cfg = rec.config
    _params(
        t.client,
        pid,
        {
            "config.name": cfg["name"],
            "config.hash": rec.config_hash,
            "policy": rec.policy.ref,
            "seed": cfg["seed"],
            "suites": ",".join(s.name for s in rec.suites.values()),
            "moderators": ",".join(m["name"] for m in cfg["moderators"]),
            "metrics.bootstrap": cfg["metrics"]["bootstrap"],
            "metrics.ci": cfg["metrics"]["ci"],
            "runner.error_budget": cfg["runner"]["error_budget"],
        },
    )
    return pid


def _child_run(t: _Target, pid: str, res: SuiteResult) -> str:
    """Create the child run of one suite × moderator under the parent."""
    child = t.client.create_run(
        t.exp_id,
        # moderator first: the runs table groups a model's children together
        run_name=f"{res.spec.name} · {res.suite.name}",
        start_time=t.start_ms,
        tags={
            **t.base_tags,
            "mlflow.parentRunId": pid,
            "audit.suite": res.suite.name,
            "audit.suite_digest": res.suite.digest,
            "audit.suite_version": res.suite.card.version,
            "audit.moderator": res.spec.name,
            "audit.moderator_type": res.spec.type,
            "audit.fingerprint": res.fingerprint_hash,
        },
    )
    cid: str = child.info.run_id
    return cid


def _fill_child(
    t: _Target, cid: str, record: RecordFile, res: SuiteResult, max_table_rows: int
) -> None:
    """A child run's params, metrics, dataset lineage, FP/FN table and predictions file;
    then it is terminated."""
    import mlflow

    from audit.engine.results import fp_fn_frame

    _params(
        t.client,
        cid,
        {
            "suite": res.suite.name,
            "suite.split": res.suite.split,
            "suite.version": res.suite.card.version,
            "suite.n": res.n,
            "moderator": res.spec.name,
            "moderator.type": res.spec.type,
            "moderator.fingerprint": res.fingerprint_hash[:16],
            "moderator.batch_size": res.spec.batch_size,
            "moderator.categories": ",".join(res.categories),
            "thresholds": json.dumps(res.spec.thresholds, sort_keys=True),
            **{
                f"params.{k}": json.dumps(v) if not isinstance(v, str) else v
                for k, v in sorted(res.spec.params.items())
            },
        },
    )
    _metrics(t.client, cid, _flat_metrics(res))
    with mlflow.start_run(run_id=cid, nested=True):
        mlflow.log_input(_dataset(res), context=res.suite.split)
        table = fp_fn_frame(res, max_table_rows)
        if not table.empty:
            mlflow.log_table(table, artifact_file="fp_fn.json")
    pq = record.dir / "predictions" / f"{res.key}.parquet"
    if pq.exists():
        t.client.log_artifact(cid, str(pq), artifact_path="predictions")
    t.client.set_terminated(cid, status="FINISHED", end_time=t.end_ms)


def _finish_parent(
    t: _Target, pid: str, record: RecordFile, results: list[SuiteResult], max_table_rows: int
) -> None:
    """The parent's summary metrics, disagreement tables and artifacts; then it is
    terminated with the audit's status."""
    _metrics(t.client, pid, parent_summary(results))
    _log_disagreements(pid, record, results)
    _log_judge_disagreements(pid, record, results, max_table_rows)
    for name in ("record.json", "config.yaml", "report.md", "report.html"):
        p = record.dir / name
        if p.exists():
            t.client.log_artifact(pid, str(p))
    t.client.set_terminated(
        pid,
        status="FINISHED" if record.record.status == "finished" else "FAILED",
        end_time=t.end_ms,
    )


def _log_disagreements(parent_id: str, record: RecordFile, results: list[SuiteResult]) -> None:
    """Per suite, for every pair of moderators: the decision A × decision B × gold count
    matrix per category (``disagreements/<suite>.json`` on the parent run; counts only)."""
    import itertools

    import mlflow
    import pandas as pd

    from audit.analysis.disagreements import decision_matrix, join_results

    by_suite: dict[str, list[SuiteResult]] = {}
    for res in results:
        by_suite.setdefault(res.suite.name, []).append(res)
    for suite, group in by_suite.items():
        tables = []
        for a, b in itertools.combinations(group, 2):
            fa = pd.read_parquet(record.dir / "predictions" / f"{a.key}.parquet")
            fb = pd.read_parquet(record.dir / "predictions" / f"{b.key}.parquet")
            mat = decision_matrix(join_results(fa, fb))
            mat.insert(0, "moderator_b", b.spec.name)
            mat.insert(0, "moderator_a", a.spec.name)
            tables.append(mat)
        if tables:
            with mlflow.start_run(run_id=parent_id):
                mlflow.log_table(
                    pd.concat(tables), artifact_file=f"disagreements/{slug(suite)}.json"
                )


def judge_disagreement_frame(
    record: RecordFile, results: list[SuiteResult], suite: str, max_rows: int
) -> Any:
    """One row per (judge item, what it disagrees with) on ``suite``: the judge's and
    the other side's decision and score, the item text (redacted for restricted items)
    and the judge's rationale with its kind (``chain_of_thought`` from generate mode,
    ``post_hoc`` from ``explain:``). Rows with a rationale come first."""
    import numpy as np
    import pandas as pd

    from audit.analysis.explain import POST_HOC, disagreements
    from audit.engine.results import REDACTED
    from audit.suites.loader import suite_items

    kinds = {k: v.kind for k, v in record.record.moderators.items()}
    explained = {
        (e.moderator, it["id"])
        for e in record.record.results
        for it in (e.explained or {}).get("items", [])
    }
    group = [r for r in results if r.suite.name == suite]
    rows: list[dict[str, Any]] = []
    for res in group:
        if kinds.get(res.spec.name) != "llm":
            continue
        others = [o for o in group if o is not res]
        by_name = {o.spec.name: o for o in others}
        pos = {o.spec.name: {iid: k for k, iid in enumerate(o.suite.column("id"))} for o in others}
        found = disagreements(res, others)
        if not found:
            continue
        texts = {it.id: it.text() for it in suite_items(res.suite)}
        ids = res.suite.column("id")
        hashes = res.suite.column("content_hash")
        red = (
            res.restricted_mask if res.restricted_mask is not None else np.zeros(res.n, dtype=bool)
        )
        for i, against in sorted(found.items()):
            rationale = res.rationales[i]
            kind = None
            if rationale is not None:
                kind = POST_HOC if (res.spec.name, ids[i]) in explained else "chain_of_thought"
            for who in against:
                red_row = bool(red[i])
                if who == "gold":
                    other_dec = {1: "positive", 0: "negative"}.get(int(res.suite.overall[i]))
                    other_score = None
                else:
                    o = by_name[who]
                    k = pos[who][ids[i]]
                    other_dec = "flag" if o.overall_pred[k] == 1 else "pass"
                    other_score = float(o.overall_score[k])
                    red_row |= o.restricted_mask is not None and bool(o.restricted_mask[k])
                rows.append(
                    {
                        "judge": res.spec.name,
                        "against": who,
                        "id": ids[i],
                        "content_hash": hashes[i],
                        "judge_decision": "flag" if res.overall_pred[i] == 1 else "pass",
                        "judge_score": float(res.overall_score[i]),
                        "other_decision": other_dec,
                        "other_score": other_score,
                        "gold_overall": int(res.suite.overall[i]),
                        "rationale": REDACTED if (red[i] and rationale) else rationale,
                        "rationale_kind": kind,
                        "text": REDACTED if red_row else texts.get(ids[i], "")[:500],
                    }
                )
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["_has"] = frame["rationale"].notna()
    frame = frame.sort_values(
        ["_has", "judge", "against", "id"], ascending=[False, True, True, True]
    )
    return frame.drop(columns="_has").head(max_rows).reset_index(drop=True)


def _log_judge_disagreements(
    parent_id: str, record: RecordFile, results: list[SuiteResult], max_rows: int
) -> None:
    """``disagreements/<suite>_judge_items.json`` on the parent run: per-item
    judge-vs-gold and judge-vs-classifier disagreements with the judge's rationale."""
    import mlflow

    for suite in dict.fromkeys(r.suite.name for r in results):
        frame = judge_disagreement_frame(record, results, suite, max_rows)
        if frame.empty:
            continue
        with mlflow.start_run(run_id=parent_id):
            mlflow.log_table(frame, artifact_file=f"disagreements/{slug(suite)}_judge_items.json")


def _params(client: Any, run_id: str, params: dict[str, Any]) -> None:
    log_params(client, run_id, params)


def _metrics(client: Any, run_id: str, metrics: dict[str, float]) -> None:
    log_metrics(client, run_id, metrics)
