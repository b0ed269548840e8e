"""LoadedSuite.sample: seeded, stratified subsets with their own digest and provenance."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audit.schema import POSITIVE
from audit.suites import load_suite
from tests.helpers.suites import write_suite


def test_sample_is_seeded_stratified_and_digested(tmp_path: Path, policy: Any) -> None:
    s = load_suite(str(write_suite(tmp_path)), policy)
    a, b, c = s.sample(10, seed=1), s.sample(10, seed=1), s.sample(10, seed=2)
    assert len(a) == 10 and a.dataset["id"] == b.dataset["id"] and a.digest == b.digest
    assert a.dataset["id"] != c.dataset["id"] and a.digest != c.digest != s.digest
    # stratified: the positive share follows the parent's by largest remainder
    share = float((s.overall == POSITIVE).mean())
    assert abs(int((a.overall == POSITIVE).sum()) - 10 * share) < 1
    ids = s.dataset["id"]
    assert a.dataset["id"] == sorted(a.dataset["id"], key=ids.index)  # row order kept
    assert a.source["sample"]["parent_digest"] == s.digest and a.source["sample"]["of"] == len(s)
    assert s.sample(len(s)) is s
    d = a.describe()
    assert d["n"] == 10 and d["digest"] == a.digest


def test_column_is_read_once_per_suite_and_follows_subsets(tmp_path: Path, policy: Any) -> None:
    s = load_suite(str(write_suite(tmp_path)), policy)
    ids = s.column("id")
    assert ids == list(s.dataset["id"]) and s.column("id") is ids  # cached
    assert s.column("content_hash") == list(s.dataset["content_hash"])
    a = s.sample(10, seed=1)
    # a subset (dataclasses.replace) starts its own cache over its own rows
    assert a.column("id") == list(a.dataset["id"]) != ids
    assert a.column("id") is not ids
