"""Hostile inputs: every case exits with the documented code and one error line that
names the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.cli import Result, run_cli
from tests.labels.synth import card, rows, write_suite


def one_line(res: Result, code: int, *needles: str) -> str:
    assert res.code == code, (res.code, res.out, res.err)
    lines = [x for x in res.err.strip().splitlines() if x.strip()]
    assert len(lines) == 1, res.err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture
def tasks(capsys: pytest.CaptureFixture[str], synth_card: Path, tmp_path: Path) -> list[Any]:
    out = tmp_path / "exp"
    assert run_cli(capsys, "adjudicate", "export", str(synth_card), "--out", str(out)).code == 0
    t: list[Any] = json.loads((out / "tasks.json").read_text())
    for task in t[:3]:  # three answered tasks, both categories
        task["annotations"] = [
            {
                "completed_by": 1,
                "was_cancelled": False,
                "result": [
                    {
                        "from_name": c,
                        "to_name": "item_ref",
                        "type": "choices",
                        "value": {"choices": ["does_not_violate"]},
                    }
                    for c in ("harassment", "minor_sexual")
                ],
            }
        ]
    return t[:3]


def _import(
    capsys: Any,
    synth_card: Path,
    tmp_path: Path,
    payload: Any,
    name: str = "a.json",
    raw: str | None = None,
) -> Result:
    f = tmp_path / name
    f.write_text(raw if raw is not None else json.dumps(payload))
    return run_cli(
        capsys,
        "adjudicate",
        "import",
        str(synth_card),
        str(f),
        "--out",
        str(tmp_path / "new" / "synth_v2"),
    )


def test_unknown_item_id(capsys: Any, synth_card: Path, tmp_path: Path, tasks: list[Any]) -> None:
    tasks[1]["data"]["item_id"] = "syn-nope"
    res = _import(capsys, synth_card, tmp_path, tasks)
    one_line(res, 2, "a.json", "[1].annotations[0].result[0]", "unknown item id 'syn-nope'")


def test_unknown_label(capsys: Any, synth_card: Path, tmp_path: Path, tasks: list[Any]) -> None:
    tasks[0]["annotations"][0]["result"][0]["value"]["choices"] = ["maybe"]
    res = _import(capsys, synth_card, tmp_path, tasks)
    one_line(res, 2, "a.json", "[0].annotations[0].result[0]", "unknown label 'maybe'")


def test_unknown_category(capsys: Any, synth_card: Path, tmp_path: Path, tasks: list[Any]) -> None:
    tasks[2]["annotations"][0]["result"][1]["from_name"] = "spam"
    res = _import(capsys, synth_card, tmp_path, tasks)
    one_line(res, 2, "a.json", "[2].annotations[0].result[1]", "unknown category 'spam'")


def test_conflicting_answers(
    capsys: Any, synth_card: Path, tmp_path: Path, tasks: list[Any]
) -> None:
    second = json.loads(json.dumps(tasks[0]["annotations"][0]))
    second["completed_by"] = 2
    second["result"][0]["value"]["choices"] = ["violates"]
    tasks[0]["annotations"].append(second)
    res = _import(capsys, synth_card, tmp_path, tasks)
    one_line(res, 2, "a.json", "[0].annotations[1].result[0]", "conflicting answers", "1=", "2=")
    # the documented escape hatch: conflicts become unknown gold
    f = tmp_path / "a.json"
    ok = run_cli(
        capsys,
        "adjudicate",
        "import",
        str(synth_card),
        str(f),
        "--conflicts",
        "unsure",
        "--out",
        str(tmp_path / "new" / "synth_v3"),
    )
    assert ok.code == 0, ok.err


def test_missing_category(capsys: Any, synth_card: Path, tmp_path: Path, tasks: list[Any]) -> None:
    del tasks[1]["annotations"][0]["result"][1]
    res = _import(capsys, synth_card, tmp_path, tasks)
    one_line(
        res, 2, "a.json", "[1].annotations[0].result[0]", "without categories ['minor_sexual']"
    )


def test_empty_annotation_file(capsys: Any, synth_card: Path, tmp_path: Path) -> None:
    res = _import(capsys, synth_card, tmp_path, None, raw="")
    one_line(res, 2, "a.json", "ANNOTATIONS", "annotation file is empty")
    res = _import(capsys, synth_card, tmp_path, None, name="e.csv", raw="")
    one_line(res, 2, "e.csv", "ANNOTATIONS", "empty")


def test_malformed_json(capsys: Any, synth_card: Path, tmp_path: Path) -> None:
    res = _import(capsys, synth_card, tmp_path, None, raw='[{"data": {"item_id": ')
    one_line(res, 2, "a.json", "ANNOTATIONS", "malformed JSON at line 1")


def test_unknown_layout_and_no_answers(capsys: Any, synth_card: Path, tmp_path: Path) -> None:
    one_line(
        _import(capsys, synth_card, tmp_path, [{"foo": 1}]),
        2,
        "a.json",
        "[0]",
        "unknown annotation layout",
    )
    empty = [{"data": {"item_id": "x"}, "annotations": []}]
    one_line(
        _import(capsys, synth_card, tmp_path, empty),
        2,
        "a.json",
        "annotations",
        "no completed annotation",
    )


def test_csv_without_required_columns(capsys: Any, synth_card: Path, tmp_path: Path) -> None:
    res = _import(capsys, synth_card, tmp_path, None, name="b.csv", raw="id,label\nx,violates\n")
    one_line(res, 2, "b.csv", "header", "lacks required columns")


def _agreement(capsys: Any, c: Path, tmp_path: Path) -> Result:
    return run_cli(
        capsys, "agreement", str(c), "--bootstrap", "10", "--out", str(tmp_path / "agr.json")
    )


def test_card_declares_absent_annotators(capsys: Any, tmp_path: Path) -> None:
    c = card()
    c["annotations"]["annotators"] = [*c["annotations"]["annotators"], "ghost"]
    res = _agreement(capsys, write_suite(tmp_path, c=c), tmp_path)
    one_line(res, 2, "suite.yaml", "annotations.annotators", "absent: ['ghost']")


def test_undeclared_annotator_in_data(capsys: Any, tmp_path: Path) -> None:
    data = rows()
    data[5]["annotator"] = "intruder"
    res = _agreement(capsys, write_suite(tmp_path, data=data), tmp_path)
    one_line(res, 2, "suite.yaml", "annotations.annotators", "'intruder'", "data row 5")


def _first_only(data: list[dict[str, Any]], items: set[str]) -> list[dict[str, Any]]:
    """Keep only the first judgement of each item in ``items``."""
    seen: set[str] = set()
    out = []
    for r in data:
        if r["item"] in items:
            if r["item"] in seen:
                continue
            seen.add(r["item"])
        out.append(r)
    return out


def test_one_annotator_items(capsys: Any, tmp_path: Path) -> None:
    # items 0..9 keep one judgement each: reported and left out; the run still succeeds
    data = _first_only(rows(), {f"s{i:03d}" for i in range(10)})
    res = _agreement(capsys, write_suite(tmp_path, data=data), tmp_path)
    assert res.code == 0, res.err
    assert "10 one-annotator and 0 unrated items" in res.out
    rec = json.loads((tmp_path / "agr.json").read_text())
    h = rec["categories"]["harassment"]
    assert (h["n_single"], h["n_pairable"]) == (10, 110)
    assert h["stats"]["krippendorff_alpha_nominal"]["n"] == 110
    # every item one-annotator: nothing is defined, so the command fails
    d2 = tmp_path / "solo"
    solo = _first_only(rows(), {r["item"] for r in rows()})
    res = _agreement(capsys, write_suite(d2, data=solo), d2)
    one_line(res, 2, "suite.yaml", "labels (harassment)", "no item has two or more annotators")


def test_repeat_judgement_when_repeats_error(capsys: Any, tmp_path: Path) -> None:
    c = card()
    c["annotations"]["repeats"] = "error"
    data = rows()
    data.append({**data[0], "order": 99999})
    res = _agreement(capsys, write_suite(tmp_path, c=c, data=data), tmp_path)
    one_line(res, 2, "suite.yaml", "annotations.repeats", "judged item", "twice")


def test_suite_without_annotations(capsys: Any, tmp_path: Path) -> None:
    from tests.helpers.suites import write_suite as write_plain

    res = _agreement(capsys, write_plain(tmp_path), tmp_path)
    one_line(res, 2, "suite.yaml", "annotations", "no per-annotator labels")


def test_missing_rule_column_per_annotator(capsys: Any, tmp_path: Path) -> None:
    data = [{k: v for k, v in r.items() if k != "minor"} for r in rows()]
    res = _agreement(capsys, write_suite(tmp_path, data=data), tmp_path)
    one_line(res, 2, "suite.yaml", "labels.rules[1].column", "'minor'")


def test_wide_multi_valued_cell_and_duplicate_header(capsys: Any, tmp_path: Path) -> None:
    d = tmp_path / "suites" / "wide"
    (d / "data").mkdir(parents=True)
    header = "item,text,a1_h,a2_h,a2_h\n"
    (d / "data" / "w.csv").write_text(header + 'i1,t1,1,0,1\ni2,t2,"0, 1",0,0\n')
    c = card(name="wide", slices={})
    c["source"] = {"local": {"root": "data", "format": "csv", "splits": {"test": "w.csv"}}}
    c["labels"] = {
        "covers": ["harassment"],
        "rules": [{"category": "harassment", "column": "h", "positive": ["1"], "negative": ["0"]}],
    }
    c["annotations"] = {
        "format": "wide",
        "annotators": ["a1", "a2", "a3"],
        "item_key": ["item"],
        "column_template": "{annotator}_{column}",
    }
    import yaml

    (d / "suite.yaml").write_text(yaml.safe_dump(c))
    res = _agreement(capsys, d / "suite.yaml", tmp_path)
    one_line(res, 2, "suite.yaml", "source.local.header_overrides", "'a2_h' at positions 3 and 4")
    c["source"]["local"]["header_overrides"] = {4: "a3_h"}
    (d / "suite.yaml").write_text(yaml.safe_dump(c))
    res = _agreement(capsys, d / "suite.yaml", tmp_path)
    one_line(res, 2, "suite.yaml", "labels.rules[0].column", "multi-valued cell", "'a1_h'")
    c["annotations"].update(multi_value_separator=",", repeats="first")
    (d / "suite.yaml").write_text(yaml.safe_dump(c))
    assert _agreement(capsys, d / "suite.yaml", tmp_path).code == 0


def test_queue_with_unknown_id(capsys: Any, synth_card: Path, tmp_path: Path) -> None:
    q = tmp_path / "q.jsonl"
    q.write_text('{"item_id": "syn-missing"}\n')
    res = run_cli(
        capsys,
        "adjudicate",
        "export",
        str(synth_card),
        "--queue",
        str(q),
        "--out",
        str(tmp_path / "x"),
    )
    one_line(res, 2, "suite.yaml", "id", "not in the suite")
    q.write_text('{"item_id": "a"}\n{broken\n')
    res = run_cli(
        capsys,
        "adjudicate",
        "export",
        str(synth_card),
        "--queue",
        str(q),
        "--out",
        str(tmp_path / "x"),
    )
    one_line(res, 2, "q.jsonl", "line 2", "invalid JSON")


def test_export_nothing_to_export(capsys: Any, synth_card: Path, tmp_path: Path) -> None:
    # three annotators per item and consistent minor labels: no majority tie
    res = run_cli(
        capsys,
        "adjudicate",
        "export",
        str(synth_card),
        "--unknown-gold",
        "--limit",
        "1",
        "--out",
        str(tmp_path / "x"),
    )
    assert res.code == 0, res.err  # the one limited item is still queued
    res = run_cli(
        capsys,
        "adjudicate",
        "export",
        str(synth_card),
        "--unknown-gold",
        "--out",
        str(tmp_path / "y"),
    )
    one_line(res, 2, "suite.yaml", "--unknown-gold", "nothing to export")
