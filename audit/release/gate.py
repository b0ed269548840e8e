"""Release gate: non-inferiority rules over a paired comparison (docs/methods.md §3).

Each rule × suite × category is one check with one status:

``pass`` / ``fail``
    Margin rules are one-sided non-inferiority tests at level ``alpha``: with the paired
    bootstrap delta ``Δ = candidate − baseline`` (:mod:`audit.release.compare`) and allowed loss
    ``δ`` (``margin``, or ``margin × |baseline|`` when ``relative``), a higher-is-better
    metric passes when the α-quantile of ``Δ`` is above ``−δ`` (lower-is-better: the
    (1 − α)-quantile below ``+δ``). Floors compare the candidate's point estimate.
    Budgets (``parse_failure_rate``, ``error_rate``, ``negative_flip_rate``) compare the
    candidate's rate with a maximum.
``uninformative``
    Minimum-detectable-effect check: ``n < min_n``, or the bootstrap interval's half-width
    exceeds ``δ`` (the golden set cannot resolve the margin). Treated like unverifiable
    for blocking rules unless the rule sets ``allow_uninformative: true``.
``unverifiable``
    A NaN value or bound, a missing slice or category, a policy version mismatch the
    rules do not allow. NaN never passes.

A suite scored on two versions (different digests) is refused outright unless the change
is declared with its ``audit suite diff`` (``suite_diffs:`` / ``--declared-diff``) or the
rules set ``allow_digest_mismatch``. A blocking check on a category that an agreement
record (``gold_agreement:`` / ``--agreement``) marks *unreliable gold* is downgraded to a
warning naming the category, its alpha and the threshold (docs/methods/labels.md §2).

The verdict is an **intersection–union test** (Berger 1982): the gate passes only if every
blocking check passes; each check is run at level α with no multiplicity correction, and
the overall test still has level α. Exit codes: 0 pass, 1 a blocking check failed, 3 no
blocking failure but a blocking check is unverifiable / uninformative; 2 for bad rules.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from audit.records import Check
from audit.release.compare import Side, compare_sides, declared_note
from audit.release.snapshot import resolve_side, write_snapshot

__all__ = [
    "Budget",
    "Budgets",
    "Check",
    "GateReport",
    "GateRules",
    "Rule",
    "evaluate_gate",
    "evaluate_rule",
    "junit_xml",
    "load_rules",
    "markdown_summary",
    "refusal_reasons",
    "resolve_side",
    "run_gate",
    "verdict",
    "write_snapshot",
]

if TYPE_CHECKING:
    from audit.change.suite_diff import DeclaredDiff

Severity = Literal["block", "warn"]


class Rule(BaseModel):
    """One metric rule; see configs/gates/README.md."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    name: str | None = None
    metric: str
    categories: list[str] | None = None
    suites: list[str] | None = None
    slice: dict[str, str] | None = None
    margin: float | None = Field(default=None, ge=0)
    relative: bool = False
    floor: float | None = None
    min_n: int = Field(default=0, ge=0)
    severity: Severity = "block"
    allow_uninformative: bool = False

    @model_validator(mode="after")
    def _check(self) -> Rule:
        from audit.errors import AuditError
        from audit.metrics import get_metric

        try:
            spec = get_metric(self.metric)
        except AuditError as exc:  # raised as a value error, so it names the rules file
            raise ValueError(f"{exc.message}; {exc.fix}" if exc.fix else exc.message) from None
        if spec.direction == "none":
            raise ValueError(f"metric {self.metric!r} has direction 'none' and cannot be gated")
        if self.margin is None and self.floor is None:
            raise ValueError("a rule needs a margin, a floor or both")
        if self.slice is not None and len(self.slice) != 1:
            raise ValueError("slice must be one mapping {slice_name: value}")
        return self


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max: float = Field(ge=0)
    severity: Severity = "block"
    categories: list[str] | None = None


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    parse_failure_rate: Budget | None = None
    error_rate: Budget | None = None
    negative_flip_rate: Budget | None = None


