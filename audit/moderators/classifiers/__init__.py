"""At-scale classifiers: transformers sequence classifiers, embedding + linear heads
(and their training), the packaged lexical baseline."""

from audit.moderators.classifiers.embedding_head import (
    EmbeddingHead,
    FitSpec,
    HeadSummary,
    fit_head,
)
from audit.moderators.classifiers.heads import train_head_on_suite
from audit.moderators.classifiers.hf_classifier import HFClassifier
from audit.moderators.classifiers.profanity import ProfanityBaseline

__all__ = [
    "EmbeddingHead",
    "FitSpec",
    "HFClassifier",
    "HeadSummary",
    "ProfanityBaseline",
    "fit_head",
    "train_head_on_suite",
]
