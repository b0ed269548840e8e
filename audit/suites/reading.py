"""Reading a suite's source rows: local CSV / JSONL / JSON / Parquet files or the hub.

Every reader returns plain ``dict`` rows whose nested mappings are flattened into
dotted keys (``{"annotations": {"toxicity": 1}}`` → ``"annotations.toxicity"``), so a
card can name nested fields the same way whatever the format. Everything the data
could lie about is an error naming the file, the line or record and the field:
CSV rows with too few or too many cells, JSONL lines that are not objects, a JSON
document whose record path does not lead to a list of objects, an encoding Python
does not know, undecodable bytes.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import io
import json
import os
import sys
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audit._util.settings import data_root
from audit.errors import SuiteError

if TYPE_CHECKING:
    from audit.suites.card import LocalSource, SuiteCard

Row = dict[str, Any]


class SuiteDataMissing(SuiteError):
    """The suite's local files are absent (an ``optional`` suite is then skipped)."""


def flatten(row: dict[str, Any], prefix: str = "") -> Row:
    """Nested mappings → dotted keys; lists and scalars are kept as values.

    A literal top-level key that already contains a dot wins over a nested path that
    spells the same key (it is what the source names).
    """
    out: Row = {}
    for k, v in row.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            for fk, fv in flatten(v, key + ".").items():
                out.setdefault(fk, fv)
        else:
            out[key] = v
    return out


def resolve_root(card: SuiteCard, cpath: Path) -> Path:
    """The local source root: ``${data_root}`` expanded, relative to the card's folder."""
    assert card.source.local is not None
    root = card.source.local.root.replace("${data_root}", str(data_root()))
    p = Path(os.path.expandvars(root)).expanduser()
    return p if p.is_absolute() else (cpath.parent / p).resolve()


def _decode(raw: bytes, encoding: str, path: Path) -> str:
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SuiteError(
            f"bytes not valid {encoding} at line {line}",
            where=str(path),
            field="source.local.encoding",
            expected=f"{encoding}-encoded text",
            actual=f"byte 0x{raw[exc.start]:02x} at offset {exc.start}",
            fix="set source.local.encoding to the file's encoding (e.g. latin-1, utf-8-sig)",
        ) from None
    nul = text.find("\x00")
    if nul >= 0:
        # no text format carries raw NUL characters: the file is UTF-16/32 read as
        # something else, or binary; passing them on would put NULs into item text
        raise SuiteError(
            f"NUL character at line {text.count(chr(10), 0, nul) + 1}",
            where=str(path),
            field="source.local.encoding",
            expected=f"{encoding} text without NUL characters",
            actual=f"NUL at character {nul}",
            fix="set source.local.encoding (utf-16?) or remove the NUL bytes",
        )
    return text


def _raw(path: Path) -> bytes:
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        # EOFError (a truncated stream) must not escape: click reads it as "aborted"
        raise SuiteError(
            f"not a complete gzip file ({type(exc).__name__})",
            where=str(path),
            field="source.local.splits",
            expected="a gzip-compressed file (the .gz suffix says so)",
            actual=f"{len(raw):,} bytes that do not decompress",
            fix="recompress the file, or drop the .gz suffix if it is not compressed",
        ) from None


def _json_too_deep(path: Path, where: str) -> SuiteError:
    return SuiteError(
        "JSON nested too deeply to read",
        where=where,
        field="source.local",
        expected="records nested at most a few hundred levels",
        actual=f"deeper than Python's recursion limit ({sys.getrecursionlimit()})",
        fix=f"flatten the records in {path.name}",
    )


def _read_csv(path: Path, local: LocalSource, where: str) -> list[Row]:
    text = _decode(_raw(path), local.encoding, path)
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=local.delimiter,
        quotechar=local.quotechar,
        strict=True,
    )
    try:
        header = next(reader)
    except StopIteration:
        return []
    header = _checked_header(header, path, local.header_overrides, where)
    width = len(header)
    rows: list[Row] = []
    for cells in reader:
        if not cells:  # blank line
            continue
        if len(cells) != width:
            raise SuiteError(
                f"CSV row on line {reader.line_num} has {len(cells)} cells, the header has {width}",
                where=f"{path}:{reader.line_num}",
                field="source.local",
                expected=f"{width} cells per row (delimiter {local.delimiter!r})",
                actual=f"{len(cells)} cells",
                fix="fix the row (an unquoted delimiter inside a value?) or set "
                "source.local.delimiter / quotechar",
            )
        rows.append(dict(zip(header, cells, strict=True)))
    return rows


