"""The Moderator protocol, its defaults and the typed registry (``register_moderator``)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import pytest

from audit.engine.runner import score_items
from audit.errors import ModeratorError
from audit.moderators import MODERATORS, Moderator, ModeratorBase, ModeratorParams
from audit.moderators.base import check_moderator_class, register_moderator
from audit.policy import Policy
from audit.schema import Item, ModeratorOutput

#: every member of the protocol, read from the protocol itself so a new member is
#: checked here without editing this list
MEMBERS = sorted(
    {n for n in vars(Moderator) if not n.startswith("_")} | set(Moderator.__annotations__)
)


def test_protocol_lists_what_the_runner_and_pipeline_use() -> None:
    assert {"fingerprint", "predict", "close", "explain", "explain_unsupported"} <= set(MEMBERS)
    assert {"kind", "description", "categories"} <= set(MEMBERS)


@pytest.mark.parametrize("name", [n for n, _ in MODERATORS])
def test_every_registered_class_conforms(name: str) -> None:
    cls: Any = MODERATORS.get(name)
    check_moderator_class(name, cls)  # raises on a gap
    for member in MEMBERS:
        if member == "categories":  # an instance attribute, set in __init__
            continue
        assert hasattr(cls, member), f"{name} lacks {member}"
    proto_sig = inspect.signature(Moderator.explain)
    assert list(inspect.signature(cls.explain).parameters) == list(proto_sig.parameters)


def test_defaults_say_no_rationales(policy: Policy) -> None:
    from audit.moderators.fake import FakeModerator

    fake = FakeModerator(FakeModerator.Params(), policy)
    assert isinstance(fake, Moderator)
    reason = fake.explain_unsupported()
    assert reason is not None and "does not write rationales" in reason
    with pytest.raises(ModeratorError, match="cannot write rationales"):
        fake.explain([], [])
    fake.close()  # the default close is a no-op, twice is fine
    fake.close()


class _Echo(ModeratorBase):
    """A third-party moderator: scores each item by whether it says "bad"."""

    description: ClassVar[str] = "test plug-in"

    class Params(ModeratorParams):
        word: str = "bad"

    def __init__(self, params: Params, policy: Policy) -> None:
        self.params = params
        self.categories = policy.category_ids
        self.closed = 0

    def fingerprint(self) -> dict[str, Any]:
        return {"type": "echo", "word": self.params.word}

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        return [
            ModeratorOutput(
                scores={c: float(self.params.word in it.text()) for c in self.categories}
            )
            for it in items
        ]

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def echo_registered() -> Iterator[str]:
    name = "test_echo_plugin"
    register_moderator(name)(_Echo)
    try:
        yield name
    finally:
        MODERATORS._items.pop(name, None)  # keep the registry as other tests expect it


def test_third_party_moderator_runs_through_the_runner(
    echo_registered: str, policy: Policy, make_item: Any
) -> None:
    cls = MODERATORS.get(echo_registered)
    mod = cls(cls.Params.model_validate({"word": "bad"}), policy)
    assert isinstance(mod, Moderator) and mod.kind == "classifier"
    items = [make_item(f"i{k}", "a bad post" if k % 2 else "a kind post") for k in range(6)]
    res = score_items(
        lambda: mod,
        mod.fingerprint(),
        items,
        batch_size=4,
        cache=None,
        error_budget=0.0,
        where="test × echo",
    )
    cat = policy.category_ids[0]
    assert [o.scores[cat] for o in res.outputs] == [float(k % 2) for k in range(6)]
    mod.close()
    assert mod.closed == 1


def test_register_moderator_rejects_a_class_off_protocol() -> None:
    class Half:
        kind = "classifier"

        def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
            return []

    with pytest.raises(ModeratorError) as ei:
        register_moderator("half")(Half)
    msg = str(ei.value)
    assert "fingerprint" in msg and "Params" in msg and "ModeratorBase" in msg
    assert "half" not in MODERATORS


def test_register_keeps_working_for_builtins() -> None:
    from audit.moderators.base import register

    assert register is register_moderator
