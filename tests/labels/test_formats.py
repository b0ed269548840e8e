"""Property: the same judgements written in the long and in the wide format load to the
same per-annotator labels, gold and agreement record."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

ANN = ("r1", "r2", "r3", "r4")


def _card(name: str, fmt: str, data: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"format": fmt, "annotators": list(ANN), "item_key": ["item"]}
    if fmt == "long":
        spec["annotator_column"] = "who"
    return {
        "card_version": 1,
        "name": name,
        "version": "1",
        "description": "format property",
        "policy": "platform-v1",
        "license": "test",
        "source": {"local": {"root": ".", "format": "csv", "splits": {"test": data}}},
        "id": {"column": "item_key", "prefix": "p-"},
        "fields": {"prompt": "text"},
        "labels": {
            "covers": ["spam"],
            "rules": [{"category": "spam", "column": "y", "positive": ["1"], "negative": ["0"]}],
        },
        "annotations": spec,
    }


def _write(root: Path, name: str, fmt: str, m: np.ndarray) -> Path:
    d = root / name
    d.mkdir(parents=True)
    with open(d / "d.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        if fmt == "long":
            w.writerow(["item", "who", "text", "y"])
            for i, row in enumerate(m):
                for j, v in enumerate(row):
                    if v >= 0:
                        w.writerow([f"i{i}", ANN[j], f"text {i}", int(v)])
        else:
            w.writerow(["item", "text", *(f"{a}_y" for a in ANN)])
            for i, row in enumerate(m):
                w.writerow([f"i{i}", f"text {i}", *("" if v < 0 else int(v) for v in row)])
    (d / "suite.yaml").write_text(yaml.safe_dump(_card(name, fmt, "d.csv")))
    return d / "suite.yaml"


matrices = st.integers(min_value=3, max_value=25).flatmap(
    lambda n: st.lists(
        st.lists(st.sampled_from([-1, 0, 1]), min_size=4, max_size=4), min_size=n, max_size=n
    )
)


@settings(max_examples=15, deadline=None)
@given(matrices)
def test_long_and_wide_agree(rows: list[list[int]]) -> None:
    import tempfile

    from audit.labels import suite_agreement
    from audit.policy import load_policy
    from audit.suites import load_suite

    m = np.array(rows)
    m[:, 0] = np.where(m[:, 0] < 0, 0, m[:, 0])  # every annotator and item has a judgement
    m[0, :] = np.where(m[0, :] < 0, 1, m[0, :])
    p = load_policy("platform-v1")
    with tempfile.TemporaryDirectory() as tmp:
        a = load_suite(str(_write(Path(tmp), "longf", "long", m)), p)
        b = load_suite(str(_write(Path(tmp), "widef", "wide", m)), p)
    assert a.dataset["id"] == b.dataset["id"]
    assert a.annotations is not None and b.annotations is not None
    assert (a.annotations.labels == b.annotations.labels).all()
    k = p.category_ids.index("spam")
    assert (a.annotations.labels[:, :, k] == m).all()
    assert (a.labels == b.labels).all()
    pos, neg = (m == 1).sum(1), (m == 0).sum(1)
    assert (a.labels[:, k] == np.where(pos > neg, 1, np.where(neg > pos, 0, -1))).all()
    if ((m >= 0).sum(1) >= 2).any():
        ra = suite_agreement(a, n_boot=5)["categories"]["spam"]["stats"]
        rb = suite_agreement(b, n_boot=5)["categories"]["spam"]["stats"]
        assert ra == rb
