"""The calibration artifact: ``<name>.json`` + ``<name>.safetensors``, no pickle.

The JSON is the source of truth and human-readable: format and version, method, per
category the parameters (or isotonic knots) and the fit/eval figures, and provenance (run
id, suite, split and digest, moderator, seed, n). The safetensors file carries the same
numbers as tensors (``<category>.params``, ``<category>.knots_x``, ``<category>.knots_y``)
for consumers that want arrays; its sha256 is written into the JSON and checked on load.
The artifact's digest is the sha256 of the JSON bytes, so it pins both files; a moderator
config records it (``calibration_digest``) and the run fails if the file changed since.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from audit.calibration.calibrators import METHODS, Calibrator
from audit.errors import ConfigError

FORMAT = "audit-calibration"
FORMAT_VERSION = 1


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_artifact(
    path: Path,
    calibrators: dict[str, Calibrator],
    *,
    provenance: dict[str, Any],
    figures: dict[str, dict[str, Any]],
) -> tuple[Path, Path, str]:
    """Write ``path`` (``.json``) and its ``.safetensors`` sibling.

    Returns:
        ``(json_path, tensors_path, digest)``.
    """
    from safetensors.numpy import save_file

    jp = path if path.suffix == ".json" else path.with_suffix(".json")
    tp = jp.with_suffix(".safetensors")
    jp.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, np.ndarray] = {}
    for cat, c in calibrators.items():
        tensors[f"{cat}.params"] = np.asarray(c.params, dtype=np.float64)
        tensors[f"{cat}.knots_x"] = np.asarray(c.knots_x, dtype=np.float64)
        tensors[f"{cat}.knots_y"] = np.asarray(c.knots_y, dtype=np.float64)
    methods = {c.method for c in calibrators.values()}
    save_file(tensors, str(tp), metadata={"format": FORMAT, "version": str(FORMAT_VERSION)})
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "method": next(iter(methods)) if len(methods) == 1 else "mixed",
        "categories": {
            cat: {
                "method": c.method,
                "params": list(c.params),
                "knots_x": list(c.knots_x),
                "knots_y": list(c.knots_y),
                **figures.get(cat, {}),
            }
            for cat, c in calibrators.items()
        },
        "provenance": provenance,
        "tensors": {"file": tp.name, "sha256": file_digest(tp)},
    }
    jp.write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")
    return jp, tp, file_digest(jp)


def _bad(where: str, field: str, expected: str, actual: str, fix: str | None = None) -> ConfigError:
    return ConfigError(
        "invalid calibration artifact",
        where=where,
        field=field,
        expected=expected,
        actual=actual,
        fix=fix or "write it again with 'audit calibrate'",
    )


def load_artifact(path: str | Path) -> tuple[dict[str, Calibrator], dict[str, Any], str]:
    """Read and verify an artifact.

    Returns:
        ``(calibrators, document, digest)``.

    Raises:
        ConfigError: missing file, wrong format/version, tensors that do not match.
    """
    jp = Path(path)
    where = str(jp)
    if not jp.is_file():
        raise _bad(where, "calibration", "an existing calibration .json", "no such file")
    raw = jp.read_bytes()
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _bad(where, "(file)", "JSON", f"invalid JSON: {exc.msg}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _bad(
            where, "format", repr(FORMAT), repr(doc.get("format") if isinstance(doc, dict) else doc)
        )
    if doc.get("version") != FORMAT_VERSION:
        raise _bad(where, "version", str(FORMAT_VERSION), repr(doc.get("version")))
    tensors = doc.get("tensors") or {}
    tp = jp.parent / str(tensors.get("file", ""))
    if not tp.is_file():
        raise _bad(where, "tensors.file", "the .safetensors file next to the JSON", str(tp))
    if file_digest(tp) != tensors.get("sha256"):
        raise _bad(
            where,
            "tensors.sha256",
            str(tensors.get("sha256")),
            file_digest(tp),
            fix="the tensors file was changed or replaced; refit with 'audit calibrate'",
        )
    from safetensors.numpy import load_file

    arrays = load_file(str(tp))
    out: dict[str, Calibrator] = {}
    for cat, spec in (doc.get("categories") or {}).items():
        method = spec.get("method")
        if method not in METHODS:
            raise _bad(where, f"categories.{cat}.method", f"one of {METHODS}", repr(method))
        c = Calibrator(
            method,
            tuple(float(v) for v in spec.get("params", [])),
            tuple(float(v) for v in spec.get("knots_x", [])),
            tuple(float(v) for v in spec.get("knots_y", [])),
        )
        for part in ("params", "knots_x", "knots_y"):
            arr = arrays.get(f"{cat}.{part}")
            if arr is None or not np.array_equal(
                arr, np.asarray(getattr(c, part), dtype=np.float64)
            ):
                raise _bad(
                    where, f"categories.{cat}.{part}", "equal in JSON and tensors", "different"
                )
        expected_n = {"platt": 2, "temperature": 1, "isotonic": 0}[method]
        if len(c.params) != expected_n or (method == "isotonic" and len(c.knots_x) == 0):
            raise _bad(where, f"categories.{cat}", f"parameters of a {method} map", repr(spec))
        out[cat] = c
    return out, doc, file_digest(jp)
