"""Every change between two policy versions, category by category.

Structural changes (added, removed, renamed, split, merged) come from the new version's
declarations (:mod:`audit.change.lineage`); field edits are found by comparing each new
category with the old category it continues (itself, or the one it is renamed from):
name, definition, examples (``not_allowed`` / ``allowed``, as added and removed
sentences), threshold, severity, default action, restriction, and the external
mapping edges that target it (docs/methods/change.md §1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from audit.change.lineage import Lineage, lineage
from audit.policy import Category, MappingEdge, Policy

#: Category fields compared as scalars, with the label a change is reported under.
SCALAR_FIELDS: tuple[tuple[str, str], ...] = (
    ("name", "name"),
    ("definition", "definition"),
    ("threshold", "threshold"),
    ("severity", "severity"),
    ("default_action", "action"),
    ("restricted", "restricted"),
)


@dataclass(frozen=True)
class Change:
    """One change.

    Attributes:
        category: the category it concerns (the new id, or the old one when removed;
            ``*`` for policy-level metadata).
        kind: ``added``, ``removed``, ``renamed``, ``split``, ``merged``, ``name``,
            ``definition``, ``examples``, ``threshold``, ``severity``, ``action``,
            ``restricted``, ``mapping`` or ``metadata``.
        field: the policy field changed (``not_allowed``, ``mappings.llama_guard_3``...).
        before / after: old and new value (JSON-ready; None when absent).
        note: the version's own explanation (``change_note``, retirement reason).
    """

    category: str
    kind: str
    field: str
    before: Any
    after: Any
    note: str | None = None


@dataclass
class PolicyDiff:
    """All changes from ``old`` to ``new``."""

    old_ref: str
    new_ref: str
    old_digest: str
    new_digest: str
    declared: bool
    changes: list[Change]

    def to_json(self) -> dict[str, Any]:
        by_kind: dict[str, int] = {}
        for c in self.changes:
            by_kind[c.kind] = by_kind.get(c.kind, 0) + 1
        return {
            "from": {"ref": self.old_ref, "digest": self.old_digest},
            "to": {"ref": self.new_ref, "digest": self.new_digest},
            "declared_succession": self.declared,
            "n_changes": len(self.changes),
            "by_kind": by_kind,
            "changes": [asdict(c) for c in self.changes],
        }

    def categories(self) -> list[str]:
        """Categories with at least one change, in first-seen order."""
        return list(dict.fromkeys(c.category for c in self.changes))


def _edges_for(policy: Policy, cid: str) -> dict[tuple[str, str], MappingEdge]:
    out: dict[tuple[str, str], MappingEdge] = {}
    for tax, m in policy.mappings.items():
        for e in m.edges:
            if e.target == cid:
                out[(tax, e.source)] = e
    return out


def _edge_json(e: MappingEdge | None) -> dict[str, Any] | None:
    return None if e is None else {"coverage": e.coverage, "note": e.note}


def _category_edits(old: Category | None, new: Category, op: Policy, np_: Policy) -> list[Change]:
    out: list[Change] = []
    cid = new.id
    if old is not None:
        for fname, kind in SCALAR_FIELDS:
            a, b = getattr(old, fname), getattr(new, fname)
            if a != b:
                out.append(Change(cid, kind, fname, a, b, new.change_note))
        for fname in ("not_allowed", "allowed"):
            a_set, b_set = set(getattr(old, fname)), set(getattr(new, fname))
            if a_set != b_set:
                out.append(
                    Change(
                        cid,
                        "examples",
                        fname,
                        sorted(a_set - b_set),
                        sorted(b_set - a_set),
                        new.change_note,
                    )
                )
    old_edges = _edges_for(op, old.id) if old is not None else {}
    new_edges = _edges_for(np_, cid)
    for key in sorted(set(old_edges) | set(new_edges)):
        a_e, b_e = old_edges.get(key), new_edges.get(key)
        if (
            a_e is not None
            and b_e is not None
            and a_e == b_e.model_copy(update={"target": a_e.target})
        ):
            continue
        out.append(
            Change(
                cid,
                "mapping",
                f"mappings.{key[0]}[{key[1]}]",
                _edge_json(a_e),
                _edge_json(b_e),
            )
        )
    return out


def diff_policies(old: Policy, new: Policy, where: str = "") -> PolicyDiff:
    """Every change from ``old`` to ``new`` (succession checked when declared)."""
    lin: Lineage = lineage(old, new, where)
    changes: list[Change] = []
    for key in ("name", "effective_date", "description"):
        a, b = getattr(old, key), getattr(new, key)
        if a != b:
            changes.append(Change("*", "metadata", key, a, b))
    retired = {r.id: r for r in new.retired}
    for oid, fate in lin.fates.items():
        r = retired.get(oid)
        reason = r.reason if r is not None else None
        if fate.kind == "removed":
            changes.append(Change(oid, "removed", "categories", oid, None, reason))
        elif fate.kind == "renamed":
            changes.append(Change(fate.targets[0], "renamed", "id", oid, fate.targets[0]))
        elif fate.kind == "split" and r is not None and r.split_into is not None:
            rule = [
                {
                    "into": b.into,
                    "when": None
                    if b.when is None
                    else b.when.model_dump(mode="json", exclude_none=True),
                }
                for b in r.split_into
            ]
            changes.append(
                Change(
                    oid,
                    "split",
                    "retired.split_into",
                    oid,
                    {"into": list(fate.targets), "rule": rule, "unassigned": r.unassigned},
                    reason,
                )
            )
        elif fate.kind == "merged":
            changes.append(
                Change(oid, "merged", "retired.merged_into", oid, fate.targets[0], reason)
            )
        if fate.kind in ("removed", "split", "merged"):
            # the retired id's own edges disappear with it (its successors list theirs)
            for (tax, src), e in sorted(_edges_for(old, oid).items()):
                changes.append(
                    Change(oid, "mapping", f"mappings.{tax}[{src}]", _edge_json(e), None)
                )
    for c in new.categories:
        origins = lin.origins.get(c.id, ())
        counterpart: Category | None = None
        if c.id in old.category_ids:
            counterpart = old.category(c.id)
        elif c.renamed_from is not None and lin.declared:
            counterpart = old.category(c.renamed_from)
        elif origins:
            changes.append(Change(c.id, "added", "categories", None, c.id, c.change_note))
            changes.append(
                Change(
                    c.id,
                    "added",
                    "origin",
                    None,
                    list(origins),
                    "takes gold from " + ", ".join(origins),
                )
            )
        else:
            changes.append(Change(c.id, "added", "categories", None, c.id, c.change_note))
        changes.extend(_category_edits(counterpart, c, old, new))
    order = {cid: i for i, cid in enumerate(("*", *new.category_ids, *old.category_ids))}
    changes.sort(key=lambda ch: order.get(ch.category, len(order)))
    return PolicyDiff(old.ref, new.ref, old.digest(), new.digest(), lin.declared, changes)


def short_value(v: Any, n: int = 90) -> str:
    if v is None:
        return "—"
    if isinstance(v, list):
        s = "; ".join(str(x) for x in v) if v else "—"
    elif isinstance(v, dict):
        s = ", ".join(f"{k}={short_value(x, 40)}" for k, x in v.items())
    else:
        s = str(v)
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1] + "…"


def sentence_diff(before: str, after: str) -> tuple[list[str], list[str]]:
    """Sentences of ``before`` not in ``after`` and vice versa (definition edits read
    better as whole sentences than as a character diff)."""
    import re

    def split(t: str) -> list[str]:
        return [x.strip() for x in re.split(r"(?<=[.!?])\s+", " ".join(t.split())) if x.strip()]

    a, b = split(before), split(after)
    return [x for x in a if x not in b], [x for x in b if x not in a]


def diff_markdown(d: PolicyDiff) -> str:
    """The diff as a markdown report, one section per category."""
    lines = [
        f"# Policy diff: {d.old_ref} → {d.new_ref}",
        "",
        f"- from digest `{d.old_digest[:12]}`, to digest `{d.new_digest[:12]}`",
        f"- succession declared (`supersedes: {d.old_ref}`): {'yes' if d.declared else 'no'}",
        f"- {len(d.changes)} change(s) in {len(d.categories())} section(s)",
        "",
    ]
    for cat in d.categories():
        lines += [f"## {'policy metadata' if cat == '*' else cat}", ""]
        lines += ["| kind | field | before | after |", "| --- | --- | --- | --- |"]
        notes: list[str] = []
        for c in d.changes:
            if c.category != cat:
                continue
            if c.kind == "definition" and isinstance(c.before, str) and isinstance(c.after, str):
                gone, new = sentence_diff(c.before, c.after)
                before = "removed: " + (" ".join(gone) or "—")
                after = "added: " + (" ".join(new) or "—")
            elif (
                c.kind == "mapping"
                and isinstance(c.before, dict)
                and isinstance(c.after, dict)
                and c.before["coverage"] == c.after["coverage"]
            ):
                gone, new = sentence_diff(c.before["note"] or "", c.after["note"] or "")
                before = f"{c.before['coverage']}; note: " + short_value(" ".join(gone) or "—", 70)
                after = "note: " + short_value(" ".join(new) or "—", 70)
            else:
                before, after = short_value(c.before), short_value(c.after)
            before, after = before.replace("|", "\\|"), after.replace("|", "\\|")
            lines.append(f"| {c.kind} | `{c.field}` | {before} | {after} |")
            if c.note and c.note not in notes:
                notes.append(c.note)
        lines.append("")
        for n in notes:
            lines += [f"> {' '.join(n.split())}", ""]
    return "\n".join(lines)
