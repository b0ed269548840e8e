"""``hf_classifier``: any transformers sequence-classification checkpoint.

Example config::

    type: hf_classifier
    params:
      model: models/toxic-bert          # local dir, or hub id + revision
      revision: null
      problem_type: auto                # multi_label | single_label | auto
      label_map: {toxic: harassment, identity_hate: hate}   # or "identity"
      max_length: 256
      device: auto
      dtype: float32

Scores: ``multi_label`` applies a sigmoid per logit; ``single_label`` a softmax
over all logits (a one-logit head always uses a sigmoid). Model labels absent
from ``label_map`` (e.g. ``safe``) are ignored. When several labels map to one
category its score is the max of their sigmoids (multi-label) or the sum of
their softmax probabilities (single-label: the classes are exclusive, so the sum
is the probability of their union).

Construction only reads ``config.json`` (no torch); weights load on the first
``predict`` (or :meth:`HFClassifier.load`). Items with no text come back as
``error_type="no_text"``.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from audit.errors import ModeratorError
from audit.moderators._torch import (
    DEVICE_PATTERN,
    check_policy_categories,
    did_you_mean,
    model_files_digest,
    quiet_hf,
    resolve_device,
    resolve_dtype,
    resolve_model_dir,
    safe_load_kwargs,
)
from audit.moderators.base import ModeratorBase, ModeratorParams, register
from audit.moderators.classifiers.batching import fast_dtype, padded_batches
from audit.policy import Policy
from audit.schema import Item, ModeratorOutput

NAME = "hf_classifier"


def read_label_config(model_dir: Path, *, where: str) -> tuple[list[str], str | None]:
    """Labels in logit order and ``problem_type`` from a checkpoint's ``config.json``."""
    cfg_path = model_dir / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModeratorError(
            f"cannot read config.json: {exc}",
            where=where,
            field="params.model",
            expected="a directory written by save_pretrained() with a config.json",
            actual=str(model_dir),
            fix="point params.model at the checkpoint folder",
        ) from exc
    id2label = cfg.get("id2label")
    if id2label:
        labels = [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]
    else:
        labels = [f"LABEL_{i}" for i in range(int(cfg.get("num_labels", 2)))]
    return labels, cfg.get("problem_type")


