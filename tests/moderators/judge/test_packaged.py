"""Packaged-model sources: parts concatenated in order and verified by sha256."""

from __future__ import annotations

import hashlib
import sys
import types
from pathlib import Path

import pytest

from audit.errors import ModeratorError
from audit.moderators.judge import packaged


def _fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corrupt: bool = False):
    parts = []
    blobs = [b"first-part-", b"second-part"]
    for i, blob in enumerate(blobs, 1):
        pkg = tmp_path / f"fakepkg{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob if not (corrupt and i == 2) else b"x")
        parts.append((f"fakepkg{i}", f"data/part{i:02d}.bin"))
    monkeypatch.syspath_prepend(str(tmp_path))
    whole = b"".join(blobs)
    model = packaged.PackagedModel(
        "fake",
        "fake.gguf",
        tuple(parts),
        hashlib.sha256(whole).hexdigest(),
        len(whole),
        "test",
        "test",
    )
    monkeypatch.setitem(packaged.PACKAGED, "fake", model)
    monkeypatch.setenv("AUDIT_MODEL_CACHE", str(tmp_path / "cache"))
    return whole


def test_assemble_verifies_and_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _fake(tmp_path, monkeypatch)
    p = packaged.assemble("fake")
    assert p.read_bytes() == whole
    assert packaged.resolve("packaged:fake") == (str(p.parent), "fake.gguf")
    assert packaged.assemble("fake") == p  # stamp hit
    assert packaged.resolve("/some/dir") == ("/some/dir", None)


def test_corrupt_part_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake(tmp_path, monkeypatch, corrupt=True)
    with pytest.raises(ModeratorError) as exc:
        packaged.assemble("fake")
    assert "failed verification" in exc.value.render()
    assert not list((tmp_path / "cache").rglob("*.gguf"))


def test_missing_package_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake(tmp_path, monkeypatch)
    model = packaged.PACKAGED["fake"]
    monkeypatch.setitem(
        packaged.PACKAGED,
        "fake",
        packaged.PackagedModel(
            "fake",
            "fake.gguf",
            (("no_such_pkg_xyz", "data/p.bin"),),
            model.sha256,
            model.size,
            "",
            "",
        ),
    )
    with pytest.raises(ModeratorError) as exc:
        packaged.assemble("fake")
    assert "[judge]" in exc.value.render()
    assert types and sys
