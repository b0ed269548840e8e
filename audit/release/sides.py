"""The two sides of a comparison (docs/methods.md §3): loading a run directory, a
``record.json``, a run id under ``runs/`` or a baseline snapshot JSON (checked field by
field), and pairing their results by suite and moderator."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.errors import ConfigError, GateError

if TYPE_CHECKING:
    from audit.change.suite_diff import DeclaredDiff

#: How to make a suite version change comparable (docs/methods/change.md §4).
DIGEST_FIX = (
    "write the diff of the two versions with `audit suite diff OLD NEW --out DIR` and pass "
    "--declared-diff DIR/suite_diff.json"
)


@dataclass
class ResultView:
    """One suite × moderator result of a run (or snapshot), predictions loaded lazily."""

    suite: str
    split: str
    moderator: str
    digest: str | None
    metrics: dict[str, Any]
    n: int
    n_errors: int
    error_types: dict[str, int]
    load: Callable[[], Any]

    @property
    def suite_key(self) -> str:
        return f"{self.suite}:{self.split}"


@dataclass
class Side:
    """A loaded run or baseline snapshot."""

    run_id: str
    source: str
    policy: dict[str, Any]
    results: list[ResultView]
    mlflow_parent: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _runs_dir() -> Path:
    from audit._util.settings import runs_dir

    return runs_dir()


def frame_from_b64(text: str) -> Any:
    """Decode a snapshot's base64 Parquet (zstd) item table."""
    import pandas as pd

    return pd.read_parquet(io.BytesIO(base64.b64decode(text)))


def load_side(ref: str | Path) -> Side:
    """Load a run directory, ``record.json``, run id under ``runs/``, or snapshot JSON."""
    p = Path(ref)
    if not p.exists() and (_runs_dir() / str(ref)).exists():
        p = _runs_dir() / str(ref)
    if not p.exists():
        raise ConfigError(
            "run not found",
            where=str(ref),
            expected="a run directory, record.json, run id under runs/ or snapshot JSON",
            actual="no such path",
        )
    rec = p / "record.json" if p.is_dir() else p
    from audit._util.validation import read_json

    data = read_json(rec, what="run record or baseline snapshot")
    if not isinstance(data, dict):
        raise ConfigError(
            "not a run record or baseline snapshot",
            where=str(rec),
            field="(top level)",
            expected="a JSON object",
            actual=f"a JSON {type(data).__name__}",
            fix="point at a record.json or a snapshot written by 'audit baseline update'",
        )
    snapshot = "snapshot_version" in data
    if snapshot:
        data = _checked_snapshot(data, rec)
    else:
        from audit.engine.record import parse_record

        # typed and migrated: a record of any supported version reads as the current one
        data = parse_record(data, str(rec)).model_dump(mode="json")
    results = []
    for i, r in enumerate(data.get("results", [])):
        skey = f"{r['suite']}:{r['split']}"
        digest = (data.get("suites", {}).get(skey) or {}).get("digest")

        def _load(r: dict[str, Any] = r, i: int = i) -> Any:
            if snapshot:
                return frame_from_b64(r["items"])
            from audit.engine.record import read_predictions

            return read_predictions(
                rec.parent, r["predictions"], where=str(rec), field=f"results[{i}].predictions"
            )

        results.append(
            ResultView(
                r["suite"],
                r["split"],
                r["moderator"],
                digest,
                r.get("metrics", {}),
                int(r.get("n", 0)),
                int(r.get("n_errors", 0)),
                dict(r.get("error_types") or {}),
                _load,
            )
        )
    ml = data.get("mlflow") or {}
    return Side(
        str(data.get("run_id")),
        str(rec),
        data.get("policy") or {},
        results,
        ml.get("parent_run_id"),
        data,
    )


class _SnapshotResult(BaseModel):
    model_config = ConfigDict(extra="allow")

    suite: str
    split: str
    moderator: str
    items: str = Field(min_length=1)
    n: int = Field(default=0, ge=0)
    n_errors: int = Field(default=0, ge=0)
    error_types: dict[str, int] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)


class _Snapshot(BaseModel):
    model_config = ConfigDict(extra="allow")

    # a snapshot from a newer audit may mean something else: refused, not guessed at
    snapshot_version: Literal[1]
    run_id: str
    policy: dict[str, Any]
    suites: dict[str, dict[str, Any]] = Field(default_factory=dict)
    results: list[_SnapshotResult] = Field(min_length=1)


