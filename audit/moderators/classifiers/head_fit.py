"""Training ``embedding_head``'s linear heads (format ``audit.embedding_head/v1``): one
logistic regression per category on encoder embeddings, written atomically as
``head.safetensors`` + ``head.json``; the pure API behind ``audit train-head``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from audit.errors import ModeratorError
from audit.moderators._torch import (
    sha256_file,
)
from audit.moderators.classifiers.head_encoder import DEFAULT_ENCODER, HEAD_FORMAT, make_encoder

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class CategoryFit:
    """Training outcome for one category."""

    n_pos: int
    n_neg: int
    C: float | None
    train_auroc: float | None
    included: bool
    reason: str | None = None


@dataclass(frozen=True)
class HeadSummary:
    """What :func:`fit_head` wrote.

    Attributes:
        out_dir: the head directory.
        categories: categories in the head (row order of ``weight``).
        per_category: outcome for every requested category (included or not).
        skipped: category → reason it was left out.
        encoder: encoder fingerprint the head is bound to.
        n_texts: rows embedded (rows with at least one known label).
        dim: embedding dimension.
        head_sha256: sha256 of ``head.safetensors``.
    """

    out_dir: Path
    categories: tuple[str, ...]
    per_category: dict[str, CategoryFit]
    skipped: dict[str, str]
    encoder: dict[str, Any]
    n_texts: int
    dim: int
    head_sha256: str
    trained_on: dict[str, Any] = field(default_factory=dict)


def atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def fit_head(
    texts: list[str],
    labels: np.ndarray,
    categories: list[str],
    out_dir: Path,
    *,
    encoder: str = DEFAULT_ENCODER,
    C: float = 1.0,
    class_weight: Literal["balanced"] | None = "balanced",
    min_positives: int = 8,
    seed: int = 0,
    trained_on: dict[str, Any] | None = None,
    batch_size: int = 64,
    max_length: int = 256,
    device: str = "auto",
    threads: int | None = None,
) -> HeadSummary:
    """Embed ``texts`` once and fit one L2 logistic regression per category.

    Args:
        texts: training texts (``Item.text()`` of each row).
        labels: (n, K) int array; 1 positive, 0 negative, -1 unknown (row ignored
            for that category).
        categories: the K category ids, column order of ``labels``.
        out_dir: directory to write ``head.safetensors`` and ``head.json`` into
            (created; each file replaced atomically, json last).
        encoder: encoder spec (see module docstring).
        C: inverse L2 regularisation strength.
        class_weight: ``"balanced"`` or ``None``.
        min_positives: categories with fewer known positives (or negatives) are
            left out of the head.
        seed: passed to the solver (lbfgs is deterministic).
        trained_on: provenance stored verbatim (suite, split, digest...).
        batch_size, max_length, device: encoder settings.
        threads: BLAS threads of the USE encoder (None: its default). The embeddings'
            last float32 bit depends on it, so scripts/train_heads.py pins it for
            byte-identical heads (docs/defaults.md, "Reproduce").

    Returns:
        A :class:`HeadSummary`.

    Raises:
        ValueError: shapes of ``texts``, ``labels``, ``categories`` disagree.
        ModeratorError: no category has enough labelled data.
    """
    y_all = _checked_labels(texts, labels, categories)
    per, skipped = _eligible(y_all, categories, min_positives)
    fit_cats = [c for c in categories if c not in skipped]
    rows, X, enc_fp = _embed_known_rows(
        texts,
        y_all,
        [categories.index(c) for c in fit_cats],
        encoder,
        batch_size,
        max_length,
        device,
        threads,
    )
    weights, bias = _fit_logistic(X, y_all[rows], categories, fit_cats, C, class_weight, seed, per)

    training = {
        "C": C,
        "class_weight": class_weight,
        "min_positives": min_positives,
        "seed": seed,
        "solver": "lbfgs",
        "n_texts": len(rows),
    }
    return _save_head(
        Path(out_dir), weights, bias, categories, per, skipped, enc_fp, training, trained_on or {}
    )


def _save_head(
    out_dir: Path,
    weights: np.ndarray,
    bias: np.ndarray,
    categories: list[str],
    per: dict[str, CategoryFit],
    skipped: dict[str, str],
    enc_fp: dict[str, Any],
    training: dict[str, Any],
    trained_on: dict[str, Any],
) -> HeadSummary:
    """Write ``head.safetensors`` then ``head.json`` (each atomically, json last, so a
    head.json on disk always describes complete weights); the summary of what was written."""
    fit_cats = [c for c in categories if c not in skipped]
    out_dir.mkdir(parents=True, exist_ok=True)
    head_sha = _write_weights(out_dir, weights, bias)
    meta = {
        "format": HEAD_FORMAT,
        "categories": fit_cats,
        "dim": int(weights.shape[1]),
        "weights_sha256": head_sha,
        "encoder": enc_fp,
        "trained_on": trained_on,
        "training": training,
        "per_category": {c: asdict(per[c]) for c in categories},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write(
        out_dir / "head.json",
        lambda p: p.write_text(json.dumps(meta, indent=2, default=str) + "\n", "utf-8"),
    )
    return HeadSummary(
        out_dir=out_dir,
        categories=tuple(fit_cats),
        per_category={c: per[c] for c in categories},
        skipped=skipped,
        encoder=enc_fp,
        n_texts=int(training["n_texts"]),
        dim=int(weights.shape[1]),
        head_sha256=head_sha,
        trained_on=dict(trained_on),
    )


def _embed_known_rows(
    texts: list[str],
    y_all: np.ndarray,
    fit_cols: list[int],
    encoder: str,
    batch_size: int,
    max_length: int,
    device: str,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Rows with a known label in some fitted category, their float64 embeddings and the
    encoder fingerprint (the encoder is closed afterwards)."""
    import numpy as np

    rows = np.flatnonzero((y_all[:, fit_cols] >= 0).any(axis=1))
    enc = make_encoder(
        encoder,
        max_length=max_length,
        device=device,
        normalize=True,
        batch_size=batch_size,
        threads=threads,
    )
    try:
        X = enc.encode([texts[i] for i in rows]).astype(np.float64)
        return rows, X, enc.fingerprint()
    finally:
        enc.close()


