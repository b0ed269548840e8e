"""Strict YAML → frozen Pydantic model loading with one-line, actionable errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from audit.errors import AuditError, ConfigError

M = TypeVar("M", bound=BaseModel)

_EXPECTED_BY_TYPE = {
    "extra_forbidden": "no such key",
    "missing": "a value",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
}


def read_yaml(path: Path, *, error: type[AuditError] = ConfigError) -> Any:
    """Parse a YAML file, turning I/O and syntax problems into ``error``."""
    import yaml

    if not path.exists():
        raise error(
            "file not found",
            where=str(path),
            expected="an existing YAML file",
            actual="no such file",
            fix="check the path (relative paths resolve from the current directory)",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read file: {exc}", where=str(path)) from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(
            f"invalid YAML at {loc}: {problem}",
            where=str(path),
            fix="fix the YAML syntax (indentation, quotes, colons)",
        ) from exc


def field_path(loc: tuple[Any, ...]) -> str:
    """Render a pydantic error location as ``a.b[2].c``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _clip(value: Any, n: int = 60) -> str:
    s = repr(value)
    return s if len(s) <= n else s[: n - 3] + "..."


def validation_error(
    exc: ValidationError, where: str, *, error: type[AuditError] = ConfigError
) -> AuditError:
    """Turn the first pydantic error into a one-line ``error`` (others are counted)."""
    errs = exc.errors(include_url=False)
    first = errs[0]
    loc = tuple(first.get("loc", ()))
    # pydantic appends the union member / validator name to loc; drop function tags
    loc = tuple(p for p in loc if not (isinstance(p, str) and p.startswith("function-")))
    etype = first.get("type", "")
    msg = first.get("msg", "invalid value")
    expected = _EXPECTED_BY_TYPE.get(etype)
    ctx = first.get("ctx") or {}
    if expected is None and "expected" in ctx:
        expected = str(ctx["expected"])
    if expected is None and etype.startswith(("greater", "less")):
        expected = msg.lower()
    actual = "missing" if etype == "missing" else _clip(first.get("input"))
    more = f" (+{len(errs) - 1} more problem(s))" if len(errs) > 1 else ""
    fix = {
        "extra_forbidden": "remove the key or check its spelling against the reference in README.md",
        "missing": "add the key",
    }.get(etype, "correct the value")
    if etype == "extra_forbidden":
        msg = "unknown key"
        expected = "a known key"
        actual = repr(str(loc[-1])) if loc else actual
    return error(
        msg.rstrip(".") + more,
        where=where,
        field=field_path(loc) or "(top level)",
        expected=expected or "a valid value",
        actual=actual,
        fix=fix,
    )


def parse_model(
    model: type[M],
    data: Any,
    where: str,
    *,
    error: type[AuditError] = ConfigError,
    context: dict[str, Any] | None = None,
) -> M:
    """Validate ``data`` into ``model`` or raise a one-line ``error``."""
    if not isinstance(data, dict):
        raise error(
            "top level must be a mapping",
            where=where,
            expected="a YAML mapping (key: value)",
            actual=type(data).__name__ if data is not None else "an empty file",
            fix="write the file as a mapping of keys to values",
        )
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_error(exc, where, error=error) from None


def load_model(model: type[M], path: Path, *, error: type[AuditError] = ConfigError) -> M:
    """Read YAML at ``path`` and validate it into ``model``."""
    return parse_model(model, read_yaml(path, error=error), str(path), error=error)
