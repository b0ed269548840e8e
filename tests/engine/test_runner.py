from __future__ import annotations

import math
from pathlib import Path

import pytest

from audit.engine.cache import PredictionCache, fingerprint_hash
from audit.engine.runner import score_items
from audit.errors import RunError
from audit.schema import Item, ModeratorOutput, content_hash


class Scripted:
    """Minimal in-test moderator: scores from text length; fails on ids in ``bad``."""

    categories = ("hate",)
    kind = "classifier"

    def __init__(self, bad: set[str] = frozenset(), explode: set[str] = frozenset()) -> None:
        self.bad, self.explode, self.calls = bad, explode, 0

    def fingerprint(self) -> dict:
        return {"v": 1}

    def predict(self, items):
        self.calls += 1
        if any(it.id in self.explode for it in items):
            raise RuntimeError("boom")
        return [
            ModeratorOutput(error="bad item", error_type="exception")
            if it.id in self.bad
            else ModeratorOutput(scores={"hate": len(it.text()) / 100})
            for it in items
        ]


def items(n: int, dup_every: int = 0) -> list[Item]:
    out = []
    for i in range(n):
        text = f"text number {i % dup_every if dup_every else i}"
        out.append(
            Item(id=f"i{i}", content_hash=content_hash({"prompt": text}), fields={"prompt": text})
        )
    return out


def test_cache_roundtrip_and_resume(tmp_path: Path) -> None:
    cache = PredictionCache(tmp_path / "c.sqlite")
    its = items(25)
    m = Scripted()
    r1 = score_items(
        lambda: m, m.fingerprint(), its, batch_size=10, cache=cache, error_budget=0.0, where="t"
    )
    assert m.calls == 3 and not r1.cached.any()
    m2 = Scripted()
    r2 = score_items(
        lambda: m2, m2.fingerprint(), its, batch_size=10, cache=cache, error_budget=0.0, where="t"
    )
    assert m2.calls == 0 and r2.cached.all()
    assert [o.scores for o in r1.outputs] == [o.scores for o in r2.outputs]
    # a changed fingerprint is a different model: nothing cached
    fh = fingerprint_hash({"v": 2})
    assert cache.get_many(fh, [it.content_hash for it in its]) == {}


def test_model_not_loaded_when_everything_cached(tmp_path: Path) -> None:
    cache = PredictionCache(tmp_path / "c.sqlite")
    its = items(5)
    m = Scripted()
    score_items(lambda: m, {"v": 1}, its, batch_size=2, cache=cache, error_budget=0, where="t")

    def factory():
        raise AssertionError("model must not be loaded on a fully cached rerun")

    r = score_items(factory, {"v": 1}, its, batch_size=2, cache=cache, error_budget=0, where="t")
    assert r.cached.all()


def test_errors_kept_as_data_not_labels(tmp_path: Path) -> None:
    its = items(20)
    m = Scripted(bad={"i3"})
    r = score_items(lambda: m, {"v": 1}, its, batch_size=8, cache=None, error_budget=0.1, where="t")
    assert r.n_errors == 1
    assert r.outputs[3].error == "bad item" and r.outputs[3].scores == {}
    assert math.isclose(r.error_rate, 1 / 20)


def test_transient_errors_are_retried_on_rerun(tmp_path: Path) -> None:
    cache = PredictionCache(tmp_path / "c.sqlite")
    its = items(10)
    m = Scripted(bad={"i1"})
    score_items(lambda: m, {"v": 1}, its, batch_size=4, cache=cache, error_budget=0.5, where="t")
    m2 = Scripted()
    r = score_items(lambda: m2, {"v": 1}, its, batch_size=4, cache=cache, error_budget=0, where="t")
    assert r.n_errors == 0 and int((~r.cached).sum()) == 1 and m2.calls == 1


def test_batch_exception_recorded_per_item_and_budget_enforced() -> None:
    its = items(30)
    m = Scripted(explode={"i0"})
    with pytest.raises(RunError) as exc:
        score_items(
            lambda: m, {"v": 1}, its, batch_size=10, cache=None, error_budget=0.2, where="s×m"
        )
    msg = exc.value.render()
    assert "error budget exceeded" in msg and "runner.error_budget" in msg
    # stops early: the first batch already exceeds 20% of 30
    assert m.calls == 1


def test_duplicate_content_scored_once() -> None:
    its = items(12, dup_every=3)
    m = Scripted()
    r = score_items(lambda: m, {"v": 1}, its, batch_size=100, cache=None, error_budget=0, where="t")
    assert m.calls == 1
    assert r.outputs[0].scores == r.outputs[3].scores == r.outputs[6].scores
    assert all(o.error is None for o in r.outputs)


def test_duplicates_of_a_failing_item_each_count_against_the_budget() -> None:
    from audit.engine.runner import commit_batch, pending_groups

    its = items(12, dup_every=3)  # i0, i3, i6, i9 share one text
    groups = pending_groups(its, [None] * 12)
    assert list(groups) == [0, 1, 2] and groups[0] == [0, 3, 6, 9]
    outputs: list[ModeratorOutput | None] = [None] * 12
    seen: list[int] = []
    errors = commit_batch(
        outputs,
        groups,
        [0],
        [ModeratorOutput(error="x")],
        items=its,
        model_key="k",
        cache=None,
        progress=seen.append,
    )
    assert (seen, errors) == ([4], 4) and outputs[9] is outputs[0]
    # the budget sees all four copies: 4 of 12 > 25%, the run stops
    with pytest.raises(RunError, match="4 of 12 items failed"):
        score_items(
            lambda: Scripted(bad={"i0"}),
            {"v": 1},
            its,
            batch_size=1,
            cache=None,
            error_budget=0.25,
            where="t",
        )
    r = score_items(
        lambda: Scripted(bad={"i0"}),
        {"v": 1},
        its,
        batch_size=1,
        cache=None,
        error_budget=0.4,
        where="t",
    )
    assert r.n_errors == 4 and r.batches == 3 and r.error_types == {"exception": 4}
