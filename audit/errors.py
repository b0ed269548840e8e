"""Exception tree and exit codes.

Every error the harness raises on purpose derives from :class:`AuditError` and
carries an exit code. The CLI is the single boundary that turns them into a
one-line message and an exit status::

    AuditError                      exit 3 unless stated
    ├── UsageError                  exit 2  bad flags / --set overrides
    ├── ConfigError                 exit 2  run config, policy, gate rules
    ├── SuiteError                  exit 2  suite card or its data
    ├── ModeratorError              exit 2  moderator spec (unknown type, bad params)
    ├── RunError                    exit 3  scoring failed, error budget exceeded
    ├── TrackingError               exit 3  MLflow store problems
    ├── GateError                   exit 2  incomparable runs, bad gate inputs
    └── GateRefusedError            exit 3  a candidate the gate cannot trust (failed,
                                            interrupted or partial run)

Exit codes: 0 ok, 1 gate failed, 2 usage/config error, 3 run error.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USAGE = 2
EXIT_RUN = 3


class AuditError(Exception):
    """Base class. Renders as ``where: field: problem (expected X, got Y). fix``."""

    exit_code = EXIT_RUN

    def __init__(
        self,
        message: str,
        *,
        where: str | None = None,
        field: str | None = None,
        expected: str | None = None,
        actual: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.message = message
        self.where = where
        self.field = field
        self.expected = expected
        self.actual = actual
        self.fix = fix
        super().__init__(self.render())

    def relocated(self, where: str, field_prefix: str) -> AuditError:
        """The same error re-anchored on the file the user edits.

        The old location (e.g. an adapter name or model path) moves into the message;
        ``field_prefix`` (``moderators[0]``) is prepended to the field.
        """
        message = self.message
        if self.where and self.where != where:
            message = f"{self.where}: {message}"
        field = field_prefix + (f".{self.field}" if self.field else "")
        return type(self)(
            message,
            where=where,
            field=field,
            expected=self.expected,
            actual=self.actual,
            fix=self.fix,
        )

    def render(self) -> str:
        """One line: where, field, problem, expected vs actual, fix."""
        parts: list[str] = []
        loc = ": ".join(p for p in (self.where, self.field) if p)
        if loc:
            parts.append(f"{loc}: ")
        parts.append(self.message)
        if self.expected is not None or self.actual is not None:
            parts.append(f" (expected {self.expected}, got {self.actual})")
        if self.fix:
            parts.append(f". Fix: {self.fix}")
        return "".join(parts).replace("\n", " ")


class UsageError(AuditError):
    """Bad command-line usage or ``--set`` override."""

    exit_code = EXIT_USAGE


class ConfigError(AuditError):
    """Invalid run config, policy file or gate rules."""

    exit_code = EXIT_USAGE


class SuiteError(AuditError):
    """Invalid suite card, missing data, or data that breaks the canonical schema."""

    exit_code = EXIT_USAGE


class ModeratorError(AuditError):
    """Invalid moderator specification (unknown type, bad parameters, missing model)."""

    exit_code = EXIT_USAGE


class RunError(AuditError):
    """A run could not complete (error budget exceeded, model crashed)."""

    exit_code = EXIT_RUN


class TrackingError(AuditError):
    """The MLflow store could not be written or read."""

    exit_code = EXIT_RUN


class GateError(AuditError):
    """Invalid gate rules or incomparable runs."""

    exit_code = EXIT_USAGE


class GateRefusedError(AuditError):
    """The gate cannot trust the candidate (not finished, or missing baseline pairs):
    no verdict is given (exit 3), never a PASS."""

    exit_code = EXIT_RUN
