"""The adjudication round trip (docs/methods/labels.md §4).

Export: a queue of item ids (a suspects or review-queue file, or every item) becomes

* **Label Studio**: ``tasks.json`` (a JSON task list its import accepts; the model's
  decisions as ``predictions`` pre-annotations) and ``label_config.xml`` (one ``Text``
  per text field the suite uses, one single-choice ``Choices`` per covered policy
  category, a free-text reason); data keys never contain dots;
* **Argilla**: ``argilla_settings.json`` (fields, one label question per category,
  metadata) and ``argilla_records.json`` (records with the decisions as suggestions).

A restricted item (policy ``restricted: true`` in gold or decision) leaves as its id,
content hash and a ``restricted`` flag: its text-field keys are present but empty, so
every ``$field`` of the config resolves (Label Studio requires that) without text.

Import reads annotations back (Label Studio JSON export, Argilla records, or a CSV),
checks them and writes a NEW suite version: card, data file, a datasheet entry and a
``changes.csv``; the old version is never touched.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

import numpy as np

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


# --------------------------------------------------------------------------- export


def _decision(v: Any) -> str | None:
    """A 1/0/True/False decision as a choice; None, NaN and pandas NA as no decision."""
    import pandas as pd

    if v is None or bool(pd.isna(v)):
        return None
    return VIOLATES if bool(v) else OK


def _ref(iid: str, h: str, restricted: bool) -> str:
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


def _text_fields(suite: LoadedSuite) -> list[str]:
    return [f for f in TEXT_FIELDS if f in suite.card.fields]


def label_studio_config(suite: LoadedSuite, policy: Policy) -> str:
    """The labelling config XML: reference line, text fields, one Choices per category."""
    lines = ["<View>", f'  <Text name="{REF}" value="${REF}"/>']
    for f in _text_fields(suite):
        lines.append(f'  <Header value={quoteattr(TEXT_FIELDS[f])} size="5"/>')
        lines.append(f'  <Text name="{f}" value="${f}"/>')
    for c in suite.covers:
        cat = policy.category(c)
        lines.append(f'  <Header value={quoteattr(f"{cat.name} ({c})")} size="4"/>')
        lines.append(
            f'  <Choices name="{c}" toName="{REF}" choice="single" required="true" '
            'showInline="true">'
        )
        lines += [f'    <Choice value="{v}"/>' for v in CHOICES]
        lines.append("  </Choices>")
    lines.append(
        f'  <TextArea name="{REASON}" toName="{REF}" placeholder="reason code / note"'
        ' maxSubmissions="1"/>'
    )
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def label_studio_tasks(
    queue: list[QueueItem], suite: LoadedSuite, moderator: str | None
) -> list[dict[str, Any]]:
    """Label Studio tasks; data keys are plain identifiers (no dots)."""
    tasks = []
    fields = _text_fields(suite)
    for k, q in enumerate(queue, start=1):
        data: dict[str, Any] = {
            REF: _ref(q.item_id, q.content_hash, q.restricted),
            "item_id": q.item_id,
            "content_hash": q.content_hash,
            "restricted": q.restricted,
            "suite": suite.name,
            "suite_version": suite.card.version,
        }
        for f in fields:
            data[f] = q.fields.get(f, "")
        if not q.restricted:
            for c, g in q.gold.items():
                data[f"gold_{c}"] = {POSITIVE: VIOLATES, NEGATIVE: OK}.get(g, "unknown")
        task: dict[str, Any] = {"id": k, "data": data}
        result = []
        scores = []
        for c, (dec, sc) in q.decisions.items():
            if dec is None:
                continue
            result.append(
                {
                    "id": f"{k}_{c}",
                    "from_name": c,
                    "to_name": REF,
                    "type": "choices",
                    "value": {"choices": [dec]},
                }
            )
            if sc is not None:
                scores.append(sc if dec == VIOLATES else 1 - sc)
        if result and moderator:
            pred: dict[str, Any] = {"model_version": moderator, "result": result}
            if scores:  # Label Studio wants a score in [0, 1] or none at all
                pred["score"] = float(np.mean(scores))
            task["predictions"] = [pred]
        tasks.append(task)
    return tasks


def argilla_settings(suite: LoadedSuite, policy: Policy) -> dict[str, Any]:
    """Dataset settings in the shape of ``argilla.Settings.serialize()``."""

    def field(name: str, title: str, required: bool) -> dict[str, Any]:
        return {
            "name": name,
            "title": title,
            "required": required,
            "settings": {"type": "text", "use_markdown": False},
            "type": "text",
        }

    fields = [field(REF, "Item", True)]
    fields += [field(f, TEXT_FIELDS[f], False) for f in _text_fields(suite)]
    questions = []
    for c in suite.covers:
        cat = policy.category(c)
        questions.append(
            {
                "name": c,
                "title": f"{cat.name} ({c})",
                "description": cat.definition,
                "required": True,
                "settings": {
                    "type": "label_selection",
                    "options": [{"text": v.replace("_", " "), "value": v} for v in CHOICES],
                },
                "type": "label_selection",
            }
        )
    questions.append(
        {
            "name": REASON,
            "title": "Reason code / note",
            "required": False,
            "settings": {"type": "text", "use_markdown": False},
            "type": "text",
        }
    )
    meta = [
        {
            "name": n,
            "title": n,
            "settings": {"type": "terms", "values": None},
            "visible_for_annotators": True,
        }
        for n in ("item_id", "content_hash", "restricted", "suite")
    ]
    return {
        "guidelines": f"Adjudicate {suite.name} {suite.card.version} against {policy.ref}.",
        "fields": fields,
        "questions": questions,
        "metadata": meta,
        "allow_extra_metadata": False,
    }


def argilla_records(
    queue: list[QueueItem], suite: LoadedSuite, moderator: str | None
) -> list[dict[str, Any]]:
    """Records in the shape of ``argilla.Record.to_dict()`` (suggestions = decisions)."""
    out = []
    for q in queue:
        fields = {REF: _ref(q.item_id, q.content_hash, q.restricted)}
        fields.update({f: v for f, v in q.fields.items() if f in _text_fields(suite)})
        sugg = {}
        for c, (dec, sc) in q.decisions.items():
            if dec is not None and moderator:
                s = None if sc is None else (sc if dec == VIOLATES else 1 - sc)
                sugg[c] = {"value": dec, "score": s, "agent": moderator}
        out.append(
            {
                "id": q.item_id,
                "fields": fields,
                "metadata": {
                    "item_id": q.item_id,
                    "content_hash": q.content_hash,
                    "restricted": str(q.restricted).lower(),
                    "suite": suite.name,
                },
                "suggestions": sugg,
                "responses": {},
            }
        )
    return out


def export_all(
    queue: list[QueueItem],
    suite: LoadedSuite,
    policy: Policy,
    out_dir: Path,
    moderator: str | None,
) -> dict[str, Path]:
    """Write the Label Studio and Argilla files; returns their paths."""
    from audit.labels.io import write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "label_studio_tasks": out_dir / "tasks.json",
        "label_studio_config": out_dir / "label_config.xml",
        "argilla_settings": out_dir / "argilla_settings.json",
        "argilla_records": out_dir / "argilla_records.json",
    }
    write_json(paths["label_studio_tasks"], label_studio_tasks(queue, suite, moderator))
    paths["label_studio_config"].write_text(label_studio_config(suite, policy), encoding="utf-8")
    write_json(paths["argilla_settings"], argilla_settings(suite, policy))
    write_json(paths["argilla_records"], argilla_records(queue, suite, moderator))
    return paths


# --------------------------------------------------------------------------- import


@dataclass(frozen=True)
class Answer:
    """One reviewer's label for one (item, category), with where it came from."""

    item_id: str
    category: str
    label: str
    annotator: str
    reason: str
    where: str


