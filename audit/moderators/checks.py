"""Checks of a run config against the registered moderator adapters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from audit._util.validation import validation_error
from audit.errors import ModeratorError

if TYPE_CHECKING:
    from audit.config import RunConfig


def check_moderator_params(cfg: RunConfig, where: str) -> None:
    """Validate each moderator's type (did-you-mean) and params against its adapter.

    Raises:
        ModeratorError: unknown type or params its adapter rejects, anchored on
            ``moderators[i]`` in ``where`` (the config file the user edits).
    """
    from audit.moderators import MODERATORS

    for i, spec in enumerate(cfg.moderators):
        cls = MODERATORS.get(spec.type, where=where, field=f"moderators[{i}].type")
        try:
            cls.Params.model_validate(spec.params)
        except ValidationError as exc:
            err = validation_error(exc, where, error=ModeratorError)
            raise err.relocated(where, f"moderators[{i}].params") from None
