"""Diff of two versions of a golden suite (docs/methods/change.md §4).

A version is a suite name or card path (the working tree), or ``<name or path>@<git
revision>`` (the suite folder as committed at that revision, extracted with ``git
archive`` into a temporary folder). Both are loaded through the normal suite loader
against the policy each card names, so the comparison is on the canonical schema.

Rows are paired by ``id`` (default) or by content hash (``key="hash"``: for versions
whose id scheme changed). Reported: rows added, removed, text changed (same id,
different content hash), and per category label changes (``neg→pos``, ``pos→neg``,
``unknown→known``, ``known→unknown``); categories only one version labels are listed
separately rather than counted as changes. The JSON form (``suite_diff.json``) names
both versions' digests: a release gate that is given it (``suite_diffs:`` in the gate
rules) accepts a baseline and candidate scored on exactly those two digests.
"""

from __future__ import annotations

import contextlib
import csv
import io
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from audit.errors import ConfigError, SuiteError
from audit.schema import NEGATIVE, POSITIVE, UNKNOWN

Key = Literal["id", "hash"]


@dataclass
class SuiteDiff:
    """Counts and the row-level table of one suite diff."""

    a: dict[str, Any]
    b: dict[str, Any]
    key: str
    counts: dict[str, int]
    label_changes: dict[str, dict[str, int]]
    only_a_categories: list[str]
    only_b_categories: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "audit.suite_diff",
            "from": self.a,
            "to": self.b,
            "key": self.key,
            "counts": self.counts,
            "label_changes": self.label_changes,
            "categories_only_from": self.only_a_categories,
            "categories_only_to": self.only_b_categories,
            "rows": self.rows,
        }

    def csv(self) -> str:
        buf = io.StringIO()
        cols = [
            "change",
            "id_from",
            "id_to",
            "content_hash_from",
            "content_hash_to",
            "category",
            "before",
            "after",
        ]
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        for r in self.rows:
            w.writerow({c: r.get(c) for c in cols})
        return buf.getvalue()


