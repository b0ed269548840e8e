"""Export of an adjudication queue for review (docs/methods/labels.md §4): Label Studio
(``tasks.json`` + ``label_config.xml``) and Argilla (settings + records), restricted items as
id, content hash and a ``restricted`` flag with empty text fields."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import quoteattr

import numpy as np

from audit.labels.review_queue import CHOICES, OK, REASON, REF, VIOLATES, QueueItem, item_reference
from audit.schema import NEGATIVE, POSITIVE, TEXT_FIELDS

if TYPE_CHECKING:
    from audit.policy import Policy
    from audit.suites.loader import LoadedSuite


def text_fields_of(suite: LoadedSuite) -> list[str]:
    return [f for f in TEXT_FIELDS if f in suite.card.fields]


def label_studio_config(suite: LoadedSuite, policy: Policy) -> str:
    """The labelling config XML: reference line, text fields, one Choices per category."""
    lines = ["<View>", f'  <Text name="{REF}" value="${REF}"/>']
    for f in text_fields_of(suite):
        lines.append(f'  <Header value={quoteattr(TEXT_FIELDS[f])} size="5"/>')
        lines.append(f'  <Text name="{f}" value="${f}"/>')
    for c in suite.covers:
        cat = policy.category(c)
        lines.append(f'  <Header value={quoteattr(f"{cat.name} ({c})")} size="4"/>')
        lines.append(
            f'  <Choices name="{c}" toName="{REF}" choice="single" required="true" '
            'showInline="true">'
        )
        lines += [f'    <Choice value="{v}"/>' for v in CHOICES]
        lines.append("  </Choices>")
    lines.append(
        f'  <TextArea name="{REASON}" toName="{REF}" placeholder="reason code / note"'
        ' maxSubmissions="1"/>'
    )
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def label_studio_tasks(
    queue: list[QueueItem], suite: LoadedSuite, moderator: str | None
) -> list[dict[str, Any]]:
    """Label Studio tasks; data keys are plain identifiers (no dots)."""
    tasks = []
    fields = text_fields_of(suite)
    for k, q in enumerate(queue, start=1):
        data: dict[str, Any] = {
            REF: item_reference(q.item_id, q.content_hash, q.restricted),
            "item_id": q.item_id,
            "content_hash": q.content_hash,
            "restricted": q.restricted,
            "suite": suite.name,
            "suite_version": suite.card.version,
        }
        for f in fields:
            data[f] = q.fields.get(f, "")
        if not q.restricted:
            for c, g in q.gold.items():
                data[f"gold_{c}"] = {POSITIVE: VIOLATES, NEGATIVE: OK}.get(g, "unknown")
        task: dict[str, Any] = {"id": k, "data": data}
        result = []
        scores = []
        for c, (dec, sc) in q.decisions.items():
            if dec is None:
                continue
            result.append(
                {
                    "id": f"{k}_{c}",
                    "from_name": c,
                    "to_name": REF,
                    "type": "choices",
                    "value": {"choices": [dec]},
                }
            )
            if sc is not None:
                scores.append(sc if dec == VIOLATES else 1 - sc)
        if result and moderator:
            pred: dict[str, Any] = {"model_version": moderator, "result": result}
            if scores:  # Label Studio wants a score in [0, 1] or none at all
                pred["score"] = float(np.mean(scores))
            task["predictions"] = [pred]
        tasks.append(task)
    return tasks


def argilla_settings(suite: LoadedSuite, policy: Policy) -> dict[str, Any]:
    """Dataset settings in the shape of ``argilla.Settings.serialize()``."""

    def field(name: str, title: str, required: bool) -> dict[str, Any]:
        return {
            "name": name,
            "title": title,
            "required": required,
            "settings": {"type": "text", "use_markdown": False},
            "type": "text",
        }

    fields = [field(REF, "Item", True)]
    fields += [field(f, TEXT_FIELDS[f], False) for f in text_fields_of(suite)]
    questions = []
    for c in suite.covers:
        cat = policy.category(c)
        questions.append(
            {
                "name": c,
                "title": f"{cat.name} ({c})",
                "description": cat.definition,
                "required": True,
                "settings": {
                    "type": "label_selection",
                    "options": [{"text": v.replace("_", " "), "value": v} for v in CHOICES],
                },
                "type": "label_selection",
            }
        )
    questions.append(
        {
            "name": REASON,
            "title": "Reason code / note",
            "required": False,
            "settings": {"type": "text", "use_markdown": False},
            "type": "text",
        }
    )
    meta = [
        {
            "name": n,
            "title": n,
            "settings": {"type": "terms", "values": None},
            "visible_for_annotators": True,
        }
        for n in ("item_id", "content_hash", "restricted", "suite")
    ]
    return {
        "guidelines": f"Adjudicate {suite.name} {suite.card.version} against {policy.ref}.",
        "fields": fields,
        "questions": questions,
        "metadata": meta,
        "allow_extra_metadata": False,
    }


def argilla_records(
    queue: list[QueueItem], suite: LoadedSuite, moderator: str | None
) -> list[dict[str, Any]]:
    """Records in the shape of ``argilla.Record.to_dict()`` (suggestions = decisions)."""
    out = []
    for q in queue:
        fields = {REF: item_reference(q.item_id, q.content_hash, q.restricted)}
        fields.update({f: v for f, v in q.fields.items() if f in text_fields_of(suite)})
        sugg = {}
        for c, (dec, sc) in q.decisions.items():
            if dec is not None and moderator:
                s = None if sc is None else (sc if dec == VIOLATES else 1 - sc)
                sugg[c] = {"value": dec, "score": s, "agent": moderator}
        out.append(
            {
                "id": q.item_id,
                "fields": fields,
                "metadata": {
                    "item_id": q.item_id,
                    "content_hash": q.content_hash,
                    "restricted": str(q.restricted).lower(),
                    "suite": suite.name,
                },
                "suggestions": sugg,
                "responses": {},
            }
        )
    return out


def export_all(
    queue: list[QueueItem],
    suite: LoadedSuite,
    policy: Policy,
    out_dir: Path,
    moderator: str | None,
) -> dict[str, Path]:
    """Write the Label Studio and Argilla files; returns their paths."""
    from audit.labels.io import write_json

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "label_studio_tasks": out_dir / "tasks.json",
        "label_studio_config": out_dir / "label_config.xml",
        "argilla_settings": out_dir / "argilla_settings.json",
        "argilla_records": out_dir / "argilla_records.json",
    }
    write_json(paths["label_studio_tasks"], label_studio_tasks(queue, suite, moderator))
    paths["label_studio_config"].write_text(label_studio_config(suite, policy), encoding="utf-8")
    write_json(paths["argilla_settings"], argilla_settings(suite, policy))
    write_json(paths["argilla_records"], argilla_records(queue, suite, moderator))
    return paths