def _load_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(
            f"cannot read annotation file: {exc}",
            where=str(path),
            field="ANNOTATIONS",
            expected="a readable UTF-8 file",
            actual="unreadable",
        ) from None
    if not text.strip():
        raise AnnotationError(
            "annotation file is empty",
            where=str(path),
            field="ANNOTATIONS",
            expected="a Label Studio JSON export, Argilla records or a CSV",
            actual="0 bytes",
            fix="export the annotations again",
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationError(
            f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}",
            where=str(path),
            field="ANNOTATIONS",
            expected="valid JSON",
            actual="malformed",
            fix="export the annotations again (Label Studio: Export → JSON)",
        ) from None


def read_annotations(path: Path, fmt: str = "auto") -> list[Answer]:
    """Answers from a Label Studio JSON export, Argilla records JSON, or a CSV with
    ``item_id, category, label[, annotator, reason]`` columns.

    Raises:
        AnnotationError: empty or malformed file, unknown layout, a row without id.
    """
    if not path.is_file():
        raise AnnotationError(
            "annotation file not found",
            where=str(path),
            field="ANNOTATIONS",
            expected="an existing file",
            actual="missing",
        )
    if fmt == "auto":
        fmt = "csv" if path.suffix.lower() == ".csv" else "json"
    if fmt == "csv":
        return _read_csv(path)
    obj = _load_json(path)
    if isinstance(obj, dict) and isinstance(obj.get("records"), list):
        obj = obj["records"]
    if not isinstance(obj, list) or not obj:
        raise AnnotationError(
            "no task or record in the annotation file",
            where=str(path),
            field="ANNOTATIONS",
            expected="a non-empty JSON list",
            actual=type(obj).__name__ if obj else "empty list",
        )
    first = obj[0]
    if isinstance(first, dict) and "data" in first:
        return _read_label_studio(path, obj)
    if isinstance(first, dict) and "responses" in first:
        return _read_argilla(path, obj)
    raise AnnotationError(
        "unknown annotation layout",
        where=str(path),
        field="[0]",
        expected="Label Studio tasks ('data', 'annotations') or Argilla records "
        "('id', 'responses')",
        actual=f"keys {sorted(first)[:8] if isinstance(first, dict) else type(first).__name__}",
    )


