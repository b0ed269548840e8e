"""The adjudication round trip (docs/methods/labels.md §4).

Export: a queue of item ids (a suspects or review-queue file, or every item) becomes

* **Label Studio**: ``tasks.json`` (a JSON task list its import accepts; the model's
  decisions as ``predictions`` pre-annotations) and ``label_config.xml`` (one ``Text``
  per text field the suite uses, one single-choice ``Choices`` per covered policy
  category, a free-text reason); data keys never contain dots;
* **Argilla**: ``argilla_settings.json`` (fields, one label question per category,
  metadata) and ``argilla_records.json`` (records with the decisions as suggestions).

A restricted item (policy ``restricted: true`` in gold or decision) leaves as its id,
content hash and a ``restricted`` flag: its text-field keys are present but empty, so
every ``$field`` of the config resolves (Label Studio requires that) without text.

Import reads annotations back (Label Studio JSON export, Argilla records, or a CSV),
checks them and writes a NEW suite version: card, data file, a datasheet entry and a
``changes.csv``; the old version is never touched.

This module is the stable entry point; the work lives in :mod:`audit.labels.review_queue`
(the queue and shared vocabulary), :mod:`audit.labels.review_export` (Label Studio, Argilla),
:mod:`audit.labels.annotation_import` (reading and checking answers) and
:mod:`audit.labels.new_version` (the new suite version).
"""

from __future__ import annotations

from audit.labels.annotation_import import Answer, check_answers, read_annotations
from audit.labels.new_version import write_new_version
from audit.labels.review_export import (
    argilla_records,
    argilla_settings,
    export_all,
    label_studio_config,
    label_studio_tasks,
)
from audit.labels.review_queue import (
    CHOICE_LABEL,
    CHOICES,
    OK,
    REASON,
    REF,
    UNSURE,
    VIOLATES,
    AnnotationError,
    QueueItem,
    build_queue,
    read_queue,
    unknown_gold_ids,
)

__all__ = [
    "CHOICES",
    "CHOICE_LABEL",
    "OK",
    "REASON",
    "REF",
    "UNSURE",
    "VIOLATES",
    "AnnotationError",
    "Answer",
    "QueueItem",
    "argilla_records",
    "argilla_settings",
    "build_queue",
    "check_answers",
    "export_all",
    "label_studio_config",
    "label_studio_tasks",
    "read_annotations",
    "read_queue",
    "unknown_gold_ids",
    "write_new_version",
]
