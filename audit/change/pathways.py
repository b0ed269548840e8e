"""Pathway manifest and sync check (METHODS.md §11; docs/methods/change.md §3).

``configs/pathways.yaml`` lists every enforcement pathway and the policy version (with
its digest) that pathway implements:

``classifier``
    a model with a label map (model label → policy category, coverage full / partial /
    none, as the policy's own taxonomy mappings) and decision thresholds.
``llm_prompt``
    a judge preset whose prompt is rendered from the policy, with a prompt version.
``guideline``
    a labelling guideline document with one section per category it covers.
``escalation``
    an escalation flow: routing rules (category → queue, minimum score, action).

:func:`check_manifest` builds the coverage matrix (category × pathway) and lists every
problem: a pathway that lags the current policy version or names a digest that is not
that version's, a category it misses without declaring it out of scope, a mapping or
route onto a category the current version no longer has, thresholds or a prompt not
re-validated since the policy changed (the ``validated.policy_digest`` or, for prompts,
the rendered ``prompt_hash`` differs), a guideline document without a section for a
category it claims. ``audit pathways check`` exits 3 with one line per problem; the
release gate runs the same check as a blocking rule when its rules name a manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.errors import ConfigError
from audit.policy import Coverage, Policy, load_policy, policies_dir

PATHWAY_TYPES: tuple[str, ...] = ("classifier", "llm_prompt", "guideline", "escalation")
_RANK = {"none": 0, "partial": 1, "full": 2}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Implements(_Strict):
    """The policy version a pathway implements and that version's digest."""

    policy: str
    digest: str = Field(min_length=64, max_length=64)


class Validated(_Strict):
    """The last re-validation: against which policy digest, when, on what evidence."""

    policy_digest: str = Field(min_length=64, max_length=64)
    date: str
    evidence: str
    prompt_hash: str | None = None
    """``llm_prompt`` only: the rendered prompt's template hash at validation time."""


class LabelEdge(_Strict):
    source: str
    target: str | None
    coverage: Coverage
    note: str | None = None


class _Base(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_\-]*$")
    description: str
    owner: str
    implements: Implements
    validated: Validated
    not_covered: dict[str, str] = Field(default_factory=dict)
    """Categories deliberately out of this pathway's scope, with the reason."""


class ClassifierPathway(_Base):
    type: Literal["classifier"]
    model: str
    label_map: tuple[LabelEdge, ...] = Field(min_length=1)
    thresholds: dict[str, float] = Field(min_length=1)


class PromptPathway(_Base):
    type: Literal["llm_prompt"]
    preset: str
    prompt_version: str
    categories: tuple[str, ...] | None = None
    policy_detail: Literal["full", "definitions"] = "full"


class GuidelinePathway(_Base):
    type: Literal["guideline"]
    document: str
    covers: dict[str, Coverage] = Field(min_length=1)


class Route(_Strict):
    category: str
    queue: str
    min_score: float = Field(ge=0.0, le=1.0)
    action: str


class EscalationPathway(_Base):
    type: Literal["escalation"]
    routes: tuple[Route, ...] = Field(min_length=1)


Pathway = Annotated[
    ClassifierPathway | PromptPathway | GuidelinePathway | EscalationPathway,
    Field(discriminator="type"),
]


class Manifest(_Strict):
    """``configs/pathways.yaml``."""

    manifest_version: Literal[1] = 1
    policy: str
    pathways: tuple[Pathway, ...] = Field(min_length=1)


@dataclass
class Cell:
    coverage: str
    edge: str


@dataclass
class CheckResult:
    """Coverage matrix and problems of one manifest."""

    manifest: str
    policy: Policy
    matrix: dict[str, dict[str, Cell]] = field(default_factory=dict)
    """category → pathway id → cell."""
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "manifest": self.manifest,
            "policy": {"ref": self.policy.ref, "digest": self.policy.digest()},
            "matrix": {
                c: {p: {"coverage": x.coverage, "edge": x.edge} for p, x in row.items()}
                for c, row in self.matrix.items()
            },
            "problems": self.problems,
            "ok": not self.problems,
        }


def load_manifest(path: Path) -> Manifest:
    """Strict YAML → :class:`Manifest`; an unknown pathway ``type`` names its entry."""
    from audit._util.validation import parse_model, read_yaml

    data = read_yaml(path)
    if isinstance(data, dict) and isinstance(data.get("pathways"), list):
        for i, p in enumerate(data["pathways"]):
            t = p.get("type") if isinstance(p, dict) else None
            if t not in PATHWAY_TYPES:
                raise ConfigError(
                    "unknown pathway type",
                    where=str(path),
                    field=f"pathways[{i}].type",
                    expected=f"one of {', '.join(PATHWAY_TYPES)}",
                    actual=repr(t),
                    fix="declare the pathway as one of the known types",
                )
    return parse_model(Manifest, data, str(path))


