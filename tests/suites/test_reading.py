"""Suite cards that describe real datasets: nested JSON fields, whole-file JSON, CSV
dialects and encodings, numeric label rules, typed value comparison, constant labels,
empty id headers, and warnings for rules that map nothing."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from audit.schema import NEGATIVE, POSITIVE, UNKNOWN
from tests.helpers.cli import run_cli


def _suite(tmp: Path, card: dict[str, Any], files: dict[str, str | bytes]) -> Path:
    d = tmp / "suites" / card["name"]
    (d / "data").mkdir(parents=True)
    base = {
        "card_version": 1,
        "version": "1",
        "description": "test",
        "policy": "platform-v1",
        "license": "test",
    }
    (d / "suite.yaml").write_text(yaml.safe_dump({**base, **card}, sort_keys=False))
    for name, content in files.items():
        p = d / "data" / name
        if isinstance(content, bytes):
            p.write_bytes(content)
        else:
            p.write_text(content, encoding="utf-8")
    return d / "suite.yaml"


def _load(card_path: Path, policy: Any) -> Any:
    from audit.suites import load_suite

    return load_suite(str(card_path), policy)


def _col(suite: Any, cat: str) -> list[int]:
    k = suite.categories.index(cat)
    return [int(v) for v in suite.labels[:, k]]


def test_nested_json_fields_and_records_path(tmp_path: Path, policy: Any) -> None:
    doc = {
        "meta": {"version": 3},
        "data": {
            "instances": [
                {"uid": "a", "body": {"text": "you are vile"},
                 "annotations": {"toxicity": {"majority_human": 0.8}}},
                {"uid": "b", "body": {"text": "nice day"},
                 "annotations": {"toxicity": {"majority_human": 0.1}}},
                {"uid": "c", "body": {"text": "hmm"}, "annotations": {"toxicity": {}}},
            ]
        },
    }  # fmt: skip
    card = {
        "name": "nested",
        "source": {"local": {"root": "data", "format": "json", "splits": {"test": "d.json"},
                             "records_path": "data.instances"}},
        "id": {"column": "uid"},
        "fields": {"comment": "body.text"},
        "labels": {"covers": ["harassment"], "rules": [
            {"category": "harassment", "column": "annotations.toxicity.majority_human",
             "positive_if": ">= 0.5", "missing_column": "unknown"}]},
    }  # fmt: skip
    s = _load(_suite(tmp_path, card, {"d.json": json.dumps(doc)}), policy)
    assert s.dataset["id"] == ["a", "b", "c"]
    assert s.dataset["comment"] == ["you are vile", "nice day", "hmm"]
    assert _col(s, "harassment") == [POSITIVE, NEGATIVE, UNKNOWN]


def test_whole_file_json_list(tmp_path: Path, policy: Any) -> None:
    rows = [{"id": i, "t": f"text {i}", "y": i % 2} for i in range(4)]
    card = {
        "name": "jlist",
        "source": {"local": {"root": "data", "format": "json", "splits": {"test": "d.json"}}},
        "id": {"column": "id", "prefix": "j-"},
        "fields": {"caption": "t"},
        "labels": {"covers": ["hate"], "rules": [
            {"category": "hate", "column": "y", "positive": [1], "negative": [0]}]},
    }  # fmt: skip
    s = _load(_suite(tmp_path, card, {"d.json": json.dumps(rows)}), policy)
    assert s.dataset["id"] == ["j-0", "j-1", "j-2", "j-3"]
    assert _col(s, "hate") == [NEGATIVE, POSITIVE, NEGATIVE, POSITIVE]


def test_semicolon_csv_with_quotes_and_latin1(tmp_path: Path, policy: Any) -> None:
    text = 'id;text;label\n1;"café; très bien";0\n2;"il a dit ""non""";1\n'
    card = {
        "name": "semi",
        "source": {"local": {"root": "data", "format": "csv", "splits": {"test": "d.csv"},
                             "delimiter": ";", "encoding": "latin-1"}},
        "id": {"column": "id"},
        "fields": {"caption": "text"},
        "labels": {"covers": ["hate"], "rules": [
            {"category": "hate", "column": "label", "positive": [1], "negative": [0]}]},
    }  # fmt: skip
    s = _load(_suite(tmp_path, card, {"d.csv": text.encode("latin-1")}), policy)
    assert s.dataset["caption"] == ["café; très bien", 'il a dit "non"']
    assert _col(s, "hate") == [NEGATIVE, POSITIVE]