def _checked_header(
    header: list[str], path: Path, overrides: dict[int, str], where: str
) -> list[str]:
    """The header with positional renames applied; a repeated name is an error (a dict
    row would silently keep only the last column of that name)."""
    header = list(header)
    for pos, name in overrides.items():
        if not 0 <= pos < len(header):
            raise SuiteError(
                "header override outside the header",
                where=where,
                field=f"source.local.header_overrides.{pos}",
                expected=f"a 0-based position below {len(header)} in {path.name}",
                actual=str(pos),
                fix="correct the position",
            )
        header[pos] = name
    seen: dict[str, int] = {}
    for pos, name in enumerate(header):
        if name in seen:
            raise SuiteError(
                f"repeated column name in the header of {path.name}",
                where=where,
                field="source.local.header_overrides",
                expected="unique header names",
                actual=f"{name!r} at positions {seen[name]} and {pos}",
                fix=f"rename one by position, e.g. header_overrides: {{{pos}: <name>}}",
            )
        seen[name] = pos
    return header


def _read_jsonl(path: Path, local: LocalSource) -> list[Row]:
    text = _decode(_raw(path), local.encoding, path)
    rows: list[Row] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except RecursionError:
            raise _json_too_deep(path, f"{path}:{lineno}") from None
        except json.JSONDecodeError as exc:
            raise SuiteError(
                f"invalid JSON on line {lineno}: {exc.msg}",
                where=f"{path}:{lineno}",
                field="source.local",
                expected="one JSON object per line",
                actual=line[:60].strip(),
                fix="fix or remove the line",
            ) from None
        if not isinstance(obj, dict):
            raise SuiteError(
                f"JSONL line {lineno} is not an object",
                where=f"{path}:{lineno}",
                field="source.local",
                expected="a JSON object per line",
                actual=type(obj).__name__,
                fix="wrap the value in an object, or use format: json for a whole-file list",
            )
        rows.append(flatten(obj))
    return rows


def _read_json(path: Path, local: LocalSource) -> list[Row]:
    text = _decode(_raw(path), local.encoding, path)
    try:
        doc = json.loads(text)
    except RecursionError:
        raise _json_too_deep(path, str(path)) from None
    except json.JSONDecodeError as exc:
        raise SuiteError(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
            where=f"{path}:{exc.lineno}",
            field="source.local",
            expected="a JSON document",
            actual="unparsable",
            fix="fix the JSON (or use format: jsonl for one object per line)",
        ) from None
    node: Any = doc
    walked: list[str] = []
    for part in (local.records_path or "").split(".") if local.records_path else []:
        walked.append(part)
        if not isinstance(node, dict) or part not in node:
            raise SuiteError(
                "record path not found in the JSON document",
                where=str(path),
                field="source.local.records_path",
                expected=f"a key {part!r} at {'.'.join(walked[:-1]) or 'the top level'}",
                actual=f"keys {sorted(node)[:10]}"
                if isinstance(node, dict)
                else type(node).__name__,
                fix="point records_path at the list of records (e.g. instances)",
            )
        node = node[part]
    if not isinstance(node, list):
        raise SuiteError(
            "the JSON records are not a list",
            where=str(path),
            field="source.local.records_path",
            expected="a list of objects (set records_path when it is nested in a document)",
            actual=type(node).__name__
            + (f" with keys {sorted(node)[:10]}" if isinstance(node, dict) else ""),
            fix="set source.local.records_path to the key holding the records",
        )
    rows: list[Row] = []
    for i, obj in enumerate(node):
        if not isinstance(obj, dict):
            raise SuiteError(
                f"record {i} is not an object",
                where=str(path),
                field=f"source.local.records_path[{i}]",
                expected="a JSON object per record",
                actual=type(obj).__name__,
                fix="fix the record",
            )
        rows.append(flatten(obj))
    return rows


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow.parquet as pq

    return [flatten(r) for r in pq.read_table(path).to_pylist()]


