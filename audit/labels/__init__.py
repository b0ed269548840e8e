"""Golden-set label quality: per-annotator labels, agreement, label-error suspects and
the adjudication round trip (docs/methods/labels.md; docs/methods.md §8)."""

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
from audit.labels.exchange import (
    AnnotationError,
    build_queue,
    check_answers,
    export_all,
    read_annotations,
    read_queue,
    unknown_gold_ids,
    write_new_version,
)
from audit.labels.suspects import run_suspects
from audit.suites.annotations import AnnotatorLabels, collapse_annotations, majority_gold

__all__ = [
    "DEFAULT_THRESHOLD",
    "AnnotationError",
    "AnnotatorLabels",
    "Estimate",
    "build_queue",
    "category_agreement",
    "check_answers",
    "cohen_kappa",
    "collapse_annotations",
    "export_all",
    "fleiss_kappa",
    "krippendorff_alpha",
    "majority_gold",
    "read_annotations",
    "read_queue",
    "run_suspects",
    "specific_agreement",
    "suite_agreement",
    "unknown_gold_ids",
    "write_new_version",
]
