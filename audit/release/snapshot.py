"""Baseline snapshots (``audit baseline update``) and gate sides given by reference:
runs, snapshots, ``mlflow:<run_id>`` or ``mlflow-tag:key=value`` (docs/methods.md §3)."""

from __future__ import annotations

from pathlib import Path

from audit.release.sides import Side, load_side

_SNAPSHOT_COLS = ("id", "content_hash", "error", "error_type")


def write_snapshot(run: str | Path, name: str, out_dir: Path) -> Path:
    """Write ``<out_dir>/<name>.json``: a baseline that can be gated against without runs/.

    It keeps the record's metrics, suite digests, policy, moderator fingerprints and,
    per result, the item table needed for pairing (ids, content hashes, scores, decisions,
    gold, errors, slices) as a base64 zstd Parquet.
    """
    import base64
    import io

    from audit._util.settings import check_writable
    from audit.engine.record import utcnow, write_json_atomic

    check_writable(out_dir, "baseline snapshot")  # before the work, not after
    side = load_side(run)
    d = side.data
    results = []
    raw = {(r["suite"], r["split"], r["moderator"]): r for r in d.get("results", [])}
    for rv in side.results:
        f = rv.load()
        keep = [
            c
            for c in f.columns
            if c in _SNAPSHOT_COLS or c.split(".")[0] in ("score", "pred", "gold", "slice")
        ]
        buf = io.BytesIO()
        f[keep].to_parquet(buf, compression="zstd", index=False)
        entry = {
            k: v for k, v in raw[(rv.suite, rv.split, rv.moderator)].items() if k != "predictions"
        }
        entry["items"] = base64.b64encode(buf.getvalue()).decode("ascii")
        results.append(entry)
    snap = {
        "snapshot_version": 1,
        "schema_version": d.get("schema_version"),
        "name": name,
        "created_at": utcnow(),
        "run_id": side.run_id,
        "policy": d.get("policy"),
        "suites": d.get("suites"),
        "moderators": {
            k: {kk: v.get(kk) for kk in ("type", "fingerprint", "fingerprint_hash", "thresholds")}
            for k, v in (d.get("moderators") or {}).items()
        },
        "git": (d.get("provenance") or {}).get("git"),
        "mlflow": d.get("mlflow"),
        "results": results,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    write_json_atomic(path, snap)
    return path


def resolve_side(ref: str, workdir: Path) -> Side:
    """A run/record/run id/snapshot, ``mlflow:<run_id>`` or ``mlflow-tag:key=value``.

    MLflow references download the parent run's ``record.json`` and its children's
    ``predictions/*.parquet`` artifacts into ``workdir``.
    """
    if not ref.startswith(("mlflow:", "mlflow-tag:")):
        return load_side(ref)
    from audit._util.settings import runs_dir
    from audit.tracking.artifacts import download_audit_run

    rid = download_audit_run(ref, workdir, runs_dir())
    side = load_side(workdir)
    side.mlflow_parent = rid
    return side
