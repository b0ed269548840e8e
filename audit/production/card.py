"""The logs card: a YAML file mapping a Parquet decision log onto the canonical schema.

A logs card is to production decision logs what a suite card is to a golden set: it
names where the Parquet files are and which column holds each canonical field, so
the rest of :mod:`audit.production` speaks only canonical names::

    card_version: 1
    name: demo_day
    policy: platform-v1
    source:
      path: logs                      # a file, a folder (every *.parquet below) or a glob
      hive_partitioning: true         # folder layout date=YYYY-MM-DD/...
      partition_date_column: date     # lets a period filter prune whole partitions
    columns:
      item_id: id
      ts: ts
      pathway: pathway
      category: category
      score: score
      actioned: actioned              # BOOLEAN
      action: action                  # VARCHAR (remove, age_gate, ...)
      views: views                    # optional: null when the logs have no views
      policy_version: policy_version
    slices: [surface, language]
    content:
      fields: {caption: caption}      # canonical text field -> column
      reference: null                 # or a column holding a content URI
    duplicates: error                 # or "latest": keep the latest row, counted

Canonical schema (one row per item x category x pathway decision):
``item_id`` VARCHAR, ``ts`` TIMESTAMP, ``pathway`` VARCHAR, ``category`` VARCHAR,
``score`` DOUBLE in [0, 1], ``actioned`` BOOLEAN, ``action`` VARCHAR,
``views`` BIGINT >= 0 (optional), ``policy_version`` VARCHAR, slice columns VARCHAR.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from audit.production.errors import LogsError

CARD_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LogsSource(_Frozen):
    """Where the Parquet files are.

    Attributes:
        path: a file, a folder (all ``*.parquet`` below it) or a glob; relative to the card.
        hive_partitioning: read ``key=value`` folder names as columns.
        partition_date_column: the hive column holding the date (``YYYY-MM-DD``); a
            period filter on it prunes partitions before any file is opened.
    """

    path: str
    hive_partitioning: bool = False
    partition_date_column: str | None = None


class LogsColumns(_Frozen):
    """Log column holding each canonical field (``views`` and ``action`` optional)."""

    item_id: str = "item_id"
    ts: str = "ts"
    pathway: str = "pathway"
    category: str = "category"
    score: str = "score"
    actioned: str = "actioned"
    action: str | None = "action"
    views: str | None = "views"
    policy_version: str = "policy_version"


class LogsContent(_Frozen):
    """Content carried by the logs, for the labelling batch.

    Attributes:
        fields: canonical text field (``caption``, ``comment``...) → log column.
        reference: column holding a content URI, when the text is not in the logs.
    """

    fields: dict[str, str] = Field(default_factory=dict)
    reference: str | None = None


class LogsCard(_Frozen):
    """A validated logs card (see the module docstring)."""

    card_version: Literal[1] = 1
    name: str
    policy: str = "platform-v1"
    description: str = ""
    source: LogsSource
    columns: LogsColumns = Field(default_factory=LogsColumns)
    slices: tuple[str, ...] = ()
    content: LogsContent = Field(default_factory=LogsContent)
    duplicates: Literal["error", "latest"] = "error"


def _first_error(exc: ValidationError) -> tuple[str, str, str]:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return loc, str(err["msg"]), repr(err.get("input"))[:80]


def load_logs_card(path: str | Path) -> tuple[LogsCard, Path]:
    """Read and validate a logs card; returns the card and its resolved path."""
    p = Path(path)
    if not p.is_file():
        raise LogsError(
            "logs card not found",
            where=str(p),
            expected="a YAML logs card",
            actual="no such file",
            fix="check the path (audit production demo-day writes one)",
        )
    try:
        raw: Any = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LogsError(f"invalid YAML: {exc}", where=str(p)) from exc
    if not isinstance(raw, dict):
        raise LogsError(
            "logs card must be a mapping",
            where=str(p),
            expected="a YAML mapping",
            actual=type(raw).__name__,
        )
    try:
        card = LogsCard.model_validate(raw)
    except ValidationError as exc:
        loc, msg, got = _first_error(exc)
        raise LogsError(
            msg, where=str(p), field=loc, actual=got, fix="see audit/production/card.py"
        ) from exc
    cols = card.columns.model_dump()
    taken = {v for v in cols.values() if v is not None}
    for s in card.slices:
        if s in taken:
            raise LogsError(
                "slice column is also a canonical column",
                where=str(p),
                field="slices",
                expected="slice columns distinct from columns.*",
                actual=repr(s),
            )
    return card, p.resolve()
