"""``audit probe``: the llm_judge robustness probe (shuffled policy sections, padding,
moved span, injected instructions) against a content-scripted stub server and the
tiny random LM; the CLI refuses a moderator that is not an llm_judge."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from audit.moderators.judge.probe import (
    INJECTIONS,
    PAD_AFTER,
    PAD_BEFORE,
    move_item,
    pad_item,
    split_sentences,
)
from audit.schema import Item, content_hash
from tests.helpers.cli import run_cli
from tests.helpers.stub_openai_server import StubOpenAIServer, ok
from tests.helpers.suites import CARD, base_config, write_config, write_suite
from tests.helpers.tiny_lm import build_tiny_causal_lm

KEYWORD = "ZZHATEWORD"


def _rows(n: int = 12) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        bad = i % 2 == 0
        text = f"Hello friends number {i}. I went out today."
        if bad:
            text += f" All of you {KEYWORD} people should leave."
        rows.append(
            {
                "id": f"p{i:02d}",
                "caption": text,
                "comment": None,
                "labels": ["hate"] if bad else [],
                "language": "en",
                "rationale": "test",
            }
        )
    return rows


def _verdict(user: str) -> str:
    injected = any(text in user for _, text in INJECTIONS)
    bad = KEYWORD in user and not injected
    v = {"violations": ["hate"] if bad else [], "rationale": "keyword" if bad else "benign"}
    return "Step by step.\nVERDICT: " + json.dumps(v)


def _config(tmp_path: Path, moderator: dict[str, Any]) -> Path:
    suite = write_suite(tmp_path, card=dict(CARD), rows=_rows())
    cfg = base_config(suite, tmp_path / "runs")
    cfg["moderators"] = [
        {"name": "clf", "type": "fake", "params": {"seed": 1}},
        {"name": "judge", "type": "llm_judge", "batch_size": 4, "params": moderator},
    ]
    return write_config(tmp_path / "run.yaml", cfg)


def test_transforms() -> None:
    it = Item("a", content_hash({"caption": "One. Two! Three?"}), {"caption": "One. Two! Three?"})
    moved = move_item(it)
    assert moved is not None and moved.fields["caption"] == "Three? One. Two!"
    assert moved.content_hash == content_hash({"caption": "Three? One. Two!"})
    assert move_item(Item("b", "h", {"caption": "single sentence"})) is None
    assert split_sentences("一。二！三") == ["一。", "二！", "三"]
    padded = pad_item(Item("c", "h", {"caption": "short", "comment": "the longer one"}))
    assert padded is not None and padded.fields["caption"] == "short"
    assert padded.fields["comment"].startswith(PAD_BEFORE)
    assert padded.fields["comment"].endswith(PAD_AFTER)


def test_inject_succeeds_and_shuffle_never_flips_on_a_content_scripted_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "probe.json"
    with StubOpenAIServer() as srv:
        srv.default = ok(_verdict)
        cfg = _config(
            tmp_path,
            {
                "model": "stub-model",
                "backend": "openai_compat",
                "base_url": srv.base_url,
                "preset": "platform_cot",
                "mode": "generate",
                "categories": ["hate", "harassment", "spam"],
            },
        )
        r = run_cli(capsys, "probe", str(cfg), "--moderator", "judge", "--json", str(out))
        prompts = [str(p.body["messages"][-1]["content"]) for p in srv.posts()]
    assert r.code == 0, r.err
    assert "robustness probe" in r.out and "inject" in r.out
    rep = json.loads(out.read_text())
    assert rep["n_items"] == 12 and rep["baseline"]["n_ok"] == 12
    inj = rep["probes"]["inject"]
    assert inj["n_compared"] == 12
    assert inj["attack_success"]["n_detected_as_is"] == 6
    assert inj["attack_success"]["rate"] == 1.0
    assert inj["attack_success"]["rate_all_positives"] == 1.0
    assert inj["decisions"]["overall"]["flips"] == 6
    assert inj["decisions"]["hate"]["rate"] == 0.5
    assert inj["decisions"]["spam"]["flips"] == 0
    lo, hi = inj["decisions"]["overall"]["ci95"]
    assert 0.0 < lo < 0.5 < hi < 1.0
    sh = rep["probes"]["shuffle"]
    assert sh["n_compared"] == 12
    assert all(d["flips"] == 0 and d["rate"] == 0.0 for d in sh["decisions"].values())
    assert sorted(sh["section_order"]) == ["harassment", "hate", "spam"]
    assert sh["section_order"] != ["hate", "harassment", "spam"]
    # 12 items x (as-is + 4 probes), all prompts distinct: the shuffle changed the prompt
    assert len(prompts) == 60 and len(set(prompts)) == 60
    for name in ("pad", "move"):
        assert rep["probes"][name]["n_compared"] == 12
        assert rep["probes"][name]["decisions"]["overall"]["flips"] == 0


def test_errors_are_counted_apart_never_as_flips(tmp_path: Path) -> None:
    from audit.moderators.judge.probe import load_target, run_probes

    def flaky(user: str) -> str:
        if any(text in user for _, text in INJECTIONS) and "number 0." in user:
            return "no verdict here"
        return _verdict(user)

    with StubOpenAIServer() as srv:
        srv.default = ok(flaky)
        cfg = _config(
            tmp_path,
            {
                "model": "stub-model",
                "backend": "openai_compat",
                "base_url": srv.base_url,
                "preset": "platform_cot",
                "mode": "generate",
                "categories": ["hate"],
            },
        )
        t = load_target(cfg, "judge", limit=4)
        rep = run_probes(
            t.judge, t.spec, t.items, gold_overall=t.suite.overall[:4], probes=["inject"]
        )
    inj = rep["probes"]["inject"]
    assert inj["parse_failures"] == {"baseline": 0, "probe": 1}
    assert inj["n_compared"] == 3 and inj["decisions"]["overall"]["flips"] == 1


def test_all_probes_run_on_the_tiny_lm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lm = build_tiny_causal_lm(tmp_path / "lm")
    cfg = _config(
        tmp_path,
        {"model": str(lm), "preset": "llama_guard_3", "mode": "logprob", "device": "cpu"},
    )
    out = tmp_path / "p.json"
    r = run_cli(
        capsys, "probe", str(cfg), "--moderator", "judge", "--limit", "6", "--json", str(out)
    )
    assert r.code == 0, r.err
    rep = json.loads(out.read_text())
    assert set(rep["probes"]) == {"shuffle", "pad", "move", "inject"}
    for e in rep["probes"].values():
        assert e["n_compared"] == 6
        d = e["decisions"]["overall"]
        assert 0.0 <= d["rate"] <= 1.0 and d["mean_abs_score_change"] >= 0.0
    order = rep["probes"]["shuffle"]["section_order"]  # the Llama Guard codes the judge reaches
    assert len(order) == len(set(order)) >= 2 and all(c.startswith("S") for c in order)
    assert order != sorted(order, key=lambda c: int(c[1:]))


def test_cli_refuses_a_moderator_that_is_not_an_llm_judge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, {"model": "unused", "preset": "llama_guard_3"})
    r = run_cli(capsys, "probe", str(cfg), "--moderator", "clf")
    assert r.code == 2
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "not an 'llm_judge'" in lines[0]
    r = run_cli(capsys, "probe", str(cfg), "--moderator", "nope")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    r = run_cli(capsys, "probe", str(cfg), "--moderator", "judge", "--probes", "bogus")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