class GateRules(BaseModel):
    """A rules file (``configs/gates/<name>.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[1] = 1
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    n_boot: int = Field(default=1000, ge=50)
    seed: int = 0
    allow_digest_mismatch: bool = False
    allow_policy_mismatch: bool = False
    moderator_baseline: str | None = None
    moderator_candidate: str | None = None
    rules: list[Rule] = Field(default_factory=list)
    budgets: Budgets = Field(default_factory=Budgets)
    suite_diffs: list[str] = Field(default_factory=list)
    """Declared suite diffs (``suite_diff.json`` of ``audit suite diff --out``; the CLI's
    ``--declared-diff`` adds to them): each must describe exactly the baseline → candidate
    digest change of its suite (else exit 2); that suite is then compared on the items
    both versions share unchanged. An undeclared change is refused (exit 3)."""
    gold_agreement: list[str] = Field(default_factory=list)
    """Agreement records (``agreement.json`` of ``audit agreement --out``) of suites the
    candidate scored: blocking checks on a category they mark unreliable gold only warn."""
    pathways_manifest: str | None = None
    """A pathway manifest (``configs/pathways.yaml``): its sync check becomes one blocking
    check per problem (:func:`audit.change.pathways.gate_checks`)."""


def load_rules(path: Path) -> GateRules:
    """Strict YAML → :class:`GateRules` (ConfigError, exit 2, on any problem).

    A bare name (``release``) that is not a file is looked up as ``<name>.yaml`` in the
    project's configs/gates, then in the packaged defaults.
    """
    from audit._util.settings import find_file
    from audit._util.validation import load_model
    from audit.errors import ConfigError

    if not path.exists() and path.parent == Path() and path.suffix not in (".yaml", ".yml"):
        found, tried = find_file("gates", f"{path.name}.yaml")
        if found is None:
            raise ConfigError(
                f"gate rules {path.name!r} not found (searched {', '.join(map(str, tried))})",
                field="--rules",
                expected="a rules file path or the name of a configs/gates/<name>.yaml",
                actual=repr(str(path)),
                fix="give the path to a rules file, or add configs/gates/<name>.yaml to the project",
            )
        path = found
    return load_model(GateRules, path)


def _check(*fields: Any) -> Check:
    """A :class:`~audit.records.Check` from its fields in declaration order."""
    return Check(**dict(zip(Check.model_fields, fields)))


_EPS = 1e-9


def _nan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def evaluate_rule(
    rule: Rule, cmp: Any, direction: str, alpha: float
) -> tuple[str, float, float, float, str]:
    """Status of one rule on one :class:`~audit.release.compare.CategoryComparison`.

    Returns ``(status, value, bound, threshold, detail)``; ``value`` is the delta for
    margin rules (else the candidate's estimate) and ``bound`` the one-sided bound.
    """
    d = cmp.metrics[rule.metric]
    sign = 1.0 if direction == "higher" else -1.0
    if _nan(d.b) or (rule.margin is not None and (_nan(d.delta) or _nan(d.lo) or _nan(d.hi))):
        return "unverifiable", d.delta, float("nan"), float("nan"), "value or interval is NaN"
    if cmp.n < rule.min_n and not rule.allow_uninformative:
        return (
            "uninformative",
            d.delta,
            float("nan"),
            float("nan"),
            f"n={cmp.n} < min_n={rule.min_n}",
        )
    # a floor is about the candidate's own estimate: checked whatever the margin's power
    if rule.floor is not None and sign * (d.b - rule.floor) < 0:
        return "fail", d.b, d.b, rule.floor, f"candidate {d.b:.4f} beyond floor {rule.floor}"
    delta_allowed = float("nan")
    if rule.margin is not None:
        delta_allowed = rule.margin * (abs(d.a) if rule.relative else 1.0)
        if _nan(delta_allowed):
            return "unverifiable", d.delta, float("nan"), float("nan"), "baseline value is NaN"
        half = (d.hi - d.lo) / 2.0
        # _EPS absorbs float rounding of the bounds, so the verdict stays monotone in the delta
        if half > delta_allowed + _EPS and not rule.allow_uninformative:
            far = d.hi if direction == "higher" else d.lo
            if sign * far < -delta_allowed:
                # even the favourable bound is beyond the margin: a regression, not a power issue
                return "fail", d.delta, far, -sign * delta_allowed, "whole interval beyond margin"
            why = f"interval half-width {half:.4f} > margin"
            return "uninformative", d.delta, float("nan"), delta_allowed, why
    if rule.margin is None:
        return "pass", d.b, d.b, float(rule.floor or 0.0), "floor met"
    bound = d.lo if direction == "higher" else d.hi
    ok = sign * bound > -delta_allowed
    side = f"{'lower' if sign > 0 else 'upper'} {1 - alpha:.0%} bound {bound:+.4f}"
    return ("pass" if ok else "fail"), d.delta, bound, -sign * delta_allowed, side


def _slice_side(side: Side, name: str, value: str) -> Side | None:
    """The same side restricted to one slice value (None when the column is missing)."""
    from audit.release.compare import ResultView

    views = []
    for r in side.results:
        f = r.load()
        col = f"slice.{name}"
        if col not in f.columns:
            return None
        sub = f[f[col].astype(str) == value]
        views.append(
            ResultView(
                r.suite, r.split, r.moderator, r.digest, {}, len(sub), 0, {}, _const_frame(sub)
            )
        )
    return Side(side.run_id, side.source, side.policy, views, side.mlflow_parent)


def refusal_reasons(rules: GateRules, candidate: Side, baseline: Side) -> list[str]:
    """Why the gate must refuse to judge ``candidate`` (empty when it may).

    A candidate that did not finish (``failed``, ``running``, ``interrupted``) or that
    lacks any suite × moderator pair of the baseline would otherwise be judged on the
    pairs it happens to have, and could PASS by omission.
    """
    out: list[str] = []
    for role, side in (("candidate", candidate), ("baseline", baseline)):
        status = side.data.get("status", "finished")
        if status != "finished":
            out.append(f"the {role} run {side.run_id} is {status!r}, not 'finished'")
    rename = {}
    if rules.moderator_baseline and rules.moderator_candidate:
        rename = {rules.moderator_baseline: rules.moderator_candidate}
    have = {(r.suite, r.split, r.moderator) for r in candidate.results}
    missing = sorted(
        f"{r.suite}:{r.split} × {r.moderator}"
        for r in baseline.results
        if (r.suite, r.split, rename.get(r.moderator, r.moderator)) not in have
        and (rules.moderator_baseline is None or r.moderator == rules.moderator_baseline)
    )
    if missing:
        out.append(f"the candidate lacks baseline pair(s): {', '.join(missing)}")
    if not baseline.results:
        out.append("the baseline has no results")
    return out


@dataclass
class GateReport:
    """Every check of a gate run and what shaped them: the declared suite diffs used
    and the categories whose gold an agreement record marks unreliable."""

    checks: list[Check]
    declared_diffs: list[dict[str, Any]] = field(default_factory=list)
    unreliable_gold: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class _Context:
    """What every check of one gate run reads."""

    rules: GateRules
    candidate: Side
    baseline: Side
    declared: list[DeclaredDiff]
    unreliable: dict[tuple[str, str], str]
    policy_ok: bool
    cache: dict[Any, list[dict[str, Any]] | None] = field(default_factory=dict)
    downgraded: dict[tuple[str, str], int] = field(default_factory=dict)

    def entries(self, slice_: dict[str, str] | None) -> list[dict[str, Any]] | None:
        """The paired comparison, whole or on one slice value (None: slice missing)."""
        key = tuple(sorted(slice_.items())) if slice_ else None
        if key not in self.cache:
            a: Side | None = self.baseline
            b: Side | None = self.candidate
            if slice_:
                ((nm, val),) = slice_.items()
                a, b = _slice_side(self.baseline, nm, val), _slice_side(self.candidate, nm, val)
            self.cache[key] = (
                None
                if a is None or b is None
                else compare_sides(
                    a,
                    b,
                    moderator_a=self.rules.moderator_baseline,
                    moderator_b=self.rules.moderator_candidate,
                    # undeclared digest changes were refused before any comparison
                    allow_digest_mismatch=True,
                    declared_diffs=self.declared,
                    roles=("baseline", "candidate"),
                    n_boot=self.rules.n_boot,
                    ci=1.0 - 2.0 * self.rules.alpha,
                    seed=self.rules.seed,
                )
            )
        return self.cache[key]

    def blocked(self) -> str | None:
        if not self.policy_ok and not self.rules.allow_policy_mismatch:
            return "policy version/digest differs"
        return None

    def check(self, suite: str, *fields: Any) -> Check:
        """A check of ``suite``; a blocking one on a category with unreliable gold is
        downgraded to a warning that says why (docs/methods/labels.md §2)."""
        c = _check(*fields)
        why = self.unreliable.get((suite, c.category))
        if why is None or c.severity != "block":
            return c
        key = (suite, c.category)
        self.downgraded[key] = self.downgraded.get(key, 0) + 1
        return c.model_copy(update={"severity": "warn", "detail": f"{c.detail}; warn only: {why}"})


def _rule_checks(ctx: _Context) -> list[Check]:
    from audit.metrics import get_metric

    checks: list[Check] = []
    nan = math.nan
    for i, rule in enumerate(ctx.rules.rules):
        rname = rule.name or f"{rule.metric}#{i}"
        if rule.slice:
            rname += "[" + ",".join(f"{k}={v}" for k, v in rule.slice.items()) + "]"
        direction = get_metric(rule.metric).direction
        es = ctx.entries(rule.slice)
        if es is None:
            row = (
                "*",
                "*",
                rule.severity,
                "unverifiable",
                nan,
                nan,
                nan,
                0,
                "slice column missing",
            )
            checks.append(_check(rname, *row))
            continue
        for e in es:
            lbl = f"{e['suite']}/{e['moderator_b']}"
            if rule.suites and e["suite"] not in rule.suites:
                continue
            cats = rule.categories or [c for c, v in e["categories"].items() if v.n > 0]
            for cat in cats:
                cmp = e["categories"].get(cat)
                why = ctx.blocked()
                if cmp is None or why:
                    det = why or "category not in both runs"
                    res = ("unverifiable", nan, nan, nan, 0, det)
                else:
                    st, val, bound, thr, det = evaluate_rule(rule, cmp, direction, ctx.rules.alpha)
                    res = (st, val, bound, thr, cmp.n, det)
                checks.append(ctx.check(e["suite"], rname, lbl, cat, rule.severity, *res))
    return checks


def _budget_checks(ctx: _Context) -> list[Check]:
    checks: list[Check] = []
    es = ctx.entries(None) or []
    for bname in ("parse_failure_rate", "error_rate", "negative_flip_rate"):
        budget: Budget | None = getattr(ctx.rules.budgets, bname)
        if budget is None:
            continue
        for e in es:
            rb = e["b"]
            if bname == "negative_flip_rate":
                cats = budget.categories or [c for c, v in e["categories"].items() if v.n > 0]
                items = []
                for c in cats:
                    x = e["categories"].get(c)
                    items.append((c, x.negative_flip_rate if x else math.nan, x.n if x else 0))
            else:
                num = (
                    rb.error_types.get("parse_failure", 0)
                    if bname == "parse_failure_rate"
                    else rb.n_errors
                )
                items = [("*", num / rb.n if rb.n else math.nan, rb.n)]
            for cat, v, n in items:
                why = ctx.blocked()
                if why or _nan(v):
                    st, det = "unverifiable", why or "rate is undefined"
                else:
                    st = "pass" if v <= budget.max else "fail"
                    det = f"{v:.4f} vs max {budget.max}"
                lbl = f"{e['suite']}/{e['moderator_b']}"
                row = (budget.severity, st, v, v, budget.max, n, det)
                checks.append(ctx.check(e["suite"], bname, lbl, cat, *row))
    return checks


def evaluate_gate(rules: GateRules, candidate: Side, baseline: Side) -> GateReport:
    """Every check of ``rules`` on the candidate against the baseline, with the notes
    on declared suite diffs and unreliable gold (``audit gate --json`` writes them).

    Raises:
        GateRefusedError: the candidate is not a finished run covering every baseline
            pair (see :func:`refusal_reasons`), or a suite was scored on two versions
            and the change is not declared: exit 3, no verdict.
        ConfigError: a declared suite diff or an agreement record does not describe the
            runs' suite versions, or is unreadable (exit 2).
    """
    from audit.change.suite_diff import load_declared_diff
    from audit.errors import GateRefusedError
    from audit.release.gate_inputs import gold_reliability, refuse_digest_changes
    from audit.release.sides import match_declared, pair_results

    problems = refusal_reasons(rules, candidate, baseline)
    if problems:
        raise GateRefusedError(
            "gate refused: " + "; ".join(problems),
            where=candidate.source,
            field="status / results",
            expected="a finished candidate with every baseline suite × moderator pair",
            actual=f"{len(problems)} problem(s)",
            fix="rerun the candidate to completion (cached items are reused), then gate again",
        )
    declared = [load_declared_diff(p) for p in rules.suite_diffs]
    pairs = pair_results(baseline, candidate, rules.moderator_baseline, rules.moderator_candidate)
    roles = ("baseline", "candidate")
    matched = match_declared(declared, pairs, roles)
    refuse_digest_changes(rules, pairs, matched, candidate.source)
    unreliable, records = gold_reliability(rules.gold_agreement, candidate)
    policy_ok = (candidate.policy.get("ref"), candidate.policy.get("digest")) == (
        baseline.policy.get("ref"),
        baseline.policy.get("digest"),
    )
    ctx = _Context(rules, candidate, baseline, declared, unreliable, policy_ok)
    checks = _rule_checks(ctx) + _budget_checks(ctx)
    if rules.pathways_manifest is not None:
        from audit.change.pathways import gate_checks

        checks.extend(gate_checks(rules.pathways_manifest))
    notes = [
        n for e in (ctx.entries(None) if matched else None) or [] if (n := declared_note(e, roles))
    ]
    for (suite, cat), k in sorted(ctx.downgraded.items()):
        notes.append(
            f"{suite}: {k} blocking check(s) downgraded to warn: {unreliable[(suite, cat)]}"
        )
    return GateReport(
        checks,
        [d.to_json() for d in {id(d): d for d in matched.values()}.values()],
        [r.to_json() for r in records],
        notes,
    )


def run_gate(rules: GateRules, candidate: Side, baseline: Side) -> list[Check]:
    """The checks of :func:`evaluate_gate` (same refusals and errors)."""
    return evaluate_gate(rules, candidate, baseline).checks


def verdict(checks: list[Check]) -> tuple[int, str]:
    """Intersection–union verdict: ``(exit code, word)``."""
    block = [c for c in checks if c.blocking]
    if any(c.status == "fail" for c in block):
        return 1, "FAIL"
    if any(c.status in ("unverifiable", "uninformative") for c in block):
        return 3, "UNVERIFIABLE"
    return 0, "PASS"


def _fmt(v: float) -> str:
    return "nan" if _nan(v) else f"{v:+.4f}"


def markdown_summary(
    checks: list[Check], word: str, candidate: str, baseline: str, notes: list[str] | None = None
) -> str:
    """Markdown for ``$GITHUB_STEP_SUMMARY``: verdict, notes (declared suite diffs,
    unreliable gold), then every check, non-passing first."""
    lines = [
        f"## audit gate: {word}",
        "",
        f"candidate `{candidate}` vs baseline `{baseline}`: "
        f"{sum(c.status == 'pass' for c in checks)}/{len(checks)} checks pass",
        "",
        *[f"- {n}" for n in notes or []],
        *([""] if notes else []),
        "| rule | suite | category | severity | status | value | bound | threshold | n | detail |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in sorted(checks, key=lambda c: (c.status == "pass", c.rule)):
        lines.append(
            f"| {c.rule} | {c.suite} | {c.category} | {c.severity} | **{c.status}** | "
            f"{_fmt(c.value)} | {_fmt(c.bound)} | {_fmt(c.threshold)} | {c.n} | {c.detail} |"
        )
    return "\n".join(lines) + "\n"


def junit_xml(checks: list[Check]) -> str:
    """JUnit XML: one testcase per rule × suite × category (warn failures are skipped)."""
    import xml.etree.ElementTree as ET

    suite = ET.Element("testsuite", name="audit-gate", tests=str(len(checks)))
    n_fail = n_err = n_skip = 0
    for c in checks:
        tc = ET.SubElement(
            suite, "testcase", classname=f"gate.{c.suite}", name=f"{c.rule}/{c.category}"
        )
        msg = f"{c.status}: {c.detail} (value {_fmt(c.value)}, n={c.n})"
        if c.status == "pass":
            continue
        if not c.blocking:
            ET.SubElement(tc, "skipped", message="warn: " + msg)
            n_skip += 1
        elif c.status == "fail":
            ET.SubElement(tc, "failure", message=msg)
            n_fail += 1
        else:
            ET.SubElement(tc, "error", message=msg)
            n_err += 1
    suite.set("failures", str(n_fail))
    suite.set("errors", str(n_err))
    suite.set("skipped", str(n_skip))
    return ET.tostring(suite, encoding="unicode", xml_declaration=True)


def _const_frame(frame: Any) -> Callable[[], Any]:
    """A loader that returns ``frame`` (a slice's rows, already in memory)."""
    return lambda: frame
