"""Fixtures for adapter tests: an in-memory policy, items, tiny checkpoints, offline env.

Every Hugging Face cache lives under a session temp folder and the hub is forced
offline before any test runs, so nothing here touches the network.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:  # `pytest` run without `python -m`
    sys.path.insert(0, str(_ROOT))

from audit.policy import Category, Policy  # noqa: E402
from audit.schema import Item, content_hash  # noqa: E402
from tests.helpers.tiny_models import build_tiny_classifier  # noqa: E402

CATEGORY_IDS = ("hate", "harassment", "violence", "self_harm", "spam")
TINY_LABELS = ("safe", "hate", "violence", "insult")


@pytest.fixture(scope="session", autouse=True)
def _offline_hf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """HF offline + every cache under a temp folder (before any HF import)."""
    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        mp.setenv("HF_DATASETS_OFFLINE", "1")
        mp.setenv("TOKENIZERS_PARALLELISM", "false")
        mp.setenv("HF_HOME", str(home))
        mp.setenv("HF_HUB_CACHE", str(home / "hub"))
        mp.setenv("XDG_CACHE_HOME", str(home / "xdg"))
        yield


def make_policy(ids: Sequence[str] = CATEGORY_IDS) -> Policy:
    """A minimal valid policy with the given category ids."""
    return Policy(
        id="test",
        version=1,
        name="Test policy",
        effective_date="2025-01-01",
        description="policy for unit tests",
        categories=tuple(
            Category(
                id=c,
                name=c.replace("_", " ").title(),
                definition=f"{c} content",
                not_allowed=(f"{c} examples",),
                allowed=("discussion",),
                severity="high",
                default_action="remove",
            )
            for c in ids
        ),
    )


def _make_item(item_id: str, text: str, field: str = "comment") -> Item:
    fields = {field: text} if text else {}
    return Item(id=item_id, content_hash=content_hash(fields), fields=fields)


@pytest.fixture(scope="session")
def make_item() -> Callable[..., Item]:
    """``make_item(id, text, field="comment") -> Item`` (empty text → no fields)."""
    return _make_item


@pytest.fixture(scope="session")
def make_policy_fn() -> Callable[..., Policy]:
    """``make_policy(ids) -> Policy``."""
    return make_policy


@pytest.fixture(scope="session")
def policy() -> Policy:
    return make_policy()


@pytest.fixture
def items() -> list[Item]:
    texts = [
        "I will hurt you tomorrow if you come back",
        "great recipe",
        "those people are vermin and should leave the country because I hate them",
        "buy cheap pills now",
        "the cat sat on the mat",
        "you are so stupid and ugly",
    ]
    return [_make_item(f"it-{i}", t) for i, t in enumerate(texts)]


@pytest.fixture(scope="session")
def tiny_classifier_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., Path]:
    """``factory(labels=..., problem_type=..., seed=...) -> model dir`` (cached per args)."""
    cache: dict[tuple[object, ...], Path] = {}

    def factory(
        labels: Sequence[str] = TINY_LABELS, problem_type: str | None = None, seed: int = 0
    ) -> Path:
        key = (tuple(labels), problem_type, seed)
        if key not in cache:
            out = tmp_path_factory.mktemp("tiny_clf")
            cache[key] = build_tiny_classifier(out, labels, problem_type=problem_type, seed=seed)
        return cache[key]

    return factory


@pytest.fixture(scope="session")
def tiny_classifier(tiny_classifier_factory: Callable[..., Path]) -> Path:
    """Multi-label tiny BERT: labels safe, hate, violence, insult."""
    return tiny_classifier_factory(problem_type="multi_label_classification")
