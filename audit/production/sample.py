"""``audit production sample``: the two-frame stratified sample, drawn inside DuckDB.

The planned strata are applied to the audited period's logs; within each stratum
rows are ranked by a seeded hash of the id, ``hash(xor(hash(item_id), key(seed)))``
(``row_number() OVER (PARTITION BY stratum ORDER BY h)``, see :func:`seed_key`),
and the first ``m_h`` ranks are kept. The first
``n_h <= m_h`` ranks go to human labellers, all ``m_h`` to the reference
labeller, so the human sample is a simple random subsample of the reference
sample (the nesting two-phase PPI needs). Ranking by a hash of the id is a
simple random sample without replacement within the stratum (the hash is
independent of the content), deterministic for a seed and engine version.

Frame and stratum sizes ``N_h`` are frozen in the sample manifest with the logs'
digest: the estimate uses exactly these, whatever happens to the logs later.
Methods: docs/methods/production.md §3.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.production.errors import PlanError, ProductionError
from audit.production.logs import DecisionLogs, Period, sql_ident, sql_str
from audit.production.plan import Plan, Stratum, cell_key
from audit.production.strata_sql import stratum_case_sql

MANIFEST_VERSION = 1


class SampledStratum(Stratum):
    """A planned stratum with its frozen size in the audited period.

    ``N_h`` is the audited period's size; ``n_h``/``m_h`` the human/reference sample
    sizes actually drawn; ``views_h`` the stratum's total views (NaN without views).
    """

    N_plan: int
    views_h: float


class SampleManifest(BaseModel):
    """What was sampled, from which logs, with which sizes."""

    model_config = ConfigDict(extra="forbid", frozen=True, ser_json_inf_nan="constants")

    manifest_version: Literal[1] = 1
    logs_card: str
    logs_digest: str
    period: str
    policy_version: str
    pathways: tuple[str, ...]
    slices: tuple[str, ...] = ()
    plan_digest: str
    seed: int
    engine: str
    n_rows: int
    n_duplicates_dropped: int = 0
    strata: tuple[SampledStratum, ...]
    sample_file: str
    sample_sha256: str
    batches: dict[str, str] = Field(default_factory=dict)
    restricted_categories: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def digest(self) -> str:
        """sha256 of the manifest's canonical JSON."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


_U64 = 2**64 - 1


def seed_key(seed: int) -> int:
    """A 64-bit key mixed from the seed (splitmix64 finaliser, Steele et al. 2014).

    The ranking key is ``hash(xor(hash(item_id), seed_key(seed)))``. DuckDB's
    two-argument ``hash(item_id, seed)`` combines the hashes so weakly that the
    orderings for different seeds are strongly correlated (rank correlation ~0.5
    between seeds 0 and 1): repeated draws would not be independent. Re-hashing
    the XOR with a well-mixed key decorrelates them (measured |r| < 0.01).
    """
    z = (seed + 0x9E3779B97F4A7C15) & _U64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _U64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _U64
    return z ^ (z >> 31)


def hash_cutoff(m_h: int, N_h: int | None) -> int:
    """Largest hash kept before ranking (an optimisation that never changes the sample).

    Ranking keeps the m_h smallest hashes; rows above a threshold t can be dropped
    first whenever at least m_h rows fall below t. With t at the (m + 6√m + 20)/N
    quantile of a uniform hash, fewer than m_h survivors has probability < 1e-9;
    :func:`draw_sample` checks the counts anyway and reruns without the cut.
    """
    if not N_h or m_h <= 0:
        return _U64
    q = (m_h + 6 * m_h**0.5 + 20) / N_h
    return _U64 if q >= 1 else int(q * _U64)


