"""Run configuration: YAML → frozen, strictly validated models.

``load_config(path, overrides)`` reads a run config, applies ``--set key=value``
overrides (dotted paths; list entries by index or by ``name``), validates it, and
validates each moderator's ``params`` against its adapter's own model, so every
problem surfaces before a run directory exists.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, field_validator, model_validator

from audit._util.validation import parse_model, read_yaml
from audit.errors import ConfigError, UsageError

_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SuiteRef(_Strict):
    """A golden suite to score: a name under ``suites/`` or a path to a ``suite.yaml``."""

    name: str
    split: str | None = None
    limit: int | None = Field(strict=True, default=None, ge=1)
    optional: bool = Field(default=False, strict=True)
    """Skip (with a notice) instead of failing when the suite's local data is absent."""


class SampleSpec(_Strict):
    """Score a reproducible subset of each suite (slow moderators: LLM judges on CPU).

    ``n`` items per suite, drawn without replacement by a seeded hash of the item id;
    with ``stratify`` the any-violation gold strata (positive / negative / unknown)
    keep their shares (largest-remainder allocation). Metrics are then over the
    subset, and the record names it (ids digest, n of N, seed)."""

    n: int = Field(strict=True, ge=1)
    seed: int = Field(strict=True, default=0, ge=0)
    stratify: bool = Field(default=True, strict=True)


class ExplainSpec(_Strict):
    """Rationales for a judge's disagreements, after every moderator scored a suite.

    For items where the judge's overall decision differs from gold or from another
    moderator's, and that have no rationale yet (``logprob`` mode), the judge writes
    one conditioned on its own decision (see ``LLMJudge.explain``); at most
    ``max_items`` per suite, strongest disagreements first."""

    max_items: int = Field(strict=True, default=8, ge=1, le=10_000)
    max_new_tokens: int = Field(strict=True, default=48, ge=4, le=1024)


class ModeratorSpec(_Strict):
    """One moderator: a registered ``type`` with its ``params`` and decision thresholds."""

    name: str
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    thresholds: dict[str, StrictFloat] = Field(default_factory=lambda: {"default": 0.5})
    batch_size: int = Field(strict=True, default=32, ge=1, le=100_000)
    suites: tuple[str, ...] | None = None
    """Names of the config's suites this moderator scores (default: all of them)."""
    sample: SampleSpec | None = None
    explain: ExplainSpec | None = None
    calibration: str | None = None
    """Path (relative to the working directory) of an ``audit calibrate`` artifact
    (``.json``); applied to the scores after the prediction cache, before thresholds."""
    calibration_digest: str | None = None
    """sha256 of the artifact, filled in at load when absent (so the resolved config, the
    record and the config hash name it); a given value pins the file."""

    @model_validator(mode="before")
    @classmethod
    def _calibration_digest(cls, data: Any) -> Any:
        # Hash at load so the record names the exact calibration and its config hash
        # changes with it; the run checks the file again before applying it.
        if (
            isinstance(data, dict)
            and data.get("calibration")
            and not data.get("calibration_digest")
        ):
            p = Path(str(data["calibration"]))
            if not p.is_file():
                raise ValueError(f"calibration artifact not found: {p}")
            data = {**data, "calibration_digest": hashlib.sha256(p.read_bytes()).hexdigest()}
        return data

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(f"moderator name must match {_SLUG.pattern}")
        return v

    @field_validator("thresholds")
    @classmethod
    def _range(cls, v: dict[str, float]) -> dict[str, float]:
        for k, t in v.items():
            if not 0.0 <= t <= 1.0:
                raise ValueError(f"threshold for {k!r} must be within [0, 1], got {t}")
        return v

    def threshold(self, category: str) -> float:
        return self.thresholds.get(category, self.thresholds.get("default", 0.5))


class MetricsSpec(_Strict):
    names: tuple[str, ...] | None = None
    """Metric names to compute (default: all registered)."""
    bootstrap: int = Field(strict=True, default=1000, ge=0, le=100_000)
    ci: float = Field(strict=True, default=0.95, gt=0.5, lt=1.0)
    seed: int = Field(strict=True, default=0, ge=0)


class RunnerSpec(_Strict):
    error_budget: float = Field(strict=True, default=0.05, ge=0.0, le=1.0)
    """Largest tolerated share of items that fail to score; above it the run fails (exit 3)."""
    cache: bool = Field(default=True, strict=True)
    # an empty path is not "the default": it is a typo, and would resolve to the cwd
    cache_dir: str | None = Field(default=None, min_length=1)
    progress: bool = Field(default=True, strict=True)
    engine: Literal["local", "ray"] = "local"
    """``ray`` scores on Ray Data actors (extra ``[distributed]``); same cache, same outputs."""
    ray_address: str | None = Field(default=None, min_length=1)
    """Ray cluster address for ``engine: ray``; unset starts a local 2-CPU Ray."""
    ray_workers: Literal["auto", "actors", "tasks"] = "auto"
    """``engine: ray`` only. ``actors``: a fresh actor pool per suite x moderator job (the
    moderator is loaded in each actor, then freed). ``tasks``: Ray Data tasks on reused
    worker processes that keep the moderator they built, so the second and later jobs of a
    session skip process start and model load (docs/methods/scale.md); CPU moderators only,
    since an idle worker holds its model until another recipe replaces it. ``auto``
    (default): ``actors`` for LLM judges, ``tasks`` for every other moderator; each
    result's record entry says which ran (``engine.workers``)."""


