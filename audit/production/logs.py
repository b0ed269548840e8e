"""Decision logs read through DuckDB, validated against the canonical schema.

The logs never pass through pandas: every filter (period, pathway, policy version)
is a ``WHERE`` clause on ``read_parquet`` so DuckDB prunes hive partitions and row
groups before reading (predicate pushdown), and every check is one aggregate query.
Methods: docs/methods/production.md §1.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.production.card import LogsCard, load_logs_card
from audit.production.errors import LogsError

if TYPE_CHECKING:
    import duckdb

_ALLOWED_TYPES: dict[str, tuple[str, ...]] = {
    "item_id": ("VARCHAR", "BIGINT", "INTEGER", "UBIGINT", "UINTEGER", "HUGEINT"),
    "ts": ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "DATE"),
    "pathway": ("VARCHAR",),
    "category": ("VARCHAR",),
    "score": ("DOUBLE", "FLOAT", "DECIMAL"),
    "actioned": ("BOOLEAN",),
    "action": ("VARCHAR",),
    "views": ("BIGINT", "INTEGER", "SMALLINT", "UBIGINT", "UINTEGER", "USMALLINT", "TINYINT"),
    "policy_version": ("VARCHAR", "BIGINT", "INTEGER"),
}


def sql_str(s: str) -> str:
    """A SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def sql_ident(s: str) -> str:
    """A quoted SQL identifier."""
    return '"' + s.replace('"', '""') + '"'


@dataclass(frozen=True)
class Period:
    """An inclusive range of days (``2026-11-30`` or ``2026-11-24..2026-11-30``)."""

    start: dt.date
    end: dt.date

    @classmethod
    def parse(cls, text: str) -> Period:
        """Parse ``YYYY-MM-DD`` or ``YYYY-MM-DD..YYYY-MM-DD``."""
        m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})(?:\.\.(\d{4}-\d{2}-\d{2}))?", text.strip())
        try:
            if m is None:
                raise ValueError(text)
            start = dt.date.fromisoformat(m.group(1))
            end = dt.date.fromisoformat(m.group(2)) if m.group(2) else start
        except ValueError:
            raise LogsError(
                "bad period",
                field="--period",
                expected="YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD",
                actual=repr(text),
            ) from None
        if end < start:
            raise LogsError(
                "period ends before it starts",
                field="--period",
                expected="start <= end",
                actual=repr(text),
            )
        return cls(start, end)

    @property
    def label(self) -> str:
        """``2026-11-30`` or ``2026-11-24..2026-11-30``."""
        s = self.start.isoformat()
        return s if self.end == self.start else f"{s}..{self.end.isoformat()}"

    @property
    def step(self) -> int:
        """The period start as ``YYYYMMDD`` (the MLflow step of a series)."""
        return int(self.start.strftime("%Y%m%d"))

    @property
    def timestamp_ms(self) -> int:
        """Start of the period (UTC midnight) in epoch milliseconds."""
        d = dt.datetime(self.start.year, self.start.month, self.start.day, tzinfo=dt.timezone.utc)
        return int(d.timestamp() * 1000)


@dataclass(frozen=True)
class LogsReport:
    """What :meth:`DecisionLogs.check` found (counts for the manifest)."""

    n_rows: int
    pathways: tuple[str, ...]
    categories: tuple[str, ...]
    policy_version: str
    n_duplicates_dropped: int
    has_views: bool
    n_views_zero: int
    groups: dict[Any, tuple[int, float]] = field(default_factory=dict)