def sampling_sql(
    logs: DecisionLogs,
    plan: Plan,
    period: Period,
    seed: int,
    alloc: dict[int, int],
    policy_version: str | None,
    sizes: dict[int, int] | None = None,
) -> str:
    """The sampling query (DuckDB SQL): strata by CASE, hash-ranked within stratum.

    Within each stratum rows are ordered by a seeded hash of the id (ties by id) and
    the first m_h kept; ``sizes`` (N_h) enables the hash pre-filter (same result).
    """
    rel = logs.relation_sql(period, None, policy_version, native_ids=True)
    pw = " AND pathway IN (" + ", ".join(sql_str(p) for p in plan.pathways) + ")"
    case = stratum_case_sql(plan.strata, plan.slices)
    values = (
        ", ".join(
            f"({k}, {v}, {hash_cutoff(v, (sizes or {}).get(k))}::UBIGINT)"
            for k, v in sorted(alloc.items())
            if v > 0
        )
        or "(-1, 0, 0::UBIGINT)"
    )
    return (
        f"WITH logs AS (SELECT * FROM ({rel}) WHERE TRUE{pw}),\n"
        f"strat AS (SELECT *, {case} AS stratum, "
        f"hash(xor(hash(item_id), {seed_key(int(seed))}::UBIGINT)) AS h FROM logs),\n"
        f"alloc(stratum, m_h, cutoff) AS (VALUES {values}),\n"
        "cand AS (SELECT s.* FROM strat s JOIN alloc a ON s.stratum = a.stratum WHERE s.h <= a.cutoff),\n"
        "ranked AS (SELECT *, row_number() OVER (PARTITION BY stratum ORDER BY h, item_id) AS rank FROM cand)\n"
        "SELECT CAST(r.item_id AS VARCHAR) AS item_id, r.* EXCLUDE (item_id, h)\n"
        "FROM ranked r JOIN alloc a ON r.stratum = a.stratum WHERE r.rank <= a.m_h\n"
        "ORDER BY r.stratum, r.rank"
    )


def draw_sample(
    logs: DecisionLogs,
    plan: Plan,
    period: Period,
    out_dir: Path,
    *,
    seed: int = 0,
    policy_version: str | None = None,
    batch_format: Literal["jsonl", "csv"] = "jsonl",
    restricted: frozenset[str] = frozenset(),
) -> SampleManifest:
    """Draw the sample and write ``sample.parquet``, the batches and ``manifest.json``."""
    case = stratum_case_sql(plan.strata, plan.slices)
    # one scan validates the period and, when duplicates are an error (so none
    # survive validation), also counts N_h and the views per stratum
    fused = logs.card.duplicates == "error"
    rep = logs.check(
        period, None, policy_version, pathways=plan.pathways, group_sql=case if fused else None
    )
    reports = [rep]
    pv = rep.policy_version
    if pv != plan.policy_version:
        raise PlanError(
            "the plan was built for another policy version",
            where=str(logs.data_path),
            field="policy_version",
            expected=repr(plan.policy_version),
            actual=repr(pv),
            fix="re-plan on logs of the same policy version",
        )
    if plan.logs_card != str(logs.card_path):
        # the same card is not required (a new day may have a new card), only the schema
        pass
    rel = (
        f"SELECT * FROM ({logs.relation_sql(period, None, policy_version, native_ids=True)}) WHERE pathway IN ("
        + ", ".join(sql_str(p) for p in plan.pathways)
        + ")"
    )
    counts = _counts_today(logs, plan, rep, case, rel, fused)
    strata, alloc, notes = _allocate_today(
        plan, counts, period, logs.card.columns.views is not None
    )
    tbl = _draw(logs, plan, period, seed, alloc, policy_version, strata)
    out_dir.mkdir(parents=True, exist_ok=True)
    import pyarrow.parquet as pq

    sample_path = out_dir / "sample.parquet"
    pq.write_table(tbl, sample_path)
    sha = hashlib.sha256(sample_path.read_bytes()).hexdigest()
    batches = _write_batches(tbl, out_dir, batch_format, restricted)
    import duckdb

    man = SampleManifest(
        logs_card=str(logs.card_path),
        logs_digest=logs.digest(period),
        period=period.label,
        policy_version=pv,
        pathways=plan.pathways,
        slices=plan.slices,
        plan_digest=plan.digest(),
        seed=seed,
        engine=f"duckdb {duckdb.__version__}",
        n_rows=sum(r.n_rows for r in reports),
        n_duplicates_dropped=sum(r.n_duplicates_dropped for r in reports),
        strata=tuple(strata),
        sample_file=sample_path.name,
        sample_sha256=sha,
        batches={k: Path(v).name for k, v in batches.items()},
        restricted_categories=tuple(sorted(restricted)),
        notes=tuple(notes),
    )
    (out_dir / "manifest.json").write_text(man.model_dump_json(indent=2), encoding="utf-8")
    return man