class TrackingSpec(_Strict):
    enabled: bool = Field(default=True, strict=True)
    uri: str | None = Field(default=None, min_length=1)
    """MLflow tracking URI; default ``MLFLOW_TRACKING_URI`` or ``sqlite:///<runs>/mlflow.db``."""
    experiment: str = "audit"
    max_table_rows: int = Field(strict=True, default=2000, ge=0)


class RunConfig(_Strict):
    # the name is part of the run id and so of a directory name: bounded well below
    # the 255-byte file-name limit of common file systems
    name: str = Field(max_length=80)
    description: str = ""
    policy: str = "platform-v1"
    suites: tuple[SuiteRef, ...] = Field(min_length=1)
    moderators: tuple[ModeratorSpec, ...] = Field(min_length=1)
    metrics: MetricsSpec = MetricsSpec()
    runner: RunnerSpec = RunnerSpec()
    tracking: TrackingSpec = TrackingSpec()
    output_dir: str | None = Field(default=None, min_length=1)
    """Where run folders go (default: the runs dir); an empty string is an error, not
    the default, so a half-edited value never writes runs into the working directory."""
    seed: int = Field(strict=True, default=0, ge=0)
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not _SLUG.match(v):
            raise ValueError(f"run name must match {_SLUG.pattern}")
        return v

    @model_validator(mode="after")
    def _unique(self) -> RunConfig:
        names = [m.name for m in self.moderators]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"moderator names must be unique; repeated: {dup}")
        keys = [(s.name, s.split) for s in self.suites]
        if len(set(keys)) != len(keys):
            raise ValueError("a suite/split pair is listed twice")
        return self

    def config_hash(self) -> str:
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _parse_scalar(text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b.c=value`` override in place.

    List entries are addressed by index (``moderators.0.batch_size``) or by their
    ``name`` (``moderators.minilm.batch_size``). Values are parsed as YAML scalars.
    """
    if "=" not in assignment:
        raise UsageError(
            "override must be key=value",
            where="--set",
            expected="dotted.key=value",
            actual=repr(assignment),
            fix="e.g. --set runner.error_budget=0.1",
        )
    key, _, raw = assignment.partition("=")
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise UsageError("empty key", where="--set", expected="dotted.key", actual=repr(key))
    node: Any = data
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        path = ".".join(parts[: i + 1])
        if isinstance(node, list):
            idx = _list_index(node, part, path)
            if last:
                node[idx] = _parse_scalar(raw)
            else:
                node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = _parse_scalar(raw)
            else:
                node = node.setdefault(part, {})
        else:
            raise UsageError(
                f"cannot descend into {path!r}",
                where="--set",
                field=key,
                expected="a mapping or list at this path",
                actual=type(node).__name__,
            )


def _list_index(node: list[Any], part: str, path: str) -> int:
    if part.isdigit():
        idx = int(part)
        if idx >= len(node):
            raise UsageError(
                "list index out of range",
                where="--set",
                field=path,
                expected=f"an index below {len(node)}",
                actual=part,
            )
        return idx
    for j, entry in enumerate(node):
        if isinstance(entry, dict) and entry.get("name") == part:
            return j
    names = [e.get("name") for e in node if isinstance(e, dict)]
    raise UsageError(
        "no list entry with that name",
        where="--set",
        field=path,
        expected=f"an index or one of {names}",
        actual=repr(part),
    )


def load_config(path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> RunConfig:
    """Read, override and validate a run config.

    Moderator ``params`` are checked against their adapters one layer up, by
    :func:`audit.moderators.check_moderator_params` (the pipeline calls both), so this
    module never imports the moderators.
    """
    p = Path(path)
    raw = read_yaml(p)
    if not isinstance(raw, dict):
        return parse_model(RunConfig, raw, str(p))
    data = copy.deepcopy(raw)
    for o in overrides:
        apply_override(data, o)
    where = str(p) + (" (with --set overrides)" if overrides else "")
    return parse_model(RunConfig, data, where)


def check_against_policy(cfg: RunConfig, category_ids: tuple[str, ...], where: str) -> None:
    """Threshold keys must be ``default`` or policy categories."""
    import difflib

    for i, spec in enumerate(cfg.moderators):
        for k in spec.thresholds:
            if k not in ("default", "overall") and k not in category_ids:
                close = difflib.get_close_matches(k, category_ids, n=1)
                raise ConfigError(
                    "threshold for a category that is not in the policy",
                    where=where,
                    field=f"moderators[{i}].thresholds.{k}",
                    expected=f"'default', 'overall' or one of {list(category_ids)}",
                    actual=repr(k),
                    fix=f"did you mean {close[0]!r}?" if close else "use a policy category id",
                )
