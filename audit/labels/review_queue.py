"""The adjudication queue and the vocabulary shared by export and import (docs/methods/labels.md §4):
the three review choices, the reference and reason keys, which items go to review."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import SuiteError, UsageError
from audit.schema import NEGATIVE, POSITIVE, TEXT_FIELDS, UNKNOWN

if TYPE_CHECKING:
    import pandas as pd

    from audit.policy import Policy
    from audit.suites.loader import LoadedSuite


VIOLATES, OK, UNSURE = "violates", "does_not_violate", "unsure"
CHOICES = (VIOLATES, OK, UNSURE)
CHOICE_LABEL = {VIOLATES: POSITIVE, OK: NEGATIVE, UNSURE: UNKNOWN}
REF = "item_ref"
REASON = "reason"


class AnnotationError(UsageError):
    """An annotation file that cannot be imported (exit 2)."""


def _decision(v: Any) -> str | None:
    """A 1/0/True/False decision as a choice; None, NaN and pandas NA as no decision."""
    import pandas as pd

    if v is None or bool(pd.isna(v)):
        return None
    return VIOLATES if bool(v) else OK


def item_reference(iid: str, h: str, restricted: bool) -> str:
    tag = "restricted item, text withheld" if restricted else "item"
    return f"{tag} · {iid} · sha256 {h[:16]}"


@dataclass(frozen=True)
class QueueItem:
    """One item to adjudicate: fields, the gold it has now and the model's decisions."""

    item_id: str
    content_hash: str
    restricted: bool
    fields: dict[str, str]
    gold: dict[str, int]
    decisions: dict[str, tuple[str | None, float | None]]
    reasons: tuple[str, ...] = ()


def read_queue(path: Path) -> list[str]:
    """Item ids from a suspects JSONL/CSV (``item_id``) or a review-queue JSONL
    (``data.item_id``), first occurrence order, duplicates merged."""
    if not path.is_file():
        raise AnnotationError(
            "queue file not found",
            where=str(path),
            field="--queue",
            expected="a file",
            actual="missing",
        )
    ids: list[str] = []
    if path.suffix == ".csv":
        with open(path, encoding="utf-8", newline="") as fh:
            for lineno, row in enumerate(csv.DictReader(fh), 2):
                if not row.get("item_id"):
                    raise AnnotationError(
                        f"row without item_id (line {lineno})",
                        where=str(path),
                        field="item_id",
                        expected="an item id",
                        actual=repr(row.get("item_id")),
                    )
                ids.append(row["item_id"])
    else:
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise AnnotationError(
                    f"invalid JSON on line {lineno}: {exc.msg}",
                    where=str(path),
                    field=f"line {lineno}",
                    expected="one JSON object per line",
                    actual=line[:60],
                ) from None
            iid = obj.get("item_id") if isinstance(obj, dict) else None
            if iid is None and isinstance(obj, dict) and isinstance(obj.get("data"), dict):
                iid = obj["data"].get("item_id")
            if not isinstance(iid, str) or not iid:
                raise AnnotationError(
                    f"no item_id on line {lineno}",
                    where=str(path),
                    field="item_id",
                    expected="'item_id' or 'data.item_id'",
                    actual=line[:60],
                )
            ids.append(iid)
    if not ids:
        raise AnnotationError(
            "queue file holds no item",
            where=str(path),
            field="--queue",
            expected="at least one item id",
            actual="empty",
        )
    return list(dict.fromkeys(ids))


def build_queue(
    suite: LoadedSuite,
    policy: Policy,
    ids: list[str] | None = None,
    predictions: pd.DataFrame | None = None,
) -> list[QueueItem]:
    """Queue items for ``ids`` (all items when None), with decisions from a run's
    prediction table when given.

    Raises:
        SuiteError: an id is not in the suite.
    """
    cats = list(suite.covers)
    d = suite.dataset.to_dict()
    pos = {iid: i for i, iid in enumerate(d["id"])}
    want = list(d["id"]) if ids is None else ids
    missing = [i for i in want if i not in pos]
    if missing:
        raise SuiteError(
            f"{len(missing)} queued id(s) not in the suite (e.g. {missing[0]!r})",
            where=str(suite.card_path),
            field="id",
            expected=f"ids of {suite.name}:{suite.split}",
            actual=repr(missing[:3]),
            fix="export from the suite the queue was made on",
        )
    preds: dict[str, dict[str, Any]] = {}
    if predictions is not None:
        for rec in predictions.to_dict(orient="records"):
            preds[str(rec["id"])] = rec
    rcats = policy.restricted_ids
    out = []
    for iid in want:
        i = pos[iid]
        gold = {c: int(suite.labels[i, suite.categories.index(c)]) for c in cats}
        p = preds.get(iid, {})
        dec = {c: (_decision(p.get(f"pred.{c}")), _score(p.get(f"score.{c}"))) for c in cats}
        # restricted: gold or the model's decision in a restricted category, or the
        # run's own flag (which also covers errors on restricted items)
        restricted = (
            any(int(suite.labels[i, suite.categories.index(c)]) == POSITIVE for c in rcats)
            or any(_decision(p.get(f"pred.{c}")) == VIOLATES for c in rcats)
            or _decision(p.get("restricted")) == VIOLATES
        )
        fields = {f: d[f][i] for f in TEXT_FIELDS if f in d and d[f][i]}
        out.append(
            QueueItem(
                item_id=iid,
                content_hash=d["content_hash"][i],
                restricted=restricted,
                fields={} if restricted else fields,
                gold=gold,
                decisions=dec,
            )
        )
    return out


def unknown_gold_ids(suite: LoadedSuite) -> list[str]:
    """Items whose gold is unknown in a covered category although someone judged them
    (majority ties of a multi-annotator suite; any unknown gold otherwise)."""
    ids = suite.dataset["id"]
    out = []
    for i, iid in enumerate(ids):
        for c in suite.covers:
            k = suite.categories.index(c)
            if suite.labels[i, k] != UNKNOWN:
                continue
            ann = suite.annotations
            if ann is None or (ann.labels[i, :, k] != UNKNOWN).any():
                out.append(iid)
                break
    return out


def _score(v: Any) -> float | None:
    import pandas as pd

    if v is None or bool(pd.isna(v)):
        return None
    return float(min(max(float(v), 0.0), 1.0))
