"""read_yaml: every way a YAML file can be unreadable is one error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from audit._util import validation as V
from audit.errors import ConfigError, SuiteError


def _err(path: Path, **kw: type[ConfigError] | type[SuiteError]) -> ConfigError:
    with pytest.raises((ConfigError, SuiteError)) as e:
        V.read_yaml(path, **kw)  # type: ignore[arg-type]
    assert str(path) in (e.value.where or "")
    return e.value  # type: ignore[return-value]


def test_reads_a_document_and_an_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "a.yaml"
    p.write_text("a: 1\nb: [x, y]\n", encoding="utf-8")
    assert V.read_yaml(p) == {"a": 1, "b": ["x", "y"]}
    p.write_text("", encoding="utf-8")
    assert V.read_yaml(p) is None


def test_file_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert _err(tmp_path / "missing.yaml").message == "file not found"
    assert _err(tmp_path).actual == "a directory"
    p = tmp_path / "latin1.yaml"
    p.write_bytes("name: caf\xe9\n".encode("latin-1"))
    e = _err(p, error=SuiteError)
    assert isinstance(e, SuiteError) and e.message.startswith("not UTF-8 text")
    monkeypatch.setattr(V, "MAX_YAML_BYTES", 4)
    p.write_text("a: 12345\n", encoding="utf-8")
    assert _err(p).message == "file too large"


def test_duplicate_keys_syntax_and_alias_bombs(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("a: 1\nb: 2\na: 3\n", encoding="utf-8")
    e = _err(p)
    assert "duplicate key" in e.message and "lines 1 and 3" in e.message
    p.write_text("a: [1, 2\n", encoding="utf-8")
    assert _err(p).message.startswith("invalid YAML at line")
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        bomb.append(
            f"{chr(97 + i)}: &{chr(97 + i)} " + "[" + ", ".join([f"*{chr(96 + i)}"] * 10) + "]"
        )
    p.write_text("\n".join(bomb) + "\n", encoding="utf-8")
    assert _err(p).message.startswith("YAML document refused")
