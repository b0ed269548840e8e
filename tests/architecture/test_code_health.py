"""Code-health rules of docs/architecture.md checked on the package source:
no private name imported across modules, no module over 600 lines, and no function
over 80 lines (decorators excluded)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "audit"
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> list[tuple[Path, str, ast.Module]]:
    out = []
    for p in sorted(PKG.rglob("*.py")):
        text = p.read_text(encoding="utf-8")
        out.append((p, text, ast.parse(text)))
    return out


def test_no_private_name_is_imported_across_modules() -> None:
    found = [
        f"{p.relative_to(PKG.parent)}:{n.lineno} from {n.module} import {a.name}"
        for p, _, tree in _modules()
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("audit")
        for a in n.names
        if a.name.startswith("_") and not a.name.startswith("__")
    ]
    assert not found, "private names used outside their module:\n" + "\n".join(found)


def test_module_and_function_sizes() -> None:
    big_modules = [
        f"{p.relative_to(PKG.parent)}: {n} lines"
        for p, text, _ in _modules()
        if (n := len(text.splitlines())) > MAX_MODULE_LINES
    ]
    long_functions = [
        f"{p.relative_to(PKG.parent)}:{f.lineno} {f.name}: {n} lines"
        for p, _, tree in _modules()
        for f in ast.walk(tree)
        if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
        and (n := (f.end_lineno or f.lineno) - f.lineno + 1) > MAX_FUNCTION_LINES
    ]
    assert not big_modules, "modules over the limit:\n" + "\n".join(big_modules)
    assert not long_functions, "functions over the limit:\n" + "\n".join(long_functions)
