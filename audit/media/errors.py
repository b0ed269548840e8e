"""Per-item media failures.

A broken photo or clip is a property of one item, not of the suite: the loader
records it on the item (``media_error`` / ``media_error_type`` columns) and every
moderator that needs the media returns it as that item's error, so it is counted
in ``error_rate`` per slice instead of crashing the run or being scored "safe".
Card-level problems (a media column the data lacks, a root that does not exist)
are :class:`~audit.errors.SuiteError` instead.
"""

from __future__ import annotations

#: ``error_type`` values a media failure can carry (stable: tests and reports key on them).
MEDIA_ERROR_TYPES = (
    "media_missing",  # the referenced file does not exist (or is not a regular file)
    "media_url",  # the value is a URL: cards are URL-free, media must be local files
    "media_outside_root",  # the path escapes the card's media root
    "media_bad_value",  # the cell is not a path string / bytes
    "media_empty",  # zero-byte file
    "media_too_large",  # file over max_file_bytes
    "media_decode",  # not decodable as the declared kind (non-media bytes, truncation)
    "media_wrong_type",  # a decodable file of the other kind (a video in the image column...)
    "image_too_many_pixels",  # decompression-bomb guard: width x height over the limit
    "video_no_stream",  # a container without a video stream (audio only)
    "video_zero_frames",  # a video stream that decodes to no frames
    "video_too_long",  # more frames than max_decoded_frames
)


class MediaItemError(Exception):
    """One item's media cannot be used.

    Attributes:
        error_type: one of :data:`MEDIA_ERROR_TYPES`.
        message: what went wrong, naming the file (never the bytes).
    """

    def __init__(self, error_type: str, message: str) -> None:
        if error_type not in MEDIA_ERROR_TYPES:  # a programming error, not a data one
            raise ValueError(f"unknown media error type {error_type!r}")
        self.error_type = error_type
        self.message = message
        super().__init__(f"{error_type}: {message}")
