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

    @field_validator("id")
    @classmethod
    def _id_format(cls, v: str) -> str:
        if not _ID.match(v):
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


class Policy(_Strict):
    """A versioned platform policy."""

    id: str
    version: int = Field(ge=1)
    name: str
    effective_date: str
    description: str
    categories: tuple[Category, ...] = Field(min_length=1)
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

    def digest(self) -> str:
        """sha256 of the canonical JSON of the whole policy (changes with any edit)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
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