def _read_label_studio(path: Path, tasks: list[Any]) -> list[Answer]:
    out = []
    for t, task in enumerate(tasks):
        where = f"[{t}]"
        if not isinstance(task, dict) or not isinstance(task.get("data"), dict):
            raise AnnotationError(
                "task without a 'data' object",
                where=str(path),
                field=where,
                expected="{'data': {...}, 'annotations': [...]}",
                actual=str(task)[:60],
            )
        iid = task["data"].get("item_id")
        if not isinstance(iid, str) or not iid:
            raise AnnotationError(
                "task without data.item_id",
                where=str(path),
                field=f"{where}.data.item_id",
                expected="the item id written at export",
                actual=repr(iid),
            )
        for a, ann in enumerate(task.get("annotations") or []):
            if not isinstance(ann, dict) or ann.get("was_cancelled"):
                continue
            who = str(ann.get("completed_by", f"annotation{a}"))
            result = ann.get("result")
            if not isinstance(result, list):
                raise AnnotationError(
                    "annotation without a result list",
                    where=str(path),
                    field=f"{where}.annotations[{a}].result",
                    expected="a list",
                    actual=type(result).__name__,
                )
            reason = ""
            chosen: list[tuple[str, Any, str]] = []
            for r, reg in enumerate(result):
                fld = f"{where}.annotations[{a}].result[{r}]"
                if not isinstance(reg, dict):
                    continue
                val = reg.get("value") or {}
                if reg.get("from_name") == REASON:
                    reason = " ".join(val.get("text") or [])
                    continue
                if reg.get("type") != "choices":
                    continue
                ch = val.get("choices")
                if not isinstance(ch, list) or len(ch) != 1:
                    raise AnnotationError(
                        f"item {iid!r}: expected one choice",
                        where=str(path),
                        field=f"{fld}.value.choices",
                        expected="a list with one choice",
                        actual=repr(ch),
                    )
                chosen.append((str(reg.get("from_name")), ch[0], fld))
            for cat, lab, fld in chosen:
                out.append(Answer(iid, cat, str(lab), who, reason, fld))
    return out


