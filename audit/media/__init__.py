"""Photos and short videos: decoding (PyAV), frame sampling, size-limited image
loading, media hashing, and the text + image fusion rules.

See docs/methods/media.md for the methods and their citations.
"""

from audit.media.errors import MEDIA_ERROR_TYPES, MediaItemError
from audit.media.image import (
    DEFAULT_JUDGE_MAX_SIDE,
    DEFAULT_MAX_PIXELS,
    from_data_url,
    luminance_std,
    open_image,
    sha256_bytes,
    to_data_url,
)
from audit.media.video import SampledFrame, choose_frames, probe_video, sample_frames

__all__ = [
    "DEFAULT_JUDGE_MAX_SIDE",
    "DEFAULT_MAX_PIXELS",
    "MEDIA_ERROR_TYPES",
    "MediaItemError",
    "SampledFrame",
    "choose_frames",
    "from_data_url",
    "luminance_std",
    "open_image",
    "probe_video",
    "sample_frames",
    "sha256_bytes",
    "to_data_url",
]
