"""The typed run record: what ``runs/<run_id>/record.json`` holds, as frozen Pydantic models.

One record per run (:class:`RunRecord`) carries its provenance, one :class:`ResultEntry`
per suite × moderator with its metrics (:class:`MetricValue`: point, interval, ``n``,
the reason when undefined, and the metric's direction) and per-slice error accounting
(:class:`ErrorSlice`). The gate's outcome is typed here too (:class:`Check`,
:class:`Verdict`) so every reader — MLflow mirror, reports, compare and gate, the public
API — sees one shape instead of string-key lookups into nested dicts.

This module sits in the low layer beside :mod:`audit.schema`: it imports only Pydantic,
so records can be read without the engine, the metrics or any heavy library.

Versions: ``schema_version`` 2 is this shape. Records written before it carry
``record_version: 1`` (a plain dict of the same content, without metric directions);
:func:`audit.engine.record.migrate` upgrades them on load. The JSON Schema exported from
:class:`RunRecord` is committed as ``docs/record.schema.json``.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: Version of the record shape defined here (``record.json["schema_version"]``).
SCHEMA_VERSION = 2

RunStatus = Literal["running", "finished", "failed", "interrupted"]
Direction = Literal["higher", "lower", "none"]
CheckStatus = Literal["pass", "fail", "uninformative", "unverifiable"]


class _Frozen(BaseModel):
    """Immutable, strict: a record is a fact about a finished step, and an unknown key
    in it is a writer bug (or a newer schema) that should surface, not vanish."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _nan_to_none(v: Any) -> Any:
    # JSON has no NaN: an undefined number is stored as null (with a reason beside it)
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


class MetricValue(_Frozen):
    """One metric's estimate with its interval.

    Attributes:
        value: point estimate; ``None`` when undefined (then ``reason`` says why).
        ci_low: lower interval bound (``None`` when there is no interval).
        ci_high: upper interval bound.
        n: items the estimate is over.
        reason: why the value is undefined (``"no gold negatives among 30 scored items"``).
        method: how the interval was made (``row-bootstrap``, ``wilson``, ``exact``,
            ``count``).
        direction: which way is better (``higher`` / ``lower`` / ``none``), from the
            metric registry; ``None`` for a metric the registry does not know.
    """

    value: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int = Field(ge=0)
    reason: str | None = None
    method: str | None = None
    direction: Direction | None = None

    _nan = field_validator("value", "ci_low", "ci_high", mode="before")(_nan_to_none)

    @model_validator(mode="after")
    def _reason_when_undefined(self) -> MetricValue:
        if self.value is None and not self.reason:
            raise ValueError("an undefined metric value needs a reason")
        return self

    @property
    def estimate(self) -> float:
        """``value`` as a float, NaN when undefined (for arithmetic and DataFrames)."""
        return math.nan if self.value is None else self.value


class ErrorSlice(_Frozen):
    """Failed items in one slice value (``slice="overall"``, ``value="all"``: all items)."""

    slice: str
    value: str
    n: int = Field(ge=0)
    n_errors: int = Field(ge=0)
    n_parse_failures: int = Field(ge=0)
    n_transient: int = Field(default=0, ge=0)
    """transport failures (timeouts, 5xx, refused connections): retried on the next run"""
    errors_by_type: dict[str, int] = Field(default_factory=dict)
    error_rate: MetricValue
    parse_failure_rate: MetricValue


class ResultEntry(_Frozen):
    """One suite × moderator result.

    ``metrics`` maps category (``overall`` for any-violation) → metric name →
    :class:`MetricValue`; ``predictions`` is the Parquet file, relative to the run folder.
    ``explained`` is the summary of an ``explain:`` pass (LLM judges), ``sample`` how a
    subset was drawn when the moderator scored one.
    """

    suite: str
    split: str
    moderator: str
    key: str
    n: int = Field(ge=0)
    n_errors: int = Field(ge=0)
    error_types: dict[str, int] = Field(default_factory=dict)
    n_cached: int = Field(default=0, ge=0)
    batches: int = Field(default=0, ge=0)
    predictions: str
    categories_scored: tuple[str, ...] = ()
    timings: dict[str, float] = Field(default_factory=dict)
    engine: dict[str, str | None] = Field(default_factory=dict)
    """Which engine scored: ``name`` (``local`` or ``ray``); for Ray also ``workers``
    (``actors`` or ``tasks``, after ``auto`` is resolved; null when every item came from
    the cache, so no worker ran) and ``address`` (null: local).
    Empty in records written before it existed."""
    metrics: dict[str, dict[str, MetricValue]] = Field(default_factory=dict)
    error_slices: tuple[ErrorSlice, ...] = ()
    sample: dict[str, Any] | None = None
    explained: dict[str, Any] | None = None

    def metric(self, category: str, name: str) -> MetricValue | None:
        """The metric ``name`` of ``category``, ``None`` when it was not computed."""
        return self.metrics.get(category, {}).get(name)


class GitState(_Frozen):
    commit: str | None = None
    dirty: bool | None = None


class Provenance(_Frozen):
    """Where and with what the run was made."""

    git: GitState = GitState()
    packages: dict[str, str | None] = Field(default_factory=dict)
    python: str
    platform: str
    host: str
    pid: int
    argv: tuple[str, ...] = ()
    seed: int = 0


class PolicyRef(_Frozen):
    ref: str
    digest: str


