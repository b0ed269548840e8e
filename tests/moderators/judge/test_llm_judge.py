"""``llm_judge`` end to end: every mode on a tiny random causal LM (no hub), and the
happy generate path against a stub OpenAI-compatible server; parse failures stay
errors, never labels; the judge's rationale reaches the MLflow FP/FN table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from audit.moderators import MODERATORS
from audit.schema import OVERALL_KEY, Item, content_hash
from tests.helpers.cli import run_cli
from tests.helpers.stub_openai_server import StubOpenAIServer, ok
from tests.helpers.suites import base_config, write_config, write_suite
from tests.helpers.tiny_lm import build_tiny_causal_lm


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny")


def _items(n: int = 3) -> list[Item]:
    texts = ["nice video of my dog", "I will hurt you tomorrow", "buy followers cheap"][:n]
    return [
        Item(f"i{k}", content_hash({"caption": t}), {"caption": t}) for k, t in enumerate(texts)
    ]


def _judge(policy, **params):
    cls = MODERATORS.get("llm_judge")
    return cls(cls.Params(**params), policy)


def test_logprob_shieldgemma_scores_every_category(policy, tiny_lm: Path) -> None:
    j = _judge(
        policy,
        model=str(tiny_lm),
        preset="shieldgemma",
        mode="logprob",
        categories=("hate", "spam"),
        device="cpu",
    )
    assert j.categories == ("hate", "spam")
    outs = j.predict(_items())
    for o in outs:
        assert o.error is None
        assert set(o.scores) == {"hate", "spam", OVERALL_KEY}
        assert all(0.0 <= v <= 1.0 for v in o.scores.values())


def test_logprob_llama_guard_is_an_overall_score(policy, tiny_lm: Path) -> None:
    j = _judge(
        policy,
        model=str(tiny_lm),
        preset="llama_guard_3",
        mode="logprob",
        device="cpu",
        category_scores=False,
    )
    assert j.categories == ()  # P(unsafe) is not spread over categories
    outs = j.predict(_items())
    assert all(set(o.scores) == {OVERALL_KEY} and 0 <= o.scores[OVERALL_KEY] <= 1 for o in outs)
    fp = j.fingerprint()
    assert (
        fp["mode"] == "logprob"
        and fp["template_hash"]
        and fp["backend"]["backend"] == "transformers"
    )


def test_prefix_reuse_does_not_change_scores(policy, tiny_lm: Path) -> None:
    a = _judge(policy, model=str(tiny_lm), preset="llama_guard_3", device="cpu", reuse_prefix=True)
    b = _judge(policy, model=str(tiny_lm), preset="llama_guard_3", device="cpu", reuse_prefix=False)
    for x, y in zip(a.predict(_items()), b.predict(_items())):
        assert math.isclose(x.scores[OVERALL_KEY], y.scores[OVERALL_KEY], abs_tol=1e-4)


@pytest.mark.parametrize("mode", ["generate", "self_consistency"])
def test_random_model_output_is_a_parse_failure_never_a_label(
    policy, tiny_lm: Path, mode: str
) -> None:
    j = _judge(
        policy,
        model=str(tiny_lm),
        preset="platform_cot",
        mode=mode,
        device="cpu",
        max_new_tokens=8,
        samples=2,
    )
    for o in j.predict(_items(2)):
        assert o.error_type == "parse_failure" and o.scores == {}
        assert o.raw_output is not None


def test_logprob_needs_label_tokens(policy, tiny_lm: Path) -> None:
    from audit.errors import ModeratorError

    with pytest.raises(ModeratorError) as exc:
        _judge(policy, model=str(tiny_lm), preset="platform_cot", mode="logprob")
    assert "params.mode" in exc.value.render()


def _verdict(user: str) -> str:
    bad = "I will hurt you tomorrow" in user
    v = {
        "violations": ["violent_threats"] if bad else [],
        "rationale": "threat of harm" if bad else "benign",
    }
    return "The post is analysed step by step.\nVERDICT: " + json.dumps(v)


def test_generate_and_self_consistency_against_a_server(policy) -> None:
    with StubOpenAIServer() as srv:
        srv.default = ok(_verdict)
        g = _judge(
            policy,
            model="stub-model",
            backend="openai_compat",
            base_url=srv.base_url,
            preset="platform_cot",
            mode="generate",
        )
        outs = g.predict(_items())
        assert outs[1].scores["violent_threats"] == 1.0 and outs[0].scores["violent_threats"] == 0.0
        assert outs[1].rationale == "threat of harm" and outs[1].scores[OVERALL_KEY] == 1.0
        sc = _judge(
            policy,
            model="stub-model",
            backend="openai_compat",
            base_url=srv.base_url,
            preset="platform_cot",
            mode="self_consistency",
            samples=3,
        )
        o = sc.predict(_items(2))[1]
        assert o.scores["violent_threats"] == 1.0
        assert json.loads(o.raw_output)["agreement"] == 1.0


def test_judge_rationale_in_mlflow_disagreement_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runs = tmp_path / "runs"
    cfg = base_config(write_suite(tmp_path), runs)
    with StubOpenAIServer() as srv:
        srv.default = ok(_verdict)
        cfg["moderators"] = [
            {
                "name": "judge",
                "type": "llm_judge",
                "batch_size": 8,
                "params": {
                    "model": "stub-model",
                    "backend": "openai_compat",
                    "base_url": srv.base_url,
                    "preset": "platform_cot",
                    "mode": "generate",
                    "categories": ["hate", "harassment", "violent_threats", "minor_sexual"],
                },
            },
            {"name": "clf", "type": "fake", "params": {"seed": 4}},
        ]
        r = run_cli(capsys, "run", str(write_config(tmp_path / "run.yaml", cfg)))
    assert r.code == 0, r.err
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test")
    child = next(
        x
        for x in client.search_runs([exp.experiment_id])
        if x.data.tags.get("audit.moderator") == "judge"
    )
    table = json.loads(Path(client.download_artifacts(child.info.run_id, "fp_fn.json")).read_text())
    rows = [dict(zip(table["columns"], d)) for d in table["data"]]
    assert rows and all(
        x["rationale"] in ("benign", "threat of harm", None) or "redacted" in x["rationale"]
        for x in rows
    )
    assert any(x["rationale"] == "benign" for x in rows)
    parent = next(
        x
        for x in client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in x.data.tags
    )
    assert "disagreements" in {a.path for a in client.list_artifacts(parent.info.run_id)}


def test_logprob_llama_guard_category_scores_from_the_first_code(policy, tiny_lm: Path) -> None:
    from audit.moderators.judge import prompts

    j = _judge(policy, model=str(tiny_lm), preset="llama_guard_3", mode="logprob", device="cpu")
    assert j.code_scores and j.categories == j.judged and j.fingerprint()["code_scores"]
    items = _items()
    outs = j.predict(items)
    codes = prompts._llama_guard_codes(policy, list(j.judged))
    edges = [
        (e.source, e.target)
        for e in policy.mapping("llama_guard_3").edges
        if e.target in j.categories and e.source in codes
    ]
    parts = [j._render(it) for it in items]
    ref = j.backend.next_token_probs(
        parts[0].prefix,
        [p.suffix + "unsafe\nS" for p in parts],
        {c: [c[1:]] for c in codes},
        reuse_prefix=False,
    )
    for o, r in zip(outs, ref):
        assert o.error is None
        p_unsafe = o.scores[OVERALL_KEY]
        assert abs(sum(r[c] for c in codes) - 1.0) < 1e-6
        for cat in j.categories:
            want = p_unsafe * min(1.0, sum(r[c] for c, t in edges if t == cat))
            assert math.isclose(o.scores[cat], want, abs_tol=1e-4)
            assert 0.0 <= o.scores[cat] <= p_unsafe + 1e-9


def test_llama_guard_codes_the_tokenizer_cannot_separate_are_a_clear_error(
    policy, tiny_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.errors import ModeratorError

    j = _judge(policy, model=str(tiny_lm), preset="llama_guard_3", mode="logprob", device="cpu")
    real = j.backend.next_token_probs

    def picky(prefix, suffixes, candidates, **kw):
        if "S1" in candidates:
            raise ValueError("candidates 'S1' and 'S10' share the first token '1'")
        return real(prefix, suffixes, candidates, **kw)

    monkeypatch.setattr(j.backend, "next_token_probs", picky)
    with pytest.raises(ModeratorError) as err:
        j.predict(_items())
    assert err.value.field == "params.category_scores" and "category_scores: false" in str(
        err.value.render()
    )
