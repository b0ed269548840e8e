"""Load a suite card's data into a ``datasets.Dataset`` with the canonical features.

Validation happens here, once, with errors that name the card, the field, the
expected and actual value, and the fix: missing files and columns, duplicate or
empty ids, label values the card does not map, labels outside the policy, rows
with no text, and empty suites. Card-level checks (policy, covers, columns) live in
this module; per-row mapping in :mod:`audit.suites.canonical`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from audit._util.settings import find_file, search_dirs
from audit._util.validation import load_model
from audit.errors import SuiteError
from audit.suites.canonical import canonicalise
from audit.suites.card import SuiteCard, card_path
from audit.suites.digest import canonical_features, content_digest
from audit.suites.items import suite_items
from audit.suites.loaded import LoadedSuite
from audit.suites.media_files import media_root
from audit.suites.reading import read_rows

if TYPE_CHECKING:
    from audit.policy import Policy

# Modules across the package import these from here; the names stay available.
__all__ = [
    "LoadedSuite",
    "available_suites",
    "canonical_features",
    "content_digest",
    "load_card",
    "load_suite",
    "suite_items",
    "suites_root",
]


def suites_root() -> Path:
    """The first existing suites folder on the search path (project, then packaged)."""
    dirs = search_dirs("suites")
    return next((d for d in dirs if d.is_dir()), dirs[0])


def available_suites() -> list[str]:
    """Suite names found on the search path (a project suite shadows a packaged one)."""
    return sorted({p.parent.name for d in search_dirs("suites") for p in d.glob("*/suite.yaml")})


def load_card(name_or_path: str) -> tuple[SuiteCard, Path]:
    # a bare name is looked up on the search path; a file or folder path is taken as is
    p = Path(name_or_path)
    tried: list[Path] = []
    if p.suffix not in (".yaml", ".yml") and not p.is_dir():
        found, tried = find_file("suites", p / "suite.yaml")
        path = found or tried[0]
    else:
        path = card_path(name_or_path, suites_root())
    if not path.exists():
        import difflib

        known = available_suites()
        close = difflib.get_close_matches(name_or_path, known, n=1)
        raise SuiteError(
            "suite not found" + (f" (searched {', '.join(map(str, tried))})" if tried else ""),
            where=str(path),
            expected=f"a suite name among {known} or a path to a suite.yaml",
            actual=repr(name_or_path),
            fix=f"did you mean {close[0]!r}?" if close else "check the name or path",
        )
    card = load_model(SuiteCard, path, error=SuiteError)
    if card.name != path.parent.name and path.name == "suite.yaml":
        raise SuiteError(
            "suite name does not match its folder",
            where=str(path),
            field="name",
            expected=repr(path.parent.name),
            actual=repr(card.name),
            fix="rename the folder or the suite",
        )
    return card, path


# --------------------------------------------------------------------------- mapping


def _check_columns(card: SuiteCard, cols: set[str], where: str) -> None:
    def need(col: str, fld: str, optional: bool = False) -> None:
        if col not in cols and not optional:
            raise SuiteError(
                "column not found in the data",
                where=where,
                field=fld,
                expected=f"one of the data's columns {sorted(cols)}",
                actual=repr(col),
                fix="correct the column name in the suite card",
            )

    if card.id.column is not None:
        need(card.id.column, "id.column")
    for fname, col in card.fields.items():
        need(col, f"fields.{fname}")
    for i, r in enumerate(card.labels.rules):
        for c in r.columns:  # multi-annotator rules are checked per annotator on collapse
            need(
                c,
                f"labels.rules[{i}].column",
                optional=r.missing_column == "unknown" or card.annotations is not None,
            )
    if card.labels.overall:
        for c in card.labels.overall.columns:
            need(
                c, "labels.overall.column", optional=card.labels.overall.missing_column == "unknown"
            )
    if card.labels.list_column:
        need(card.labels.list_column, "labels.list_column")
    for s, col in card.slices.items():
        need(col, f"slices.{s}")
    if card.rationale_column:
        need(card.rationale_column, "rationale_column")
    if card.image_column:
        need(card.image_column, "image_column")
    if card.media is not None:
        if card.media.image:
            need(card.media.image, "media.image")
        if card.media.video:
            need(card.media.video, "media.video")


def _covers(card: SuiteCard, policy: Policy, where: str) -> tuple[str, ...]:
    cats = policy.category_ids
    covers = cats if card.labels.covers == "all" else tuple(card.labels.covers)
    named = list(covers) + [r.category for r in card.labels.rules if r.category]
    for i, c in enumerate(named):
        if c not in cats:
            import difflib

            close = difflib.get_close_matches(c, cats, n=1)
            fld = "labels.covers" if i < len(covers) else "labels.rules.category"
            raise SuiteError(
                "label category not in the policy",
                where=where,
                field=fld,
                expected=f"a category of {policy.ref}: {list(cats)}",
                actual=repr(c),
                fix=f"did you mean {close[0]!r}?" if close else "map onto a policy category",
            )
    for r in card.labels.rules:
        if r.category not in covers:
            raise SuiteError(
                "rule for a category the suite does not cover",
                where=where,
                field="labels.covers",
                expected=f"{r.category!r} listed in covers",
                actual=str(list(covers)),
                fix=f"add {r.category!r} to labels.covers",
            )
    return covers


def load_suite(
    name_or_path: str,
    policy: Policy,
    *,
    split: str | None = None,
    limit: int | None = None,
) -> LoadedSuite:
    """Load and validate one suite split into the canonical schema."""
    card, cpath = load_card(name_or_path)
    where = str(cpath)
    if card.policy != policy.ref:
        raise SuiteError(
            "suite is labelled against another policy version",
            where=where,
            field="policy",
            expected=repr(policy.ref),
            actual=repr(card.policy),
            fix="relabel/remap the suite, or run with the policy it was labelled for",
        )
    split = split or card.default_split
    covers = _covers(card, policy, where)
    rows, source = read_rows(card, cpath, split)
    if not rows:
        raise SuiteError(
            "suite split is empty",
            where=where,
            field=f"source (split {split!r})",
            expected="at least one row",
            actual="0 rows",
            fix="check the data file",
        )
    annotations = None
    if card.annotations is not None:
        from audit.suites.annotations import collapse_annotations

        rows, annotations = collapse_annotations(card, cpath, rows, covers, policy)
    cols: set[str] = set()
    for r in rows[: min(len(rows), 2000)]:
        cols |= set(r)
    _check_columns(card, cols, where)
    if card.media is not None:
        media_root(card, cpath)  # a missing root is a card-level error, raised once
    if limit is not None:
        rows = rows[:limit]
        annotations = None if annotations is None else annotations.subset(range(len(rows)))
    suite = canonicalise(
        card,
        cpath,
        split,
        rows,
        source,
        covers,
        policy,
        gold=None if annotations is None else annotations.gold,
    )
    if annotations is not None:
        import dataclasses

        # per-annotator labels are part of the suite's content: a changed judgement
        # must change the digest even when the majority gold does not move
        digest = hashlib.sha256(f"{suite.digest}\0{annotations.digest()}".encode()).hexdigest()
        suite = dataclasses.replace(suite, annotations=annotations, digest=digest)
    return suite
