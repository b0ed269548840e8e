"""Shared helpers for the model-backed adapters.

Nothing here imports torch or transformers at module level: every heavy import is
inside the function that needs it, so ``import audit.moderators`` stays cheap.

* device / dtype resolution (:func:`resolve_device`, :func:`resolve_dtype`)
* file digests for fingerprints, computed once per file version
  (:func:`sha256_file`, :func:`model_files_digest`)
* local model resolution with a fast, one-line failure when offline
  (:func:`resolve_model_dir`)
* length-sorted micro-batching (:func:`length_batches`)
* quiet model loading (:func:`quiet_hf`)
* native bf16 detection on CPUs (:func:`cpu_has_native_bf16`)
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from audit.errors import ModeratorError

Device = str  # "auto" | "cpu" | "cuda" | "mps" (also "cuda:N")
#: what a ``device`` param may say (validated without importing torch)
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"

#: Weight files that define a transformers checkpoint.
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.gguf")
#: Weight formats that are Python pickles: loading one can run arbitrary code, so a
#: checkpoint holding only these is refused unless ``allow_pickle: true``.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt")
#: Files besides weights that change what a checkpoint computes.
CONFIG_FILES = ("config.json",)
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_DIGESTS: dict[tuple[str, int, int], str] = {}
_DIGEST_LOCK = threading.Lock()


# --------------------------------------------------------------------------- digests


def sha256_file(path: Path) -> str:
    """sha256 of a file, cached per (path, size, mtime) so it is read once per version."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _DIGEST_LOCK:
        hit = _DIGESTS.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    with _DIGEST_LOCK:
        _DIGESTS[key] = digest
    return digest


def combine_digests(files: dict[str, str]) -> str:
    """One sha256 over ``name:digest`` lines, sorted by name."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}:{files[name]}\n".encode())
    return h.hexdigest()


def model_files_digest(model_dir: Path) -> dict[str, Any]:
    """Digests of everything in a checkpoint directory that changes its outputs.

    Returns:
        ``{"weights_sha256": combined digest of the weight files, "files": {relative
        name: sha256}}`` covering weight files (safetensors / bin), ``config.json``,
        tokenizer files and (for sentence-transformers folders) pooling configs.
    """
    files: dict[str, str] = {}
    weights: dict[str, str] = {}
    for pattern in WEIGHT_PATTERNS:
        for p in sorted(model_dir.glob(pattern)):
            if p.is_file():
                d = sha256_file(p)
                files[p.name] = d
                weights[p.name] = d
    names = (*CONFIG_FILES, *TOKENIZER_FILES, "modules.json", "sentence_bert_config.json")
    for name in names:
        p = model_dir / name
        if p.is_file():
            files[name] = sha256_file(p)
    for p in sorted(model_dir.glob("*_Pooling/config.json")):
        files[str(p.relative_to(model_dir))] = sha256_file(p)
    if not weights:
        raise ModeratorError(
            "model directory has no weight files",
            where=str(model_dir),
            expected="model.safetensors or pytorch_model.bin",
            actual=", ".join(sorted(q.name for q in model_dir.iterdir())) or "an empty folder",
            fix="point at a directory written by save_pretrained()",
        )
    return {"weights_sha256": combine_digests(weights), "files": files}


# --------------------------------------------------------------------------- weight format


def safe_load_kwargs(
    model_dir: Path,
    *,
    allow_pickle: bool,
    where: str,
    gguf_file: str | None = None,
    field: str = "params.allow_pickle",
) -> dict[str, Any]:
    """``from_pretrained`` keyword arguments that load safetensors (or GGUF) only.

    A pickle checkpoint (``.bin``/``.pt``/``.pth``/``.ckpt``) can execute code when
    loaded, so by default it is refused: with safetensors present, loading is pinned
    to them (``use_safetensors=True``, never a fallback to a ``.bin`` next to them);
    with only a pickle, a :class:`ModeratorError` names the folder and the file. Remote
    code stays off in every case (``trust_remote_code=False``).

    Args:
        model_dir: the resolved checkpoint directory.
        allow_pickle: the user's opt-in (``allow_pickle: true`` in params).
        where: the moderator name, for the error.
        gguf_file: a GGUF file in ``model_dir`` being loaded (not a pickle).
        field: the config field named in the error.

    Raises:
        ModeratorError: only pickle weights and no opt-in.
    """
    kw: dict[str, Any] = {"trust_remote_code": False}
    if gguf_file:
        return kw
    if any(model_dir.glob("*.safetensors")):
        if not allow_pickle:
            kw["use_safetensors"] = True
        return kw
    pickles = sorted(
        p.name for p in model_dir.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES
    )
    if pickles and not allow_pickle:
        raise ModeratorError(
            f"{where}: checkpoint {model_dir} has only pickle weights ({pickles[0]})",
            where=str(model_dir),
            field=field,
            expected="model.safetensors (or a GGUF file): pickles can run code when loaded",
            actual=", ".join(pickles),
            fix=(
                "convert to safetensors (load it once in a trusted session and "
                "save_pretrained(dir, safe_serialization=True)), or set allow_pickle: true "
                "in params if you trust the file"
            ),
        )
    return kw


# --------------------------------------------------------------------------- model location


def hub_offline() -> bool:
    """Offline if the env says so now (the hub library reads it only at import)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - hub library missing
        return False