def _checked_labels(texts: list[str], labels: np.ndarray, categories: list[str]) -> np.ndarray:
    """``labels`` as an (n, K) int64 array of -1/0/1; ValueError on any mismatch."""
    import numpy as np

    y_all = np.asarray(labels)
    if y_all.ndim != 2 or y_all.shape != (len(texts), len(categories)):
        raise ValueError(
            f"labels must have shape (len(texts), len(categories)) = "
            f"({len(texts)}, {len(categories)}), got {y_all.shape}"
        )
    if len(set(categories)) != len(categories):
        raise ValueError(f"duplicate categories in {categories}")
    y_all = y_all.astype(np.int64)
    if not np.isin(y_all, (-1, 0, 1)).all():
        raise ValueError("labels must be -1 (unknown), 0 or 1")

    return y_all


def _eligible(
    y_all: np.ndarray, categories: list[str], min_positives: int
) -> tuple[dict[str, CategoryFit], dict[str, str]]:
    """Categories with too few known positives or negatives, with why; ModeratorError
    when none is left to fit."""
    per: dict[str, CategoryFit] = {}
    skipped: dict[str, str] = {}
    for k, cat in enumerate(categories):
        n_pos = int((y_all[:, k] == 1).sum())
        n_neg = int((y_all[:, k] == 0).sum())
        if n_pos < min_positives or n_neg < min_positives:
            which = "positives" if n_pos < min_positives else "negatives"
            reason = f"{n_pos if which == 'positives' else n_neg} known {which} < {min_positives}"
            skipped[cat] = reason
            per[cat] = CategoryFit(n_pos, n_neg, None, None, included=False, reason=reason)
    if len(skipped) == len(categories):
        raise ModeratorError(
            "no category has enough labelled examples to fit a head",
            where="train-head",
            expected=f">= {min_positives} known positives and negatives in some category",
            actual="; ".join(f"{c}: {r}" for c, r in skipped.items()),
            fix="add labelled data or lower min_positives",
        )

    return per, skipped


def _fit_logistic(
    X: np.ndarray,
    y_rows: np.ndarray,
    categories: list[str],
    fit_cats: list[str],
    C: float,
    class_weight: Literal["balanced"] | None,
    seed: int,
    per: dict[str, CategoryFit],
) -> tuple[np.ndarray, np.ndarray]:
    """One L2 logistic regression per fitted category on its known rows; the head's
    weight matrix and bias, and each category's outcome recorded in ``per``."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    weights = np.zeros((len(fit_cats), X.shape[1]), dtype=np.float32)
    bias = np.zeros((len(fit_cats),), dtype=np.float32)
    for r, cat in enumerate(fit_cats):
        col = y_rows[:, categories.index(cat)]
        known = col >= 0
        Xk, yk = X[known], col[known]
        clf = LogisticRegression(
            C=C, class_weight=class_weight, solver="lbfgs", max_iter=5000, random_state=seed
        )
        clf.fit(Xk, yk)
        weights[r] = clf.coef_[0]
        bias[r] = clf.intercept_[0]
        auroc = float(roc_auc_score(yk, clf.decision_function(Xk)))
        per[cat] = CategoryFit(
            int((yk == 1).sum()), int((yk == 0).sum()), float(C), auroc, included=True
        )

    return weights, bias


def _write_weights(out_dir: Path, weights: np.ndarray, bias: np.ndarray) -> str:
    """Write ``head.safetensors`` atomically; return its SHA-256 (stored in head.json)."""
    import numpy as np
    from safetensors.numpy import save_file

    st_path = out_dir / "head.safetensors"
    atomic_write(
        st_path,
        lambda p: save_file(
            {"weight": np.ascontiguousarray(weights), "bias": bias},
            str(p),
            metadata={"format": HEAD_FORMAT},
        ),
    )
    head_sha = sha256_file(st_path)
    return head_sha
