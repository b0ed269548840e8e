"""The Moderator protocol and its registry.

A moderator type is a class registered under a name (``hf_classifier``...). It is
built from a validated ``params`` mapping plus the policy, and scores batches of
:class:`~audit.schema.Item`. Thresholds are applied by the runner, not here: a
moderator only produces continuous scores, so changing a threshold never
invalidates the prediction cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from audit._util.registry import Registry
from audit.errors import ModeratorError
from audit.schema import Item, ModeratorOutput

if TYPE_CHECKING:
    from audit.policy import Policy


class ModeratorParams(BaseModel):
    """Base for each adapter's parameter model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@runtime_checkable
class Moderator(Protocol):
    """Scores a batch of items.

    Attributes:
        categories: the policy categories this moderator can speak to. Scores for
            other categories are "not applicable" (NaN), never counted as misses.
        kind: ``classifier`` (at-scale ML), ``llm`` (prompted) or ``reference``.
    """

    categories: tuple[str, ...]
    kind: str

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


class ModeratorType(Protocol):
    """A registered adapter class."""

    Params: ClassVar[type[ModeratorParams]]

    def __call__(self, params: Any, policy: Policy) -> Moderator: ...


MODERATORS: Registry[Any] = Registry(
    "moderator type", error=ModeratorError, entry_point_group="audit.moderators"
)


def register(name: str) -> Any:
    """Class decorator registering a moderator adapter under ``name``."""
    return MODERATORS.register(name)
