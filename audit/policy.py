"""Policy versions: the canonical category space, and mappings from external taxonomies.

A policy file (``configs/policies/<id>-v<N>.yaml``) is validated into a frozen
:class:`Policy`. Every other part of the harness speaks in its category ids:
suites map their labels onto it, moderators map their outputs onto it, judge
prompts are rendered from it.
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from audit._util.validation import load_model
from audit.errors import ConfigError

Severity = Literal["critical", "high", "medium", "low"]
Action = Literal["remove", "remove_and_report", "age_restrict", "reduce_reach", "label", "escalate"]
Coverage = Literal["full", "partial", "none"]

_ID = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Category(_Strict):
    """One policy category."""

    id: str
    name: str
    definition: str
    not_allowed: tuple[str, ...] = Field(min_length=1)
    allowed: tuple[str, ...] = Field(min_length=1)
    severity: Severity
    default_action: Action
    restricted: bool = False
    """Restricted categories: item text never leaves the run directory (MLflow gets ids + hashes)."""
    threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """Default decision threshold enforcement pathways apply for this category (None: unset)."""
    renamed_from: str | None = None
    """Id this category had in the superseded version (a rename: gold moves mechanically)."""
    change_note: str | None = None
    """Why this category changed in this version (prose for diffs and reviewers)."""

    @field_validator("id", "renamed_from")
    @classmethod
    def _id_format(cls, v: str | None) -> str | None:
        if v is not None and not _ID.match(v):
            raise ValueError(f"category id must match {_ID.pattern}")
        return v


class MappingEdge(_Strict):
    """External label → platform category, with how much of the concept it covers."""

    source: str
    target: str | None
    coverage: Coverage
    note: str | None = None

    @model_validator(mode="after")
    def _none_has_no_target(self) -> MappingEdge:
        if self.coverage == "none" and self.target is not None:
            raise ValueError("an edge with coverage 'none' must have target null")
        if self.coverage != "none" and self.target is None:
            raise ValueError("an edge with coverage 'full' or 'partial' needs a target")
        return self


class TaxonomyMapping(_Strict):
    """A view of an external taxonomy (OpenAI moderation, Llama Guard...) onto the policy."""

    name: str
    reference: str
    edges: tuple[MappingEdge, ...] = Field(min_length=1)


class SplitCondition(_Strict):
    """When a gold-positive item of a split category goes to one branch.

    Exactly one of: ``label`` (the item is gold-positive for that category of the
    superseded version), ``slice`` (a slice column takes one of the listed values),
    ``text_matches`` (a regular expression found in the item's text fields).
    """

    label: str | None = None
    slice: dict[str, tuple[str, ...]] | None = None
    text_matches: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SplitCondition:
        given = [k for k in ("label", "slice", "text_matches") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"a split condition needs exactly one of label, slice, text_matches (got {given})"
            )
        if self.slice is not None and len(self.slice) != 1:
            raise ValueError("slice must be one mapping {column: [values]}")
        if self.text_matches is not None:
            try:
                re.compile(self.text_matches)
            except re.error as exc:
                raise ValueError(f"text_matches is not a valid regular expression: {exc}") from None
        return self


class SplitBranch(_Strict):
    """One branch of a split rule; a branch without ``when`` is the fallback (last)."""

    into: str
    when: SplitCondition | None = None


class Retired(_Strict):
    """A category of the superseded version that this version no longer has.

    One of ``split_into`` (ordered branches, first match wins), ``merged_into`` (gold
    is OR-ed into that category) or neither (``removed``: its gold is dropped).
    """

    id: str
    reason: str = Field(min_length=1)
    split_into: tuple[SplitBranch, ...] | None = None
    merged_into: str | None = None
    unassigned: Literal["error", "review"] = "error"
    """What a split does with positives no branch takes: ``review`` lists them for humans."""

    @model_validator(mode="after")
    def _one_kind(self) -> Retired:
        if self.split_into is not None and self.merged_into is not None:
            raise ValueError("a retired category is either split_into or merged_into, not both")
        if self.split_into is not None:
            fallbacks = [i for i, b in enumerate(self.split_into) if b.when is None]
            if fallbacks and fallbacks != [len(self.split_into) - 1]:
                raise ValueError("only the last split branch may omit 'when' (the fallback)")
            if not fallbacks and self.unassigned != "review":
                raise ValueError(
                    "split rule leaves items unassigned: no fallback branch (without 'when') "
                    "and unassigned is not 'review'"
                )
            if len({b.into for b in self.split_into}) < 2:
                raise ValueError("split_into needs at least two distinct target categories")
        return self

    @property
    def kind(self) -> str:
        """``split``, ``merge`` or ``removed``."""
        if self.split_into is not None:
            return "split"
        return "merge" if self.merged_into is not None else "removed"


class Policy(_Strict):
    """A versioned platform policy."""

    id: str
    version: int = Field(ge=1)
    name: str
    effective_date: str
    description: str
    supersedes: str | None = None
    """Reference (``<id>-v<N>``) of the version this one replaces."""
    categories: tuple[Category, ...] = Field(min_length=1)
    retired: tuple[Retired, ...] = ()
    """Categories of the superseded version that are gone (split, merged or removed)."""
    mappings: dict[str, TaxonomyMapping] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        seen: set[str] = set()
        for c in self.categories:
            if c.id in seen:
                raise ValueError(f"duplicate category id {c.id!r}")
            seen.add(c.id)
        for tax, m in self.mappings.items():
            for e in m.edges:
                if e.target is not None and e.target not in seen:
                    raise ValueError(
                        f"mapping {tax!r}: edge {e.source!r} targets unknown category {e.target!r}"
                    )
        return self

    def versioning_problem(self) -> tuple[str, str, str, str] | None:
        """The first inconsistency among the version-management fields, as
        ``(field, message, expected, actual)``; None when consistent.

        Kept out of the pydantic validators so that :func:`load_policy` can name the
        exact field (``retired[0].merged_into``) in its error.
        """
        seen = set(self.category_ids)
        if self.supersedes is not None and self.supersedes == self.ref:
            return (
                "supersedes",
                "supersedes cycle: the policy supersedes itself",
                "an earlier version",
                repr(self.supersedes),
            )
        if self.retired and self.supersedes is None:
            return (
                "retired",
                "retired categories need supersedes (the version they come from)",
                "supersedes: <id>-v<N>",
                "no supersedes",
            )
        olds: set[str] = set()
        for i, c in enumerate(self.categories):
            if c.renamed_from is None:
                continue
            fld = f"categories[{i}].renamed_from"
            if self.supersedes is None:
                return (
                    fld,
                    "renamed_from needs supersedes",
                    "supersedes: <id>-v<N>",
                    "no supersedes",
                )
            if c.renamed_from in seen or c.renamed_from in olds:
                return (
                    fld,
                    "renamed_from names a current category or is used twice",
                    "an old id that no current category keeps",
                    repr(c.renamed_from),
                )
            olds.add(c.renamed_from)
        for i, r in enumerate(self.retired):
            if r.id in seen or r.id in olds:
                return (
                    f"retired[{i}].id",
                    "retired category is still a category or renamed",
                    "an id gone from this version",
                    repr(r.id),
                )
            olds.add(r.id)
            if r.merged_into is not None and r.merged_into not in seen:
                return (
                    f"retired[{i}].merged_into",
                    "merge into a category this version lacks",
                    f"one of {sorted(seen)}",
                    repr(r.merged_into),
                )
            for j, b in enumerate(r.split_into or ()):
                if b.into not in seen:
                    return (
                        f"retired[{i}].split_into[{j}].into",
                        "split into a category this version lacks",
                        f"one of {sorted(seen)}",
                        repr(b.into),
                    )
        return None

    @property
    def ref(self) -> str:
        """``<id>-v<version>``, the name suites and records use."""
        return f"{self.id}-v{self.version}"

    @cached_property
    def category_ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)

    @cached_property
    def restricted_ids(self) -> frozenset[str]:
        return frozenset(c.id for c in self.categories if c.restricted)

    def category(self, cid: str) -> Category:
        for c in self.categories:
            if c.id == cid:
                return c
        raise KeyError(cid)

    def retired_category(self, cid: str) -> Retired:
        for r in self.retired:
            if r.id == cid:
                return r
        raise KeyError(cid)

    def digest(self) -> str:
        """sha256 of the canonical JSON of the whole policy (changes with any edit).

        The version-management fields (``supersedes``, ``retired``, and a category's
        ``threshold``, ``renamed_from``, ``change_note``) are left out of the payload
        while unset, so a policy written before they existed (platform-v1) keeps the
        digest its runs and baselines recorded.
        """
        data = self.model_dump(mode="json")
        for key in ("supersedes", "retired"):
            if not data.get(key):
                data.pop(key, None)
        for c in data["categories"]:
            for key in ("threshold", "renamed_from", "change_note"):
                if c.get(key) is None:
                    c.pop(key, None)
        payload = json.dumps(data, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()

    def mapping(self, taxonomy: str) -> TaxonomyMapping:
        try:
            return self.mappings[taxonomy]
        except KeyError:
            raise ConfigError(
                f"policy {self.ref} has no mapping for taxonomy {taxonomy!r}",
                expected=f"one of {sorted(self.mappings)}",
                actual=repr(taxonomy),
                fix=f"add a '{taxonomy}' entry under mappings in the policy file",
            ) from None

    def map_label(self, taxonomy: str, label: str) -> list[tuple[str, Coverage]]:
        """Platform categories an external label maps to (coverage none → empty)."""
        return [
            (e.target, e.coverage)
            for e in self.mapping(taxonomy).edges
            if e.source == label and e.target is not None
        ]


def policies_dir(root: Path | None = None) -> Path:
    """The policies folder of ``root``, or the first existing one on the search path
    (the project's configs/policies, then the packaged defaults)."""
    from audit._util.settings import LAYOUT, search_dirs

    if root is not None:
        return root / LAYOUT["policies"]
    dirs = search_dirs("policies")
    return next((d for d in dirs if d.is_dir()), dirs[0])


def available_policies() -> list[str]:
    """Policy references found on the search path (project first, then packaged)."""
    from audit._util.settings import search_dirs

    return sorted({p.stem for d in search_dirs("policies") for p in d.glob("*.yaml")})


def _find_policy(ref: str) -> Path:
    from audit._util.settings import find_file

    found, tried = find_file("policies", f"{ref}.yaml")
    if found is not None:
        return found
    import difflib

    known = available_policies()
    close = difflib.get_close_matches(ref, known, n=1)
    raise ConfigError(
        f"policy {ref!r} not found (searched {', '.join(str(t) for t in tried)})",
        field="policy",
        expected=f"a policy reference among {known} or a path to a policy .yaml",
        actual=repr(ref),
        fix=(
            f"did you mean {close[0]!r}?"
            if close
            else "add configs/policies/<id>-v<N>.yaml to the project folder "
            "(the current directory or AUDIT_HOME; `audit init` scaffolds one) "
            "or give a path to the policy file"
        ),
    )


def load_policy(ref_or_path: str | Path, *, base: Path | None = None) -> Policy:
    """Load a policy by path or by reference (``platform-v1`` → ``platform-v1.yaml`` in the
    project's configs/policies, else in the packaged defaults)."""
    p = Path(ref_or_path)
    if p.suffix not in (".yaml", ".yml"):
        p = _find_policy(str(ref_or_path))
    elif not p.is_absolute() and base is not None and not p.exists():
        p = base / p
    policy = load_model(Policy, p)
    problem = policy.versioning_problem()
    if problem is not None:
        fld, msg, expected, actual = problem
        raise ConfigError(
            msg,
            where=str(p),
            field=fld,
            expected=expected,
            actual=actual,
            fix="correct the version-management fields (configs/policies/README.md)",
        )
    if p.stem != policy.ref:
        raise ConfigError(
            "policy file name does not match its id and version",
            where=str(p),
            field="id/version",
            expected=f"file named {policy.ref}.yaml",
            actual=p.name,
            fix=f"rename the file to {policy.ref}.yaml or correct id/version",
        )
    return policy
