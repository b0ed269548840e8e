"""Adjudication round trip: Label Studio / Argilla exports validated by the tools' own
code, and annotations imported back as a new, loadable suite version."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.helpers.cli import run_cli

SECRET = "MINOR-SECRET"


@pytest.fixture
def exported(
    capsys: pytest.CaptureFixture[str], synth_card: Path, synth_run: Path, tmp_path: Path
) -> Path:
    out = tmp_path / "export"
    res = run_cli(
        capsys, "adjudicate", "export", str(synth_card), "--run", str(synth_run), "--out", str(out)
    )
    assert res.code == 0, res.err
    return out


def test_label_studio_tasks_validate_with_sdk(exported: Path) -> None:
    from label_studio_sdk.label_interface.interface import LabelInterface

    config = (exported / "label_config.xml").read_text()
    li = LabelInterface(config)
    li.validate()  # type: ignore[no-untyped-call]  # schema, unique names, toName targets, tag attributes
    assert {c.name for c in li.controls} >= {"harassment", "minor_sexual", "reason"}
    tasks = json.loads((exported / "tasks.json").read_text())
    assert len(tasks) == 120
    restricted = [t for t in tasks if t["data"]["restricted"]]
    assert len(restricted) == 3
    for t in tasks:
        assert not any("." in k for k in t["data"])  # no dotted field names
        # the SDK's own task check (object variables present); predictions separately,
        # as validate_task's prediction branch calls validate_prediction() without args
        assert li.validate_task({"data": t["data"]})  # type: ignore[arg-type]
        for p in t.get("predictions", []):
            assert li.validate_prediction(p, return_errors=True) == []  # type: ignore[no-untyped-call]
    for t in restricted:
        assert t["data"]["prompt"] == "" and "gold_harassment" not in t["data"]
    # the SDK check is real: a task lacking a referenced key fails it
    assert not li.validate_task({"data": {"item_ref": "x"}})  # type: ignore[arg-type]
    assert SECRET not in (exported / "tasks.json").read_text()
    assert SECRET not in (exported / "argilla_records.json").read_text()


def test_label_studio_rejects_a_broken_prediction(exported: Path) -> None:
    from label_studio_sdk.label_interface.interface import LabelInterface

    li = LabelInterface((exported / "label_config.xml").read_text())
    t = json.loads((exported / "tasks.json").read_text())[0]
    bad = json.loads(json.dumps(t["predictions"][0]))
    bad["result"][0]["value"]["choices"] = ["not-a-choice"]
    assert li.validate_prediction(bad, return_errors=True)  # type: ignore[no-untyped-call]  # the check can fail


@pytest.fixture
def argilla_offline(monkeypatch: pytest.MonkeyPatch) -> Any:
    import argilla as rg
    from argilla._api import _client

    # construct the SDK objects without a server: skip only the connection probe
    monkeypatch.setattr(_client.APIClient, "_validate_connection", lambda self: None)
    monkeypatch.setattr(rg.Argilla, "_default_client", None, raising=False)
    rg.Argilla(api_url="http://argilla.invalid", api_key="offline-validation")
    return rg


def test_argilla_export_validates(exported: Path, argilla_offline: Any) -> None:
    rg = argilla_offline
    settings = rg.Settings.from_json(exported / "argilla_settings.json")
    settings.validate()
    qnames = {q.name for q in settings.questions}
    fnames = {f.name for f in settings.fields}
    assert {"harassment", "minor_sexual"} <= qnames
    for rec in json.loads((exported / "argilla_records.json").read_text()):
        r = rg.Record.from_dict(rec)
        assert set(r.fields.to_dict()) <= fnames
        for s in r.suggestions:
            assert s.question_name in qnames
            q = next(x for x in settings.questions if x.name == s.question_name)
            assert s.value in q.labels


def _ls_export(exported: Path, flip: dict[str, str], who: int = 1) -> list[dict[str, Any]]:
    """A Label Studio JSON export: reviewers accept the pre-annotations except ``flip``."""
    tasks = json.loads((exported / "tasks.json").read_text())
    out = []
    for t in tasks:
        result = json.loads(json.dumps(t["predictions"][0]["result"]))
        for r in result:
            if t["data"]["item_id"] in flip and r["from_name"] == "harassment":
                r["value"]["choices"] = [flip[t["data"]["item_id"]]]
        result.append(
            {
                "from_name": "reason",
                "to_name": "item_ref",
                "type": "textarea",
                "value": {"text": ["R1 guideline"]},
            }
        )
        out.append(
            {
                "id": t["id"],
                "data": t["data"],
                "annotations": [
                    {"id": t["id"], "completed_by": who, "result": result, "was_cancelled": False}
                ],
            }
        )
    return out


def test_import_label_studio_writes_a_new_version(
    capsys: pytest.CaptureFixture[str], exported: Path, synth_card: Path, tmp_path: Path
) -> None:
    from audit.policy import load_policy
    from audit.suites import load_suite

    policy = load_policy("platform-v1")
    old = load_suite(str(synth_card), policy)
    tasks = json.loads((exported / "tasks.json").read_text())
    first = tasks[0]["data"]["item_id"]
    ann = tmp_path / "ls_export.json"
    ann.write_text(json.dumps(_ls_export(exported, {first: "unsure"})))
    before = synth_card.read_bytes()
    out = tmp_path / "suites" / "synth_adj"
    res = run_cli(capsys, "adjudicate", "import", str(synth_card), str(ann), "--out", str(out))
    assert res.code == 0, res.err
    assert synth_card.read_bytes() == before  # the old version is untouched
    new = load_suite(str(out / "suite.yaml"), policy)
    assert new.dataset["id"] == old.dataset["id"]
    assert new.dataset["content_hash"] == old.dataset["content_hash"]
    k = policy.category_ids.index("harassment")
    decisions = {t["data"]["item_id"]: t["predictions"][0]["result"] for t in tasks}
    for i, iid in enumerate(new.dataset["id"]):
        want = next(
            r["value"]["choices"][0] for r in decisions[iid] if r["from_name"] == "harassment"
        )
        exp = -1 if iid == first else {"violates": 1, "does_not_violate": 0}[want]
        assert new.labels[i, k] == exp
    summary = json.loads((out / "adjudication.json").read_text())
    assert summary["changes"] == sum(
        1 for i in range(len(old)) if old.labels[i, k] != new.labels[i, k]
    ) + sum(
        1
        for i in range(len(old))
        if old.labels[i, policy.category_ids.index("minor_sexual")]
        != new.labels[i, policy.category_ids.index("minor_sexual")]
    )
    readme = (out / "README.md").read_text()
    assert "Version history" in readme and summary["from"]["digest"][:16] in readme
    assert (
        SECRET not in (out / "changes.csv").read_text() if (out / "changes.csv").exists() else True
    )
    # a second import into the same folder refuses to overwrite
    res = run_cli(capsys, "adjudicate", "import", str(synth_card), str(ann), "--out", str(out))
    assert res.code == 2 and "--out" in res.err and "never overwritten" in res.err


def test_import_argilla_and_csv(
    capsys: pytest.CaptureFixture[str], exported: Path, synth_card: Path, tmp_path: Path
) -> None:
    recs = json.loads((exported / "argilla_records.json").read_text())
    user = str(uuid.uuid4())
    for r in recs:
        r["responses"] = {
            q: [{"value": s["value"], "user_id": user, "status": "submitted"}]
            for q, s in r["suggestions"].items()
        }
    a = tmp_path / "argilla.json"
    a.write_text(json.dumps(recs))
    res = run_cli(
        capsys,
        "adjudicate",
        "import",
        str(synth_card),
        str(a),
        "--out",
        str(tmp_path / "s" / "synth_arg"),
    )
    assert res.code == 0, res.err
    c = tmp_path / "answers.csv"
    iid = recs[0]["id"]
    c.write_text(
        f"item_id,category,label,annotator\n{iid},harassment,violates,ann1\n"
        f"{iid},minor_sexual,does_not_violate,ann1\n"
    )
    res = run_cli(
        capsys,
        "adjudicate",
        "import",
        str(synth_card),
        str(c),
        "--out",
        str(tmp_path / "s" / "synth_csv"),
    )
    assert res.code == 0, res.err
    assert "harassment: 1 reviewed" in res.out


def test_agreement_against_adjudicated_gold(
    capsys: pytest.CaptureFixture[str], exported: Path, synth_card: Path, tmp_path: Path
) -> None:
    ann = tmp_path / "ls_export.json"
    ann.write_text(json.dumps(_ls_export(exported, {})))
    new = tmp_path / "suites" / "synth_adj"
    assert (
        run_cli(capsys, "adjudicate", "import", str(synth_card), str(ann), "--out", str(new)).code
        == 0
    )
    out = tmp_path / "agr.json"
    res = run_cli(
        capsys,
        "agreement",
        str(synth_card),
        "--gold",
        str(new / "suite.yaml"),
        "--bootstrap",
        "20",
        "--out",
        str(out),
    )
    assert res.code == 0, res.err
    rec = json.loads(out.read_text())
    assert rec["suite"]["gold_source"].startswith("adjudicated:")
    a1 = rec["categories"]["harassment"]["annotators"][0]
    assert a1["vs_gold"]["agreement"]["n"] > 0
    # the adjudicated gold is the model's decisions here: recompute one annotator's rate
    from audit.policy import load_policy
    from audit.suites import load_suite

    p = load_policy("platform-v1")
    s, g = load_suite(str(synth_card), p), load_suite(str(new / "suite.yaml"), p)
    k = p.category_ids.index("harassment")
    assert s.annotations is not None
    r = s.annotations.category("harassment")[:, 0]
    gold = g.labels[:, k].astype(float)
    both = ~np.isnan(r) & (gold != -1)
    assert a1["vs_gold"]["agreement"]["value"] == pytest.approx(
        float((r[both] == gold[both]).mean()), abs=1e-12
    )
    # a gold version of other items is refused
    other = tmp_path / "other"
    from tests.labels.synth import rows, write_suite

    write_suite(other, data=[dict(x, text=x["text"] + " changed") for x in rows()])
    res = run_cli(
        capsys,
        "agreement",
        str(synth_card),
        "--gold",
        str(other / "suites" / "synth" / "suite.yaml"),
        "--out",
        str(out),
    )
    assert res.code == 2 and "changed in the adjudicated suite" in res.err
    assert "other/suites/synth/suite.yaml: id:" in res.err