def _read_argilla(path: Path, records: list[Any]) -> list[Answer]:
    out = []
    for r, rec in enumerate(records):
        where = f"[{r}]"
        if not isinstance(rec, dict):
            raise AnnotationError(
                "record is not an object",
                where=str(path),
                field=where,
                expected="an object",
                actual=type(rec).__name__,
            )
        iid = rec.get("id") or (rec.get("metadata") or {}).get("item_id")
        if not isinstance(iid, str) or not iid:
            raise AnnotationError(
                "record without id",
                where=str(path),
                field=f"{where}.id",
                expected="the item id written at export",
                actual=repr(iid),
            )
        responses = rec.get("responses") or {}
        if not isinstance(responses, dict):
            raise AnnotationError(
                "responses must be an object",
                where=str(path),
                field=f"{where}.responses",
                expected="{question: [{value, user_id}]}",
                actual=type(responses).__name__,
            )
        reasons = {
            str(x.get("user_id")): str(x.get("value"))
            for x in responses.get(REASON) or []
            if isinstance(x, dict)
        }
        for q, resp in responses.items():
            if q == REASON:
                continue
            for k, x in enumerate(resp if isinstance(resp, list) else []):
                if not isinstance(x, dict) or x.get("status", "submitted") != "submitted":
                    continue
                who = str(x.get("user_id", f"user{k}"))
                out.append(
                    Answer(
                        iid,
                        q,
                        str(x.get("value")),
                        who,
                        reasons.get(who, ""),
                        f"{where}.responses.{q}[{k}]",
                    )
                )
    return out


def _read_csv(path: Path) -> list[Answer]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(
            f"cannot read CSV: {exc}",
            where=str(path),
            field="ANNOTATIONS",
            expected="a readable UTF-8 CSV",
            actual="unreadable",
        ) from None
    if not text.strip():
        raise AnnotationError(
            "annotation file is empty",
            where=str(path),
            field="ANNOTATIONS",
            expected="a header 'item_id,category,label[,annotator,reason]' and rows",
            actual="0 bytes",
        )
    rows = list(csv.DictReader(text.splitlines()))
    need = {"item_id", "category", "label"}
    have = set(rows[0]) if rows else set(text.splitlines()[0].split(","))
    if not need <= have:
        raise AnnotationError(
            "CSV header lacks required columns",
            where=str(path),
            field="header",
            expected=", ".join(sorted(need)),
            actual=", ".join(sorted(str(h) for h in have)[:10]),
        )
    out = []
    for i, r in enumerate(rows, start=2):
        if not r.get("item_id"):
            raise AnnotationError(
                f"row without item_id (line {i})",
                where=str(path),
                field=f"line {i}.item_id",
                expected="an item id",
                actual=repr(r.get("item_id")),
            )
        out.append(
            Answer(
                r["item_id"],
                r.get("category") or "",
                r.get("label") or "",
                r.get("annotator") or "csv",
                r.get("reason") or "",
                f"line {i}",
            )
        )
    return out


