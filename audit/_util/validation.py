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
    "finite_number": "a finite number",
}


# Limits on YAML documents the harness reads (configs, policies, cards, gate rules). The
# largest shipped file is ~35 KB; the limits sit far above real files and far below what
# hurts: a 1 KB "billion laughs" alias document otherwise expands to gigabytes.
MAX_YAML_BYTES = 5_000_000
MAX_YAML_NODES = 500_000  # scalars + collections after alias expansion
MAX_YAML_DEPTH = 64


class _DuplicateKey(Exception):
    def __init__(self, key: Any, first: int, second: int) -> None:
        self.key, self.first, self.second = key, first, second


def _strict_loader() -> type[Any]:
    import yaml
    from yaml.constructor import SafeConstructor

    class StrictLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no type stubs
        """SafeLoader that rejects duplicate mapping keys (PyYAML keeps the last one)."""

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` overrides are explicit, not duplicates
            key = loader.construct_object(key_node, deep=True)
            try:
                line = seen.get(key)
            except TypeError:  # unhashable key: the safe constructor reports it
                continue
            if line is not None:
                raise _DuplicateKey(key, line, key_node.start_mark.line + 1)
            seen[key] = key_node.start_mark.line + 1
        return SafeConstructor.construct_mapping(loader, node, deep=deep)

    StrictLoader.add_constructor("tag:yaml.org,2002:map", construct_mapping)
    return StrictLoader


def _node_budget(root: Any) -> str | None:
    """Why the composed document is too big once aliases are expanded (None if fine).

    Sizes are memoised per node, so the check is linear in the *unexpanded* document
    even when aliases would multiply it; a recursive alias has no finite expansion.
    """
    from yaml.nodes import MappingNode, SequenceNode

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()

    def children(n: Any) -> list[Any]:
        if isinstance(n, SequenceNode):
            return list(n.value)
        if isinstance(n, MappingNode):
            return [x for kv in n.value for x in kv]
        return []

    # iterative post-order walk: deep documents must not hit Python's recursion limit
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            on_path.discard(key)
            if size[key] > MAX_YAML_NODES:
                return f"more than {MAX_YAML_NODES:,} values once aliases are expanded"
            if depth[key] > MAX_YAML_DEPTH:
                return f"nested deeper than {MAX_YAML_DEPTH} levels"
            continue
        if key in size:
            continue
        if key in on_path:
            return "a recursive alias (an anchor used inside itself)"
        on_path.add(key)
        stack.append((node, True))
        for k in children(node):
            if id(k) not in size:
                stack.append((k, False))
    return None


def read_yaml(path: Path, *, error: type[AuditError] = ConfigError) -> Any:
    """Parse a YAML file strictly, turning every problem into a one-line ``error``.

    Strict means: duplicate keys are an error naming both lines; documents above
    :data:`MAX_YAML_BYTES`, or whose alias expansion exceeds :data:`MAX_YAML_NODES`
    values or :data:`MAX_YAML_DEPTH` levels, are refused before they are built.
    """
    import yaml

    text = _read_text(path, error)
    loader: Any = None
    try:
        # the reader checks the characters when it is built: NUL and other control
        # characters raise here, so construction is inside the error boundary
        loader = _strict_loader()(text)
        node = loader.get_single_node()
        if node is None:
            return None
        too_big = _node_budget(node)
        if too_big:
            raise error(
                f"YAML document refused: {too_big}",
                where=str(path),
                expected=f"at most {MAX_YAML_NODES:,} values and {MAX_YAML_DEPTH} levels",
                actual=too_big,
                fix="write the values out instead of expanding anchors/aliases",
            )
        return loader.construct_document(node)
    except _DuplicateKey as dup:
        raise error(
            f"duplicate key {_clip(dup.key)} on lines {dup.first} and {dup.second}",
            where=f"{path}:{dup.second}",
            field=str(dup.key)[:60],
            expected="each key once per mapping",
            actual=f"defined on lines {dup.first} and {dup.second}",
            fix="remove one of the two (YAML would silently keep the last)",
        ) from None
    except yaml.YAMLError as exc:
        raise error(
            f"invalid YAML at {_yaml_position(exc, text)}",
            where=str(path),
            expected="valid YAML",
            actual=_clip(getattr(exc, "problem", None) or str(exc).splitlines()[0], 120),
            fix="fix the YAML syntax (indentation with spaces, not tabs; quotes; colons)",
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_position(exc: Exception, text: str) -> str:
    """``line L, column C`` of a PyYAML error (scanner/parser marks, or the reader's
    character position for a forbidden character)."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}"
    pos = getattr(exc, "position", None)
    if isinstance(pos, int):
        line = text.count("\n", 0, pos) + 1
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
        return f"line {line}, column {col}"
    return "an unknown position"


def _read_text(path: Path, error: type[AuditError]) -> str:
    """The file's UTF-8 text, after checking it exists, is a regular file and is small
    enough to parse; each failure is a one-line ``error``."""
    if path.is_symlink() and not path.exists():
        raise error(
            "a symbolic link that does not resolve",
            where=str(path),
            expected="a link to an existing YAML file",
            actual="a dangling link or a link loop",
            fix="point the link at the file, or pass the file's own path",
        )
    if not path.exists():
        raise error(
            "file not found",
            where=str(path),
            expected="an existing YAML file",
            actual="no such file",
            fix="check the path (relative paths resolve from the current directory)",
        )
    if not path.is_file():
        raise error(
            "not a regular file",
            where=str(path),
            expected="a YAML file",
            actual="a directory" if path.is_dir() else "a special file",
            fix="pass the path of the YAML file itself",
        )
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise error(
            "file too large",
            where=str(path),
            expected=f"at most {MAX_YAML_BYTES:,} bytes",
            actual=f"{size:,} bytes",
            fix="configs, policies and cards are small; keep data in data files",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(
            f"not UTF-8 text (byte {exc.start})",
            where=str(path),
            expected="a UTF-8 encoded YAML file",
            actual=f"undecodable byte 0x{exc.object[exc.start]:02x}",
            fix="save the file as UTF-8",
        ) from None
    except OSError as exc:
        raise error(f"cannot read file: {exc.strerror or exc}", where=str(path)) from None
    return text


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
    """A bounded repr: never renders more than a few hundred characters of ``value``,
    however large it is (a huge value must not be formatted into an error message)."""
    import reprlib

    r = reprlib.Repr()
    r.maxstring, r.maxother, r.maxlist, r.maxdict, r.maxlevel = n, n, 6, 6, 3
    s = r.repr(value)
    return s if len(s) <= n else s[: n - 3] + "..."


def known_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys the model accepts at the mapping ``loc`` points into ([] if unknown).

    Follows fields through optional, list/tuple and dict annotations, so a misspelt key
    deep in a config (``moderators[0].treshold``) can be matched against its siblings.
    """
    import types
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            args = [a for a in typing.get_args(current) if a is not Ellipsis]
            current = args[0] if len(args) == 1 else None
        elif isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            current = info.annotation if info is not None else None
        else:
            return []
        if typing.get_origin(current) in (typing.Union, types.UnionType):  # X | None
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[0] if len(args) == 1 else None
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def did_you_mean(word: str, choices: list[str]) -> str | None:
    """``did you mean 'x'?`` for the closest of ``choices`` (None when nothing is close)."""
    import difflib

    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def validation_error(
    exc: ValidationError,
    where: str,
    *,
    error: type[AuditError] = ConfigError,
    model: type[BaseModel] | None = None,
) -> AuditError:
    """Turn the first pydantic error into a one-line ``error`` (others are counted).

    With ``model`` (the validated class), an unknown key gets a did-you-mean from the
    keys accepted at its place."""
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
        if model is not None and loc:
            hint = did_you_mean(str(loc[-1]), known_keys(model, loc[:-1]))
            fix = f"{hint} (or remove the key)" if hint else fix
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
        raise validation_error(exc, where, error=error, model=model) from None


def load_model(model: type[M], path: Path, *, error: type[AuditError] = ConfigError) -> M:
    """Read YAML at ``path`` and validate it into ``model``."""
    return parse_model(model, read_yaml(path, error=error), str(path), error=error)


def read_json(path: Path, *, what: str, error: type[AuditError] = ConfigError) -> Any:
    """Parse a JSON file the harness wrote (record, snapshot, manifest) or raise one
    line naming it: missing, not a regular file, unreadable, not UTF-8, truncated or
    otherwise invalid, or nested past Python's recursion limit."""
    import json

    if not path.is_file():
        raise error(
            f"{what} not found" if not path.exists() else f"{what} is not a regular file",
            where=str(path),
            expected=f"a {what} (JSON file)",
            actual="no such file" if not path.exists() else "a directory or special file",
            fix="point at the file written by audit",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(
            f"{what} not readable",
            where=str(path),
            expected=f"a UTF-8 {what} (JSON)",
            actual=_clip(str(exc), 120),
            fix="regenerate the file",
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(
            f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})",
            where=str(path),
            expected=f"a complete {what}",
            actual="empty" if not text.strip() else f"{len(text):,} characters, cut or corrupt",
            fix="regenerate the file (was the write interrupted?)",
        ) from None
    except RecursionError:
        raise error(
            f"{what} nested too deeply to read",
            where=str(path),
            expected=f"a {what} written by audit",
            actual="nesting beyond Python's recursion limit",
            fix="regenerate the file",
        ) from None


def load_json_model(
    model: type[M], path: Path, *, error: type[AuditError] = ConfigError, what: str = "file"
) -> M:
    """Read a JSON file written by the harness and validate it into ``model``.

    Unreadable files and invalid content become one-line ``error``s naming the file and
    the first bad field (bounded reprs: a huge value is never formatted in full).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(
            f"{what} not readable",
            where=str(path),
            expected=f"a {what} (JSON)",
            actual=type(exc).__name__,
        ) from None
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        err = validation_error(exc, str(path), error=error, model=model)
        err.expected = (
            f"a {what} written by audit" if err.expected == "a valid value" else err.expected
        )
        raise type(err)(
            err.message,
            where=err.where,
            field=err.field,
            expected=err.expected,
            actual=err.actual,
            fix=err.fix,
        ) from None