def _combine(rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    """Reduce per-group check aggregates to one row (sums; min/max of the score range)."""
    if not rows:
        return (0,) * 9 + (None, None) + (0,) * 4 + (None,)
    out = []
    for j in range(len(rows[0])):
        vals = [r[j] for r in rows if r[j] is not None]
        if j == 7:
            out.append(min(vals) if vals else None)
        elif j == 8:
            out.append(max(vals) if vals else None)
        else:
            out.append(sum(vals) if vals else (None if j == len(rows[0]) - 1 else 0))
    return tuple(out)


@dataclass(frozen=True)
class CategoryArrays:
    """Scores and decisions of one category in one period (numpy, same order)."""

    scores: np.ndarray
    actioned: np.ndarray


@dataclass
class DecisionLogs:
    """A logs card bound to its Parquet files and an embedded DuckDB connection."""

    card: LogsCard
    card_path: Path
    data_path: Path
    _con: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, card_path: str | Path) -> DecisionLogs:
        """Load the card and check that its source exists."""
        card, cpath = load_logs_card(card_path)
        data = Path(card.source.path)
        if not data.is_absolute():
            data = (cpath.parent / data).resolve()
        if not data.exists() and not any(ch in card.source.path for ch in "*?["):
            raise LogsError(
                "decision logs not found",
                where=str(cpath),
                field="source.path",
                expected="a Parquet file, folder or glob",
                actual=str(data),
                fix="point source.path at the logs (relative to the card)",
            )
        return cls(card=card, card_path=cpath, data_path=data)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The (lazily created) in-memory DuckDB connection."""
        if self._con is None:
            import duckdb

            self._con = duckdb.connect(":memory:")
            # the CLI prints its own summary; DuckDB's progress bar would interleave with it
            self._con.execute("SET enable_progress_bar = false")
        con: duckdb.DuckDBPyConnection = self._con
        return con

    @property
    def where(self) -> str:
        """Location named in error messages: the logs path."""
        return str(self.data_path)

    def _glob(self) -> str:
        p = self.data_path
        if p.is_dir():
            return str(p / "**" / "*.parquet")
        return str(p)

    def files(self, period: Period | None = None) -> list[Path]:
        """Parquet files of the source (only the period's partitions when known)."""
        p = self.data_path
        if p.is_file():
            return [p]
        if p.is_dir():
            found = sorted(p.rglob("*.parquet"))
        else:
            found = sorted(Path(x) for x in __import__("glob").glob(str(p), recursive=True))
        col = self.card.source.partition_date_column
        if period is not None and col and self.card.source.hive_partitioning:
            keep = []
            for f in found:
                m = re.search(rf"{re.escape(col)}=(\d{{4}}-\d{{2}}-\d{{2}})", str(f))
                if m is None or period.start <= dt.date.fromisoformat(m.group(1)) <= period.end:
                    keep.append(f)
            found = keep
        return found

    def source_sql(self) -> str:
        """``read_parquet(...)`` over the source."""
        hive = "true" if self.card.source.hive_partitioning else "false"
        return (
            f"read_parquet({sql_str(self._glob())}, hive_partitioning={hive}, union_by_name=true)"
        )

    def _schema(self) -> dict[str, str]:
        try:
            rows = self.con.execute(f"DESCRIBE SELECT * FROM {self.source_sql()}").fetchall()
        except Exception as exc:  # duckdb raises IOException / InvalidInputException
            raise LogsError(
                f"cannot read the logs as Parquet: {str(exc).splitlines()[0]}",
                where=self.where,
                field="source.path",
                expected="readable Parquet files",
                actual=type(exc).__name__,
            ) from None
        return {str(r[0]): str(r[1]) for r in rows}

    def check_schema(self) -> dict[str, str]:
        """Every mapped column exists with an allowed type; returns the schema."""
        schema = self._schema()
        mapping = self.card.columns.model_dump()
        for canon, col in mapping.items():
            if col is None:
                continue
            if col not in schema:
                raise LogsError(
                    f"column {col!r} not found",
                    where=self.where,
                    field=f"columns.{canon}",
                    expected=f"a column named {col!r}",
                    actual=f"columns {sorted(schema)[:12]}",
                    fix=f"map columns.{canon} in {self.card_path.name} onto an existing column",
                )
            typ = schema[col]
            base = typ.split("(")[0]
            if base not in _ALLOWED_TYPES[canon]:
                raise LogsError(
                    f"column {col!r} has the wrong type",
                    where=self.where,
                    field=f"columns.{canon}",
                    expected=" or ".join(_ALLOWED_TYPES[canon]),
                    actual=typ,
                    fix="cast the column when writing the logs",
                )
        extra = [*self.card.slices, *self.card.content.fields.values()]
        if self.card.content.reference:
            extra.append(self.card.content.reference)
        if self.card.source.partition_date_column:
            extra.append(self.card.source.partition_date_column)
        for col in extra:
            if col not in schema:
                raise LogsError(
                    f"column {col!r} not found",
                    where=self.where,
                    field="slices/content/partition_date_column",
                    expected=f"a column named {col!r}",
                    actual=f"columns {sorted(schema)[:12]}",
                    fix="drop it from the card or add it to the logs",
                )
        return schema

    def _filters(
        self,
        period: Period | None,
        pathway: str | None,
        policy_version: str | None,
        raw: bool,
    ) -> str:
        c = self.card.columns
        q = sql_ident
        conds: list[str] = []
        if period is not None:
            end = period.end + dt.timedelta(days=1)
            ts = q(c.ts) if raw else "ts"
            conds.append(
                f"{ts} >= TIMESTAMP {sql_str(period.start.isoformat())} "
                f"AND {ts} < TIMESTAMP {sql_str(end.isoformat())}"
            )
            pcol = self.card.source.partition_date_column
            if pcol and raw:
                # prunes hive partitions before the files are opened
                conds.append(
                    f"CAST({q(pcol)} AS DATE) BETWEEN DATE {sql_str(period.start.isoformat())} "
                    f"AND DATE {sql_str(period.end.isoformat())}"
                )
        if pathway is not None:
            conds.append(f"{q(c.pathway) if raw else 'pathway'} = {sql_str(pathway)}")
        if policy_version is not None:
            col = f"CAST({q(c.policy_version)} AS VARCHAR)" if raw else "policy_version"
            conds.append(f"{col} = {sql_str(policy_version)}")
        return (" WHERE " + " AND ".join(conds)) if conds else ""

    def relation_sql(
        self,
        period: Period | None = None,
        pathway: str | None = None,
        policy_version: str | None = None,
        *,
        dedupe: bool = True,
        native_ids: bool = False,
    ) -> str:
        """A SELECT over the logs in canonical column names, filters pushed down.

        ``native_ids`` keeps the id column's own type (integer ids hash and group
        much faster than their text form); the default casts ids to VARCHAR.
        """
        c = self.card.columns
        q = sql_ident
        cols = [
            (
                f"{q(c.item_id)} AS item_id"
                if native_ids
                else f"CAST({q(c.item_id)} AS VARCHAR) AS item_id"
            ),
            f"CAST({q(c.ts)} AS TIMESTAMP) AS ts",
            f"{q(c.pathway)} AS pathway",
            f"{q(c.category)} AS category",
            f"CAST({q(c.score)} AS DOUBLE) AS score",
            f"{q(c.actioned)} AS actioned",
            (f"{q(c.action)} AS action" if c.action else "CAST(NULL AS VARCHAR) AS action"),
            (
                f"CAST({q(c.views)} AS BIGINT) AS views"
                if c.views
                else "CAST(NULL AS BIGINT) AS views"
            ),
            f"CAST({q(c.policy_version)} AS VARCHAR) AS policy_version",
        ]
        cols += [f"CAST({q(s)} AS VARCHAR) AS {q('slice.' + s)}" for s in self.card.slices]
        cols += [f"{q(col)} AS {q('content.' + k)}" for k, col in self.card.content.fields.items()]
        if self.card.content.reference:
            cols.append(f"{q(self.card.content.reference)} AS content_ref")
        sql = (
            f"SELECT {', '.join(cols)} FROM {self.source_sql()}"
            f"{self._filters(period, pathway, policy_version, raw=True)}"
        )
        if dedupe and self.card.duplicates == "latest":
            sql += (
                " QUALIFY row_number() OVER (PARTITION BY item_id, category, pathway "
                "ORDER BY ts DESC) = 1"
            )
        return sql

    def check(
        self,
        period: Period | None = None,
        pathway: str | None = None,
        policy_version: str | None = None,
        *,
        pathways: tuple[str, ...] = (),
        group_sql: str | None = None,
    ) -> LogsReport:
        """Validate the rows of a period; raise :class:`LogsError` on bad logs.

        ``pathways`` restricts to several pathways; ``group_sql`` (an expression over
        canonical columns) makes the same single scan also return per-group row
        counts and view totals in :attr:`LogsReport.groups` (the sampler's N_h).

        Rejected: no rows, NULL keys, NaN or out-of-range scores, negative views,
        duplicate (item, category, pathway) rows (unless the card says
        ``duplicates: latest``, then counted), several policy versions in the period
        (pick one with ``policy_version``). ``views = 0`` is valid and counted.
        """
        self.check_schema()
        rel = self.relation_sql(period, pathway, policy_version, dedupe=False, native_ids=True)
        if pathways:
            rel = f"SELECT * FROM ({rel}) WHERE pathway IN ({', '.join(sql_str(p) for p in pathways)})"
        c = self.card.columns
        row, groups = self._scan(rel, group_sql)
        n, zero_v = row[0], row[10]
        where = self.where
        scope = " ".join(
            x
            for x in (
                f"period {period.label}" if period else "",
                f"pathway {pathway!r}" if pathway else "",
                f"policy_version {policy_version!r}" if policy_version else "",
            )
            if x
        )
        if n == 0:
            raise LogsError(
                f"no decisions in the logs for {scope or 'the source'}",
                where=where,
                field=f"{c.ts} (columns.ts)" if period else "source.path",
                expected="at least one row",
                actual="0 rows",
                fix="check --period/--pathway against the logs",
            )

        _refuse_bad_values(c, n, row, where)
        versions = self._distinct(rel, "policy_version")
        if len(versions) > 1:
            raise LogsError(
                f"{len(versions)} policy versions in one period ({scope or 'whole source'})",
                where=where,
                field=f"{c.policy_version} (columns.policy_version)",
                expected="one policy version per audited period",
                actual=", ".join(versions[:5]),
                fix="audit each version separately: --policy-version VERSION",
            )
        n_extra = self._duplicate_keys(period, pathway, policy_version, pathways, n)
        pw = self._distinct(rel, "pathway")
        cats = self._distinct(rel, "category")
        return LogsReport(
            n_rows=int(n) - n_extra,
            pathways=tuple(pw),
            categories=tuple(cats),
            policy_version=versions[0],
            n_duplicates_dropped=n_extra,
            has_views=c.views is not None,
            n_views_zero=int(zero_v),
            groups=groups,
        )

    def _scan(
        self, rel: str, group_sql: str | None
    ) -> tuple[tuple[Any, ...], dict[Any, tuple[int, float]]]:
        """The one validation scan: the counts :func:`_refuse_bad_values` reads, combined
        over groups, and per group (with ``group_sql``) rows and the views total."""
        gsel = f"{group_sql} AS g, " if group_sql else ""
        rows = self.con.execute(
            f"""SELECT {gsel}count(*),
                count(*) FILTER (WHERE item_id IS NULL),
                count(*) FILTER (WHERE category IS NULL OR pathway IS NULL),
                count(*) FILTER (WHERE actioned IS NULL),
                count(*) FILTER (WHERE score IS NULL),
                count(*) FILTER (WHERE isnan(score)),
                count(*) FILTER (WHERE NOT isnan(score) AND (score < 0 OR score > 1)),
                min(score) FILTER (WHERE NOT isnan(score)),
                max(score) FILTER (WHERE NOT isnan(score)),
                count(*) FILTER (WHERE views < 0),
                count(*) FILTER (WHERE views = 0),
                count(*) FILTER (WHERE views IS NULL),
                count(*) FILTER (WHERE ts IS NULL),
                sum(views)
            FROM ({rel}){" GROUP BY 1" if group_sql else ""}"""
        ).fetchall()
        groups: dict[Any, tuple[int, float]] = {}
        if group_sql:
            for r in rows:
                groups[r[0]] = (int(r[1]), float(r[-1]) if r[-1] is not None else math.nan)
            rows = [tuple(r[1:]) for r in rows]
        row = _combine(rows)
        return row, groups

    def _distinct(self, rel: str, column: str) -> list[str]:
        """The distinct values of one canonical column of ``rel``, sorted."""
        return [
            str(r[0])
            for r in self.con.execute(
                f"SELECT DISTINCT {column} FROM ({rel}) ORDER BY 1"
            ).fetchall()
        ]

    def _duplicate_keys(
        self,
        period: Period | None,
        pathway: str | None,
        policy_version: str | None,
        pathways: tuple[str, ...],
        n: int,
    ) -> int:
        """The extra rows duplicate (item, category, pathway) keys add; LogsError when the
        card does not allow duplicates."""
        # one 64-bit hash per key: all hashes distinct proves all keys distinct; only
        # when some collide (a duplicate, or a ~1e-6 chance collision) run the exact query
        native = self.relation_sql(period, pathway, policy_version, dedupe=False, native_ids=True)
        if pathways:
            native = f"SELECT * FROM ({native}) WHERE pathway IN ({', '.join(sql_str(p) for p in pathways)})"
        distinct = self.con.execute(
            f"SELECT count(DISTINCT hash(item_id, category, pathway)) FROM ({native})"
        ).fetchone()
        n_dup_keys = n_extra = 0
        if distinct is None or int(distinct[0]) != int(n):
            dup = self.con.execute(
                f"SELECT count(*), coalesce(sum(k - 1), 0) FROM (SELECT count(*) AS k FROM ({native}) "
                "GROUP BY item_id, category, pathway HAVING count(*) > 1)"
            ).fetchone()
            assert dup is not None
            n_dup_keys, n_extra = int(dup[0]), int(dup[1])
        if n_dup_keys and self.card.duplicates == "error":
            raise LogsError(
                f"{n_dup_keys:,} duplicate (item, category, pathway) keys ({n_extra:,} extra rows)",
                where=self.where,
                field=f"{self.card.columns.item_id}+{self.card.columns.category}+{self.card.columns.pathway} (columns.item_id)",
                expected="one decision per item, category and pathway",
                actual=f"{n_extra:,} extra rows",
                fix="deduplicate upstream, or set `duplicates: latest` in the card",
            )
        return n_extra

    def count_items(
        self,
        period: Period | None = None,
        pathway: str | None = None,
        policy_version: str | None = None,
    ) -> int:
        """Distinct item ids in a period (a separate, slower query)."""
        rel = self.relation_sql(period, pathway, policy_version, native_ids=True)
        row = self.con.execute(f"SELECT count(DISTINCT item_id) FROM ({rel})").fetchone()
        return int(row[0]) if row else 0

    def digest(self, period: Period | None = None) -> str:
        """sha256 over the card and the bytes of every file the period reads."""
        h = hashlib.sha256()
        h.update(json.dumps(self.card.model_dump(mode="json"), sort_keys=True).encode())
        for f in self.files(period):
            h.update(
                str(f.relative_to(self.data_path) if self.data_path.is_dir() else f.name).encode()
            )
            with f.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        return h.hexdigest()

    def category_arrays(
        self,
        period: Period,
        pathway: str,
        policy_version: str | None = None,
    ) -> dict[str, CategoryArrays]:
        """Per category, the period's score and decision arrays (for drift)."""
        self.check(period, pathway, policy_version)
        rel = self.relation_sql(period, pathway, policy_version)
        tbl = self.con.execute(
            f"SELECT category, score, actioned FROM ({rel}) ORDER BY category, item_id"
        ).fetchnumpy()
        cats = np.asarray(tbl["category"]).astype(str)
        out: dict[str, CategoryArrays] = {}
        for cat in np.unique(cats):
            m = cats == cat
            out[str(cat)] = CategoryArrays(
                scores=np.asarray(tbl["score"], dtype=np.float64)[m],
                actioned=np.asarray(tbl["actioned"], dtype=bool)[m],
            )
        return out


def _refuse_bad_values(c: Any, n: int, row: tuple[Any, ...], where: str) -> None:
    """LogsError for the first kind of bad value the validation scan counted (NULL keys,
    timestamps, decisions or scores, NaN or out-of-range scores, bad view counts)."""
    (_, null_id, null_key, null_act, null_score, nan, oor, smin, smax) = row[:9]
    (neg_v, _, null_v, null_ts) = row[9:13]

    def bad(canon: str, col: str | None, msg: str, count: int, exp: str, got: str) -> None:
        raise LogsError(
            f"{msg} in {count:,} of {n:,} rows",
            where=where,
            field=f"{col} (columns.{canon})",
            expected=exp,
            actual=got,
            fix="fix or filter these rows upstream; nothing is coerced",
        )

    if null_id:
        bad("item_id", c.item_id, "NULL item id", null_id, "non-null ids", "NULL")
    if null_key:
        bad("category", c.category, "NULL category or pathway", null_key, "non-null", "NULL")
    if null_ts:
        bad("ts", c.ts, "NULL timestamp", null_ts, "non-null", "NULL")
    if null_act:
        bad("actioned", c.actioned, "NULL decision", null_act, "true/false", "NULL")
    if null_score:
        bad("score", c.score, "NULL score", null_score, "a number in [0, 1]", "NULL")
    if nan:
        bad("score", c.score, "NaN score", nan, "a number in [0, 1]", "NaN")
    if oor:
        bad("score", c.score, "score outside [0, 1]", oor, "[0, 1]", f"range [{smin}, {smax}]")
    if neg_v:
        bad("views", c.views, "negative view count", neg_v, "views >= 0", "< 0")
    if c.views and null_v:
        bad("views", c.views, "NULL view count", null_v, "views >= 0", "NULL")