def check_answers(
    answers: list[Answer], suite: LoadedSuite, path: Path, *, conflicts: str = "error"
) -> dict[tuple[str, str], Answer]:
    """One checked answer per (item, category).

    Raises:
        AnnotationError: unknown id, unknown category or label, two reviewers giving
            different labels (``conflicts="error"``), an answered item missing a
            covered category, or no answer at all.
    """
    if not answers:
        raise AnnotationError(
            "no completed annotation in the file",
            where=str(path),
            field="annotations",
            expected="at least one submitted answer",
            actual="none",
            fix="submit the tasks in the labelling tool before exporting",
        )
    ids = set(suite.dataset["id"])
    covers = set(suite.covers)
    by: dict[tuple[str, str], list[Answer]] = {}
    for a in answers:
        if a.item_id not in ids:
            raise AnnotationError(
                f"unknown item id {a.item_id!r}",
                where=str(path),
                field=a.where,
                expected=f"an id of {suite.name}:{suite.split}",
                actual=repr(a.item_id),
                fix="import against the suite version the tasks were exported from",
            )
        if a.category not in covers:
            raise AnnotationError(
                f"unknown category {a.category!r} (item {a.item_id!r})",
                where=str(path),
                field=a.where,
                expected=f"one of {sorted(covers)}",
                actual=repr(a.category),
            )
        if a.label not in CHOICE_LABEL:
            raise AnnotationError(
                f"unknown label {a.label!r} (item {a.item_id!r}, {a.category})",
                where=str(path),
                field=a.where,
                expected=f"one of {list(CHOICES)}",
                actual=repr(a.label),
            )
        by.setdefault((a.item_id, a.category), []).append(a)
    out: dict[tuple[str, str], Answer] = {}
    for key, group in by.items():
        labels = {a.label for a in group}
        if len(labels) > 1:
            if conflicts == "error":
                who = ", ".join(f"{a.annotator}={a.label}" for a in group)
                raise AnnotationError(
                    f"conflicting answers for item {key[0]!r}, {key[1]}: {who}",
                    where=str(path),
                    field=group[1].where,
                    expected="one label per item and category",
                    actual=f"{len(labels)} labels",
                    fix="adjudicate the conflict, or pass --conflicts unsure",
                )
            first = group[0]
            out[key] = Answer(
                first.item_id,
                first.category,
                UNSURE,
                "conflict",
                "conflicting answers: " + ", ".join(sorted(labels)),
                first.where,
            )
        else:
            out[key] = group[0]
    answered = {k[0] for k in out}
    for iid in sorted(answered):
        missing = sorted(c for c in covers if (iid, c) not in out)
        if missing:
            raise AnnotationError(
                f"item {iid!r} answered without categories {missing}",
                where=str(path),
                field=next(a.where for k, a in out.items() if k[0] == iid),
                expected=f"an answer for every covered category {sorted(covers)}",
                actual=f"missing {missing}",
                fix="complete the task, or mark it unsure",
            )
    return out


# --------------------------------------------------------------------------- new version

_VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


