"""Rationales for an LLM judge's disagreements (``explain:`` in a run config).

A judge scored in ``logprob`` mode gives a probability and no reasoning. Auditors
reviewing where the judge disagrees with gold or with an at-scale classifier need
the judge's stated reason, so after every moderator has scored a suite:

1. disagreements are found on the overall decision: judge ≠ gold (gold known) and
   judge ≠ each other moderator (both decided, joined on item id and content hash);
   errored items, items that already have a rationale (``generate`` mode) and
   restricted items (their rationale could never be shown) are left out;
2. the strongest are chosen, at most ``max_items`` per suite: disagreements with gold
   first, then those with more moderators, then the judge's distance from its
   threshold (most confident first), then item id;
3. the judge writes a one-line reason after its own decision
   (:meth:`audit.moderators.judge.llm_judge.LLMJudge.explain`) — a post-hoc rationale,
   marked as such in the record and the MLflow table.

Rationales are cached under the judge's fingerprint plus the explain settings and the
decision, so a resumed or repeated run does not regenerate them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from audit.config import ExplainSpec
    from audit.engine.results import SuiteResult
    from audit.schema import Item, ModeratorOutput

#: how rationales written by :func:`explain_disagreements` are labelled
POST_HOC = "post_hoc"


def disagreements(res: SuiteResult, others: list[SuiteResult]) -> dict[int, list[str]]:
    """Row index → what the judge's overall decision disagrees with (``gold`` and/or
    other moderators' names)."""
    ids, hashes = res.suite.column("id"), res.suite.column("content_hash")
    j = res.overall_pred
    out: dict[int, list[str]] = {}
    for i in range(res.n):
        if res.errors[i] is None and not np.isnan(j[i]):
            g = int(res.suite.overall[i])
            if g >= 0 and g != int(j[i]):
                out.setdefault(i, []).append("gold")
    for o in others:
        pos = {
            (iid, h): k
            for k, (iid, h) in enumerate(zip(o.suite.column("id"), o.suite.column("content_hash")))
        }
        for i in range(res.n):
            k = pos.get((ids[i], hashes[i]))
            if k is None or res.errors[i] is not None or o.errors[k] is not None:
                continue
            a, b = j[i], o.overall_pred[k]
            if not (np.isnan(a) or np.isnan(b)) and a != b:
                out.setdefault(i, []).append(o.spec.name)
    return out


def explain_disagreements(
    res: SuiteResult,
    others: list[SuiteResult],
    judge: Any,
    spec: ExplainSpec,
    *,
    cache: Any = None,
) -> dict[str, Any]:
    """Write post-hoc rationales into ``res.rationales`` for the judge's strongest
    disagreements; returns the summary stored in the run record."""
    from audit.engine.cache import fingerprint_hash
    from audit.suites import suite_items

    found = disagreements(res, others)
    cands = _candidates(res, found)
    chosen = cands[: spec.max_items]
    summary: dict[str, Any] = {
        "kind": POST_HOC,
        "disagreements": len(found),
        "eligible": len(cands),
        "requested": len(chosen),
        "written": 0,
        "failed": 0,
        "cached": 0,
        "max_new_tokens": spec.max_new_tokens,
        "items": [],
    }
    if not chosen:
        return summary
    all_items = suite_items(res.suite)
    items = [all_items[i] for i in chosen]
    decisions = [bool(res.overall_pred[i]) for i in chosen]
    fp = fingerprint_hash({**res.fingerprint, "explain": spec.model_dump(mode="json")})
    got, summary["cached"] = _rationales(
        items, decisions, f"{fp}:flag", f"{fp}:pass", judge, spec, cache
    )
    ids = res.suite.column("id")
    for k, i in enumerate(chosen):
        o = got[k]
        entry = {
            "id": ids[i],
            "against": found[i],
            "decision": "flag" if decisions[k] else "pass",
        }
        if o.error is None and o.rationale:
            res.rationales[i] = o.rationale
            summary["written"] += 1
        else:
            summary["failed"] += 1
            entry["error"] = o.error
        summary["items"].append(entry)
    return summary


def _candidates(res: SuiteResult, found: dict[int, list[str]]) -> list[int]:
    """Disagreements eligible for a rationale (none yet, not restricted), strongest
    first: against gold, against more moderators, further from the threshold, by id."""
    restricted = (
        res.restricted_mask if res.restricted_mask is not None else np.zeros(res.n, dtype=bool)
    )
    thr = res.thresholds.get("overall", res.thresholds.get("default", 0.5))
    cands = [i for i in found if res.rationales[i] is None and not restricted[i]]
    ids = res.suite.column("id")
    cands.sort(
        key=lambda i: (
            "gold" not in found[i],
            -len(found[i]),
            -abs(float(res.overall_score[i]) - thr),
            ids[i],
        )
    )
    return cands


def _rationales(
    items: list[Item],
    decisions: list[bool],
    flag_key: str,
    pass_key: str,
    judge: Any,
    spec: ExplainSpec,
    cache: Any,
) -> tuple[dict[int, ModeratorOutput], int]:
    """Per chosen item (by position): its rationale output, from the cache (keyed by the
    decision) or written by the judge now; and how many came from the cache. Fresh
    rationales without an error are cached."""
    keys = {True: flag_key, False: pass_key}
    got: dict[int, ModeratorOutput] = {}
    if cache is not None:
        for d in (True, False):
            rows = [k for k, dec in enumerate(decisions) if dec is d]
            hit = cache.get_many(keys[d], [items[k].content_hash for k in rows])
            for k in rows:
                if items[k].content_hash in hit:
                    got[k] = hit[items[k].content_hash]
    n_cached = len(got)
    todo = [k for k in range(len(items)) if k not in got]
    if todo:
        outs = judge.explain(
            [items[k] for k in todo],
            [decisions[k] for k in todo],
            max_new_tokens=spec.max_new_tokens,
        )
        for k, o in zip(todo, outs):
            got[k] = o
        if cache is not None:
            for d in (True, False):
                fresh = {
                    items[k].content_hash: got[k]
                    for k in todo
                    if decisions[k] is d and got[k].error is None
                }
                if fresh:
                    cache.put_many(keys[d], fresh)
    return got, n_cached