def _policy(
    ref: str, where: str, fld: str, pdir: Path, cache: dict[str, Policy] | None = None
) -> Policy:
    if cache is not None and ref in cache:
        return cache[ref]
    p = pdir / f"{ref}.yaml"
    if not p.exists():
        known = sorted(x.stem for x in pdir.glob("*.yaml"))
        raise ConfigError(
            "unknown policy version",
            where=where,
            field=fld,
            expected=f"one of {known}",
            actual=repr(ref),
            fix=f"add {p.name} under {pdir} or name an existing version",
        )
    pol = load_policy(p)
    if cache is not None:
        cache[ref] = pol
    return pol


def _best(cells: list[tuple[str, str]]) -> Cell:
    if not cells:
        return Cell("none", "")
    cov = max((c for c, _ in cells), key=lambda c: _RANK[c])
    return Cell(cov, ", ".join(e for _, e in cells))


def _covered(pw: Any, cur: Policy, base: Path) -> dict[str, list[tuple[str, str]]]:
    """Category → [(coverage, edge description)] for one pathway (any category id, current
    or not: unknown ones are reported as maps onto removed categories)."""
    out: dict[str, list[tuple[str, str]]] = {}
    if isinstance(pw, ClassifierPathway):
        for e in pw.label_map:
            if e.target is not None:
                out.setdefault(e.target, []).append((e.coverage, f"{e.source}→{e.target}"))
    elif isinstance(pw, PromptPathway):
        from audit.moderators.judge import presets

        pre = presets.get(pw.preset)
        cats = pw.categories if pw.categories is not None else cur.category_ids
        if pre.taxonomy is not None and pre.taxonomy in cur.mappings:
            for me in cur.mapping(pre.taxonomy).edges:
                if me.target is not None and me.target in cats:
                    out.setdefault(me.target, []).append((me.coverage, f"{me.source}→{me.target}"))
        else:
            for c in cats:
                out.setdefault(c, []).append(("full", f"prompt section {c}"))
    elif isinstance(pw, GuidelinePathway):
        for c, cov in pw.covers.items():
            out.setdefault(c, []).append((cov, f"section {c}"))
    elif isinstance(pw, EscalationPathway):
        for r in pw.routes:
            out.setdefault(r.category, []).append(
                ("full", f"{r.category}≥{r.min_score:g}→{r.queue}")
            )
    return out


def _resolve(doc: str, base: Path) -> Path:
    from audit._util.settings import repo_root

    p = Path(doc)
    if p.is_absolute():
        return p
    return (base / p) if (base / p).exists() else (repo_root() / p)


def check_manifest(
    path: Path, *, policy_dir: Path | None = None, current: str | None = None
) -> CheckResult:
    """Coverage matrix and sync problems of the manifest at ``path`` (module doc).

    ``current`` replaces the manifest's ``policy`` (what-if before a policy switch).

    Raises:
        ConfigError: the manifest or a policy it names cannot be read (exit 2); sync
            problems are returned, not raised.
    """
    man = load_manifest(path)
    where = str(path)
    pdir = policy_dir or policies_dir()
    loaded: dict[str, Policy] = {}
    cur = (
        _policy(man.policy, where, "policy", pdir, loaded)
        if current is None
        else _policy(current, "--policy", "policy", pdir, loaded)
    )
    digest = cur.digest()
    res = CheckResult(where, cur)
    for c in cur.category_ids:
        res.matrix[c] = {}
    seen: set[str] = set()
    for i, pw in enumerate(man.pathways):
        fld = f"pathways[{i}]"
        if pw.id in seen:
            raise ConfigError(
                "duplicate pathway id",
                where=where,
                field=f"{fld}.id",
                expected="unique ids",
                actual=repr(pw.id),
                fix="rename one of the pathways",
            )
        seen.add(pw.id)
        impl = _policy(pw.implements.policy, where, f"{fld}.implements.policy", pdir, loaded)
        tag = f"{where}: {fld}.{{}}: pathway {pw.id!r} ({pw.type})"
        res.problems += _sync_problems(pw, impl, cur, digest, tag)
        res.problems += _type_problems(pw, cur, tag, where, fld, path.parent)
        cells, problems = _coverage_cells(pw, cur, tag, path.parent)
        res.problems += problems
        for c, cell in cells.items():
            res.matrix[c][pw.id] = cell
    return res


def _sync_problems(pw: Any, impl: Policy, cur: Policy, digest: str, tag: str) -> list[str]:
    """Whether the pathway implements, and was validated against, the current policy."""
    out: list[str] = []
    if impl.ref != cur.ref:
        out.append(
            tag.format("implements.policy")
            + f" implements {impl.ref} but the current policy is {cur.ref}: update its "
            "mapping and thresholds to the current version"
        )
    if pw.implements.digest != impl.digest():
        out.append(
            tag.format("implements.digest")
            + f" digest {pw.implements.digest[:12]} is not {impl.ref}'s "
            f"({impl.digest()[:12]}): the policy file changed after the pathway was synced"
        )
    if pw.validated.policy_digest != digest:
        what = {
            "classifier": "thresholds were",
            "llm_prompt": "prompt was",
            "guideline": "guideline was",
            "escalation": "routing thresholds were",
        }[pw.type]
        out.append(
            tag.format("validated.policy_digest") + f" {what} last validated against digest "
            f"{pw.validated.policy_digest[:12]}, not the current {cur.ref} "
            f"({digest[:12]}): re-validate on the current policy and record it"
        )
    return out


