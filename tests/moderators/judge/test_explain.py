"""Judges on a documented subset (``sample:``/``suites:``) and post-hoc rationales for
their disagreements (``explain:``), down to the MLflow per-item disagreement table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from audit.moderators import MODERATORS
from audit.schema import Item, content_hash
from tests.helpers.cli import run_cli
from tests.helpers.suites import CARD, base_config, write_config, write_suite
from tests.helpers.tiny_lm import build_tiny_causal_lm


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_causal_lm(tmp_path_factory.mktemp("lm") / "tiny")


def _judge_spec(lm: Path, **extra) -> dict:
    spec = {
        "name": "judge",
        "type": "llm_judge",
        "batch_size": 8,
        "params": {
            "model": str(lm),
            "preset": "platform_binary",
            "mode": "logprob",
            "device": "cpu",
            "max_length": 4096,
        },
        "thresholds": {"default": 0.5},
    }
    spec.update(extra)
    return spec


def test_sample_is_reproducible_stratified_and_recorded(policy, tmp_path: Path) -> None:
    from audit.suites.loader import load_suite

    suite = load_suite(str(write_suite(tmp_path)), policy)
    a = suite.sample(10, seed=3)
    b = suite.sample(10, seed=3)
    c = suite.sample(10, seed=4)
    assert a.dataset["id"] == b.dataset["id"] and len(a) == 10
    assert a.dataset["id"] != c.dataset["id"]
    assert a.digest == b.digest != suite.digest != c.digest
    # row order kept, ids from the parent, gold carried along
    assert a.dataset["id"] == sorted(a.dataset["id"])
    pos = {iid: k for k, iid in enumerate(suite.dataset["id"])}
    for k, iid in enumerate(a.dataset["id"]):
        assert (a.labels[k] == suite.labels[pos[iid]]).all()
        assert a.overall[k] == suite.overall[pos[iid]]
    # stratified: each any-violation stratum keeps its share (largest remainder)
    share = (suite.overall == 1).mean()
    assert abs((a.overall == 1).sum() - 10 * share) <= 1
    unstrat = suite.sample(10, seed=3, stratify=False)
    assert len(unstrat) == 10 and unstrat.source["sample"]["stratify"] is False
    meta = a.source["sample"]
    assert meta["n"] == 10 and meta["of"] == len(suite) and meta["parent_digest"] == suite.digest
    assert suite.sample(len(suite) + 5) is suite


def test_explain_writes_post_hoc_rationales_for_disagreements(policy, tiny_lm: Path) -> None:
    cls = MODERATORS.get("llm_judge")
    j = cls(
        cls.Params(model=str(tiny_lm), preset="platform_binary", mode="logprob", device="cpu"),
        policy,
    )
    assert j.explain_unsupported() is None
    items = [
        Item(f"i{k}", content_hash({"caption": t}), {"caption": t})
        for k, t in enumerate(["nice video of my dog", "I will hurt you tomorrow"])
    ]
    outs = j.explain(items, [True, False], max_new_tokens=6)
    assert outs[0].raw_output.startswith("UNSAFE\nReason:")
    assert outs[1].raw_output.startswith("SAFE\nReason:")
    for o in outs:
        assert (o.error is None and o.rationale and "\n" not in o.rationale) or (
            o.error_type == "empty_rationale" and o.rationale is None
        )
    # greedy: the same rationale again
    assert [o.rationale for o in j.explain(items, [True, False], max_new_tokens=6)] == [
        o.rationale for o in outs
    ]
    lg = cls(cls.Params(model=str(tiny_lm), preset="llama_guard_3", device="cpu"), policy)
    assert "rationale slot" in (lg.explain_unsupported() or "")


def test_continuation_is_the_start_of_the_answer(tiny_lm: Path) -> None:
    from audit.moderators.judge.backends.hf import HFBackend

    b = HFBackend(str(tiny_lm), device="cpu")
    plain = b.encode_many("policy text . content : ", ["hate you", "nice dog"])
    tailed = b.encode_many("policy text . content : ", ["hate you", "nice dog"], ["unsafe", ""])
    tail_ids = b._ids("unsafe", special=False)
    assert tailed[0][1] == plain[0][1] + tail_ids  # after the generation prompt
    assert tailed[1] == plain[1]
    with pytest.raises(ValueError, match="one entry per suffix"):
        b.encode_many("p", ["a", "b"], ["x"])


def test_run_subset_explain_and_mlflow_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_lm: Path
) -> None:
    runs = tmp_path / "runs"
    suite = write_suite(tmp_path)
    other = write_suite(tmp_path / "other", name="other", card={**CARD, "name": "other"})
    cfg = base_config(suite, runs)
    cfg["suites"].append({"name": str(other)})
    cfg["moderators"] = [
        {"name": "clf", "type": "fake", "params": {"seed": 4}, "batch_size": 8},
        _judge_spec(
            tiny_lm,
            suites=["mini"],
            sample={"n": 12, "seed": 0},
            explain={"max_items": 3, "max_new_tokens": 6},
        ),
    ]
    path = write_config(tmp_path / "run.yaml", cfg)
    r = run_cli(capsys, "run", str(path))
    assert r.code == 0, r.err
    rec_path = next(runs.glob("*/record.json"))
    rec = json.loads(rec_path.read_text())
    entries = {(e["suite"], e["moderator"]): e for e in rec["results"]}
    assert ("other", "judge") not in entries and ("other", "clf") in entries
    judge = entries[("mini", "judge")]
    assert judge["n"] == 12 and judge["sample"]["of"] == 40 and judge["sample"]["seed"] == 0
    assert entries[("mini", "clf")]["sample"] is None
    ex = judge["explained"]
    assert ex["kind"] == "post_hoc" and 1 <= ex["requested"] <= 3
    assert ex["written"] + ex["failed"] == ex["requested"] and ex["written"] >= 1
    import pandas as pd

    preds = pd.read_parquet(rec_path.parent / judge["predictions"])
    explained = {it["id"] for it in ex["items"] if "error" not in it}
    have = set(preds.loc[preds["rationale"].notna(), "id"])
    assert explained == have
    for it in ex["items"]:  # every explained item is a real disagreement
        row = preds.set_index("id").loc[it["id"]]
        if "gold" in it["against"]:
            assert int(row["gold.overall"]) != int(bool(row["pred.overall"]))

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{runs / 'mlflow.db'}")
    exp = client.get_experiment_by_name("test")
    parent = next(
        x
        for x in client.search_runs([exp.experiment_id])
        if "mlflow.parentRunId" not in x.data.tags
    )
    table = json.loads(
        Path(
            client.download_artifacts(parent.info.run_id, "disagreements/mini_judge_items.json")
        ).read_text()
    )
    rows = [dict(zip(table["columns"], d)) for d in table["data"]]
    assert {x["against"] for x in rows} <= {"gold", "clf"}
    with_r = [x for x in rows if x["rationale"]]
    assert with_r and all(x["rationale_kind"] == "post_hoc" for x in with_r)
    assert rows[: len(with_r)] == with_r  # rows with a rationale come first
    assert {x["id"] for x in with_r} <= explained
    for x in rows:  # restricted content never reaches MLflow
        assert "RESTRICTED-SECRET" not in (x["text"] or "")

    # a second run reuses the cached rationales
    r = run_cli(capsys, "run", str(path))
    assert r.code == 0, r.err
    rec2 = json.loads(
        max(runs.glob("*/record.json"), key=lambda p: p.stat().st_mtime_ns).read_text()
    )
    ex2 = next(e for e in rec2["results"] if e["moderator"] == "judge")["explained"]
    assert ex2["cached"] == ex2["requested"] == ex["requested"]


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"explain": {"max_items": 2}, "params_preset": "llama_guard_3"}, "moderators[1].explain"),
        ({"suites": ["nope"]}, "moderators[1].suites"),
    ],
)
def test_bad_explain_or_suites_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tiny_lm: Path, patch: dict, field: str
) -> None:
    runs = tmp_path / "runs"
    cfg = base_config(write_suite(tmp_path), runs)
    spec = _judge_spec(tiny_lm)
    preset = patch.pop("params_preset", None)
    if preset:
        spec["params"]["preset"] = preset
    spec.update(patch)
    cfg["moderators"] = [cfg["moderators"][0], spec]
    r = run_cli(capsys, "run", str(write_config(tmp_path / "run.yaml", cfg)))
    assert r.code == 2
    assert field in r.err and "Traceback" not in r.err
    assert not runs.exists() or not list(runs.glob("*/record.json"))


def test_sample_config_rejects_bad_n(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = base_config(write_suite(tmp_path), tmp_path / "runs")
    cfg["moderators"][0]["sample"] = {"n": 0}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    r = run_cli(capsys, "validate", str(path))
    assert r.code == 2 and "moderators[0].sample" in r.out + r.err