def looks_like_path(spec: str) -> bool:
    """True for strings that can only be a filesystem path, never a hub id."""
    return (
        spec.startswith(("/", ".", "~"))
        or "\\" in spec
        or spec.count("/") > 1
        or not _HUB_ID.match(spec)
    )


def resolve_model_dir(
    spec: str, *, revision: str | None = None, field: str = "params.model", where: str
) -> tuple[Path, str | None]:
    """Turn a local directory or hub id into a local directory.

    Args:
        spec: local directory, or hub id (``org/name``).
        revision: hub revision (branch, tag or commit); ignored for local dirs.
        field: the config field named in errors.
        where: the moderator named in errors.

    Returns:
        ``(directory, commit)``; ``commit`` is the hub snapshot commit, ``None`` locally.

    Raises:
        ModeratorError: at once (no retries) when the directory does not exist and
            the hub id is not in the local cache while offline, or cannot be fetched.
    """
    p = Path(spec).expanduser()
    if p.is_dir():
        return p.resolve(), None
    fix = "pass a local model directory; hub downloads need network"
    if p.exists():
        raise ModeratorError(
            "model path is a file, not a directory",
            where=where,
            field=field,
            expected="a directory written by save_pretrained()",
            actual=spec,
            fix="pass the folder holding config.json and the weights",
        )
    if looks_like_path(spec):
        raise ModeratorError(
            "model directory not found",
            where=where,
            field=field,
            expected="an existing local directory or a hub id 'org/name'",
            actual=repr(spec),
            fix=fix,
        )
    offline = hub_offline()
    try:
        from huggingface_hub import snapshot_download

        patterns = ["*.json", "*.safetensors", "*.txt", "*.model"]
        local = Path(
            snapshot_download(
                spec, revision=revision, allow_patterns=patterns, local_files_only=offline
            )
        )
        if not any(local.glob("*.safetensors")):
            local = Path(
                snapshot_download(
                    spec, revision=revision, allow_patterns=["*.bin"], local_files_only=offline
                )
            )
    except Exception as exc:
        why = "offline and not in the local HF cache" if offline else type(exc).__name__
        raise ModeratorError(
            f"cannot resolve model {spec!r}: {why}",
            where=where,
            field=field,
            expected="an existing local directory or a cached hub id",
            actual=repr(spec) + (f"@{revision}" if revision else ""),
            fix=fix,
        ) from exc
    return local, local.name


# --------------------------------------------------------------------------- device, dtype