def _counts_today(
    logs: DecisionLogs, plan: Plan, rep: Any, case: str, rel: str, fused: bool
) -> dict[int, tuple[int, float]]:
    """N_h and the views per planned stratum in this period; refuse rows no stratum takes."""
    sl_cols = [sql_ident("slice." + s) for s in plan.slices]
    if fused:
        rows = [(g, nv[0], nv[1]) for g, nv in rep.groups.items()]
    else:
        rows = logs.con.execute(
            f"SELECT {case} AS stratum, count(*), sum(views) FROM ({rel}) GROUP BY 1"
        ).fetchall()
    counts = {
        int(r[0]): (
            int(r[1]),
            float(r[2]) if r[2] is not None and math.isfinite(float(r[2])) else math.nan,
        )
        for r in rows
        if r[0] is not None
    }
    unplanned = []
    if any(r[0] is None for r in rows):
        unplanned = logs.con.execute(
            f"SELECT pathway, category, actioned, {', '.join(sl_cols) + ',' if sl_cols else ''} count(*) "
            f"FROM (SELECT *, {case} AS stratum FROM ({rel})) WHERE stratum IS NULL GROUP BY ALL ORDER BY count(*) DESC LIMIT 1"
        ).fetchall()
    if unplanned:
        u = unplanned[0]
        frame = "actioned" if u[2] else "not actioned"
        raise PlanError(
            f"{u[-1]:,} rows of {cell_key(str(u[0]), str(u[1]), dict(zip(plan.slices, map(str, u[3:-1]))))} "
            f"({frame}) fall in no planned stratum",
            where=str(logs.data_path),
            field=f"{logs.card.columns.category} (columns.category)",
            expected="categories, pathways, frames and slice values seen when planning",
            actual="a group absent from the plan",
            fix="re-run `audit production plan` on logs that include it",
        )
    return counts


def _allocate_today(
    plan: Plan, counts: dict[int, tuple[int, float]], period: Period, has_views: bool
) -> tuple[list[SampledStratum], dict[int, int], list[str]]:
    """Today's n_h / m_h per stratum from the plan and today's N_h, with notes on strata
    that emptied since planning."""
    strata: list[SampledStratum] = []
    alloc: dict[int, int] = {}
    notes: list[str] = []
    for s in plan.strata:
        N_h, views = counts.get(s.id, (0, math.nan))
        # never zero allocation: a stratum empty when planning but populated now gets the floor
        n_h = s.n_h if s.n_h > 0 else (plan.floor if N_h > 0 else 0)
        if s.views_min is not None:
            n_h = N_h  # take-all (certainty) stratum, whatever its size today
        n_h = min(n_h, N_h)
        m_h = min(max(s.m_h, n_h), N_h)
        if N_h == 0 and s.N_h > 0:
            notes.append(f"stratum {s.key} is empty in {period.label} (N_h = 0)")
        alloc[s.id] = m_h
        d = s.model_dump()
        d.update(
            N_h=N_h,
            n_h=n_h,
            m_h=m_h,
            N_plan=s.N_h,
            views_h=views if has_views else math.nan,
        )
        strata.append(SampledStratum(**d))
    return strata, alloc, notes