def write_new_version(
    suite: LoadedSuite,
    policy: Policy,
    answers: dict[tuple[str, str], Answer],
    annotations_path: Path,
    out_dir: Path,
    version: str,
) -> dict[str, Any]:
    """Write the adjudicated suite version under ``out_dir`` (never over an existing
    card) and return the change summary (also in the datasheet)."""
    import yaml

    from audit.labels.io import write_rows

    where = str(out_dir)
    if (out_dir / "suite.yaml").exists() or out_dir.resolve() == suite.card_path.parent.resolve():
        raise UsageError(
            "output folder already holds a suite card",
            where=where,
            field="--out",
            expected="a new folder (versions are never overwritten)",
            actual=str(out_dir / "suite.yaml"),
            fix="choose another --out",
        )
    name = out_dir.name
    if not re.match(r"^[a-z][a-z0-9_]*$", name):
        raise UsageError(
            "output folder name is not a valid suite name",
            where=where,
            field="--out",
            expected="a folder named like ^[a-z][a-z0-9_]*$ (it becomes the suite name)",
            actual=repr(name),
        )
    if not _VERSION.match(version) or version == suite.card.version:
        raise UsageError(
            "invalid new version",
            where=where,
            field="--version",
            expected=f"a new version string other than {suite.card.version!r}",
            actual=repr(version),
        )
    cats = list(suite.covers)
    d = suite.dataset.to_dict()
    fields = _text_fields(suite)
    slices = suite.slice_names
    rows = []
    changes = []
    counts: dict[str, Counter[str]] = {c: Counter() for c in cats}
    gold_name = {POSITIVE: "positive", NEGATIVE: "negative", UNKNOWN: "unknown"}
    for i, iid in enumerate(d["id"]):
        row: dict[str, Any] = {"id": iid}
        for f in fields:
            row[f] = d[f][i]
        for c in cats:
            prev = int(suite.labels[i, suite.categories.index(c)])
            a = answers.get((iid, c))
            new = prev if a is None else CHOICE_LABEL[a.label]
            row[f"gold_{c}"] = None if new == UNKNOWN else new
            if a is not None:
                counts[c]["reviewed"] += 1
                if new != prev:
                    counts[c][f"{gold_name[prev]}->{gold_name[new]}"] += 1
                    changes.append(
                        {
                            "item_id": iid,
                            "content_hash": d["content_hash"][i],
                            "category": c,
                            "old": gold_name[prev],
                            "new": gold_name[new],
                            "annotator": a.annotator,
                            "reason": a.reason,
                        }
                    )
        row["rationale"] = d["rationale"][i]
        for s in slices:
            row[s] = d[s][i]
        rows.append(row)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    data_file = data_dir / f"{suite.split}.jsonl"
    with open(data_file, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    old = suite.card
    card: dict[str, Any] = {
        "card_version": 1,
        "name": name,
        "version": version,
        "description": (
            f"{old.description.strip()} Adjudicated version of {old.name} {old.version} "
            f"({sum(c['reviewed'] for c in counts.values())} item-category answers, "
            f"{len(changes)} label changes); see README.md."
        ),
        "policy": old.policy,
        "license": old.license,
        "source": {
            "local": {
                "root": ".",
                "format": "jsonl",
                "splits": {suite.split: f"data/{data_file.name}"},
            }
        },
        "id": {"column": "id"},
        "fields": {f: f for f in fields},
        "labels": {
            "covers": cats,
            "rules": [
                {"category": c, "column": f"gold_{c}", "positive": [1], "negative": [0]}
                for c in cats
            ],
        },
        "rationale_column": "rationale",
        "default_split": suite.split,
    }
    if old.citation:
        card["citation"] = old.citation
    if slices:
        card["slices"] = {s: s for s in slices}
    (out_dir / "suite.yaml").write_text(
        "# written by `audit adjudicate import`; see README.md for what changed and why\n"
        + yaml.safe_dump(card, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    ann_sha = hashlib.sha256(annotations_path.read_bytes()).hexdigest()
    restricted = set(policy.restricted_ids)
    safe_changes = [
        (
            {k: ch[k] for k in ("item_id", "content_hash", "category", "old", "new")}
            if ch["category"] in restricted
            else ch
        )
        for ch in changes
    ]
    if safe_changes:
        write_rows(out_dir / "changes.jsonl", out_dir / "changes.csv", safe_changes)
    summary = {
        "from": {
            "name": old.name,
            "version": old.version,
            "split": suite.split,
            "digest": suite.digest,
            "card": str(suite.card_path),
        },
        "to": {"name": name, "version": version, "card": str(out_dir / "suite.yaml")},
        "annotations": {"path": str(annotations_path), "sha256": ann_sha},
        "items": len(rows),
        "per_category": {c: dict(v) for c, v in counts.items()},
        "changes": len(changes),
    }
    _datasheet(out_dir / "README.md", summary, old.name)
    (out_dir / "adjudication.json").write_text(
        json.dumps(summary, indent=2) + "\n", encoding="utf-8"
    )
    return summary


def _datasheet(path: Path, s: dict[str, Any], old_name: str) -> None:
    fr, to = s["from"], s["to"]
    lines = [
        f"# {to['name']}: adjudicated version of {old_name}",
        "",
        f"Suite card: [`suite.yaml`](suite.yaml) · version `{to['version']}`",
        "",
        "## Version history",
        "",
        f"### {to['version']} (from {fr['name']} {fr['version']}, split `{fr['split']}`)",
        "",
        f"- **What**: gold labels re-adjudicated from `{Path(s['annotations']['path']).name}` "
        f"(sha256 `{s['annotations']['sha256'][:16]}…`); parent digest `{fr['digest'][:16]}…`.",
        "- **Why**: items queued for re-adjudication (label-error suspects or model/gold "
        "disagreements); reviewers' answers replace the previous gold, `unsure` sets it "
        "to unknown. Labels were changed by people only, never by the model.",
        f"- **Items**: {s['items']} (text and content hashes unchanged, so `audit suite "
        "diff` matches items by id and hash).",
        f"- **Label changes**: {s['changes']} (listed in `changes.csv`; restricted "
        "categories by id and hash only).",
        "",
        "| category | reviewed | changes |",
        "| --- | ---: | --- |",
    ]
    for c, cnt in s["per_category"].items():
        moves = ", ".join(f"{k} {v}" for k, v in sorted(cnt.items()) if k != "reviewed")
        lines.append(f"| {c} | {cnt.get('reviewed', 0)} | {moves or 'none'} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
