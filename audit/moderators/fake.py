"""``fake``: scripted scores and failures for tests and dry runs (no ML).

Example config::

    type: fake
    params:
      categories: [hate, violence]          # default: every policy category
      scores: {item-1: {hate: 0.9}}          # scripted per item id
      scores_file: fake_scores.jsonl         # {"id": ..., "scores": {...}, "error": ...}
      default: random                        # or a constant such as 0.1
      distribution: uniform                  # or beta (with beta: [a, b])
      seed: 0
      fail: {item-2: "model exploded"}       # → error_type "scripted"
      fail_batches_containing: [item-3]      # the whole batch raises
      sleep_per_batch_s: 0.0

Unscripted scores are deterministic per ``(seed, content_hash, category)``, so
two items with the same content get the same scores, and a rerun gives the same
numbers. Scripted entries (``scores`` over ``scores_file``) override the default
per category.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from audit.errors import ModeratorError
from audit.moderators._torch import check_policy_categories, sha256_file
from audit.moderators.base import ModeratorBase, ModeratorParams, register
from audit.policy import Policy
from audit.schema import Item, ModeratorOutput

NAME = "fake"


class ScriptedBatchFailure(RuntimeError):
    """Raised for a batch holding an id listed in ``fail_batches_containing``."""


def random_score(
    seed: int,
    content_hash: str,
    category: str,
    *,
    distribution: str = "uniform",
    beta: tuple[float, float] = (0.5, 2.0),
) -> float:
    """Deterministic pseudo-random score in [0, 1] for one (seed, content, category)."""
    digest = hashlib.sha256(f"{seed}\x00{content_hash}\x00{category}".encode()).digest()
    if distribution == "uniform":
        return int.from_bytes(digest[:8], "big") / 2.0**64
    import numpy as np

    rng = np.random.default_rng(int.from_bytes(digest[:8], "big"))
    return float(rng.beta(beta[0], beta[1]))


@register(NAME)
class FakeModerator(ModeratorBase):
    """Scripted moderator: fixed or pseudo-random scores, scripted failures."""

    description: ClassVar[str] = (
        "scripted scores and failures for tests and dry runs (deterministic, no ML)"
    )
    kind: ClassVar[str] = "classifier"

    class Params(ModeratorParams):
        """Parameters of ``fake``.

        Attributes:
            categories: categories it speaks to (default: every policy category).
            scores: item id → {category: score in [0, 1]}.
            scores_file: JSONL with ``{"id", "scores", "error"?}`` lines (``scores``
                entries win over the file).
            default: ``random`` or a constant score for anything not scripted.
            distribution: ``uniform`` or ``beta`` (for ``default: random``).
            beta: (a, b) of the beta distribution.
            seed: seed of the random default.
            fail: item id → error message (per-item failure, ``error_type="scripted"``).
            fail_batches_containing: ids whose batch raises :class:`ScriptedBatchFailure`.
            sleep_per_batch_s: seconds to sleep per ``predict`` call.
        """

        categories: tuple[str, ...] | None = None
        scores: dict[str, dict[str, float]] = Field(default_factory=dict)
        scores_file: Path | None = None
        default: Literal["random"] | float = "random"
        distribution: Literal["uniform", "beta"] = "uniform"
        beta: tuple[float, float] = (0.5, 2.0)
        seed: int = 0
        fail: dict[str, str] = Field(default_factory=dict)
        fail_batches_containing: tuple[str, ...] = ()
        sleep_per_batch_s: float = Field(0.0, ge=0.0)

    def __init__(self, params: Params, policy: Policy) -> None:
        self.params = params
        ids = policy.category_ids
        self.categories: tuple[str, ...] = (
            check_policy_categories(params.categories, ids, where=NAME, field="params.categories")
            if params.categories is not None
            else tuple(ids)
        )
        if isinstance(params.default, float) and not 0.0 <= params.default <= 1.0:
            raise ModeratorError(
                "default score out of range",
                where=NAME,
                field="params.default",
                expected="'random' or a number in [0, 1]",
                actual=repr(params.default),
                fix="use a probability",
            )
        if params.beta[0] <= 0 or params.beta[1] <= 0:
            raise ModeratorError(
                "beta parameters must be positive",
                where=NAME,
                field="params.beta",
                expected="[a, b] with a, b > 0",
                actual=repr(list(params.beta)),
            )
        self._scripted: dict[str, dict[str, float]] = {}
        self._file_errors: dict[str, str] = {}
        self._file_sha: str | None = None
        if params.scores_file is not None:
            self._read_scores_file(Path(params.scores_file))
        for item_id, sc in params.scores.items():
            self._scripted.setdefault(item_id, {}).update(sc)
        for item_id, sc in self._scripted.items():
            self._check_scores(item_id, sc, "params.scores")
        self._fail_batches = frozenset(params.fail_batches_containing)

    def _read_scores_file(self, path: Path) -> None:
        if not path.is_file():
            raise ModeratorError(
                "scores file not found",
                where=NAME,
                field="params.scores_file",
                expected="an existing JSONL file",
                actual=str(path),
                fix="check the path",
            )
        self._file_sha = sha256_file(path)
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                item_id = str(row["id"])
                sc = {str(k): float(v) for k, v in (row.get("scores") or {}).items()}
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ModeratorError(
                    f"bad line {n}: {exc}",
                    where=f"{path}:{n}",
                    field="params.scores_file",
                    expected='{"id": ..., "scores": {category: score}}',
                    actual=line[:80],
                ) from exc
            self._scripted.setdefault(item_id, {}).update(sc)
            if row.get("error"):
                self._file_errors[item_id] = str(row["error"])

    def _check_scores(self, item_id: str, scores: dict[str, float], field: str) -> None:
        for cat, v in scores.items():
            if cat not in self.categories:
                raise ModeratorError(
                    f"scripted score for category {cat!r} it does not speak to",
                    where=NAME,
                    field=f"{field}.{item_id}.{cat}",
                    expected=f"one of {list(self.categories)}",
                    actual=repr(cat),
                    fix="add it to params.categories or drop the score",
                )
            if math.isnan(v) or not 0.0 <= v <= 1.0:
                raise ModeratorError(
                    "scripted score out of range",
                    where=NAME,
                    field=f"{field}.{item_id}.{cat}",
                    expected="a number in [0, 1]",
                    actual=repr(v),
                )

    def fingerprint(self) -> dict[str, Any]:
        """Hash of all params (and of the scores file's content)."""
        payload = self.params.model_dump(mode="json")
        payload["scores_file_sha256"] = self._file_sha
        payload["categories"] = list(self.categories)
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        return {
            "type": NAME,
            "params_sha256": hashlib.sha256(blob.encode("utf-8")).hexdigest(),
            "categories": list(self.categories),
        }

    def _score(self, item: Item, cat: str) -> float:
        scripted = self._scripted.get(item.id)
        if scripted is not None and cat in scripted:
            return scripted[cat]
        if self.params.default == "random":
            return random_score(
                self.params.seed,
                item.content_hash,
                cat,
                distribution=self.params.distribution,
                beta=self.params.beta,
            )
        return float(self.params.default)

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        """Scripted outputs, one per item, in order."""
        if self.params.sleep_per_batch_s:
            time.sleep(self.params.sleep_per_batch_s)
        hit = [it.id for it in items if it.id in self._fail_batches]
        if hit:
            raise ScriptedBatchFailure(f"scripted batch failure (batch contains {hit[0]!r})")
        out: list[ModeratorOutput] = []
        for it in items:
            msg = self.params.fail.get(it.id) or self._file_errors.get(it.id)
            if msg is not None:
                out.append(ModeratorOutput(error=msg, error_type="scripted"))
            else:
                out.append(ModeratorOutput(scores={c: self._score(it, c) for c in self.categories}))
        return out

    def close(self) -> None:
        """Nothing to release."""