def _draw(
    logs: DecisionLogs,
    plan: Plan,
    period: Period,
    seed: int,
    alloc: dict[int, int],
    policy_version: str | None,
    strata: list[SampledStratum],
) -> Any:
    """The sampled rows as an Arrow table, with the ``human`` flag (rank within n_h) and
    each row's ``content_hash``."""
    sizes = {s.id: s.N_h for s in strata}
    tbl = logs.con.sql(
        sampling_sql(logs, plan, period, seed, alloc, policy_version, sizes)
    ).to_arrow_table()
    got: dict[int, int] = {}
    for v in tbl.column("stratum").to_pylist():
        got[int(v)] = got.get(int(v), 0) + 1
    if any(got.get(k, 0) != v for k, v in alloc.items() if v > 0):
        # the hash pre-filter left a stratum short (probability < 1e-9): rank everything
        tbl = logs.con.sql(
            sampling_sql(logs, plan, period, seed, alloc, policy_version)
        ).to_arrow_table()
    import pyarrow as pa

    from audit.schema import content_hash

    human_n = {s.id: s.n_h for s in strata}
    ranks = tbl.column("rank").to_pylist()
    st = tbl.column("stratum").to_pylist()
    human = pa.array([int(r) <= human_n[int(h)] for r, h in zip(ranks, st)], type=pa.bool_())
    content_cols = [c for c in tbl.column_names if c.startswith("content.")]
    hashes = []
    for i in range(tbl.num_rows):
        fields = {c[len("content.") :]: tbl.column(c)[i].as_py() for c in content_cols}
        hashes.append(content_hash(fields) if fields else "")
    tbl = tbl.append_column("human", human).append_column(
        "content_hash", pa.array(hashes, pa.string())
    )
    return tbl


def _write_batches(
    tbl: Any, out_dir: Path, batch_format: str, restricted: frozenset[str]
) -> dict[str, str]:
    """The human batch (rank within n_h) and the reference batch (all m_h), by path."""
    batches = {
        "human": str(
            _write_batch(
                tbl,
                out_dir / f"batch_human.{batch_format}",
                batch_format,
                restricted,
                only_human=True,
            )
        ),
        "reference": str(
            _write_batch(
                tbl,
                out_dir / f"batch_reference.{batch_format}",
                batch_format,
                restricted,
                only_human=False,
            )
        ),
    }
    return batches


def _write_batch(
    tbl: Any, path: Path, fmt: str, restricted: frozenset[str], *, only_human: bool
) -> Path:
    """The labelling batch: blind (no score, decision or pathway), restricted as id + hash."""
    import csv

    cols = tbl.column_names
    content_cols = [c for c in cols if c.startswith("content.")]
    seen: set[tuple[str, str]] = set()
    rows: list[dict[str, Any]] = []
    d = tbl.to_pydict()
    for i in range(tbl.num_rows):
        if only_human and not d["human"][i]:
            continue
        key = (d["item_id"][i], d["category"][i])
        if key in seen:  # the same item×category sampled for two pathways: label once
            continue
        seen.add(key)
        row: dict[str, Any] = {
            "item_id": key[0],
            "category": key[1],
            "content_hash": d["content_hash"][i],
        }
        if key[1] in restricted:
            row["restricted"] = True
        else:
            row["restricted"] = False
            for c in content_cols:
                row[c[len("content.") :]] = d[c][i]
            if "content_ref" in d:
                row["content_ref"] = d["content_ref"][i]
        rows.append(row)
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    else:
        names: list[str] = []
        for r in rows:
            names += [k for k in r if k not in names]
        with path.open("w", encoding="utf-8", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=names)
            w.writeheader()
            w.writerows(rows)
    return path


def load_manifest(path: str | Path) -> SampleManifest:
    """Read a sample manifest file (one-line errors naming the file and the first bad field)."""
    from audit._util.validation import load_json_model

    return load_json_model(
        SampleManifest, Path(path), error=ProductionError, what="sample manifest"
    )
