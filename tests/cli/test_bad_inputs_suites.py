"""Hostile suite cards and suite data: each case exits 2 with one line naming the card or
data file and the card field, no traceback, and no run left behind.

Classes, not examples: a card that is empty, a scalar or of a future version; label
rules that contradict each other or name what the card does not cover; ids that are
null, repeated or equal only after conversion to text; data files that are empty,
header-only, special files or link loops; bytes that lie (BOM, NUL, undecodable, a
gzip that is not one); JSON that is a scalar, nested past any sane depth, or one giant
broken line; values whose type silently changes a gold label (NaN, a list)."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import run_cli
from tests.helpers.hostile import (
    Case,
    Expect,
    as_expect,
    card,
    cfg_file,
    check_outcome,
    csv_suite,
    edit_card,
    missing_from_table,
)
from tests.helpers.suites import CARD, base_config, mini_rows, write_config, write_suite


def _run(p: Path) -> list[str]:
    return ["run", str(p)]


def _card_text(t: Path, text: str | bytes) -> Path:
    """A config whose suite card file holds ``text`` verbatim."""
    p = cfg_file(t)
    cpath = t / "suites" / "mini" / "suite.yaml"
    if isinstance(text, bytes):
        cpath.write_bytes(text)
    else:
        cpath.write_text(text, encoding="utf-8")
    return p


def _jsonl(t: Path, rows: list[dict[str, Any]], **card_changes: Any) -> Path:
    return cfg_file(t, card=card(**card_changes) if card_changes else None, rows=rows)


# --- the card file itself ----------------------------------------------------------------


def c_card_empty_file(t: Path):
    return Expect(_run(_card_text(t, "")), "suite.yaml", "", extra=("an empty file",))


def c_card_is_scalar(t: Path):
    return _run(_card_text(t, "just a string\n")), "suite.yaml", ""


def c_card_is_list(t: Path):
    return _run(_card_text(t, "- name: mini\n")), "suite.yaml", ""


def c_card_future_version(t: Path):
    return _run(cfg_file(t, card=card(card_version=2))), "suite.yaml", "card_version"


def c_card_missing_source(t: Path):
    c = card()
    c.pop("source")
    return Expect(_run(cfg_file(t, card=c)), "suite.yaml", "source", extra=("missing",))


def c_card_unknown_key_did_you_mean(t: Path):
    c = card()
    c["rationale_colum"] = c.pop("rationale_column")
    return Expect(
        _run(cfg_file(t, card=c)), "suite.yaml", "rationale_colum", extra=("'rationale_column'",)
    )


def c_card_name_traversal(t: Path):
    return _run(cfg_file(t, card=card(name="../../mini"))), "suite.yaml", "name"


def c_card_version_number(t: Path):
    # `version: 0.10` is the float 0.1 in YAML: a strict string field refuses it
    return _run(cfg_file(t, card=card(version=0.1))), "suite.yaml", "version"


def c_card_invalid_yaml(t: Path):
    return _run(_card_text(t, "name: mini\nsource: {local: [\n")), "suite.yaml", ""


def c_card_not_utf8(t: Path):
    return _run(_card_text(t, "name: caf\xe9\n".encode("latin-1"))), "suite.yaml", ""


def c_card_fields_empty(t: Path):
    return _run(cfg_file(t, card=card(fields={}))), "suite.yaml", "fields"


def c_card_unknown_text_field(t: Path):
    return _run(cfg_file(t, card=card(fields={"captoin": "caption"}))), "suite.yaml", "fields"


def c_card_slice_clashes(t: Path):
    return _run(cfg_file(t, card=card(slices={"id": "language"}))), "suite.yaml", "slices"


def c_card_id_column_and_generate(t: Path):
    c = card(id={"column": "id", "generate": "row_index"})
    return _run(cfg_file(t, card=c)), "suite.yaml", "id"


def c_card_splits_empty(t: Path):
    c = card(source={"local": {"root": "data", "format": "jsonl", "splits": {}}})
    return _run(cfg_file(t, card=c)), "suite.yaml", "source.local.splits"


def c_card_format_unknown(t: Path):
    c = card(source={"local": {"root": "data", "format": "xlsx", "splits": {"test": "t.xlsx"}}})
    return _run(cfg_file(t, card=c)), "suite.yaml", "source.local.format"


def c_card_delimiter_two_chars(t: Path):
    p = csv_suite(t, "id,text,label\na,hello,0\n", delimiter=";;")
    return _run(p), "suite.yaml", "source.local.delimiter"


def c_card_records_path_on_csv(t: Path):
    p = csv_suite(t, "id,text,label\na,hello,0\n", records_path="data")
    return _run(p), "suite.yaml", "source.local"


# --- label rules that contradict themselves or the card ----------------------------------


def _rules(*rules: dict[str, Any], covers: list[str] | None = None) -> dict[str, Any]:
    return {"covers": covers or ["hate"], "rules": list(rules)}


def c_rule_category_not_covered(t: Path):
    labels = _rules({"category": "harassment", "column": "x", "positive": ["1"]}, covers=["hate"])
    return _run(cfg_file(t, card=card(labels=labels))), "suite.yaml", "labels"


def c_rule_category_twice(t: Path):
    labels = _rules(
        {"category": "hate", "column": "a", "positive": ["1"]},
        {"category": "hate", "column": "b", "positive": ["1"]},
    )
    return _run(cfg_file(t, card=card(labels=labels))), "suite.yaml", "labels.rules"


def c_rule_without_category(t: Path):
    labels = _rules({"column": "x", "positive": ["1"]})
    return _run(cfg_file(t, card=card(labels=labels))), "suite.yaml", "labels"


def c_rule_no_way_to_label(t: Path):
    labels = _rules({"category": "hate", "column": "x"})
    return _run(cfg_file(t, card=card(labels=labels))), "suite.yaml", "labels.rules[0]"


def c_rule_negative_if_alone(t: Path):
    labels = _rules({"category": "hate", "column": "x", "positive": ["1"], "negative_if": "< 1"})
    return _run(cfg_file(t, card=card(labels=labels))), "suite.yaml", "labels.rules[0]"


def c_rule_conditions_overlap(t: Path):
    # a score of 0.6 would be both positive and negative: the rules contradict
    labels = _rules(
        {"category": "hate", "column": "x", "positive_if": ">= 0.5", "negative_if": "<= 0.7"}
    )
    return _run(cfg_file(t, card=card(labels=labels))), "suite.yaml", "labels.rules[0]"


def c_labels_nothing_given(t: Path):
    return _run(cfg_file(t, card=card(labels={"covers": ["hate"]}))), "suite.yaml", "labels"


def c_label_column_missing_in_data(t: Path):
    labels = _rules({"category": "hate", "column": "is_hate", "positive": ["yes"]})
    return _run(cfg_file(t, card=card(labels=labels))), "suite.yaml", "labels.rules[0]"


def c_list_column_is_mapping(t: Path):
    # {"hate": false} read as "no labels" would silently make every category negative
    rows = mini_rows()
    rows[4]["labels"] = {"hate": False}
    return _run(_jsonl(t, rows)), "suite.yaml", "labels.list_column"


def c_list_column_is_number(t: Path):
    rows = mini_rows()
    rows[4]["labels"] = 3
    return _run(_jsonl(t, rows)), "suite.yaml", "labels.list_column"


def c_rule_value_is_list(t: Path):
    rows = mini_rows()
    for r in rows:
        r["is_hate"] = "yes" if "hate" in r["labels"] else "no"
    rows[6]["is_hate"] = ["yes", "no"]
    labels = _rules(
        {"category": "hate", "column": "is_hate", "positive": ["yes"], "negative": ["no"]}
    )
    return _run(_jsonl(t, rows, labels=labels)), "suite.yaml", "labels.rules[0]"


def c_positive_if_on_nan(t: Path):
    # NaN compares false with everything: it must not silently become a negative label
    p = csv_suite(t, "id,text,label\na,hello,0.7\nb,world,nan\n")
    edit_card(
        t,
        lambda c: c["labels"]["rules"].__setitem__(
            0, {"category": "hate", "column": "label", "positive_if": ">= 0.5"}
        ),
    )
    return _run(p), "suite.yaml", "labels.rules[0].positive_if"


def c_slice_column_missing(t: Path):
    return _run(cfg_file(t, card=card(slices={"language": "lang"}))), "suite.yaml", "slices"


# --- ids ---------------------------------------------------------------------------------


def c_id_null(t: Path):
    rows = mini_rows()
    rows[3]["id"] = None
    return _run(_jsonl(t, rows)), "suite.yaml", "id"


def c_id_equal_as_text(t: Path):
    # 1 and "1" are different JSON values but the same item id once written out
    rows = mini_rows()
    rows[0]["id"], rows[1]["id"] = 1, "1"
    return _run(_jsonl(t, rows)), "suite.yaml", "id"


def c_id_column_missing(t: Path):
    return _run(cfg_file(t, card=card(id={"column": "item_id"}))), "suite.yaml", "id.column"


def c_id_is_mapping(t: Path):
    rows = mini_rows()
    rows[2]["id"] = {"a": 1}
    return _run(_jsonl(t, rows)), "suite.yaml", "id"


# --- data files that are not what they claim ---------------------------------------------


def c_csv_header_only(t: Path):
    return _run(csv_suite(t, "id,text,label\n")), "suite.yaml", "source"


def c_csv_empty_file(t: Path):
    return _run(csv_suite(t, "")), "suite.yaml", "source"


def c_csv_duplicate_header(t: Path):
    return _run(csv_suite(t, "id,text,text,label\na,x,y,0\n")), "suite.yaml", "source.local"


def c_csv_unclosed_quote(t: Path):
    return _run(csv_suite(t, 'id,text,label\na,"hello,0\nb,world,1\n')), "test.csv", "source.local"


def c_csv_bom_header(t: Path):
    # a UTF-8 BOM before the header must not hide the id column behind "\ufeffid"
    data = b"\xef\xbb\xbfid,text,label\na,hello,0\na,world,1\n"
    return _run(csv_suite(t, data)), "suite.yaml", "id"


def c_csv_nul_bytes(t: Path):
    return _run(csv_suite(t, b"id,text,label\na,hel\x00lo,0\nb,world,1\n")), "test.csv", ""


def c_csv_latin1_bytes(t: Path):
    p = csv_suite(t, "id,text,label\na,caf\xe9,0\n".encode("latin-1"))
    return _run(p), "test.csv", "source.local.encoding"


def c_csv_crlf_ragged(t: Path):
    p = csv_suite(t, b"id,text,label\r\na,hello,0\r\nb,world\r\n")
    return _run(p), "test.csv:3", "source.local"


def c_gzip_not_gzip(t: Path):
    p = csv_suite(t, "id,text,label\na,x,0\n", name="test.csv.gz")
    return _run(p), "test.csv.gz", "source.local.splits"


def c_gzip_truncated(t: Path):
    blob = gzip.compress(b"id,text,label\n" + b"a,hello,0\n" * 1000)
    p = csv_suite(t, blob[: len(blob) // 2], name="test.csv.gz")
    return _run(p), "test.csv.gz", "source.local.splits"


def c_data_file_is_directory(t: Path):
    p = cfg_file(t)
    data = t / "suites" / "mini" / "data" / "test.jsonl"
    data.unlink()
    data.mkdir()
    return _run(p), "test.jsonl", "source.local"


def c_data_file_fifo(t: Path):
    p = cfg_file(t)
    data = t / "suites" / "mini" / "data" / "test.jsonl"
    data.unlink()
    os.mkfifo(data)  # reading it would block forever: refuse special files
    return _run(p), "test.jsonl", "source.local"


def c_data_file_symlink_loop(t: Path):
    p = cfg_file(t)
    data = t / "suites" / "mini" / "data" / "test.jsonl"
    data.unlink()
    data.symlink_to(data.with_name("other.jsonl"))
    data.with_name("other.jsonl").symlink_to(data)
    return _run(p), "test.jsonl", "source.local"


def c_jsonl_blank_lines_only(t: Path):
    return _run(cfg_file(t, raw_lines="\n   \n\t\n")), "suite.yaml", "source"


def c_jsonl_scalar_line(t: Path):
    return (
        _run(cfg_file(t, raw_lines='{"id": "a", "caption": "x", "labels": []}\n5\n')),
        ("test.jsonl:2"),
        "source.local",
    )


def c_jsonl_giant_broken_line(t: Path):
    line = '{"id": "a", "caption": "' + "x" * 3_000_000 + '", "labels": [}\n'
    return _run(cfg_file(t, raw_lines=line)), "test.jsonl:1", "source.local"


def c_jsonl_deeply_nested(t: Path):
    deep = '{"id": "a", "caption": "x", "labels": [], "n": ' + "[" * 100_000 + "]" * 100_000
    return _run(cfg_file(t, raw_lines=deep + "}\n")), "test.jsonl:1", "source.local"


def _json_suite(t: Path, text: str, **local: Any) -> Path:
    c = card(
        source={"local": {"root": "data", "format": "json", "splits": {"test": "t.json"}, **local}}
    )
    suite = write_suite(t, card=c)
    (suite.parent / "data" / "t.json").write_text(text, encoding="utf-8")
    return write_config(t / "run.yaml", base_config(suite, t / "runs"))


def c_json_scalar_document(t: Path):
    return _run(_json_suite(t, "42")), "t.json", "source.local.records_path"


def c_json_deeply_nested(t: Path):
    return _run(_json_suite(t, "[" * 100_000 + "]" * 100_000)), "t.json", "source.local"


def c_json_records_not_objects(t: Path):
    return _run(_json_suite(t, '[{"id": "a"}, "b"]')), "t.json", "source.local.records_path[1]"


def c_json_truncated(t: Path):
    rows = json.dumps(mini_rows())
    return _run(_json_suite(t, rows[: len(rows) // 2])), "t.json", "source.local"


def c_parquet_corrupt(t: Path):
    c = card(
        source={"local": {"root": "data", "format": "parquet", "splits": {"test": "t.parquet"}}}
    )
    suite = write_suite(t, card=c)
    (suite.parent / "data" / "t.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
    return (
        _run(write_config(t / "run.yaml", base_config(suite, t / "runs"))),
        "suite.yaml",
        ("source.local"),
    )


def c_text_field_is_list(t: Path):
    rows = mini_rows()
    rows[5]["caption"] = ["a", "b"]
    rows[5]["comment"] = None
    return _run(_jsonl(t, rows)), "suite.yaml", "fields.caption"


CASES: list[Case] = [v for k, v in list(globals().items()) if k.startswith("c_")]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[2:] for c in CASES])
def test_bad_suite_exits_2_with_one_line(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = as_expect(case(tmp_path))
    r = run_cli(capsys, *exp.args)
    check_outcome(exp, r.code, r.out, r.err, tmp_path / "runs")


def test_the_unbroken_suite_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Control: the same builders without the hostile edit give a finished run, so each
    case above fails for the reason it names and not for a broken fixture."""
    r = run_cli(capsys, "run", str(cfg_file(tmp_path)), "--no-mlflow", "--quiet")
    assert r.code == 0, r.err
    assert CARD["name"] == "mini"
    p = csv_suite(tmp_path / "csv", "id,text,label\na,hello,0\nb,world,1\n")
    r = run_cli(capsys, "run", str(p), "--no-mlflow", "--quiet")
    assert r.code == 0, r.err


def test_every_case_is_in_the_table() -> None:
    """docs/hostile-inputs.md lists every case (scripts/hostile_table.py regenerates it)."""
    assert missing_from_table("test_bad_inputs_suites", CASES) == []
