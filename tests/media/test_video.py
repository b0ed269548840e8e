"""Frame sampling (uniform, scene-change) and hostile videos, with PyAV."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from audit.media import MediaItemError, choose_frames, probe_video, sample_frames
from audit.media.video import VideoProbe
from tests.media._gen import audio_only, clip, png_bytes, solid, zero_frame_avi

RGB = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def test_uniform_sampling_indices_and_timestamps(tmp_path: Path) -> None:
    p = clip(tmp_path / "c.mp4", RGB, frames_per_colour=5, fps=10)
    frames, probe = sample_frames(p, k=4, method="uniform")
    assert probe.n_frames == 15
    assert [f.index for f in frames] == [1, 5, 9, 13]  # floor((j + .5) * 15 / 4)
    assert [f.timestamp_s for f in frames] == pytest.approx([0.1, 0.5, 0.9, 1.3])
    im = Image.open(io.BytesIO(frames[0].png))
    assert im.format == "PNG" and im.size == (64, 48)
    assert np.asarray(im.convert("RGB"))[:, 40:].mean(axis=(0, 1))[0] > 150  # red scene


def test_scene_sampling_finds_the_cuts(tmp_path: Path) -> None:
    p = clip(tmp_path / "c.mp4", RGB, frames_per_colour=5)
    frames, probe = sample_frames(p, k=3, method="scene", scene_threshold=0.25)
    assert [f.index for f in frames] == [0, 5, 10]
    # within a scene only the moving bar changes: far below the threshold
    assert probe.cut_scores[[1, 2, 3, 6, 11]].max() < 0.15
    assert probe.cut_scores[5] > 0.3 and probe.cut_scores[10] > 0.3


def test_scene_sampling_fills_with_uniform_when_few_cuts(tmp_path: Path) -> None:
    p = clip(tmp_path / "c.mp4", RGB[:2], frames_per_colour=6)
    frames, _ = sample_frames(p, k=4, method="scene")
    idx = [f.index for f in frames]
    assert len(idx) == 4 and 0 in idx and 6 in idx and idx == sorted(idx)


def test_short_clip_yields_all_frames(tmp_path: Path) -> None:
    p = clip(tmp_path / "c.mp4", RGB[:1], frames_per_colour=3)
    frames, _ = sample_frames(p, k=8)
    assert [f.index for f in frames] == [0, 1, 2]


def test_choose_frames_pure() -> None:
    probe = VideoProbe(10, [i / 10 for i in range(10)], np.array([np.inf] + [0.0] * 9), 1, 1)
    assert choose_frames(probe, 2, "uniform", 0.3) == [2, 7]
    scene = choose_frames(probe, 3, "scene", 0.3)
    assert len(scene) == 3 and scene[0] == 0


def test_max_side_scales_frames(tmp_path: Path) -> None:
    p = clip(tmp_path / "c.mp4", RGB[:1], frames_per_colour=2, size=(320, 160))
    frames, _ = sample_frames(p, k=1, max_side=64)
    assert Image.open(io.BytesIO(frames[0].png)).size == (64, 32)


def _truncated(tmp_path: Path) -> Path:
    p = clip(tmp_path / "full.mp4", RGB)
    data = p.read_bytes()
    out = tmp_path / "cut.mp4"
    out.write_bytes(data[: len(data) // 2])
    return out


@pytest.mark.parametrize(
    ("make", "etype"),
    [
        (_truncated, "media_decode"),
        (lambda d: zero_frame_avi(d / "z.avi"), "video_zero_frames"),
        (lambda d: audio_only(d / "a.m4a"), "video_no_stream"),
        (lambda d: _write(d / "noise.mp4", np.random.default_rng(0).bytes(4096)), "media_decode"),
        (lambda d: _write(d / "img.mp4", png_bytes(solid((9, 9, 9)))), "media_wrong_type"),
    ],
)
def test_hostile_videos(tmp_path: Path, make, etype: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MediaItemError) as ei:
        sample_frames(make(tmp_path), k=3, name="clip")
    assert ei.value.error_type == etype, ei.value.message
    assert "clip" in ei.value.message


def test_too_long(tmp_path: Path) -> None:
    p = clip(tmp_path / "c.mp4", RGB, frames_per_colour=4)
    with pytest.raises(MediaItemError) as ei:
        probe_video(p, max_decoded_frames=5)
    assert ei.value.error_type == "video_too_long"


def _write(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


@given(
    n=st.integers(1, 200),
    k=st.integers(1, 16),
    method=st.sampled_from(["uniform", "scene"]),
    seed=st.integers(0, 1000),
)
def test_choose_frames_invariants(n: int, k: int, method: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cuts = np.concatenate([[np.inf], rng.random(n - 1) * 0.5])
    probe = VideoProbe(n, [i / 25 for i in range(n)], cuts, 1, 1)
    idx = choose_frames(probe, k, method, 0.3)  # type: ignore[arg-type]
    assert idx == sorted(set(idx)) and len(idx) == min(n, k)
    assert all(0 <= i < n for i in idx)
    if method == "scene":  # the first frame, then every strong cut that fits in k
        strong = sorted((i for i in range(1, n) if cuts[i] >= 0.3), key=lambda i: -cuts[i])
        assert 0 in idx and set(strong[: k - 1]) <= set(idx)
