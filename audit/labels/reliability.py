"""Gold reliability read back from an agreement record, for the release gate
(docs/methods/labels.md §2, "Unreliable gold in the gate").

``audit agreement --out agreement.json`` marks a category whose Krippendorff's alpha
(nominal) is below the threshold, or undefined, as *unreliable gold*. A gate given the
record (``gold_agreement:`` in the rules, or ``--agreement FILE``) may then only warn on
that category: a difference measured against labels the annotators themselves do not
agree on is not evidence enough to block a release. The record is checked field by field
and must describe the suite version the candidate scored (its digest), so a stale record
cannot silence a gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.errors import ConfigError


class _Stat(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    value: float | None = None


class _Category(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    stats: dict[str, _Stat]
    unreliable_gold: bool


class _Suite(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    split: str = Field(min_length=1)
    digest: str = Field(min_length=1)


class _Settings(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    threshold: float = Field(gt=0.0, le=1.0)
    reliability_statistic: str = Field(min_length=1)


class _Record(BaseModel):
    """The parts of ``agreement.json`` (schema 1) the gate relies on."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    kind: Literal["agreement"]
    schema_: Literal[1] = Field(alias="schema")
    suite: _Suite
    settings: _Settings
    categories: dict[str, _Category] = Field(min_length=1)
    unreliable_gold: list[str]


def _check_consistent(rec: _Record, where: str) -> None:
    """The flags must follow from the alphas and the threshold (a hand-edited or
    truncated record could otherwise silence the gate on a category)."""
    stat = rec.settings.reliability_statistic
    flagged = sorted(c for c, v in rec.categories.items() if v.unreliable_gold)
    fix = "rewrite it with `audit agreement SUITE --out FILE`"
    if sorted(rec.unreliable_gold) != flagged:
        raise ConfigError(
            "agreement record's unreliable_gold list disagrees with its categories",
            where=where,
            field="unreliable_gold",
            expected=repr(flagged),
            actual=repr(sorted(rec.unreliable_gold)),
            fix=fix,
        )
    for c, v in rec.categories.items():
        if stat not in v.stats:
            raise ConfigError(
                "agreement record lacks its reliability statistic",
                where=where,
                field=f"categories.{c}.stats",
                expected=f"a {stat!r} entry",
                actual=repr(sorted(v.stats)),
                fix=fix,
            )
        a = v.stats[stat].value
        below = a is None or math.isnan(a) or a < rec.settings.threshold
        if below != v.unreliable_gold:
            raise ConfigError(
                f"agreement record contradicts itself: {stat} = {a} against threshold "
                f"{rec.settings.threshold}",
                where=where,
                field=f"categories.{c}.unreliable_gold",
                expected=repr(below),
                actual=repr(v.unreliable_gold),
                fix=fix,
            )


@dataclass(frozen=True)
class GoldReliability:
    """One suite split's gold reliability, as the gate uses it."""

    path: str
    suite: str
    split: str
    digest: str
    threshold: float
    statistic: str
    alpha: dict[str, float | None]
    unreliable: tuple[str, ...]

    def reason(self, category: str) -> str:
        """One line naming the category, its alpha and the threshold."""
        a = self.alpha.get(category)
        shown = "undefined" if a is None or math.isnan(a) else f"{a:.3f}"
        return (
            f"unreliable gold for {category} (Krippendorff α = {shown} < {self.threshold}, "
            f"{self.path})"
        )

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.path,
            "suite": self.suite,
            "split": self.split,
            "digest": self.digest,
            "threshold": self.threshold,
            "statistic": self.statistic,
            "unreliable_gold": {c: self.alpha.get(c) for c in self.unreliable},
        }


def read_gold_reliability(path: str | Path) -> GoldReliability:
    """Read and check an agreement record written by ``audit agreement --out``.

    Raises:
        ConfigError: unreadable, not an agreement record, or internally inconsistent
            (naming the file and the field).
    """
    from audit._util.validation import load_json_model

    try:
        rec = load_json_model(_Record, Path(path), what="agreement record (audit agreement)")
    except ConfigError as exc:
        if exc.fix is None:
            exc = type(exc)(
                exc.message,
                where=exc.where,
                field=exc.field,
                expected=exc.expected,
                actual=exc.actual,
                fix="rewrite it with `audit agreement SUITE --out FILE`",
            )
        raise exc from None
    _check_consistent(rec, str(path))
    stat = rec.settings.reliability_statistic
    return GoldReliability(
        str(path),
        rec.suite.name,
        rec.suite.split,
        rec.suite.digest,
        rec.settings.threshold,
        stat,
        {c: v.stats[stat].value for c, v in rec.categories.items()},
        tuple(rec.unreliable_gold),
    )
