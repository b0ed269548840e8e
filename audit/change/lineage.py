"""How the categories of one policy version become those of the next.

A newer policy declares its predecessor with ``supersedes`` and every structural change
explicitly: a category ``renamed_from`` an old id, or an old id listed under ``retired``
as ``split_into`` (ordered branches with a rule), ``merged_into`` another category, or
removed. :func:`check_succession` verifies the declaration against the old version (no
old category may vanish silently), and :func:`lineage` turns it into a mapping both
ways that the diff, the gold migration and the pathway check share
(docs/methods/change.md §1).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from audit.errors import ConfigError
from audit.policy import Policy, load_policy, policies_dir


@dataclass(frozen=True)
class Fate:
    """What became of one category of the old version.

    Attributes:
        kind: ``kept``, ``renamed``, ``split``, ``merged`` or ``removed``.
        targets: the new-version categories it lives on in (empty when removed).
    """

    kind: str
    targets: tuple[str, ...]


@dataclass(frozen=True)
class Lineage:
    """Old → new and new → old category correspondence of two versions.

    Attributes:
        declared: the new version declares ``supersedes`` the old one; without it the
            correspondence is by id only (unmatched ids are added / removed).
        fates: old category id → :class:`Fate`.
        origins: new category id → the old categories it takes gold from (empty: added).
    """

    old: Policy
    new: Policy
    declared: bool
    fates: dict[str, Fate] = field(default_factory=dict)
    origins: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def groups(self) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
        """Connected components of the correspondence: ``(old ids, new ids)`` pairs.

        A one-to-one category is its own group; a split parent forms one group with its
        children, a merge target with its sources. Decisions are comparable across the
        two versions at the level of a group (the OR over its categories).
        """
        parent: dict[str, str] = {}

        def find(x: str) -> str:
            while parent.setdefault(x, x) != x:
                parent[x] = parent[parent[x]]
                x = parent[x]
            return x

        for o, f in self.fates.items():
            find("o:" + o)
            for t in f.targets:
                parent[find("o:" + o)] = find("n:" + t)
        for n in self.new.category_ids:
            find("n:" + n)
        comps: dict[str, tuple[list[str], list[str]]] = {}
        for key in list(parent):
            olds, news = comps.setdefault(find(key), ([], []))
            (olds if key.startswith("o:") else news).append(key[2:])
        order = {c: i for i, c in enumerate(self.old.category_ids)}
        norder = {c: i for i, c in enumerate(self.new.category_ids)}
        out = [
            (
                tuple(sorted(o, key=lambda c: order.get(c, 0))),
                tuple(sorted(n, key=lambda c: norder.get(c, 0))),
            )
            for o, n in comps.values()
        ]
        return sorted(out, key=lambda g: (order.get(g[0][0], 99) if g[0] else 99, g[1][:1]))


def check_succession(old: Policy, new: Policy, where: str) -> None:
    """Verify ``new``'s structural declarations against ``old`` (it supersedes it).

    Raises:
        ConfigError: an old category vanishes without a declaration, or a declaration
            names a category ``old`` does not have (``where`` is the new policy's file).
    """
    old_ids = set(old.category_ids)
    new_ids = set(new.category_ids)
    for i, c in enumerate(new.categories):
        if c.renamed_from is not None and c.renamed_from not in old_ids:
            raise ConfigError(
                f"category {c.id!r} is renamed from a category {old.ref} does not have",
                where=where,
                field=f"categories[{i}].renamed_from",
                expected=f"one of {sorted(old_ids - new_ids)}",
                actual=repr(c.renamed_from),
                fix="name the old id exactly, or drop renamed_from for a new category",
            )
    for i, r in enumerate(new.retired):
        if r.id not in old_ids:
            raise ConfigError(
                f"retired category {r.id!r} is not a category of {old.ref}",
                where=where,
                field=f"retired[{i}].id",
                expected=f"one of {sorted(old_ids - new_ids)}",
                actual=repr(r.id),
                fix="list only categories of the superseded version under retired",
            )
        for j, b in enumerate(r.split_into or ()):
            if b.when is not None and b.when.label is not None and b.when.label not in old_ids:
                raise ConfigError(
                    "split condition refers to a category the superseded version lacks",
                    where=where,
                    field=f"retired[{i}].split_into[{j}].when.label",
                    expected=f"a category of {old.ref}",
                    actual=repr(b.when.label),
                    fix="split rules read the old version's gold: use one of its ids",
                )
    accounted = new_ids | {c.renamed_from for c in new.categories if c.renamed_from}
    accounted |= {r.id for r in new.retired}
    missing = [c for c in old.category_ids if c not in accounted]
    if missing:
        raise ConfigError(
            f"categories of {old.ref} vanish without a declaration: {missing}",
            where=where,
            field="retired",
            expected="every old category kept, renamed (renamed_from) or listed under retired",
            actual=f"{len(missing)} undeclared",
            fix="add them under retired: with split_into, merged_into or a removal reason",
        )


def lineage(old: Policy, new: Policy, where: str = "") -> Lineage:
    """The correspondence of ``old`` and ``new`` (checked when ``new`` supersedes ``old``)."""
    declared = new.supersedes == old.ref
    lin = Lineage(old, new, declared)
    if declared:
        check_succession(old, new, where or f"{new.ref}.yaml")
    renames = {c.renamed_from: c.id for c in new.categories if c.renamed_from} if declared else {}
    retired = {r.id: r for r in new.retired} if declared else {}
    for c in old.category_ids:
        if c in new.category_ids:
            lin.fates[c] = Fate("kept", (c,))
        elif c in renames:
            lin.fates[c] = Fate("renamed", (renames[c],))
        elif c in retired:
            r = retired[c]
            if r.split_into is not None:
                targets = tuple(dict.fromkeys(b.into for b in r.split_into))
                lin.fates[c] = Fate("split", targets)
            elif r.merged_into is not None:
                lin.fates[c] = Fate("merged", (r.merged_into,))
            else:
                lin.fates[c] = Fate("removed", ())
        else:
            lin.fates[c] = Fate("removed", ())
    for n in new.category_ids:
        lin.origins[n] = tuple(o for o, f in lin.fates.items() if n in f.targets)
    return lin


def resolve_policy_path(ref_or_path: str | Path) -> Path:
    """The file of a policy reference (``platform-v2``) or path."""
    p = Path(ref_or_path)
    return p if p.suffix in (".yaml", ".yml") else policies_dir() / f"{ref_or_path}.yaml"


def load_chain(ref_or_path: str | Path) -> list[Policy]:
    """A policy and every version it (transitively) supersedes, newest first.

    Predecessors are looked up next to the policy file (``<dir>/<supersedes>.yaml``).

    Raises:
        ConfigError: a ``supersedes`` cycle (naming the file and the loop), or a
            predecessor file that does not exist.
    """
    path = resolve_policy_path(ref_or_path)
    chain = [load_policy(path)]
    seen = {chain[0].ref: path}
    while chain[-1].supersedes is not None:
        prev = chain[-1].supersedes
        where = seen[chain[-1].ref]
        if prev in seen:
            loop = " → ".join([*[p.ref for p in chain], prev])
            raise ConfigError(
                f"supersedes cycle: {loop}",
                where=str(where),
                field="supersedes",
                expected="a chain of earlier versions that ends in one without supersedes",
                actual=repr(prev),
                fix="point supersedes at the version this one replaces (never a later one)",
            )
        ppath = where.parent / f"{prev}.yaml"
        if not ppath.exists():
            raise ConfigError(
                "superseded policy version not found",
                where=str(where),
                field="supersedes",
                expected=f"a policy file {ppath.name} next to this one",
                actual=repr(prev),
                fix="add the earlier version's file or correct supersedes",
            )
        chain.append(load_policy(ppath))
        seen[chain[-1].ref] = ppath
    return chain
