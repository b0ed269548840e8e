"""The ``learned`` fusion rule on a planted suite: one informative member, one noise
member; fitted on train, evaluated on test, coefficients recorded."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from sklearn.metrics import roc_auc_score

from audit.errors import ModeratorError
from audit.moderators.fusion import FusionModerator
from audit.policy import load_policy
from audit.suites import load_suite, suite_items
from tests.helpers.suites import CARD, write_suite

N = 300  # items per split


@pytest.fixture(scope="module")
def planted(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """A two-split suite labelled on harassment (30 % positive) and the two members'
    planted scores: ``info`` separates the classes (shifted logits, noisy), ``noise``
    is uniform and often high, so the max rule is mostly decided by noise."""
    rng = random.Random(7)
    rows: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    info: dict[str, dict[str, float]] = {}
    noise: dict[str, dict[str, float]] = {}
    for split in rows:
        for i in range(N):
            y = rng.random() < 0.3
            iid = f"{split}-{i:03d}"
            rows[split].append(
                {"id": iid, "caption": f"post {iid}", "labels": ["harassment"] if y else []}
            )
            z = rng.gauss(1.2 if y else -1.2, 1.0)
            info[iid] = {"harassment": 1 / (1 + math.exp(-z)) * 0.7}  # never above 0.7
            noise[iid] = {"harassment": rng.uniform(0.2, 1.0)}
    card = dict(CARD)
    card["labels"] = {"covers": ["harassment"], "list_column": "labels"}
    card["source"] = {
        "local": {
            "root": "data",
            "format": "jsonl",
            "splits": {"train": "train.jsonl", "test": "test.jsonl"},
        }
    }
    card.pop("rationale_column")
    card["name"] = "planted"
    card["fields"] = {"caption": "caption"}
    card["slices"] = {}
    card.pop("constants")
    card_path = write_suite(
        tmp_path_factory.mktemp("planted"), name="planted", card=card, rows=rows["test"]
    )
    (card_path.parent / "data" / "train.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows["train"]), encoding="utf-8"
    )
    return card_path, info, noise


def _fusion(card: Path, info: Any, noise: Any, rule: str, **learned: Any) -> FusionModerator:
    members = {
        "info": {"type": "fake", "params": {"categories": ["harassment"], "scores": info}},
        "noise": {"type": "fake", "params": {"categories": ["harassment"], "scores": noise}},
    }
    params: dict[str, Any] = {"rule": rule, "members": members}
    if rule == "learned":
        params["learned"] = {
            "suite": str(card),
            "fit_split": "train",
            "eval_split": "test",
            **learned,
        }
    return FusionModerator(
        FusionModerator.Params.model_validate(params), load_policy("platform-v1")
    )


def _auroc(mod: FusionModerator, card: Path) -> float:
    suite = load_suite(str(card), load_policy("platform-v1"), split="test")
    items = suite_items(suite)
    outs = mod.predict(items)
    assert all(o.error is None for o in outs)
    k = list(suite.categories).index("harassment")
    y = [int(row[k]) for row in suite.labels]
    return float(roc_auc_score(y, [o.scores["harassment"] for o in outs]))


def test_learned_beats_max_on_held_out_auroc_and_is_recorded(planted: Any) -> None:
    card, info, noise = planted
    learned = _fusion(card, info, noise, "learned")
    auc_learned = _auroc(learned, card)
    auc_max = _auroc(_fusion(card, info, noise, "max"), card)
    test = load_suite(str(card), load_policy("platform-v1"), split="test")
    k = list(test.categories).index("harassment")
    auc_info = float(
        roc_auc_score(
            [int(r[k]) for r in test.labels],
            [info[it.id]["harassment"] for it in suite_items(test)],
        )
    )
    assert auc_learned > auc_max + 0.1, (auc_learned, auc_max)
    assert auc_learned == pytest.approx(auc_info, abs=0.02)  # it learned to follow info
    rec = learned.fingerprint()["learned"]
    assert rec["fit_split"] == "train" and rec["eval_split"] == "test"
    assert rec["members"] == ["info", "noise"] and rec["n_items"] == N
    fit = rec["categories"]["harassment"]
    assert fit["members"] == ["info", "noise"] and fit["n"] == N
    w_info, w_noise = fit["coef"]
    assert w_info > 0.5 and abs(w_noise) < 0.5 * w_info
    json.dumps(rec)  # JSON-ready for the run record
    # the evidence names the rule and the member that contributed most
    one = learned.predict(
        suite_items(load_suite(str(card), load_policy("platform-v1"), split="test"))[:1]
    )[0]
    assert one.evidence is not None and one.evidence["rule"] == "learned"


def test_fit_split_items_are_never_scored(planted: Any) -> None:
    card, info, noise = planted
    learned = _fusion(card, info, noise, "learned")
    train = suite_items(load_suite(str(card), load_policy("platform-v1"), split="train"))
    outs = learned.predict(train[:3])
    assert [o.error_type for o in outs] == ["fit_leak"] * 3
    assert "planted:train" in (outs[0].error or "") or "train" in (outs[0].error or "")


def test_fitting_on_the_evaluation_split_is_refused(planted: Any) -> None:
    card, info, noise = planted
    with pytest.raises(ModeratorError) as e:
        _fusion(card, info, noise, "learned", fit_split="test")
    msg = str(e.value)
    assert "fit_split 'test' == eval_split 'test'" in msg and "params.learned.fit_split" in msg


def test_learned_needs_its_spec_and_enough_labels(planted: Any) -> None:
    card, info, noise = planted
    with pytest.raises(ModeratorError, match="needs the split to fit on"):
        FusionModerator(
            FusionModerator.Params.model_validate(
                {
                    "rule": "learned",
                    "members": {
                        "a": {"type": "fake", "params": {}},
                        "b": {"type": "fake", "params": {}},
                    },
                }
            ),
            load_policy("platform-v1"),
        )
    too_strict = _fusion(card, info, noise, "learned", min_per_class=10_000)
    with pytest.raises(ModeratorError, match="could not be fitted on any category"):
        too_strict.fingerprint()