def _type_problems(pw: Any, cur: Policy, tag: str, where: str, fld: str, base: Path) -> list[str]:
    """The checks one pathway type needs: a prompt's rendered hash, a classifier's
    thresholds, a guideline's sections (ConfigError where the manifest itself is wrong)."""
    out: list[str] = []
    if isinstance(pw, PromptPathway):
        from audit.moderators.judge import presets, prompts

        pre = presets.get(pw.preset)
        h = prompts.template_hash(
            cur, pre.template, categories=pw.categories, detail=pw.policy_detail
        )
        if pw.validated.prompt_hash is None:
            out.append(
                tag.format("validated.prompt_hash")
                + " records no prompt hash: validate the rendered prompt and record "
                f"its hash ({h[:12]}…)"
            )
        elif pw.validated.prompt_hash != h:
            out.append(
                tag.format("validated.prompt_hash")
                + f" prompt rendered from {cur.ref} ({h[:12]}) differs from the "
                f"validated one ({pw.validated.prompt_hash[:12]}): re-validate the prompt"
            )
    if isinstance(pw, ClassifierPathway):
        for c in pw.thresholds:
            if c != "default" and c not in cur.category_ids:
                out.append(
                    tag.format(f"thresholds.{c}")
                    + f" sets a threshold for {c!r}, which {cur.ref} does not have"
                )
            elif not 0.0 <= pw.thresholds[c] <= 1.0:
                raise ConfigError(
                    "threshold out of range",
                    where=where,
                    field=f"{fld}.thresholds.{c}",
                    expected="a number in [0, 1]",
                    actual=repr(pw.thresholds[c]),
                )
    if isinstance(pw, GuidelinePathway):
        doc = _resolve(pw.document, base)
        if not doc.is_file():
            raise ConfigError(
                "guideline document not found",
                where=where,
                field=f"{fld}.document",
                expected="an existing file (relative to the manifest or the repository)",
                actual=repr(pw.document),
                fix="write the guideline or correct the path",
            )
        text = doc.read_text(encoding="utf-8")
        for c in pw.covers:
            markers = (f"`{c}`", f"# {c}", f"id: {c}\n")
            if c in cur.category_ids and not any(m in text for m in markers):
                out.append(
                    tag.format(f"covers.{c}")
                    + f" claims {c!r} but {pw.document} has no section for it "
                    f"(a heading '# {c}', the id in backticks, or a policy entry 'id: {c}')"
                )
    return out


def _coverage_cells(
    pw: Any, cur: Policy, tag: str, base: Path
) -> tuple[dict[str, Cell], list[str]]:
    """The pathway's column of the coverage matrix and the mappings that do not fit the
    current categories."""
    out: list[str] = []
    cells: dict[str, Cell] = {}
    covered = _covered(pw, cur, base)
    for c in sorted(covered):
        if c not in cur.category_ids:
            fate = ""
            for r in cur.retired:
                if r.id == c:
                    fate = f" (retired in {cur.ref}: {r.kind})"
            out.append(
                tag.format("label_map" if pw.type == "classifier" else "covers/routes")
                + f" maps onto {c!r}, which is not a category of {cur.ref}{fate}: "
                "remap it onto the current categories"
            )
    for c in pw.not_covered:
        if c not in cur.category_ids:
            out.append(
                tag.format(f"not_covered.{c}") + f" names {c!r}, not a category of {cur.ref}"
            )
    for c in cur.category_ids:
        cell = _best(covered.get(c, []))
        if cell.coverage == "none" and c in pw.not_covered:
            cell = Cell("none", "out of scope: " + pw.not_covered[c])
        elif cell.coverage == "none":
            out.append(
                tag.format("coverage")
                + f" does not cover {c!r}: map it, or list it under not_covered with a reason"
            )
        cells[c] = cell
    return cells, out


def gate_checks(manifest: str) -> list[Any]:
    """The pathway sync check as release-gate checks (one ``fail`` per problem, or one
    ``pass``), all blocking."""
    import math

    from audit.records import Check

    p = Path(manifest)
    if not p.is_absolute() and not p.exists():
        from audit._util.settings import repo_root

        p = repo_root() / manifest
    res = check_manifest(p)
    nan = math.nan
    if not res.problems:
        n = len(res.matrix)
        return [
            Check(
                rule="pathways_sync", suite=str(p), category="*", severity="block",
                status="pass", value=0.0, bound=0.0, threshold=0.0, n=n, detail="in sync",
            )
        ]  # fmt: skip
    return [
        Check(
            rule="pathways_sync",
            suite=str(p),
            category="*",
            severity="block",
            status="fail",
            value=nan,
            bound=nan,
            threshold=nan,
            n=0,
            detail=line,
        )
        for line in res.problems
    ]
