"""Golden-set label quality: per-annotator labels, agreement, label-error suspects and
the adjudication round trip (docs/methods/labels.md; METHODS.md §8)."""

from audit.labels.agreement import (
    DEFAULT_THRESHOLD,
    Estimate,
    category_agreement,
    cohen_kappa,
    fleiss_kappa,
    krippendorff_alpha,
    specific_agreement,
    suite_agreement,
)
from audit.labels.annotations import AnnotatorLabels, collapse_annotations, majority_gold

__all__ = [
    "DEFAULT_THRESHOLD",
    "AnnotatorLabels",
    "Estimate",
    "category_agreement",
    "cohen_kappa",
    "collapse_annotations",
    "fleiss_kappa",
    "krippendorff_alpha",
    "majority_gold",
    "specific_agreement",
    "suite_agreement",
]
