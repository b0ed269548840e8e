"""The loaded suite: a validated split in the canonical schema, its gold arrays and
digest, seeded subsets, and the provenance written to the run record."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from audit.schema import POSITIVE, UNKNOWN
from audit.suites.card import SuiteCard

if TYPE_CHECKING:
    import datasets

    from audit.suites.annotations import AnnotatorLabels


@dataclass
class LoadedSuite:
    """A validated suite split.

    Attributes:
        dataset: canonical ``datasets.Dataset`` (see :mod:`audit.schema`).
        labels: (n, K) int8 gold per policy category (-1 unknown), K = len(categories).
        overall: (n,) int8 any-violation gold (-1 unknown).
        digest: sha256 over the canonical schema and every row sorted by id.
    """

    card: SuiteCard
    card_path: Path
    split: str
    dataset: datasets.Dataset
    categories: tuple[str, ...]
    covers: tuple[str, ...]
    labels: np.ndarray
    overall: np.ndarray
    digest: str
    source: dict[str, Any]
    slice_names: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """Card rules that look wrong on this data (a class no row received, a value
    matching nothing, a pattern-like literal); shown by validate and in the run."""
    annotations: AnnotatorLabels | None = None
    """Per-annotator labels of a multi-annotator card (``annotations:``), row-aligned."""
    _columns: dict[str, list[Any]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def column(self, name: str) -> list[Any]:
        """The values of one column as a Python list, read once per suite (the
        dataset is immutable; ``dataclasses.replace`` starts a fresh cache).

        ``dataset[name]`` is a lazy column in datasets 5, and indexing it per row
        is an Arrow lookup each: writers that walk ids, hashes and slices row by
        row pay seconds over a run without this. Callers must not mutate the list.
        """
        hit = self._columns.get(name)
        if hit is None:
            hit = self.dataset.select_columns([name]).to_dict()[name]
            self._columns[name] = hit
        return hit

    @property
    def name(self) -> str:
        return self.card.name

    def __len__(self) -> int:
        return len(self.dataset)

    def sample(self, n: int, *, seed: int = 0, stratify: bool = True) -> LoadedSuite:
        """A reproducible subset of ``n`` items (all of them when ``n >= len``).

        Items are ranked by ``sha256(seed, id)``; with ``stratify`` each any-violation
        gold stratum (1 / 0 / -1) gets its share of ``n`` by largest remainder (at
        least one item when the stratum is non-empty and ``n`` allows). Row order is
        kept. The subset's digest covers the parent digest and the chosen ids, and
        ``source["sample"]`` records how it was drawn."""
        import dataclasses

        total = len(self)
        if n >= total:
            return self
        ids = self.column("id")
        rank = sorted(
            range(total), key=lambda i: hashlib.sha256(f"{seed}\0{ids[i]}".encode()).hexdigest()
        )
        if stratify:
            strata: dict[int, list[int]] = {}
            for i in rank:
                strata.setdefault(int(self.overall[i]), []).append(i)
            quota = {k: n * len(v) / total for k, v in strata.items()}
            take = {k: int(q) for k, q in quota.items()}
            for k in strata:  # every stratum present keeps at least one item
                if take[k] == 0 and sum(take.values()) < n:
                    take[k] = 1
            for k in sorted(quota, key=lambda k: (take[k] - quota[k], k)):
                if sum(take.values()) >= n:
                    break
                if take[k] < len(strata[k]):
                    take[k] += 1
            chosen = sorted(i for k, v in strata.items() for i in v[: take[k]])
        else:
            chosen = sorted(rank[:n])
        picked = [ids[i] for i in chosen]
        digest = hashlib.sha256(
            json.dumps([self.digest, seed, sorted(picked)]).encode("utf-8")
        ).hexdigest()
        return dataclasses.replace(
            self,
            dataset=self.dataset.select(chosen),
            labels=self.labels[chosen],
            overall=self.overall[chosen],
            annotations=None if self.annotations is None else self.annotations.subset(chosen),
            digest=digest,
            source={
                **self.source,
                "sample": {
                    "n": len(chosen),
                    "of": total,
                    "seed": seed,
                    "stratify": stratify,
                    "method": "seeded sha256(id) ranking"
                    + (", stratified by any-violation gold" if stratify else ""),
                    "parent_digest": self.digest,
                },
            },
        )

    def describe(self) -> dict[str, Any]:
        """Provenance written to the run record."""
        return {
            "name": self.card.name,
            "version": self.card.version,
            "split": self.split,
            "n": len(self),
            "digest": self.digest,
            "policy": self.card.policy,
            "covers": list(self.covers),
            "source": self.source,
            "card": str(self.card_path),
            "positives": {
                c: int((self.labels[:, k] == POSITIVE).sum()) for k, c in enumerate(self.categories)
            },
            "unknown": {
                c: int((self.labels[:, k] == UNKNOWN).sum()) for k, c in enumerate(self.categories)
            },
            "overall_positives": int((self.overall == POSITIVE).sum()),
            "warnings": list(self.warnings),
        }
