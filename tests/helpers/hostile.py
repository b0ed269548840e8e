"""Hostile-input cases for the CLI (tests/cli/test_bad_inputs*.py): what each case
expects, the one check every case must pass, and the builders the case modules share.

A case is a function ``(tmp) -> Expect`` (older cases return a plain
``(args, where, field)`` tuple, read as exit 2). It writes its inputs under ``tmp``;
the CLI runs with ``AUDIT_RUNS_DIR=tmp/runs`` (tests/conftest.py), so "no run left
behind" is a statement about ``tmp/runs``. scripts/hostile_table.py runs the same cases
to write docs/hostile-inputs.md.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.helpers.suites import CARD, base_config, write_config, write_suite


@dataclass(frozen=True)
class Expect:
    """What the CLI must do on one hostile input."""

    args: list[str]
    where: str
    """Text the error line must contain: the file (or flag) the user has to edit."""
    field: str
    """Text naming the field inside that file ("" when the whole file is the problem)."""
    code: int = 2
    """2: bad input or config; 3: the gate refuses a candidate it cannot trust."""
    has_expected: bool = True
    """The line carries ``(expected X, got Y)``; False only for click's own usage errors."""
    extra: tuple[str, ...] = field(default_factory=tuple)
    """Further text the line must contain (e.g. a did-you-mean suggestion)."""
    report: bool = False
    """The command reports problems on stdout (``audit validate``: one ``invalid`` line
    per file) instead of one error on stderr."""


Case = Callable[[Path], "Expect | tuple[list[str], str, str]"]


def as_expect(result: Expect | tuple[list[str], str, str]) -> Expect:
    return result if isinstance(result, Expect) else Expect(*result)


def error_line(err: str) -> str:
    """The single non-empty stderr line (AssertionError when there are more or none)."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one error line, got {len(lines)}: {err[:2000]}"
    return lines[0]


def check_outcome(exp: Expect, code: int, out: str, err: str, runs: Path) -> str:
    """Assert everything a hostile case promises; returns the error line."""
    assert code == exp.code, (code, err[-2000:])
    assert "Traceback" not in out and "Traceback" not in err, err[-2000:]
    if exp.report:
        assert err.strip() == "", err[-2000:]
        line = error_line("\n".join(ln for ln in out.splitlines() if ln.startswith("invalid ")))
    else:
        line = error_line(err)
    assert len(line) < 1000, f"error message of {len(line)} characters"
    assert "internal error" not in line, line
    assert exp.where in line, (exp.where, line)
    assert exp.field in line, (exp.field, line)
    for text in exp.extra:
        assert text in line, (text, line)
    if exp.has_expected:
        assert line.startswith("invalid " if exp.report else "error: "), line
        assert "expected" in line and "got" in line, line
    left = left_behind(runs)
    assert left == [], f"left behind under {runs}: {left}"
    return line


def left_behind(runs: Path) -> list[str]:
    """Run directories or records under ``runs`` (there must be none after bad input)."""
    if not runs.exists():
        return []
    found = [str(p.relative_to(runs)) for p in runs.rglob("record.json")]
    found += [
        str(p.relative_to(runs))
        for p in runs.iterdir()
        if p.is_dir() and p.name not in ("mlartifacts", ".locks")
    ]
    return sorted(set(found))


# --- builders ---------------------------------------------------------------------------


def cfg_file(
    tmp: Path, mutate: Callable[[dict[str, Any]], None] | None = None, **suite_kw: Any
) -> Path:
    """``tmp/run.yaml`` over the mini suite, after ``mutate`` edits the config dict."""
    suite = write_suite(tmp, **suite_kw)
    cfg = base_config(suite, tmp / "runs")
    if mutate:
        mutate(cfg)
    return write_config(tmp / "run.yaml", cfg)


def card(**changes: Any) -> dict[str, Any]:
    """The mini suite card with top-level keys replaced."""
    c = copy.deepcopy(CARD)
    for k, v in changes.items():
        c[k] = v
    return c


CSV_CARD_PATH = ("suites", "mini", "suite.yaml")


def csv_suite(t: Path, text: str | bytes, *, name: str = "test.csv", **local: Any) -> Path:
    """A config over a one-rule CSV suite (columns id, text, label 0/1) whose data file
    holds ``text`` verbatim; ``local`` adds keys to ``source.local``."""
    c = card(
        source={"local": {"root": "data", "format": "csv", "splits": {"test": name}, **local}},
        labels={
            "covers": ["hate"],
            "rules": [
                {"category": "hate", "column": "label", "positive": ["1"], "negative": ["0"]}
            ],
        },
        slices={},
        fields={"caption": "text"},
    )
    c.pop("rationale_column", None)
    suite = write_suite(t, card=c)
    data = suite.parent / "data" / name
    if isinstance(text, bytes):
        data.write_bytes(text)
    else:
        data.write_text(text, encoding="utf-8")
    return write_config(t / "run.yaml", base_config(suite, t / "runs"))


def edit_card(t: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Apply ``edit`` to the card written under ``t`` by :func:`cfg_file` / :func:`csv_suite`."""
    import yaml

    p = t.joinpath(*CSV_CARD_PATH)
    c = yaml.safe_load(p.read_text(encoding="utf-8"))
    edit(c)
    p.write_text(yaml.safe_dump(c, sort_keys=False), encoding="utf-8")
    return p


def rewrite_json(path: Path, edit: Callable[[dict[str, Any]], object]) -> Path:
    """Load JSON at ``path``, let ``edit`` change it in place (its return value is
    ignored, so ``lambda d: d.pop(k)`` works) and save."""
    data = json.loads(path.read_text(encoding="utf-8"))
    edit(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


TABLE = Path(__file__).resolve().parents[2] / "docs" / "hostile-inputs.md"


def missing_from_table(module: str, cases: list[Case]) -> list[str]:
    """Case ids of ``module`` that docs/hostile-inputs.md does not list (regenerate it
    with scripts/hostile_table.py after adding a case)."""
    text = TABLE.read_text(encoding="utf-8")
    return [c.__name__ for c in cases if f"`{module}::{c.__name__[2:]}`" not in text]
