"""Import of reviewed annotations (docs/methods/labels.md §4): Label Studio JSON exports,
Argilla records or a CSV read into answers, then checked against the suite and policy."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.labels.review_queue import CHOICE_LABEL, CHOICES, REASON, UNSURE, AnnotationError

if TYPE_CHECKING:
    from audit.suites.loader import LoadedSuite


@dataclass(frozen=True)
class Answer:
    """One reviewer's label for one (item, category), with where it came from."""

    item_id: str
    category: str
    label: str
    annotator: str
    reason: str
    where: str


def _read_text(path: Path, what: str, expected_content: str, fix: str | None) -> str:
    """The annotation file's UTF-8 text; unreadable or empty files are one-line errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationError(
            f"cannot read {what}: {exc}",
            where=str(path),
            field="ANNOTATIONS",
            expected=f"a readable UTF-8 {'CSV' if what == 'CSV' else 'file'}",
            actual="unreadable",
        ) from None
    if not text.strip():
        raise AnnotationError(
            "annotation file is empty",
            where=str(path),
            field="ANNOTATIONS",
            expected=expected_content,
            actual="0 bytes",
            fix=fix,
        )
    return text


def _load_json(path: Path) -> Any:
    text = _read_text(
        path,
        "annotation file",
        "a Label Studio JSON export, Argilla records or a CSV",
        "export the annotations again",
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
    text = _read_text(
        path, "CSV", "a header 'item_id,category,label[,annotator,reason]' and rows", None
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
        _check_answer(a, ids, covers, suite, path)
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


def _check_answer(
    a: Answer, ids: set[str], covers: set[str], suite: LoadedSuite, path: Path
) -> None:
    """Refuse an answer naming an unknown item, category or label."""
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
