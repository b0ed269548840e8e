"""Golden-set label quality: per-annotator labels, agreement, label-error suspects and
the adjudication round trip (docs/methods/labels.md; METHODS.md §8)."""

from audit.labels.annotations import AnnotatorLabels, collapse_annotations, majority_gold

__all__ = ["AnnotatorLabels", "collapse_annotations", "majority_gold"]
