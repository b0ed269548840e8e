"""Heads shipped inside the ``audit`` package (``head: packaged:<name>`` in a config).

Each is a folder under ``audit/moderators/classifiers/heads_data/<name>/`` holding
``head.safetensors`` + ``head.json`` (format ``audit.embedding_head/v1``) written by
``scripts/train_heads.py``. ``head.json`` carries the training data's provenance: every
source, its split, row count, digest and licence; the seed; the encoder fingerprint;
dev metrics. A head is shipped only when every source licence allows redistributing a
model derived from it (docs/defaults.md, "Shipped heads"); otherwise the config trains
it on first use with ``params.fit``.
"""

from __future__ import annotations

from pathlib import Path

from audit.errors import ModeratorError
from audit.moderators._torch import did_you_mean

PACKAGED_PREFIX = "packaged:"
HEADS_DATA = Path(__file__).resolve().parent / "heads_data"


def packaged_head_names() -> list[str]:
    """Names of the heads shipped with this installation (sorted)."""
    if not HEADS_DATA.is_dir():
        return []
    return sorted(p.name for p in HEADS_DATA.iterdir() if (p / "head.json").is_file())


def resolve_head_dir(head: Path | str, *, where: str = "embedding_head") -> Path:
    """``packaged:<name>`` → the shipped head's folder; any other value → that path."""
    text = str(head)
    if not text.startswith(PACKAGED_PREFIX):
        return Path(text).expanduser()
    name = text[len(PACKAGED_PREFIX) :]
    names = packaged_head_names()
    if name not in names:
        hint = did_you_mean(name, names)
        raise ModeratorError(
            f"unknown packaged head {name!r}",
            where=where,
            field="params.head",
            expected=f"one of {[PACKAGED_PREFIX + n for n in names]}",
            actual=repr(text),
            fix=hint or "use a listed packaged head or a directory written by `audit train-head`",
        )
    return HEADS_DATA / name