def _git_root(path: Path) -> Path:
    out = subprocess.run(
        ["git", "-C", str(path), "rev-parse", "--show-toplevel"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SuiteError(
            "a suite version @REV needs the suite inside a git repository",
            where=str(path),
            expected="a suite folder tracked by git",
            actual=out.stderr.strip() or "not a git repository",
            fix="pass two card paths instead of NAME@REV",
        )
    return Path(out.stdout.strip())


@contextlib.contextmanager
def checkout_version(ref: str) -> Iterator[str]:
    """Yield a card path (or name) for ``ref`` (``name``, ``path``, ``name@rev``)."""
    from audit.suites.card import card_path
    from audit.suites.loader import suites_root

    if "@" not in ref:
        yield ref
        return
    name, rev = ref.rsplit("@", 1)
    cpath = card_path(name, suites_root()).resolve()
    root = _git_root(cpath.parent if cpath.parent.exists() else suites_root())
    rel = cpath.parent.relative_to(root) if cpath.parent.is_relative_to(root) else None
    if rel is None:
        raise SuiteError(
            "suite folder is outside the git repository",
            where=str(cpath),
            expected=f"a path under {root}",
            actual=str(cpath.parent),
        )
    with tempfile.TemporaryDirectory(prefix="audit-suite-") as td:
        arch = subprocess.run(
            ["git", "-C", str(root), "archive", "--format=tar", rev, "--", str(rel)],
            capture_output=True,
            check=False,
        )
        if arch.returncode != 0:
            raise SuiteError(
                f"cannot read the suite at revision {rev!r}",
                where=ref,
                field="@revision",
                expected="a git revision where the suite folder exists",
                actual=arch.stderr.decode("utf-8", "replace").strip()[:200],
                fix="check the revision with `git log -- " + str(rel) + "`",
            )
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(arch.stdout)) as tf:
            tf.extractall(td, filter="data")
        yield str(Path(td) / rel / cpath.name)


def _load(ref: str, split: str | None) -> Any:
    from audit.policy import load_policy
    from audit.suites.loader import load_card, load_suite

    card, cpath = load_card(ref)
    policy = load_policy(card.policy)
    return load_suite(str(cpath), policy, split=split)


def _side(ref: str, s: Any) -> dict[str, Any]:
    return {
        "ref": ref,
        "name": s.name,
        "version": s.card.version,
        "split": s.split,
        "policy": s.card.policy,
        "digest": s.digest,
        "n": len(s),
    }


def _keys(ref_a: str, sa: Any, ref_b: str, sb: Any, key: Key) -> tuple[list[str], list[str]]:
    """The pairing key of every row of each version (ids, or content hashes when unique)."""
    ids_a, ids_b = list(sa.dataset["id"]), list(sb.dataset["id"])
    h_a, h_b = list(sa.dataset["content_hash"]), list(sb.dataset["content_hash"])
    if key == "hash":
        for ref, hs, ids in ((ref_a, h_a, ids_a), (ref_b, h_b, ids_b)):
            seen: dict[str, str] = {}
            for h, i in zip(hs, ids, strict=True):
                if h in seen:
                    raise SuiteError(
                        "two rows have the same content: rows cannot be paired by hash",
                        where=ref,
                        field="content_hash",
                        expected="unique content per row",
                        actual=f"ids {seen[h]!r} and {i!r}",
                        fix="pair by id (--key id), or deduplicate the suite",
                    )
                seen[h] = i
        return h_a, h_b
    if not set(ids_a) & set(ids_b) and set(h_a) & set(h_b):
        n = len(set(h_a) & set(h_b))
        raise SuiteError(
            "the two versions share no ids but share items by content: different id schemes",
            where=f"{ref_a} vs {ref_b}",
            field="id",
            expected="the same id scheme in both versions",
            actual=f"0 common ids, {n} common content hashes",
            fix="pair rows by content with --key hash",
        )
    return ids_a, ids_b


_LABEL_NAME = {NEGATIVE: "negative", POSITIVE: "positive", UNKNOWN: "unknown"}


def _label_kind(before: int, after: int) -> str:
    if before == NEGATIVE and after == POSITIVE:
        return "neg→pos"
    if before == POSITIVE and after == NEGATIVE:
        return "pos→neg"
    return "unknown→known" if before == UNKNOWN else "known→unknown"


def diff_loaded(ref_a: str, sa: Any, ref_b: str, sb: Any, key: Key = "id") -> SuiteDiff:
    """Diff two loaded suites (:class:`audit.suites.loader.LoadedSuite`)."""
    ka, kb = _keys(ref_a, sa, ref_b, sb, key)
    ids_a, ids_b = list(sa.dataset["id"]), list(sb.dataset["id"])
    h_a, h_b = list(sa.dataset["content_hash"]), list(sb.dataset["content_hash"])
    pa = {k: i for i, k in enumerate(ka)}
    pb = {k: i for i, k in enumerate(kb)}
    cats_a, cats_b = list(sa.categories), list(sb.categories)
    shared = [(c, cats_a.index(c), cats_b.index(c)) for c in cats_b if c in cats_a]
    rows: list[dict[str, Any]] = [
        {"change": "removed", "id_from": ids_a[i], "content_hash_from": h_a[i]}
        for k, i in pa.items()
        if k not in pb
    ]
    counts = {"from": len(ka), "to": len(kb), "added": 0, "removed": len(rows)}
    counts |= dict.fromkeys(("text_changed", "labels_changed", "unchanged"), 0)
    kinds = ("neg→pos", "pos→neg", "unknown→known", "known→unknown")
    lc = {c: dict.fromkeys(kinds, 0) for c, _, _ in shared}
    for k, j in pb.items():
        if k not in pa:
            counts["added"] += 1
            rows.append({"change": "added", "id_to": ids_b[j], "content_hash_to": h_b[j]})
            continue
        i = pa[k]
        base = {
            "id_from": ids_a[i],
            "id_to": ids_b[j],
            "content_hash_from": h_a[i],
            "content_hash_to": h_b[j],
        }
        text = h_a[i] != h_b[j]
        if text:
            counts["text_changed"] += 1
            rows.append({"change": "text_changed", **base})
        n_label = 0
        for c, ia, ib in shared:
            la, lb = int(sa.labels[i, ia]), int(sb.labels[j, ib])
            if la != lb:
                lc[c][_label_kind(la, lb)] += 1
                n_label += 1
                rows.append(
                    {
                        "change": "label_changed",
                        **base,
                        "category": c,
                        "before": _LABEL_NAME[la],
                        "after": _LABEL_NAME[lb],
                    }
                )
        counts["labels_changed"] += n_label > 0
        counts["unchanged"] += not text and not n_label
    return SuiteDiff(
        _side(ref_a, sa),
        _side(ref_b, sb),
        key,
        counts,
        {c: v for c, v in lc.items() if any(v.values())},
        [c for c in cats_a if c not in cats_b],
        [c for c in cats_b if c not in cats_a],
        rows,
    )


def diff_suites(ref_a: str, ref_b: str, *, split: str | None = None, key: Key = "id") -> SuiteDiff:
    """Load both versions (module doc) and diff them."""
    with checkout_version(ref_a) as pa, checkout_version(ref_b) as pb:
        sa, sb = _load(pa, split), _load(pb, split)
        return diff_loaded(ref_a, sa, ref_b, sb, key)


class _DiffSide(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1)
    digest: str = Field(min_length=1)
    split: str | None = None


class _DiffFile(BaseModel):
    """The fields of ``suite_diff.json`` a declaration relies on (the rest is report)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    kind: Literal["audit.suite_diff"]
    from_: _DiffSide = Field(alias="from")
    to: _DiffSide
    counts: dict[str, int] = Field(default_factory=dict)


@dataclass(frozen=True)
class DeclaredDiff:
    """A suite version change declared to a comparison (``--declared-diff``)."""

    path: str
    suite: str
    split: str | None
    from_digest: str
    to_digest: str
    counts: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.path,
            "suite": self.suite,
            "split": self.split,
            "from_digest": self.from_digest,
            "to_digest": self.to_digest,
            "counts": self.counts,
        }


def load_declared_diff(path: str | Path) -> DeclaredDiff:
    """Read one ``suite_diff.json`` (``audit suite diff --out``).

    Raises:
        ConfigError: missing, not JSON, or not a suite diff (names the file and field).
    """
    from audit._util.validation import load_json_model

    try:
        d = load_json_model(_DiffFile, Path(path), what="suite diff (audit suite diff --out)")
    except ConfigError as exc:
        raise ConfigError(
            exc.message,
            where=exc.where,
            field=exc.field,
            expected=exc.expected,
            actual=exc.actual,
            fix="declare the suite_diff.json written by `audit suite diff OLD NEW --out DIR`",
        ) from None
    return DeclaredDiff(
        str(path), d.from_.name, d.from_.split, d.from_.digest, d.to.digest, dict(d.counts)
    )


def declared_digest_pairs(paths: list[str]) -> set[tuple[str, str, str]]:
    """``(suite name, from digest, to digest)`` of each declared ``suite_diff.json``."""
    return {(d.suite, d.from_digest, d.to_digest) for d in map(load_declared_diff, paths)}
