"""One parse of a GGUF file per conversion, however many times transformers asks.

transformers (5.x, legacy GGUF path: every architecture outside its packed-GGUF list,
Qwen2 included) builds a fresh ``gguf.GGUFReader`` for the config, another for the
tokenizer and a third for the weights. Each one walks the whole metadata block, and for
a 151k-token vocabulary that is ~6 s of pure Python on a small CPU: 17 s of the demo
judge's first use went to reading the same bytes three times.

:func:`shared_reader` makes those constructions return one parsed reader for the file
being converted (and only that file). The reader is read-only (a memory map plus parsed
field views), so sharing it cannot change what transformers reads; the tensors and the
scores are the same as with three readers (``tests/moderators/judge/test_gguf_parse.py``).
A kept reader holds ~0.5 GB of field views; it is released by the next ``keep=False``
block on the same file, i.e. once the weights are converted (see
``HFLoader.load``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["kept_readers", "shared_reader"]

_LOCK = threading.RLock()
#: resolved path → ((size, mtime_ns) when parsed, parsed reader): files inside a shared
#: block, or kept by one; a stamp that no longer matches the file is never handed out
_READERS: dict[str, tuple[tuple[int, int], Any]] = {}
#: resolved path → how many open blocks watch it
_WATCHED: dict[str, int] = {}
_DEPTH = 0
_ORIGINAL: Any = None
_CLASSES: dict[Any, Any] = {}


def _stat(path: Any) -> tuple[str, tuple[int, int]] | None:
    try:
        p = Path(path).resolve()
        st = p.stat()
    except (OSError, TypeError, ValueError):
        return None
    return str(p), (st.st_size, st.st_mtime_ns)


def _shared_class(original: Any) -> Any:
    # one subclass per original class: a kept reader stays an instance of the class
    # the next block installs
    if original in _CLASSES:
        return _CLASSES[original]

    class SharedGGUFReader(original):  # type: ignore[misc]
        """A ``GGUFReader`` that hands back the parsed reader of a watched file."""

        def __new__(cls, path: Any, mode: str = "r") -> Any:
            got = _stat(path) if mode == "r" else None
            with _LOCK:
                hit = _READERS.get(got[0]) if got is not None else None
            if got is not None and hit is not None and hit[0] == got[1]:
                return hit[1]
            return super().__new__(cls)

        def __init__(self, path: Any, mode: str = "r") -> None:
            if getattr(self, "_audit_parsed", False):
                return  # the shared reader, already parsed
            super().__init__(path, mode)
            self._audit_parsed = True
            got = _stat(path) if mode == "r" else None
            with _LOCK:
                if got is not None and got[0] in _WATCHED:
                    _READERS[got[0]] = (got[1], self)

    _CLASSES[original] = SharedGGUFReader
    return SharedGGUFReader


@contextmanager
def shared_reader(path: Path, *, keep: bool) -> Iterator[None]:
    """Within the block, every ``gguf.GGUFReader(path)`` in this process returns one
    parsed reader. ``keep``: hold it after the block for a later conversion step of
    the same file (tokenizer now, weights later); otherwise it is released. A file
    changed since it was parsed is parsed again (its stale reader dropped)."""
    import gguf

    global _DEPTH, _ORIGINAL
    got = _stat(path)
    key = got[0] if got is not None else None
    with _LOCK:
        if got is not None and key in _READERS and _READERS[got[0]][0] != got[1]:
            del _READERS[got[0]]
        if _DEPTH == 0:
            _ORIGINAL = gguf.GGUFReader
            setattr(gguf, "GGUFReader", _shared_class(_ORIGINAL))  # noqa: B010
        _DEPTH += 1
        if key is not None:
            _WATCHED[key] = _WATCHED.get(key, 0) + 1
    try:
        yield
    finally:
        with _LOCK:
            if key is not None:
                _WATCHED[key] -= 1
                if _WATCHED[key] == 0:
                    del _WATCHED[key]
                    if not keep:
                        _READERS.pop(key, None)
            _DEPTH -= 1
            if _DEPTH == 0:
                setattr(gguf, "GGUFReader", _ORIGINAL)  # noqa: B010
                _ORIGINAL = None


def kept_readers() -> int:
    """How many parsed readers are held between blocks (tests, diagnostics)."""
    with _LOCK:
        return len(_READERS)