@register(NAME)
class HFClassifier(ModeratorBase):
    """Transformers sequence classifier → policy-category probabilities."""

    description: ClassVar[str] = (
        "transformers sequence-classification model (local dir or hub id), "
        "sigmoid/softmax scores mapped onto policy categories"
    )
    kind: ClassVar[str] = "classifier"

    class Params(ModeratorParams):
        """Parameters of ``hf_classifier``.

        Attributes:
            model: local checkpoint directory or hub id.
            revision: hub branch, tag or commit (ignored for local directories).
            problem_type: ``multi_label`` (sigmoid), ``single_label`` (softmax) or
                ``auto`` (multi-label only if config.json says
                ``multi_label_classification``).
            label_map: model label (config ``id2label``) → policy category, or
                ``identity`` (labels that equal policy ids map to themselves).
            max_length: tokens per text (truncated beyond).
            device: ``auto``, ``cpu``, ``cuda`` (``cuda:N``) or ``mps``.
            dtype: weights dtype; scores are always computed in float32. ``fast``: bf16
                on CUDA and on CPUs that multiply bf16 natively (AMX / AVX512-BF16),
                float32 elsewhere; the fingerprint records the resolved dtype
                (tolerance: docs/defaults.md, "Classifier throughput").
            micro_batch_size: forward-pass size inside a runner batch (no effect on
                scores beyond float noise from padding).
            max_tokens_per_forward: cap on padded tokens per forward pass.
        """

        model: str = Field(min_length=1)
        revision: str | None = None
        problem_type: Literal["auto", "multi_label", "single_label"] = "auto"
        label_map: Literal["identity"] | dict[str, str] = "identity"
        max_length: int = Field(256, ge=2, le=32768)
        device: str = Field("auto", pattern=DEVICE_PATTERN)
        dtype: Literal["float32", "bfloat16", "float16", "fast"] = "float32"
        micro_batch_size: int = Field(32, ge=1)
        max_tokens_per_forward: int = Field(16384, ge=64)
        #: load a checkpoint that has only pickle weights (.bin/.pt); off by default
        #: because unpickling can run code
        allow_pickle: bool = False

    def __init__(self, params: Params, policy: Policy) -> None:
        self.params = params
        self.model_dir, self.commit = resolve_model_dir(
            params.model, revision=params.revision, where=NAME
        )
        self.labels, cfg_problem = read_label_config(self.model_dir, where=NAME)
        self.label_map = self._resolve_label_map(params.label_map, self.labels, policy)
        self.categories: tuple[str, ...] = check_policy_categories(
            sorted(set(self.label_map.values())),
            policy.category_ids,
            where=NAME,
            field="params.label_map",
        )
        if params.problem_type == "auto":
            multi = cfg_problem == "multi_label_classification"
        else:
            multi = params.problem_type == "multi_label"
        self.problem_type = "multi_label" if multi or len(self.labels) == 1 else "single_label"
        # label index → category, in logit order
        self._index: list[tuple[int, str]] = [
            (i, self.label_map[lab]) for i, lab in enumerate(self.labels) if lab in self.label_map
        ]
        self._model: Any = None
        self._tokenizer: Any = None
        self._device: str | None = None
        self._max_len = params.max_length
        self._lock = threading.Lock()
        self._fingerprint: dict[str, Any] | None = None

    # ------------------------------------------------------------------ validation

    @staticmethod
    def _resolve_label_map(
        spec: Literal["identity"] | dict[str, str], labels: list[str], policy: Policy
    ) -> dict[str, str]:
        ids = policy.category_ids
        if spec == "identity":
            mapping = {lab: lab for lab in labels if lab in ids}
            if not mapping:
                raise ModeratorError(
                    "label_map 'identity' maps no model label onto the policy",
                    where=NAME,
                    field="params.label_map",
                    expected=f"model labels among policy ids {list(ids)}",
                    actual=f"model labels {labels}",
                    fix="give an explicit label_map {model_label: policy_category}",
                )
            return mapping
        assert isinstance(spec, dict)
        if not spec:
            raise ModeratorError(
                "label_map is empty",
                where=NAME,
                field="params.label_map",
                expected=f"a mapping from some of {labels} to policy categories",
                actual="{}",
                fix="map at least one model label, or use 'identity'",
            )
        for lab, target in spec.items():
            if lab not in labels:
                hint = did_you_mean(lab, labels)
                raise ModeratorError(
                    f"model has no label {lab!r}",
                    where=NAME,
                    field=f"params.label_map.{lab}",
                    expected=f"one of the model's labels {labels}",
                    actual=repr(lab),
                    fix=hint or "use the names in the checkpoint's config.json id2label",
                )
            if target not in ids:
                hint = did_you_mean(target, ids)
                raise ModeratorError(
                    f"label {lab!r} maps to {target!r}, which is not a policy category",
                    where=NAME,
                    field=f"params.label_map.{lab}",
                    expected=f"one of {list(ids)}",
                    actual=repr(target),
                    fix=hint or "map onto the policy's category ids (or drop the label)",
                )
        return dict(spec)

    # ------------------------------------------------------------------ protocol

    def fingerprint(self) -> dict[str, Any]:
        """Checkpoint digests + every setting that changes scores (not device/batching)."""
        if self._fingerprint is None:
            digest = model_files_digest(self.model_dir)
            self._fingerprint = {
                "type": NAME,
                "model": self.params.model,
                "revision": self.params.revision,
                "commit": self.commit,
                "weights_sha256": digest["weights_sha256"],
                "files": digest["files"],
                "labels": list(self.labels),
                "label_map": dict(sorted(self.label_map.items())),
                "problem_type": self.problem_type,
                "max_length": self.params.max_length,
                "dtype": self.resolved_dtype_name(),
                "truncation": "right",
                "input": "item.text()",
            }
        return dict(self._fingerprint)

    def resolved_dtype_name(self) -> str:
        """``params.dtype``, with ``fast`` resolved for this machine and device."""
        if self.params.dtype != "fast":
            return self.params.dtype
        device = self._device or resolve_device(self.params.device, where=NAME)
        return str(fast_dtype(device)).removeprefix("torch.")

    def load(self) -> None:
        """Load tokenizer and weights (idempotent; ``predict`` calls it)."""
        with self._lock:
            if self._model is not None:
                return
            from transformers import AutoModelForSequenceClassification, AutoTokenizer

            device = resolve_device(self.params.device, where=NAME)
            with quiet_hf():
                try:
                    safe = safe_load_kwargs(
                        self.model_dir, allow_pickle=self.params.allow_pickle, where=NAME
                    )
                    tok = AutoTokenizer.from_pretrained(
                        self.model_dir, local_files_only=True, trust_remote_code=False
                    )
                    model = AutoModelForSequenceClassification.from_pretrained(
                        self.model_dir,
                        local_files_only=True,
                        dtype=resolve_dtype(self.resolved_dtype_name()),
                        **safe,
                    )
                except (OSError, ValueError) as exc:
                    raise ModeratorError(
                        f"cannot load checkpoint: {exc}",
                        where=NAME,
                        field="params.model",
                        expected="a sequence-classification checkpoint with its tokenizer",
                        actual=str(self.model_dir),
                        fix="save model and tokenizer with save_pretrained() into one folder",
                    ) from exc
            n_logits = int(model.config.num_labels)
            if n_logits != len(self.labels):
                raise ModeratorError(
                    "config.json id2label does not match the classifier head",
                    where=NAME,
                    field="params.model",
                    expected=f"{len(self.labels)} logits",
                    actual=f"{n_logits}",
                    fix="re-save the checkpoint with a consistent config",
                )
            if tok.pad_token is None and tok.eos_token is not None:
                tok.pad_token = tok.eos_token  # decoder-style classifiers (GPT-2, Llama)
            if getattr(model.config, "pad_token_id", None) is None:
                model.config.pad_token_id = tok.pad_token_id
            model.eval().to(device)
            mml = getattr(tok, "model_max_length", None)
            if isinstance(mml, int) and 0 < mml < 100_000:
                self._max_len = min(self.params.max_length, mml)
            self._tokenizer, self._model, self._device = tok, model, device

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        """Score ``items`` (order preserved; micro-batches are length-bucketed and padded
        to their own longest text: :func:`batching.padded_batches`)."""
        self.load()
        import torch

        texts = [it.text() for it in items]
        out: list[ModeratorOutput | None] = [None] * len(items)
        todo = []
        for i, t in enumerate(texts):
            if t.strip():
                todo.append(i)
            else:
                out[i] = ModeratorOutput(error="item has no text", error_type="no_text")
        batches = padded_batches(
            self._tokenizer,
            [texts[i] for i in todo],
            max_length=self._max_len,
            max_batch=self.params.micro_batch_size,
            max_tokens=self.params.max_tokens_per_forward,
            device=str(self._device),
        )
        for mb, batch in batches:
            with torch.inference_mode():
                logits = self._model(**batch).logits.float()
            if self.problem_type == "multi_label":
                probs = torch.sigmoid(logits)
            else:
                probs = torch.softmax(logits, dim=-1)
            for j, row in zip(mb, probs.cpu().tolist()):
                out[todo[j]] = self._to_output(row)
        return [o if o is not None else ModeratorOutput(error="unscored") for o in out]

    def _to_output(self, row: list[float]) -> ModeratorOutput:
        if any(math.isnan(v) for v in row):
            return ModeratorOutput(error="model produced NaN logits", error_type="nan_output")
        scores: dict[str, float] = {}
        for i, cat in self._index:
            p = row[i]
            if self.problem_type == "multi_label":
                scores[cat] = max(scores.get(cat, 0.0), p)
            else:
                scores[cat] = scores.get(cat, 0.0) + p
        return ModeratorOutput(scores={c: min(1.0, max(0.0, v)) for c, v in scores.items()})

    def close(self) -> None:
        """Drop the model and free accelerator memory."""
        with self._lock:
            dev, self._model, self._tokenizer = self._device, None, None
        if dev and dev.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()
