"""Writing a NEW suite version from checked answers (docs/methods/labels.md §4): card, data
file, datasheet entry and ``changes.csv``; the old version is never touched."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import UsageError
from audit.labels.annotation_import import Answer
from audit.labels.review_export import text_fields_of
from audit.labels.review_queue import CHOICE_LABEL
from audit.schema import NEGATIVE, POSITIVE, UNKNOWN

if TYPE_CHECKING:
    from audit.policy import Policy
    from audit.suites.loader import LoadedSuite


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

    name = _check_target(suite, out_dir, version)
    cats = list(suite.covers)
    fields = text_fields_of(suite)
    slices = suite.slice_names
    rows, changes, counts = _apply_answers(suite, answers, cats, fields, slices)
    data_dir = out_dir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    data_file = data_dir / f"{suite.split}.jsonl"
    with open(data_file, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    old = suite.card
    n_reviewed = sum(c["reviewed"] for c in counts.values())
    card = _card(suite, name, version, cats, fields, data_file.name, n_reviewed, len(changes))
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


def _check_target(suite: LoadedSuite, out_dir: Path, version: str) -> str:
    """Refuse an output folder or version that would overwrite or shadow a suite; return
    the new suite's name (the folder name)."""
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
    return name


def _apply_answers(
    suite: LoadedSuite,
    answers: dict[tuple[str, str], Answer],
    cats: list[str],
    fields: list[str],
    slices: list[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Counter[str]]]:
    """The new data rows, one change record per label an answer moved, and per category
    how many answers were given and how labels moved."""
    d = suite.dataset.to_dict()
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
    return rows, changes, counts


def _card(
    suite: LoadedSuite,
    name: str,
    version: str,
    cats: list[str],
    fields: list[str],
    data_name: str,
    n_reviewed: int,
    n_changes: int,
) -> dict[str, Any]:
    """The new version's suite card: the old card's policy, license and citation, the
    new data file and one gold column per covered category."""
    old = suite.card
    slices = suite.slice_names
    card: dict[str, Any] = {
        "card_version": 1,
        "name": name,
        "version": version,
        "description": (
            f"{old.description.strip()} Adjudicated version of {old.name} {old.version} "
            f"({n_reviewed} item-category answers, "
            f"{n_changes} label changes); see README.md."
        ),
        "policy": old.policy,
        "license": old.license,
        "source": {
            "local": {
                "root": ".",
                "format": "jsonl",
                "splits": {suite.split: f"data/{data_name}"},
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
    return card


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
