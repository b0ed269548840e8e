"""``replay``: a production pathway's logged scores (or decisions), looked up by item id.

Lets a production pathway be scored on any golden suite like every other
moderator (compared, gated, RCA'd) without re-running it::

    type: replay
    params:
      logs: logs/demo_day.yaml       # a logs card (audit/production/card.py)
      pathway: profanity_clf
      period: 2026-11-30             # optional: restrict to a period
      policy_version: platform-v1    # optional
      use: score                     # or "decision": actioned -> 1.0, else 0.0
      id_prefix: ""                  # prepended to suite ids before the lookup

An item absent from the logs is a per-item error (``error_type="not_in_logs"``),
never a negative: production did not see it, so it says nothing about it.
A category the pathway logged for other items but not for this one is absent
from the item's scores (not applicable), never 0.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from audit.errors import ModeratorError
from audit.moderators._torch import check_policy_categories
from audit.moderators.base import ModeratorBase, ModeratorParams, register
from audit.policy import Policy
from audit.schema import Item, ModeratorOutput

NAME = "replay"


@register(NAME)
class ReplayModerator(ModeratorBase):
    """Scores taken from decision logs by item id."""

    description: ClassVar[str] = "a production pathway's logged scores/decisions, by item id"
    kind = "classifier"

    class Params(ModeratorParams):
        """Parameters of ``replay``.

        Attributes:
            logs: path of the logs card.
            pathway: the pathway to replay.
            period: optional ``YYYY-MM-DD`` or ``start..end``.
            policy_version: optional policy version filter.
            use: ``score`` (the logged score) or ``decision`` (actioned → 1.0).
            id_prefix: prepended to each suite id to form the logged item id.
        """

        logs: Path
        pathway: str
        period: str | None = None
        policy_version: str | None = None
        use: Literal["score", "decision"] = "score"
        id_prefix: str = ""

    def __init__(self, params: Params, policy: Policy) -> None:
        from audit.production.errors import ProductionError
        from audit.production.logs import DecisionLogs, Period

        self.params = params
        try:
            self._logs = DecisionLogs.open(params.logs)
            self._period = Period.parse(params.period) if params.period else None
            rep = self._logs.check(self._period, params.pathway, params.policy_version)
        except ProductionError as exc:
            raise ModeratorError(
                exc.message,
                where=exc.where or NAME,
                field=f"params.logs ({exc.field})" if exc.field else "params.logs",
                expected=exc.expected,
                actual=exc.actual,
                fix=exc.fix,
            ) from None
        self.categories: tuple[str, ...] = check_policy_categories(
            rep.categories,
            policy.category_ids,
            where=str(params.logs),
            field="params.logs (category)",
        )
        self._digest = self._logs.digest(self._period)
        self._rel = self._logs.relation_sql(self._period, params.pathway, params.policy_version)

    def fingerprint(self) -> dict[str, Any]:
        """The logs' digest and every parameter (a new log day is a new model)."""
        payload = self.params.model_dump(mode="json")
        payload["logs"] = str(self.params.logs)
        payload["logs_digest"] = self._digest
        blob = json.dumps(payload, sort_keys=True)
        return {
            "type": NAME,
            "params_sha256": hashlib.sha256(blob.encode()).hexdigest(),
            "logs_digest": self._digest,
            "categories": list(self.categories),
        }

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        """Look the batch up in the logs (one query per batch)."""
        ids = [self.params.id_prefix + it.id for it in items]
        rows = self._logs.con.execute(
            f"SELECT item_id, category, score, actioned FROM ({self._rel}) "
            "WHERE item_id IN (SELECT unnest($ids))",
            {"ids": ids},
        ).fetchall()
        found: dict[str, dict[str, float]] = {}
        for iid, cat, score, act in rows:
            if cat not in self.categories:
                continue
            v = float(score) if self.params.use == "score" else (1.0 if act else 0.0)
            found.setdefault(str(iid), {})[str(cat)] = v
        out: list[ModeratorOutput] = []
        for iid in ids:
            sc = found.get(iid)
            if sc is None:
                out.append(
                    ModeratorOutput(
                        error=f"item {iid!r} not in the logs of pathway {self.params.pathway!r}",
                        error_type="not_in_logs",
                    )
                )
            else:
                out.append(ModeratorOutput(scores=sc))
        return out

    def close(self) -> None:
        """Nothing held but an in-memory DuckDB connection."""
