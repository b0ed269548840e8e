"""``profanity_baseline``: the packaged ``alt-profanity-check`` model.

A linear SVM over character n-grams (calibrated probabilities), trained on ~200k
labelled texts, shipped inside the ``alt-profanity-check`` package. It detects
**profane / offensive language**, which is *not* the same as a policy violation:

* it is a **partial** mapping: its one probability is reported as the score of
  each category in ``params.categories`` (default ``harassment`` and ``hate``);
* it cannot see a threat, a slur-free dehumanising statement or a scam written
  without swear words (a threat with no swear words scores ~0.36), and it flags
  reclaimed or casual profanity that the policy allows.

Treat it as a fast lexical baseline: a candidate that does not beat it on a
category has learnt little beyond swear words.
"""

from __future__ import annotations

import importlib.util
import math
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from audit.errors import ModeratorError
from audit.moderators._torch import check_policy_categories, package_version, sha256_file
from audit.moderators.base import ModeratorBase, ModeratorParams, register
from audit.policy import Policy
from audit.schema import Item, ModeratorOutput

NAME = "profanity_baseline"
DIST = "alt-profanity-check"
MODULE = "profanity_check"


def _package_dir() -> Path:
    spec = importlib.util.find_spec(MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise ModeratorError(
            f"package {DIST!r} is not installed",
            where=NAME,
            expected=f"{DIST}==1.9.1 installed",
            actual="not found",
            fix=f"pip install {DIST}==1.9.1 (pins scikit-learn and joblib)",
        )
    return Path(next(iter(spec.submodule_search_locations)))


@register(NAME)
class ProfanityBaseline(ModeratorBase):
    """Lexical offensive-language probability, reported for a few categories."""

    description: ClassVar[str] = (
        "packaged alt-profanity-check (char n-gram SVM): offensive-language probability; "
        "lexical baseline, partial mapping"
    )
    kind: ClassVar[str] = "classifier"

    class Params(ModeratorParams):
        """Parameters of ``profanity_baseline``.

        Attributes:
            categories: policy categories that receive the profanity probability
                (partial coverage: profanity is not a violation by itself).
        """

        categories: tuple[str, ...] = ("harassment", "hate")

    def __init__(self, params: Params, policy: Policy) -> None:
        self.params = params
        if not params.categories:
            raise ModeratorError(
                "categories is empty",
                where=NAME,
                field="params.categories",
                expected="at least one policy category",
                actual="[]",
                fix='e.g. categories: ["harassment", "hate"]',
            )
        self.categories: tuple[str, ...] = check_policy_categories(
            params.categories, policy.category_ids, where=NAME, field="params.categories"
        )
        self._dir = _package_dir()
        self._predict: Any = None
        self._lock = threading.Lock()
        self._fingerprint: dict[str, Any] | None = None

    def fingerprint(self) -> dict[str, Any]:
        """Package versions (model, scikit-learn, joblib) + sha256 of the pickled files."""
        if self._fingerprint is None:
            files = {
                str(p.relative_to(self._dir)): sha256_file(p)
                for p in sorted(self._dir.rglob("*"))
                if p.suffix in (".joblib", ".pkl", ".pickle") and p.is_file()
            }
            self._fingerprint = {
                "type": NAME,
                "package": f"{DIST}=={package_version(DIST)}",
                "scikit-learn": package_version("scikit-learn"),
                "joblib": package_version("joblib"),
                "files": files,
                "categories": list(self.categories),
                "input": "item.text()",
            }
        return dict(self._fingerprint)

    def _load(self) -> Any:
        with self._lock:
            if self._predict is None:
                with warnings.catch_warnings():
                    # the pickles are pinned to the installed scikit-learn; any
                    # version-skew warning is noise here (the version is fingerprinted)
                    warnings.filterwarnings("ignore", message=".*Trying to unpickle.*")
                    warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
                    from profanity_check import predict_prob

                self._predict = predict_prob
            return self._predict

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        """Score ``items``; items with no text come back as ``error_type="no_text"``."""
        predict_prob = self._load()
        texts = [it.text() for it in items]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        out = [ModeratorOutput(error="item has no text", error_type="no_text") for _ in items]
        if todo:
            probs = predict_prob([texts[i] for i in todo])
            for i, p in zip(todo, probs.tolist()):
                p = float(p)
                if math.isnan(p):
                    out[i] = ModeratorOutput(error="NaN score", error_type="nan_output")
                else:
                    p = min(1.0, max(0.0, p))
                    out[i] = ModeratorOutput(scores=dict.fromkeys(self.categories, p))
        return out

    def close(self) -> None:
        """Nothing to release (the package holds its model at module level)."""
