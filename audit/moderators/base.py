"""The Moderator protocol and its registry.

A moderator type is a class registered under a name (``hf_classifier``...). It is
built from a validated ``params`` mapping plus the policy, and scores batches of
:class:`~audit.schema.Item`. Thresholds are applied by the runner, not here: a
moderator only produces continuous scores, so changing a threshold never
invalidates the prediction cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast, runtime_checkable

from pydantic import BaseModel, ConfigDict

from audit._util.registry import Registry
from audit.errors import ModeratorError
from audit.schema import Item, ModeratorOutput

if TYPE_CHECKING:
    from audit.policy import Policy


class ModeratorParams(BaseModel):
    """Base for each adapter's parameter model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: what kind of moderator an adapter is (recorded per moderator in the run record)
KINDS = ("classifier", "llm", "reference")


@runtime_checkable
class Moderator(Protocol):
    """What the runner, the pipeline and the analyses use of a moderator.

    Attributes:
        categories: the policy categories this moderator can speak to. Scores for
            other categories are "not applicable" (NaN), never counted as misses.
        kind: ``classifier`` (at-scale ML), ``llm`` (prompted) or ``reference``.
        description: one line for ``audit list``.

    :class:`ModeratorBase` gives the optional capabilities (``close``, rationales)
    their defaults; an adapter subclasses it and writes what it has.
    """

    categories: tuple[str, ...]
    kind: ClassVar[str]
    description: ClassVar[str]

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes outputs (weights digest, revision, settings).

        Hashed into the prediction-cache key and written to the run record.
        """
        ...

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        """Score ``items``; one output per item, same order.

        A failure on one item is returned as ``ModeratorOutput(error=...)``; raising
        means the whole batch failed (the runner then records every item of the
        batch as an error).
        """
        ...

    def explain_unsupported(self) -> str | None:
        """Why :meth:`explain` cannot run for this moderator, or ``None`` when it can."""
        ...

    def explain(
        self, items: Sequence[Item], decisions: Sequence[bool], *, max_new_tokens: int = 48
    ) -> list[ModeratorOutput]:
        """One-line rationales for decisions already taken (``explain:`` in a config)."""
        ...

    def close(self) -> None:
        """Free models and accelerator memory (idempotent; the pipeline calls it)."""
        ...


class ModeratorBase:
    """Defaults for a moderator's optional capabilities: nothing to close, no
    rationales. Subclass it to satisfy :class:`Moderator` with only
    ``Params``, ``__init__``, ``fingerprint`` and ``predict`` written."""

    kind: ClassVar[str] = "classifier"
    description: ClassVar[str] = ""

    def explain_unsupported(self) -> str | None:
        return f"moderator type {type(self).__name__} does not write rationales"

    def explain(
        self, items: Sequence[Item], decisions: Sequence[bool], *, max_new_tokens: int = 48
    ) -> list[ModeratorOutput]:
        raise ModeratorError(
            "this moderator cannot write rationales",
            where=type(self).__name__,
            field="explain",
            expected="a moderator whose explain_unsupported() is None",
            actual=self.explain_unsupported(),
            fix="remove explain: from this moderator's entry",
        )

    def close(self) -> None:
        """Nothing to free."""


class ModeratorType(Protocol):
    """A registered adapter class: its parameter model and a constructor."""

    Params: ClassVar[type[ModeratorParams]]
    kind: ClassVar[str]
    description: ClassVar[str]

    def __call__(self, params: Any, policy: Policy) -> Moderator: ...


#: the callables a moderator class must define (checked when it is registered)
_METHODS = ("fingerprint", "predict", "explain_unsupported", "explain", "close")


def check_moderator_class(name: str, cls: Any) -> None:
    """Raise a ModeratorError naming what a class lacks to be a :class:`Moderator`."""
    missing = [m for m in _METHODS if not callable(getattr(cls, m, None))]
    params = getattr(cls, "Params", None)
    if not (isinstance(params, type) and issubclass(params, ModeratorParams)):
        missing.append("Params (a ModeratorParams subclass)")
    kind = getattr(cls, "kind", None)
    if kind not in KINDS:
        missing.append(f"kind (one of {', '.join(KINDS)}; got {kind!r})")
    if not isinstance(getattr(cls, "description", None), str):
        missing.append("description (a one-line str)")
    if missing:
        raise ModeratorError(
            f"moderator class {getattr(cls, '__name__', cls)!r} does not follow the protocol",
            where=f"register_moderator({name!r})",
            field="class",
            expected="the members of audit.moderators.base.Moderator",
            actual="missing: " + "; ".join(missing),
            fix="subclass audit.moderators.base.ModeratorBase for the defaults",
        )


MODERATORS: Registry[ModeratorType] = Registry(
    "moderator type", error=ModeratorError, entry_point_group="audit.moderators"
)

_C = TypeVar("_C")


def register_moderator(name: str) -> Callable[[_C], _C]:
    """Class decorator registering a moderator adapter under ``name`` (the public
    plug-in point; third-party packages may also use the ``audit.moderators`` entry
    point group). The class is checked against :class:`Moderator` first."""

    def deco(cls: _C) -> _C:
        check_moderator_class(name, cls)
        MODERATORS.add(name, cast(ModeratorType, cls))
        return cls

    return deco


#: the built-in adapters' spelling of :func:`register_moderator`
register = register_moderator