def test_typed_value_comparison(tmp_path: Path, policy: Any) -> None:
    """A card number matches CSV "0" and "0.0"; a card string matches text exactly."""
    text = "id,text,label,kind\na,x,0,yes\nb,y,1.0,no\nc,z,0.0,YES\n"
    card = {
        "name": "typed",
        "source": {"local": {"root": "data", "format": "csv", "splits": {"test": "d.csv"}}},
        "id": {"column": "id"},
        "fields": {"caption": "text"},
        "labels": {"covers": ["hate", "spam"], "rules": [
            {"category": "hate", "column": "label", "positive": [1], "negative": [0]},
            {"category": "spam", "column": "kind", "positive": ["yes"], "negative": ["no"],
             "other": "unknown"}]},
    }  # fmt: skip
    s = _load(_suite(tmp_path, card, {"d.csv": text}), policy)
    assert _col(s, "hate") == [NEGATIVE, POSITIVE, NEGATIVE]
    assert _col(s, "spam") == [POSITIVE, NEGATIVE, UNKNOWN]  # "YES" is not "yes"


def test_empty_id_header_is_a_real_column(tmp_path: Path, policy: Any) -> None:
    """A pandas-exported CSV whose index column has an empty header: the ids come from
    it (reviewer exports must join back), not from generated row numbers."""
    text = ",text,label\n17,hello,0\n42,world,1\n"
    card = {
        "name": "noheader",
        "source": {"local": {"root": "data", "format": "csv", "splits": {"test": "d.csv"}}},
        "id": {"column": "", "prefix": "r"},
        "fields": {"caption": "text"},
        "labels": {"covers": ["hate"], "rules": [
            {"category": "hate", "column": "label", "positive": ["1"], "negative": ["0"]}]},
    }  # fmt: skip
    s = _load(_suite(tmp_path, card, {"d.csv": text}), policy)
    assert s.dataset["id"] == ["r17", "r42"]


def test_constant_label_one_class_metrics_are_nan(tmp_path: Path, policy: Any) -> None:
    from audit.metrics import compute_metrics

    rows = "".join(json.dumps({"id": f"u{i}", "p": f"unsafe prompt {i}"}) + "\n" for i in range(30))
    card = {
        "name": "allunsafe",
        "source": {"local": {"root": "data", "format": "jsonl", "splits": {"test": "d.jsonl"}}},
        "id": {"column": "id"},
        "fields": {"prompt": "p"},
        "labels": {"covers": [], "overall": {"constant": "positive"}},
    }
    s = _load(_suite(tmp_path, card, {"d.jsonl": rows}), policy)
    assert (s.overall == POSITIVE).all()
    y = s.overall.reshape(-1, 1)
    score = np.random.default_rng(0).random((30, 1))
    with pytest.warns(Warning):
        out = compute_metrics(y, score, score > 0.5, ["overall"], n_boot=50)
    for name in ("auprc", "auroc", "recall_at_precision", "tpr_at_fpr", "fpr"):
        mv = out["overall"][name]
        assert math.isnan(mv.value) and "no gold negatives" in (mv.reason or ""), name
    assert out["overall"]["recall"].value == pytest.approx(float((score > 0.5).mean()))


def test_rules_that_map_nothing_warn_in_validate(
    tmp_path: Path, policy: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "id,text,label\na,x,0\nb,y,0\n"
    card = {
        "name": "warny",
        "source": {"local": {"root": "data", "format": "csv", "splits": {"test": "d.csv"}}},
        "id": {"column": "id"},
        "fields": {"caption": "text"},
        "labels": {"covers": ["hate"], "rules": [
            {"category": "hate", "column": "label", "positive": ["1", ">= 0.5"],
             "negative": ["0"]}]},
    }  # fmt: skip
    path = _suite(tmp_path, card, {"d.csv": text})
    s = _load(path, policy)
    assert "labels.rules[0]: no row mapped to positive" in s.warnings
    assert any("'>= 0.5' looks like a pattern or condition" in w for w in s.warnings)
    r = run_cli(capsys, "validate", str(path))
    assert r.code == 0, r.out
    warned = [ln for ln in r.out.splitlines() if ln.startswith("warning")]
    assert any("no row mapped to positive" in ln for ln in warned)
    assert any("matched no row" in ln for ln in warned)