def _checked_snapshot(data: dict[str, Any], path: Path) -> dict[str, Any]:
    """A baseline snapshot validated field by field, every item table decoded once,
    so a corrupt baseline is a one-line error (exit 2) before any comparison."""
    from audit._util.validation import parse_model

    snap = parse_model(_Snapshot, data, str(path))
    for i, r in enumerate(snap.results):
        try:
            frame = frame_from_b64(r.items)
        except Exception as exc:
            raise ConfigError(
                f"baseline item table cannot be decoded ({type(exc).__name__})",
                where=str(path),
                field=f"results[{i}].items",
                expected="base64 Parquet written by 'audit baseline update'",
                actual=f"{len(r.items)} characters that do not decode",
                fix="regenerate the snapshot with 'audit baseline update'",
            ) from None
        missing = [c for c in ("id", "content_hash") if c not in frame.columns]
        if missing:
            raise ConfigError(
                "baseline item table lacks columns",
                where=str(path),
                field=f"results[{i}].items",
                expected="columns id, content_hash, gold.*, score.*, pred.*",
                actual=f"missing {missing}",
                fix="regenerate the snapshot with 'audit baseline update'",
            )
    return data


def pair_results(
    a: Side, b: Side, moderator_a: str | None = None, moderator_b: str | None = None
) -> list[tuple[ResultView, ResultView]]:
    """Pair results by suite and moderator.

    Default: the same moderator name in both runs; when each run has exactly one
    moderator (per suite) under different names, they are paired. ``moderator_a`` /
    ``moderator_b`` pick one moderator from each run explicitly.
    """
    pairs = []
    for ra in a.results:
        if moderator_a and ra.moderator != moderator_a:
            continue
        cands = [rb for rb in b.results if rb.suite_key == ra.suite_key]
        want = moderator_b or (moderator_a if moderator_a and not moderator_b else ra.moderator)
        match = [rb for rb in cands if rb.moderator == want]
        if not match and not (moderator_a or moderator_b):
            mods_a = {r.moderator for r in a.results if r.suite_key == ra.suite_key}
            if len(mods_a) == 1 and len(cands) == 1:
                match = cands
        if match:
            pairs.append((ra, match[0]))
    if not pairs:
        raise GateError(
            "no suite × moderator pairs in common",
            where=f"{a.run_id} vs {b.run_id}",
            expected="the same suite and moderator name in both runs",
            actual=f"A: {sorted({r.moderator for r in a.results})}, B: {sorted({r.moderator for r in b.results})}",
            fix="pick moderators with --moderator-a / --moderator-b",
        )
    return pairs


def match_declared(
    diffs: Sequence[DeclaredDiff],
    pairs: list[tuple[ResultView, ResultView]],
    roles: tuple[str, str] = ("A", "B"),
) -> dict[str, DeclaredDiff]:
    """The declared suite diff of each paired suite split (``suite:split`` → diff).

    A diff is accepted only for exactly the change it describes: its from-digest must be
    the first side's digest and its to-digest the second's. Anything else is a stale or
    misdirected declaration and an error, never silently ignored.

    Raises:
        ConfigError: the diff names a suite no pair scored, or other digests (exit 2).
    """
    out: dict[str, DeclaredDiff] = {}
    for d in diffs:
        hits = [
            (ra, rb)
            for ra, rb in pairs
            if ra.suite == d.suite and (d.split is None or ra.split == d.split)
        ]
        if not hits:
            raise ConfigError(
                "declared suite diff is for a suite neither run scored in common",
                where=d.path,
                field="from.name",
                expected=" or ".join(sorted({ra.suite_key for ra, _ in pairs})),
                actual=f"{d.suite}:{d.split}" if d.split else d.suite,
                fix="declare the diff of a suite both runs scored",
            )
        for ra, rb in hits:
            if (str(ra.digest), str(rb.digest)) != (d.from_digest, d.to_digest):
                raise ConfigError(
                    f"declared suite diff does not describe the runs' versions of {ra.suite_key}",
                    where=d.path,
                    field="from.digest / to.digest",
                    expected=f"{str(ra.digest)[:12]} ({roles[0]}) → {str(rb.digest)[:12]} "
                    f"({roles[1]})",
                    actual=f"{d.from_digest[:12]} → {d.to_digest[:12]}",
                    fix="write the diff of exactly these two versions with "
                    "`audit suite diff OLD NEW --out DIR`",
                )
            out[ra.suite_key] = d
    return out