def resolve_device(device: Device, *, where: str = "", field: str = "params.device") -> str:
    """``auto`` → cuda if available, else mps, else cpu. An unavailable device raises."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    base = device.split(":", 1)[0]
    ok = {
        "cpu": True,
        "cuda": torch.cuda.is_available(),
        "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()),
    }.get(base)
    if ok is None:
        raise ModeratorError(
            "unknown device",
            where=where,
            field=field,
            expected="auto, cpu, cuda, cuda:N or mps",
            actual=repr(device),
            fix="use device: auto",
        )
    if not ok:
        raise ModeratorError(
            f"device {device!r} is not available on this machine",
            where=where,
            field=field,
            expected="auto or cpu",
            actual=repr(device),
            fix="use device: auto (picks cuda, then mps, then cpu)",
        )
    return device


def resolve_dtype(name: str) -> Any:
    """``float32`` / ``bfloat16`` / ``float16`` → ``torch.dtype``."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


@contextmanager
def quiet_hf() -> Iterator[None]:
    """Silence transformers' per-load progress bars and info logs for one block."""
    from transformers.utils import logging as _hf_logging

    hf_logging: Any = _hf_logging  # its switches are untyped functions
    bars = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    # the GGUF loader uses plain tqdm, outside transformers' progress-bar switch
    gguf = sys.modules.get("transformers.modeling_gguf_pytorch_utils")
    if gguf is None:
        try:
            import transformers.modeling_gguf_pytorch_utils as gguf
        except ImportError:  # pragma: no cover - older transformers
            gguf = None
    bar = getattr(gguf, "tqdm", None)
    if bar is not None:
        gguf.tqdm = functools.partial(bar, disable=True)  # type: ignore[union-attr]
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
        if bar is not None:
            gguf.tqdm = bar  # type: ignore[union-attr]


# --------------------------------------------------------------------------- batching


def length_batches(
    lengths: Sequence[int], *, max_batch: int = 32, max_tokens: int = 8192
) -> list[list[int]]:
    """Group indices into micro-batches of similar length (less padding).

    Indices are sorted by length (stable, longest first so the largest padded
    shape shows up early); a batch closes when it holds ``max_batch`` indices or
    when ``len(batch) * longest`` would exceed ``max_tokens``. Callers write
    results back by index, which restores the original order.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    cur: list[int] = []
    longest = 0
    for i in order:
        n = max(1, lengths[i])
        if cur and (len(cur) >= max_batch or (len(cur) + 1) * max(longest, n) > max_tokens):
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, n)
    if cur:
        batches.append(cur)
    return batches


def package_version(dist: str) -> str | None:
    """Installed distribution version, or ``None``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


# --------------------------------------------------------------------------- validation


def did_you_mean(name: str, choices: Sequence[str]) -> str | None:
    """``"did you mean 'x'?"`` for the closest choices, or ``None``."""
    import difflib

    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    return f"did you mean {' or '.join(repr(c) for c in close)}?" if close else None


def check_policy_categories(
    categories: Sequence[str], policy_ids: Sequence[str], *, where: str, field: str
) -> tuple[str, ...]:
    """Validate ``categories`` ⊆ policy ids; return them in policy order, deduplicated."""
    for c in categories:
        if c not in policy_ids:
            hint = did_you_mean(c, policy_ids)
            raise ModeratorError(
                f"category {c!r} is not in the policy",
                where=where,
                field=field,
                expected=f"one of {list(policy_ids)}",
                actual=repr(c),
                fix=hint or "use the policy's category ids",
            )
    wanted = set(categories)
    return tuple(c for c in policy_ids if c in wanted)


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 natively (AMX tiles or AVX512-BF16). Elsewhere
    torch emulates bf16 and it is slower than float32, so ``dtype: fast`` keeps float32
    there (measured for the classifier path and the demo judge: docs/defaults.md)."""
    import torch

    probes = [
        getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    try:
        return any(p is not None and p() for p in probes)
    except Exception:  # pragma: no cover - exotic torch builds without the probes
        return False
