"""Pathway manifest: coverage matrix, sync problems, the gate's blocking check."""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from audit._util.settings import repo_root
from audit.change import check_manifest, gate_checks
from audit.moderators.judge import presets, prompts
from audit.policy import load_policy
from audit.release.compare import Side
from audit.release.gate import GateRules, run_gate, verdict
from tests.change._util import write_yaml
from tests.helpers.cli import run_cli
from tests.helpers.runs import make_run

SHIPPED = repo_root() / "configs" / "pathways.yaml"


def shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    return copy.deepcopy(data)


@functools.lru_cache(maxsize=1)
def _v2() -> Any:
    return load_policy("platform-v2")


def synced_to_v2() -> dict[str, Any]:
    """The shipped manifest brought up to platform-v2 the way the team would."""
    v2 = _v2()
    d = shipped()
    d["policy"] = "platform-v2"
    for p in d["pathways"]:
        p["implements"] = {"policy": "platform-v2", "digest": v2.digest()}
        p["validated"]["policy_digest"] = v2.digest()
        if p["type"] == "classifier":
            edges = [e for e in p["label_map"] if e["target"] != "harassment"]
            src = "harassment" if p["id"] == "minilm_head" else "offensive"
            cov = "full" if p["id"] == "minilm_head" else "partial"
            edges += [
                {
                    "source": "targeted_harassment" if cov == "full" else src,
                    "target": "targeted_harassment",
                    "coverage": cov,
                },
                {
                    "source": "bullying" if cov == "full" else src,
                    "target": "bullying",
                    "coverage": cov,
                },
            ]
            p["label_map"] = edges
            p["thresholds"]["spam"] = 0.7
        if p["type"] == "llm_prompt":
            pre = presets.get(p["preset"])
            p["validated"]["prompt_hash"] = prompts.template_hash(v2, pre.template)
            if p["preset"] == "llama_guard_3":
                p["not_covered"]["bullying"] = "no Llama Guard hazard for peer bullying"
        if p["type"] == "guideline":
            p["document"] = "configs/policies/platform-v2.yaml"
            p["covers"] = {c: "full" for c in v2.category_ids}
        if p["type"] == "escalation":
            routes = [r for r in p["routes"] if r["category"] != "harassment"]
            routes += [
                {
                    "category": "targeted_harassment",
                    "queue": "standard-review",
                    "min_score": 0.7,
                    "action": "remove",
                },
                {
                    "category": "bullying",
                    "queue": "youth-safety",
                    "min_score": 0.6,
                    "action": "escalate",
                },
            ]
            p["routes"] = routes
    return d


def test_shipped_manifest_is_in_sync_with_its_policy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    res = check_manifest(SHIPPED)
    assert res.problems == []
    assert set(res.matrix) == set(load_policy("platform-v1").category_ids)
    assert res.matrix["hate"]["profanity_baseline"].coverage == "partial"
    assert res.matrix["spam"]["llama_guard_screen"].coverage == "none"
    assert res.matrix["harassment"]["llama_guard_screen"].edge.startswith("S2→harassment")
    r = run_cli(capsys, "pathways", "check", "--json", str(tmp_path / "m.json"))
    assert r.code == 0, r.err
    assert json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))["ok"] is True


def test_switching_to_v2_lists_every_lagging_pathway(capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "pathways", "check", "--policy", "platform-v2")
    assert r.code == 3
    lines = [x for x in r.err.splitlines() if x.startswith(str(SHIPPED))]
    joined = "\n".join(lines)
    for pid in (
        "minilm_head",
        "profanity_baseline",
        "platform_judge",
        "llama_guard_screen",
        "reviewer_guideline",
        "escalation_flow",
    ):
        assert f"pathway {pid!r}" in joined
        assert any(f"pathway {pid!r}" in x and "implements platform-v1" in x for x in lines)
    assert any("pathways[0].label_map" in x and "'harassment'" in x and "split" in x for x in lines)
    assert any("pathways[2].validated.prompt_hash" in x for x in lines)
    assert any("does not cover 'bullying'" in x for x in lines)
    assert "problem(s): pathways are out of sync" in r.err


def test_a_manifest_synced_to_v2_passes(tmp_path: Path) -> None:
    p = write_yaml(tmp_path / "pathways.yaml", synced_to_v2())
    res = check_manifest(p)
    assert res.problems == []
    assert res.matrix["bullying"]["escalation_flow"].edge == "bullying≥0.6→youth-safety"
    assert res.matrix["bullying"]["llama_guard_screen"].coverage == "none"


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda d: d["pathways"][0]["validated"].update(policy_digest="0" * 64),
            "validated.policy_digest",
        ),
        (
            lambda d: d["pathways"][2]["validated"].update(prompt_hash="f" * 64),
            "validated.prompt_hash",
        ),
        (
            lambda d: d["pathways"][0].update(
                label_map=[e for e in d["pathways"][0]["label_map"] if e["target"] != "spam"]
            ),
            "does not cover 'spam'",
        ),
        (lambda d: d["pathways"][0]["thresholds"].update(harassment=0.5), "thresholds.harassment"),
        (lambda d: d["pathways"][4]["covers"].update(harassment="full"), "maps onto 'harassment'"),
    ],
)
def test_each_sync_problem_is_one_line(tmp_path: Path, mutate: Any, needle: str) -> None:
    d = synced_to_v2()
    mutate(d)
    res = check_manifest(write_yaml(tmp_path / "pathways.yaml", d))
    assert len(res.problems) == 1 and needle in res.problems[0], res.problems


def _sides(tmp_path: Path) -> tuple[Side, Side]:
    import numpy as np

    from audit.release.compare import load_side
    from tests.helpers.runs import make_frame

    y = np.array([[1], [0], [1], [0]] * 5)
    f = make_frame(y, np.where(y == 1, 0.9, 0.1), ["hate"])
    pol = ("platform-v1", load_policy("platform-v1").digest())
    a = make_run(tmp_path, "base", {("s", "m"): f}, policy=pol)
    b = make_run(tmp_path, "cand", {("s", "m"): f}, policy=pol)
    return load_side(a), load_side(b)


def test_gate_runs_the_check_as_blocking(tmp_path: Path) -> None:
    base, cand = _sides(tmp_path)
    ok = run_gate(GateRules(pathways_manifest=str(SHIPPED)), cand, base)
    assert [c.status for c in ok] == ["pass"] and verdict(ok)[0] == 0
    bad = dict(shipped())
    bad["policy"] = "platform-v2"
    p = write_yaml(tmp_path / "lagging.yaml", bad)
    checks = run_gate(GateRules(pathways_manifest=str(p)), cand, base)
    assert checks and all(c.status == "fail" and c.blocking for c in checks)
    assert verdict(checks)[0] == 1
    assert len(checks) == len(check_manifest(p).problems) == len(gate_checks(str(p)))
    # without a manifest the gate adds nothing
    assert run_gate(GateRules(), cand, base) == []
