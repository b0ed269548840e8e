"""Moderator adapters.

Importing this package registers the built-in adapters in
:data:`audit.moderators.base.MODERATORS` without importing torch, transformers or
scikit-learn: every adapter loads its heavy libraries inside its methods.

| type | class | what it is |
|---|---|---|
| ``hf_classifier`` | :class:`HFClassifier` | transformers sequence classifier |
| ``embedding_head`` | :class:`EmbeddingHead` | encoder + logistic head (:func:`fit_head`) |
| ``profanity_baseline`` | :class:`ProfanityBaseline` | packaged alt-profanity-check (lexical) |
| ``image_classifier`` | :class:`ImageClassifier` | packaged ONNX image-safety models |
| ``fusion`` | :class:`FusionModerator` | text + image members fused by a recorded rule |
| ``fake`` | :class:`FakeModerator` | scripted scores and failures |
| ``replay`` | :class:`ReplayModerator` | a production pathway's logged scores |
| ``llm_judge`` | :class:`LLMJudge` | prompted causal LM judge |

A third-party adapter subclasses :class:`ModeratorBase` (defaults for ``close`` and
rationales), defines ``Params``, ``fingerprint`` and ``predict``, and registers with
:func:`register_moderator`, which checks the class against :class:`Moderator`.
"""

from audit.moderators.base import (
    MODERATORS,
    Moderator,
    ModeratorBase,
    ModeratorParams,
    ModeratorType,
    register,
    register_moderator,
)
from audit.moderators.classifiers.embedding_head import (
    EmbeddingHead,
    FitSpec,
    HeadSummary,
    fit_head,
)
from audit.moderators.classifiers.hf_classifier import HFClassifier
from audit.moderators.classifiers.image_classifier import ImageClassifier
from audit.moderators.classifiers.profanity import ProfanityBaseline
from audit.moderators.fake import FakeModerator, ScriptedBatchFailure
from audit.moderators.fusion import FusionModerator
from audit.moderators.judge.llm_judge import LLMJudge
from audit.moderators.replay import ReplayModerator

__all__ = [
    "MODERATORS",
    "EmbeddingHead",
    "FakeModerator",
    "FitSpec",
    "FusionModerator",
    "HFClassifier",
    "HeadSummary",
    "ImageClassifier",
    "LLMJudge",
    "Moderator",
    "ModeratorBase",
    "ModeratorParams",
    "ModeratorType",
    "ProfanityBaseline",
    "ReplayModerator",
    "ScriptedBatchFailure",
    "fit_head",
    "register",
    "register_moderator",
]
