"""Item outputs of the judge's ``generate`` / ``self_consistency`` modes: parsed
verdicts vote per category, parse failures and transport failures are kept apart
(docs/methods.md §5)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from audit.moderators.judge import parsers
from audit.moderators.judge.backends._common import GenOut, ItemError
from audit.schema import OVERALL_KEY, PARSE_FAILURE, ModeratorOutput, error_class

if TYPE_CHECKING:
    from audit.policy import Policy

__all__ = ["item_failure", "no_vote_type", "tally"]


def item_failure(res: object) -> ModeratorOutput | None:
    """The item's error output when a backend returned an ItemError, else None."""
    if not isinstance(res, ItemError):
        return None
    return ModeratorOutput(error=f"{res.kind}: {res.message}", error_type=res.kind)


def tally(
    i: int,
    calls: list[tuple[str | None, list[list[GenOut | ItemError]]]],
    sc: bool,
    fmt: str,
    policy: Policy,
    judged: Sequence[str],
    categories: Sequence[str],
) -> ModeratorOutput:
    """Item ``i``'s output from its generations across calls: parsed verdicts vote
    per category (a parse failure never votes), the overall score is the
    any-violation vote share (or the highest category share)."""
    votes: list[parsers.Verdict] = []
    failures: list[str] = []
    failure_types: list[str] = []
    raws: list[str] = []
    per_cat_votes: dict[str, list[bool]] = {c: [] for c in judged}
    unsafe_votes: list[bool] = []
    for one_cat, results in calls:
        for g in results[i]:
            fail = item_failure(g)
            if fail is not None or not isinstance(g, GenOut):
                failures.append((fail.error if fail else None) or "error")
                failure_types.append((fail.error_type if fail else None) or "engine_error")
                continue
            raws.append(g.text)
            v = parsers.parse(g.text, fmt, policy, category=one_cat)
            if v.status != "ok":
                failures.append(v.reason or "parse failure")
                failure_types.append(PARSE_FAILURE)
                continue
            votes.append(v)
            cats = [one_cat] if one_cat is not None else list(judged)
            for c in cats:
                per_cat_votes[c].append(c in v.violations)
            if one_cat is None and v.unsafe is not None:
                unsafe_votes.append(bool(v.unsafe))
    raw = raws[0] if len(raws) == 1 else json.dumps(raws, ensure_ascii=False)
    if not votes:
        # A parse failure only when the model answered something unparsable; an item
        # whose every call failed in transport is a transient error (retried on the
        # next run, never cached), a model error otherwise.
        kind = no_vote_type(failure_types)
        first = failure_types.index(kind) if kind in failure_types else 0
        return ModeratorOutput(
            error=failures[first] if failures else "no output",
            error_type=kind,
            raw_output=raw,
        )
    scores: dict[str, float] = {}
    for c in categories:
        if per_cat_votes[c]:
            scores[c] = sum(per_cat_votes[c]) / len(per_cat_votes[c])
    if unsafe_votes:
        scores[OVERALL_KEY] = sum(unsafe_votes) / len(unsafe_votes)
    elif scores:
        scores[OVERALL_KEY] = max(scores.values())
    rationale = next((v.rationale for v in votes if v.rationale), None)
    if sc:
        agreement = max(
            (max(sum(x), len(x) - sum(x)) / len(x) for x in per_cat_votes.values() if x),
            default=float("nan"),
        )
        raw = json.dumps(
            {"samples": raws, "parse_failures": len(failures), "agreement": agreement},
            ensure_ascii=False,
        )
    return ModeratorOutput(scores=scores, rationale=rationale, raw_output=raw)


def no_vote_type(failure_types: list[str]) -> str:
    """The outcome of an item that produced no verdict (see audit.schema.error_class)."""
    if not failure_types or PARSE_FAILURE in failure_types:
        return PARSE_FAILURE
    classes = [error_class(t) for t in failure_types]
    if all(c == "transient" for c in classes):
        return failure_types[0]
    return next(t for t, c in zip(failure_types, classes, strict=True) if c == "model_error")