class SuiteEntry(_Frozen):
    """A scored suite split (:meth:`audit.suites.LoadedSuite.describe`)."""

    name: str
    version: str
    split: str
    n: int = Field(ge=0)
    digest: str
    policy: str
    covers: tuple[str, ...] = ()
    source: dict[str, Any] = Field(default_factory=dict)
    card: str
    positives: dict[str, int] = Field(default_factory=dict)
    unknown: dict[str, int] = Field(default_factory=dict)
    overall_positives: int = 0
    warnings: tuple[str, ...] = ()
    """card rules that look wrong on this data (a class no row received, a listed value
    no row matched, a pattern-like literal)"""


class ModeratorEntry(_Frozen):
    """A moderator as it ran: type, kind, thresholds and its fingerprint."""

    type: str
    kind: str | None = None
    categories: tuple[str, ...] = ()
    thresholds: dict[str, float] = Field(default_factory=dict)
    batch_size: int = Field(ge=1)
    fingerprint: dict[str, Any] = Field(default_factory=dict)
    fingerprint_hash: str


class Skipped(_Frozen):
    """An optional suite whose data was absent."""

    suite: str
    reason: str


class RunWarning(_Frozen):
    """A Python warning raised during the run (e.g. scikit-learn's
    ``UndefinedMetricWarning``), kept here instead of on the terminal; repeats of the
    same category and message are counted, not listed."""

    category: str
    message: str
    source: str = ""
    count: int = 1


class MlflowRef(BaseModel):
    """Where the run was mirrored. Extra keys are kept: the mirror may record more
    (it owns MLflow), and a reader should not fail on them."""

    model_config = ConfigDict(frozen=True, extra="allow")

    tracking_uri: str
    experiment_id: str | None = None
    parent_run_id: str | None = None
    children: dict[str, str] = Field(default_factory=dict)
    reaped: int = Field(default=0, ge=0)
    """MLflow runs of earlier audits left open by a killed process, closed by this mirror"""
    status: Literal["mirrored", "failed"] = "mirrored"
    """``failed``: the run finished (its numbers are complete) but the mirror did not"""
    error: str | None = None


class RunRecord(_Frozen):
    """The run record (``record.json``), schema version 2.

    ``config`` is the resolved run config as JSON (kept as written so records of older
    configs still load); use :func:`audit.config.RunConfig.model_validate` on it for a
    typed config.
    """

    schema_version: Literal[2] = 2
    run_id: str
    status: RunStatus
    started_at: str
    finished_at: str | None = None
    config: dict[str, Any]
    config_path: str
    config_hash: str
    overrides: tuple[str, ...] = ()
    provenance: Provenance
    policy: PolicyRef
    suites: dict[str, SuiteEntry] = Field(default_factory=dict)
    """``"<suite>:<split>"`` → the suite as scored"""
    moderators: dict[str, ModeratorEntry] = Field(default_factory=dict)
    results: tuple[ResultEntry, ...] = ()
    skipped: tuple[Skipped, ...] = ()
    warnings: tuple[RunWarning, ...] = ()
    mlflow: MlflowRef | None = None
    error: str | None = None

    def result(self, suite: str, moderator: str) -> ResultEntry:
        """The result of ``suite`` × ``moderator``.

        Raises:
            KeyError: no such result, with the ones the record has.
        """
        for r in self.results:
            if r.suite == suite and r.moderator == moderator:
                return r
        have = ", ".join(f"{r.suite} × {r.moderator}" for r in self.results) or "none"
        raise KeyError(f"no result {suite} × {moderator} in run {self.run_id} (has: {have})")

    def suite_entry(self, suite: str, split: str) -> SuiteEntry | None:
        """The suite entry of ``suite:split``, ``None`` when absent."""
        return self.suites.get(f"{suite}:{split}")


class Check(_Frozen):
    """One gate rule × suite × category outcome.

    ``value`` is the checked quantity (delta or candidate value), ``bound`` the interval
    end compared with ``threshold``; NaN where not defined (Python floats; a check is
    not stored in ``record.json``).
    """

    rule: str
    suite: str
    category: str
    severity: Literal["block", "warn"]
    status: CheckStatus
    value: float
    bound: float
    threshold: float
    n: int
    detail: str

    @property
    def blocking(self) -> bool:
        return self.severity == "block"


class Verdict(_Frozen):
    """The gate's answer: the checks, the word (``PASS`` / ``FAIL`` / ``UNVERIFIABLE``)
    and the process exit code (0 / 1 / 3)."""

    candidate: str
    baseline: str
    word: Literal["PASS", "FAIL", "UNVERIFIABLE"]
    exit_code: Literal[0, 1, 3]
    checks: tuple[Check, ...]
    #: what shaped the checks: declared suite diffs used, blocking checks downgraded
    #: to warn on unreliable gold (one line each; empty when neither applies)
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def record_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``record.json`` (committed as ``docs/record.schema.json``)."""
    schema = RunRecord.model_json_schema(mode="serialization")
    schema["title"] = "audit run record"
    return schema


def record_json_schema_text() -> str:
    """:func:`record_json_schema` as the committed file's text (sorted keys, 2-space indent)."""
    import json

    return json.dumps(record_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


if __name__ == "__main__":  # python -m audit.records > docs/record.schema.json
    print(record_json_schema_text(), end="")
