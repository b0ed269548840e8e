"""Suite loading: canonical schema, unknown labels, digests, and the shared public sets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from audit.schema import NEGATIVE, POSITIVE, UNKNOWN
from audit.suites import load_suite, suite_items
from tests.conftest import require_shared


def test_short_video_v1_meets_its_datasheet(policy) -> None:
    train = load_suite("short_video_v1", policy, split="train")
    test = load_suite("short_video_v1", policy, split="test")
    assert len(train) + len(test) >= 600
    assert not set(train.dataset["id"]) & set(test.dataset["id"])
    pos = (test.labels == POSITIVE).sum(axis=0)
    assert (pos >= 25).all(), dict(zip(policy.category_ids, pos))
    assert (test.labels != UNKNOWN).all()  # covers: all
    langs = set(test.dataset["language"]) | set(train.dataset["language"])
    assert {"en", "es", "zh"} <= langs and len(langs) >= 6
    types = np.array(test.dataset["test_type"])
    neg = test.overall == NEGATIVE
    hard = neg & (types != "benign")
    assert hard.sum() / len(test) >= 0.30
    assert all(test.dataset["rationale"])
    assert set(test.dataset["surface"]) == {"video", "photo", "comment"}
    feats = test.dataset.features
    assert feats["labels"]["minor_sexual"].names == ["negative", "positive"]


def test_digest_is_content_not_layout(policy, tmp_path: Path) -> None:
    """The same rows from JSONL and Parquet give the same digest; one edit changes it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = Path(__file__).resolve().parents[2] / "suites" / "short_video_v1"
    a = load_suite("short_video_v1", policy, split="test")
    dst = tmp_path / "suites" / "short_video_v1"
    (dst / "data").mkdir(parents=True)
    card = yaml.safe_load((src / "suite.yaml").read_text())
    card["source"]["local"] = {"root": "data", "format": "parquet", "splits": {"test": "t.parquet"}}
    (dst / "suite.yaml").write_text(yaml.safe_dump(card))
    rows = [json.loads(x) for x in (src / "data" / "test.jsonl").read_text().splitlines()]
    rows.reverse()  # row order must not matter
    pq.write_table(pa.Table.from_pylist(rows), dst / "data" / "t.parquet")
    b = load_suite(str(dst / "suite.yaml"), policy, split="test")
    assert a.digest == b.digest
    rows[0]["caption"] = (rows[0]["caption"] or "") + "!"
    pq.write_table(pa.Table.from_pylist(rows), dst / "data" / "t.parquet")
    c = load_suite(str(dst / "suite.yaml"), policy, split="test")
    assert c.digest != a.digest
    shutil.rmtree(dst)


def test_items_carry_text_and_context(policy) -> None:
    s = load_suite("short_video_v1", policy, split="test", limit=5)
    items = suite_items(s)
    assert len(items) == 5 and all(it.text() for it in items)
    assert items[0].context["source"] == "short_video_v1"


def test_openai_missing_keys_are_unknown_not_negative(policy) -> None:
    root = require_shared("openai_moderation")
    s = load_suite("openai_moderation", policy)
    raw = [json.loads(x) for x in __import__("gzip").open(root / "samples-1680.jsonl.gz", "rt")]
    k = policy.category_ids.index("hate")
    for row, y in zip(raw, s.labels[:, k]):
        if "H" not in row:
            assert y == UNKNOWN
        else:
            assert y == (POSITIVE if row["H"] == 1 else NEGATIVE)
    missing = sum("H" not in r for r in raw)
    assert missing > 800 and (s.labels[:, k] == UNKNOWN).sum() == missing
    # categories the set does not cover are unknown for every row
    for cat in ("dangerous_acts", "illicit_fraud", "spam"):
        assert (s.labels[:, policy.category_ids.index(cat)] == UNKNOWN).all()


def test_unknown_labels_excluded_from_metrics(policy) -> None:
    """On the OpenAI set, rows without a key do not enter that category's metrics."""
    require_shared("openai_moderation")
    from audit.metrics import compute_metrics

    s = load_suite("openai_moderation", policy)
    k = policy.category_ids.index("hate")
    y = s.labels[:, [k]]
    rng = np.random.default_rng(0)
    score = rng.random((len(s), 1))
    pred = score >= 0.5
    out = compute_metrics(y, score, pred, ["hate"], n_boot=0)
    known = int((y != UNKNOWN).sum())
    assert out["hate"]["support"].value == known < len(s)
    coerced = compute_metrics(np.where(y == UNKNOWN, 0, y), score, pred, ["hate"], n_boot=0)
    assert coerced["hate"]["fpr"].value != out["hate"]["fpr"].value


@pytest.mark.parametrize(
    ("name", "split", "n", "slice_name"),
    [
        ("hatecheck", "test", 3728, "functionality"),
        ("xstest", "test", 450, "type"),
        ("cold", "test", 5323, "topic"),
    ],
)
def test_public_sets_load(policy, name: str, split: str, n: int, slice_name: str) -> None:
    require_shared(name)
    s = load_suite(name, policy, split=split)
    assert len(s) == n and len(set(s.dataset["id"])) == n
    assert slice_name in s.slice_names and all(v is not None for v in s.dataset[slice_name][:50])
    assert (s.overall != UNKNOWN).all()


def test_xstest_separates_safe_lookalikes(policy) -> None:
    require_shared("xstest")
    s = load_suite("xstest", policy)
    assert int((s.overall == POSITIVE).sum()) == 200 and int((s.overall == NEGATIVE).sum()) == 250


def test_missing_shared_root_says_so(
    policy, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from audit.suites import SuiteDataMissing

    monkeypatch.setenv("AUDIT_DATA_ROOT", str(tmp_path / "nowhere"))
    with pytest.raises(SuiteDataMissing) as exc:
        load_suite("hatecheck", policy)
    msg = exc.value.render()
    assert "AUDIT_DATA_ROOT" in msg and "hatecheck" in msg and "suite.yaml" in msg


def test_image_column_loads_bytes_into_hash_and_items(policy, tmp_path: Path) -> None:
    from io import BytesIO

    from PIL import Image

    from tests.helpers.suites import CARD, write_suite

    def png(color: str) -> bytes:
        buf = BytesIO()
        Image.new("RGB", (4, 4), color).save(buf, format="PNG")
        return buf.getvalue()

    rows = [
        {
            "id": f"p{i}",
            "caption": "same caption",
            "comment": None,
            "labels": [],
            "language": "en",
            "rationale": "r",
            "image": f"img{i}.png",
        }
        for i in range(3)
    ]
    card = dict(CARD, image_column="image")
    path = write_suite(tmp_path, card=card, rows=rows)
    for i, color in enumerate(("red", "blue", "red")):
        (path.parent / "data" / f"img{i}.png").write_bytes(png(color))
    s = load_suite(str(path), policy)
    assert "image" in s.dataset.features
    items = suite_items(s)
    assert items[0].image == png("red") and items[1].image == png("blue")
    hashes = s.dataset["content_hash"]
    assert hashes[0] == hashes[2] != hashes[1]  # same text, different image → different hash
    d1 = s.digest
    (path.parent / "data" / "img2.png").write_bytes(png("green"))
    assert load_suite(str(path), policy).digest != d1
