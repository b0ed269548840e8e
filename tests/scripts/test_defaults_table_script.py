"""scripts/defaults_table.py renders the main and the ablation table from its results
payload between their markers in docs/defaults.md (the tables are generated, never
hand-written), and says so when a run had no ablations."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "defaults_table.py"


@pytest.fixture(scope="module")
def table() -> Any:
    spec = importlib.util.spec_from_file_location("defaults_table_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cell(v: float) -> dict[str, Any]:
    return {"value": v, "ci": [v - 0.01, v + 0.01], "n": 100, "reason": None}


def _payload(moderators: tuple[str, ...]) -> dict[str, Any]:
    labels = {"any": 0.7, "hate": 0.6, "harassment": 0.5}
    per_mod = {
        m: {
            lab: {"auroc": _cell(v + i / 100), "auprc": _cell(v), "n_pos": 30}
            for lab, v in labels.items()
        }
        for i, m in enumerate(moderators)
    }
    d = {"a": 0.8, "b": 0.7, "delta": -0.1, "lo": -0.15, "hi": -0.05}
    deltas = {m: {"n": 100, "auroc": d, "auprc": d} for m in moderators if m != "use·sv1+cold"}
    return {
        "moderators": {m: {} for m in moderators},
        "results": {"cold:test": per_mod},
        "paired_any_vs_shipped": {"cold:test": deltas},
    }


def test_ablation_table_has_every_pair_on_any_and_hate_only(table: Any) -> None:
    sections = table.render(_payload(table.ABLATION_COLUMNS))
    abl = sections["ablations"]
    header = next(line for line in abl.splitlines() if line.startswith("| set |"))
    assert header.endswith(" | ".join(table.ABLATION_COLUMNS) + " |")
    rows = [line for line in abl.splitlines() if line.startswith("| cold:test")]
    delta_row = rows.pop()  # the paired-difference table's row comes last
    assert delta_row.count("-0.100 [-0.150, -0.050]") == len(table.ABLATION_COLUMNS) - 1
    assert [r.split(" | ")[1] for r in rows] == ["any", "hate"] * 2  # AUROC then AUPRC
    # the use·sv1 column (index 3) of the any row: 0.7 + 3/100
    assert rows[0].split(" | ")[4 + 3] == "0.730 [0.720, 0.740]"
    main_header = next(x for x in sections["table"].splitlines() if x.startswith("| set |"))
    assert main_header.endswith(" | ".join(table.MAIN) + " |")
    assert "harassment" in sections["table"]


def test_run_without_ablations_says_how_to_get_them(table: Any) -> None:
    sections = table.render(_payload(table.MAIN))
    assert "--ablations" in sections["ablations"] and "|" not in sections["ablations"]


def test_write_doc_replaces_between_markers_and_names_missing_ones(
    table: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = tmp_path / "defaults.md"
    (s1, e1), (s2, e2) = table.MARKERS["table"], table.MARKERS["ablations"]
    doc.write_text(f"intro\n{s1}\nold\n{e1}\nmiddle\n{s2}\nold\n{e2}\nend\n", encoding="utf-8")
    monkeypatch.setattr(table, "DOC", doc)
    table.write_doc({"table": "T\n", "ablations": "A\n"})
    assert doc.read_text(encoding="utf-8") == f"intro\n{s1}\nT\n{e1}\nmiddle\n{s2}\nA\n{e2}\nend\n"
    doc.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="markers"):
        table.write_doc({"table": "T\n"})


def test_committed_doc_matches_the_committed_results(table: Any) -> None:
    # docs/defaults.md's tables are exactly what --render makes of the committed JSON
    payload = json.loads(table.RESULTS.read_text(encoding="utf-8"))
    text = table.DOC.read_text(encoding="utf-8")
    for key, body in table.render(payload).items():
        start, end = table.MARKERS[key]
        assert text.split(start, 1)[1].split(end, 1)[0] == "\n" + body