def read_file(path: Path, local: LocalSource, where: str) -> list[Row]:
    """All rows of one local file in the card's format."""
    if not path.is_file():
        # a FIFO or device would block or never end; a directory cannot be read
        raise SuiteError(
            "data path is not a regular file",
            where=str(path),
            field="source.local.splits",
            expected=f"a {local.format} file",
            actual="a directory" if path.is_dir() else "a special file (FIFO, device, socket)",
            fix="point the split at the data file itself",
        )
    try:
        if local.format == "csv":
            return _read_csv(path, local, where)
        if local.format == "jsonl":
            return _read_jsonl(path, local)
        if local.format == "json":
            return _read_json(path, local)
        return _read_parquet(path)
    except SuiteError:
        raise
    except csv.Error as exc:
        raise SuiteError(
            f"malformed CSV: {exc}",
            where=str(path),
            field="source.local",
            expected="well-formed CSV (quotes closed)",
            actual=str(exc),
            fix="fix the quoting or set source.local.quotechar",
        ) from None
    except (OSError, ValueError) as exc:
        raise SuiteError(
            f"cannot read {local.format} file: {type(exc).__name__}: {str(exc)[:160]}",
            where=where,
            field="source.local",
            expected=f"a readable {local.format} file",
            actual=str(path),
        ) from None


def check_encoding(encoding: str) -> str:
    """``encoding`` if Python knows it (card validation), else ``ValueError``."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ValueError(
            f"unknown text encoding {encoding!r} (e.g. utf-8, utf-8-sig, latin-1, cp1252)"
        ) from None
    return encoding


def read_rows(card: SuiteCard, cpath: Path, split: str) -> tuple[list[Row], dict[str, Any]]:
    """The split's rows and a provenance description (files + sha256, or hub id@revision)."""
    local = card.source.local
    if local is not None:
        root = resolve_root(card, cpath)
        if split not in local.splits:
            raise SuiteError(
                "unknown split",
                where=str(cpath),
                field="source.local.splits",
                expected=f"one of {sorted(local.splits)}",
                actual=repr(split),
                fix="choose an existing split in the run config",
            )
        names = local.splits[split]
        files = [root / n for n in ((names,) if isinstance(names, str) else names)]
        missing = [f for f in files if not f.exists()]
        if not missing:
            rows: list[Row] = []
            described = []
            for f in files:
                rows.extend(read_file(f, local, str(cpath)))
                described.append({"path": str(f), "sha256": sha256_file(f)})
            return rows, {"kind": "local", "files": described}
        if card.source.hub is None or os.environ.get("HF_DATASETS_OFFLINE") == "1":
            raise SuiteDataMissing(
                "local data not found",
                where=str(cpath),
                field="source.local.root",
                expected="existing file(s) " + ", ".join(str(m) for m in missing),
                actual="missing",
                fix=(
                    "set AUDIT_DATA_ROOT to the folder holding the public sets "
                    f"(now {data_root()})"
                    + (
                        ", or allow hub access to use " + card.source.hub.id
                        if card.source.hub
                        else ""
                    )
                ),
            )
    assert card.source.hub is not None
    return read_hub(card, cpath, split)


def read_hub(card: SuiteCard, cpath: Path, split: str) -> tuple[list[Row], dict[str, Any]]:
    """Rows of a hub dataset at the card's pinned revision."""
    import datasets

    hub = card.source.hub
    assert hub is not None
    hub_split = hub.splits.get(split, split)
    try:
        ds = datasets.load_dataset(hub.id, hub.config, split=hub_split, revision=hub.revision)
    except Exception as exc:
        raise SuiteError(
            f"cannot load hub dataset: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}",
            where=str(cpath),
            field="source.hub",
            expected=f"{hub.id}@{hub.revision} split {hub_split}",
            actual="load failed",
            fix="check network access and the id/revision, or provide local files",
        ) from None
    rows = [flatten(r) for r in ds.to_list()]
    return rows, {"kind": "hub", "id": hub.id, "revision": hub.revision, "split": hub_split}


_SHA_CACHE: dict[tuple[str, int, float], str] = {}


def sha256_file(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]
