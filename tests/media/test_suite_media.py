"""Suite cards with media columns: loading, hashing, and ≥ 12 hostile media cases
kept as per-item errors (not crashes); card-level problems as SuiteErrors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from audit.errors import SuiteError
from audit.suites.loader import load_suite, suite_items
from tests.media._gen import (
    audio_only,
    bomb_png,
    clip,
    gradient,
    png_bytes,
    solid,
    text_image,
    zero_frame_avi,
)

RGB = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def _card(**media: Any) -> dict[str, Any]:
    return {
        "card_version": 1,
        "name": "media",
        "version": "0.1",
        "description": "media test suite",
        "policy": "platform-v1",
        "license": "test",
        "source": {"local": {"root": "data", "format": "jsonl", "splits": {"test": "t.jsonl"}}},
        "id": {"column": "id"},
        "fields": {"caption": "caption"},
        "labels": {"covers": ["adult_sexual", "harassment"], "list_column": "labels"},
        "media": {"image": "image", "video": "video", **media},
    }


def _write(root: Path, rows: list[dict[str, Any]], card: dict[str, Any] | None = None) -> Path:
    d = root / "suites" / "media"
    (d / "data").mkdir(parents=True, exist_ok=True)
    (d / "suite.yaml").write_text(yaml.safe_dump(card or _card()), encoding="utf-8")
    (d / "data" / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return d / "suite.yaml"


def _media_dir(root: Path) -> Path:
    m = root / "suites" / "media" / "m"
    m.mkdir(parents=True, exist_ok=True)
    return m


def _row(i: str, caption: str = "same caption", **kw: Any) -> dict[str, Any]:
    return {"id": i, "caption": caption, "labels": [], **kw}


#: id → (row media, expected error_type); built in ``hostile_suite``
HOSTILE: dict[str, str] = {
    "h01": "media_missing",
    "h02": "media_url",
    "h03": "media_outside_root",
    "h04": "media_empty",
    "h05": "media_decode",  # text bytes named .png
    "h06": "media_decode",  # truncated PNG
    "h07": "image_too_many_pixels",  # decompression bomb header
    "h08": "media_wrong_type",  # a video in the image column
    "h09": "media_missing",  # a folder
    "h10": "media_bad_value",  # a number, not a path
    "h11": "media_too_large",
    "h12": "media_decode",  # truncated MP4
    "h13": "video_zero_frames",
    "h14": "video_no_stream",  # audio only
    "h15": "media_wrong_type",  # a PNG in the video column
    "h16": "media_decode",  # random bytes named .mp4
    "h17": "video_too_long",
    "h18": "media_url",  # data: URL
    "h19": "media_outside_root",  # a symlink inside the root pointing outside it
}


@pytest.fixture
def hostile_suite(tmp_path: Path) -> Path:
    m = _media_dir(tmp_path)
    (m / "ok.png").write_bytes(png_bytes(text_image()))
    (m / "grad.png").write_bytes(png_bytes(gradient()))
    clip(m / "ok.mp4", RGB)
    clip(m / "long.mp4", RGB, frames_per_colour=20)
    (m / "empty.png").write_bytes(b"")
    (m / "notes.png").write_text("not an image at all", encoding="utf-8")
    (m / "trunc.png").write_bytes(png_bytes(gradient())[:150])
    (m / "bomb.png").write_bytes(bomb_png())
    (m / "big.png").write_bytes(
        png_bytes(
            __import__("PIL.Image").Image.fromarray(
                np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)
            )
        )
    )
    full = (m / "ok.mp4").read_bytes()
    (m / "trunc.mp4").write_bytes(full[: len(full) // 2])
    zero_frame_avi(m / "zero.avi")
    audio_only(m / "audio.m4a")
    (m / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(3000))
    (m / "sub").mkdir()
    (tmp_path / "secret.png").write_bytes(png_bytes(solid((1, 2, 3))))
    (m / "link.png").symlink_to(tmp_path / "secret.png")
    rows = [
        _row("g1", image="m/ok.png"),
        _row("g2", video="m/ok.mp4"),
        _row("g3", caption="text only"),
        _row("g4", image="m/grad.png", video="m/ok.mp4"),
        _row("h01", image="m/missing.png"),
        _row("h02", image="https://example.com/cat.png"),
        _row("h03", image="../../secret.png"),
        _row("h04", image="m/empty.png"),
        _row("h05", image="m/notes.png"),
        _row("h06", image="m/trunc.png"),
        _row("h07", image="m/bomb.png"),
        _row("h08", image="m/ok.mp4"),
        _row("h09", image="m/sub"),
        _row("h10", image=42),
        _row("h11", image="m/big.png"),
        _row("h12", video="m/trunc.mp4"),
        _row("h13", video="m/zero.avi"),
        _row("h14", video="m/audio.m4a"),
        _row("h15", video="m/ok.png"),
        _row("h16", video="m/noise.mp4"),
        _row("h17", video="m/long.mp4"),
        _row("h18", image="data:image/png;base64,iVBORw0KGgo="),
        _row("h19", image="m/link.png"),
    ]
    return _write(
        tmp_path, rows, _card(max_file_bytes=50_000, max_decoded_frames=40, frames={"k": 3})
    )


def test_hostile_media_are_per_item_errors(hostile_suite: Path, policy) -> None:  # type: ignore[no-untyped-def]
    suite = load_suite(str(hostile_suite), policy)
    assert len(suite) == 23
    items = {it.id: it for it in suite_items(suite)}
    got = {i: it.media_error_type for i, it in items.items() if it.media_error_type}
    assert got == HOSTILE
    for i in HOSTILE:
        it = items[i]
        assert it.media_error and it.image is None and it.video_frames == ()
    assert "secret.png" not in items["h03"].media_error or "outside" in items["h03"].media_error
    assert "example.com" in items["h02"].media_error  # names what was refused
    # hostile items with the same caption still get distinct content hashes
    hashes = [items[i].content_hash for i in HOSTILE]
    assert len(set(hashes)) == len(hashes)
    # good items are intact
    assert items["g1"].image is not None and items["g1"].media_error is None
    assert [f.index for f in items["g2"].video_frames] == [2, 7, 12]
    assert items["g2"].video is not None and Path(items["g2"].video).is_file()
    assert items["g3"].image is None and items["g3"].video_frames == ()
    assert items["g4"].image is not None and len(items["g4"].video_frames) == 3


def test_frames_enter_digest_and_hash(tmp_path: Path, policy) -> None:  # type: ignore[no-untyped-def]
    m = _media_dir(tmp_path)
    clip(m / "a.mp4", RGB)
    rows = [_row("v1", video="m/a.mp4", image=None)]
    p = _write(tmp_path, rows, _card(frames={"k": 3}))
    a = load_suite(str(p), policy)
    assert load_suite(str(p), policy).digest == a.digest  # deterministic
    p = _write(tmp_path, rows, _card(frames={"k": 2}))
    b = load_suite(str(p), policy)
    assert b.digest != a.digest
    assert suite_items(b)[0].content_hash != suite_items(a)[0].content_hash
    clip(m / "a.mp4", RGB[::-1])  # same file name, other content
    c = load_suite(str(p), policy)
    assert c.digest != b.digest
    ds = c.dataset
    assert set(
        ds.features["video_frames"][0]
        if isinstance(ds.features["video_frames"], list)
        else ds.features["video_frames"].feature
    ) >= {"image", "index", "timestamp_s"}
    assert ds[0]["video"]["path"] == "m/a.mp4" and len(ds[0]["video"]["sha256"]) == 64


def test_reference_only_video(tmp_path: Path, policy) -> None:  # type: ignore[no-untyped-def]
    m = _media_dir(tmp_path)
    clip(m / "a.mp4", RGB)
    (m / "x.mp4").write_text("nope", encoding="utf-8")
    p = _write(
        tmp_path,
        [_row("v1", video="m/a.mp4", image=None), _row("v2", video="m/x.mp4", image=None)],
        _card(frames=None),
    )
    items = suite_items(load_suite(str(p), policy))
    assert items[0].video_frames == () and items[0].video is not None
    assert items[1].media_error_type == "media_decode"


def test_items_without_media_or_text_still_fail_loudly(tmp_path: Path, policy) -> None:  # type: ignore[no-untyped-def]
    _media_dir(tmp_path)
    p = _write(tmp_path, [{"id": "x", "caption": "", "labels": [], "image": None, "video": ""}])
    with pytest.raises(SuiteError, match="no text in any field"):
        load_suite(str(p), policy)


@pytest.mark.parametrize(
    ("card_patch", "match"),
    [
        ({"media": {"image": "picture"}}, "media.image"),
        ({"media": {"video": "clip_path"}}, "media.video"),
        ({"media": {"image": "image", "root": "nowhere"}}, "media.root"),
        ({"media": {}}, "name an 'image' column"),
        ({"image_column": "image"}, "either image_column or media.image"),
        ({"media": {"video": "video", "frames": {"k": 0}}}, "k"),
        ({"media": {"video": "video", "frames": {"method": "random"}}}, "method"),
    ],
)
def test_card_level_problems_are_suite_errors(  # type: ignore[no-untyped-def]
    tmp_path: Path, policy, card_patch: dict[str, Any], match: str
) -> None:
    _media_dir(tmp_path)
    card = _card()
    card.update(card_patch)
    p = _write(tmp_path, [_row("a", image=None, video=None)], card)
    with pytest.raises(SuiteError) as ei:
        load_suite(str(p), policy)
    assert match in str(ei.value)
