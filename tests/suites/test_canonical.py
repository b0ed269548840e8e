"""Row-level mapping: ids, text fields, list-column labels and the derived overall label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit.errors import SuiteError
from audit.schema import NEGATIVE, POSITIVE, UNKNOWN
from audit.suites import load_suite
from tests.helpers.suites import write_suite


def _row(i: int, **kw: Any) -> dict[str, Any]:
    r: dict[str, Any] = {
        "id": f"r{i}",
        "caption": f"text {i}",
        "comment": None,
        "labels": [],
        "language": "en",
        "rationale": None,
    }
    r.update(kw)
    return r


def _load(tmp: Path, rows: list[dict[str, Any]], policy: Any) -> Any:
    return load_suite(str(write_suite(tmp, rows=rows)), policy)


def test_list_labels_and_overall_derived_from_covers(tmp_path: Path, policy: Any) -> None:
    rows = [_row(0, labels=["hate"]), _row(1, labels="harassment, hate"), _row(2)]
    s = _load(tmp_path, rows, policy)
    k = {c: i for i, c in enumerate(s.categories)}
    assert s.labels[:, k["hate"]].tolist() == [POSITIVE, POSITIVE, NEGATIVE]
    assert s.labels[:, k["harassment"]].tolist() == [NEGATIVE, POSITIVE, NEGATIVE]
    uncovered = [c for c in s.categories if c not in s.covers]
    assert uncovered and (s.labels[:, [k[c] for c in uncovered]] == UNKNOWN).all()
    assert s.overall.tolist() == [POSITIVE, POSITIVE, NEGATIVE]
    assert s.dataset["rationale"] == [None, None, None]
    assert s.dataset["source"] == ["mini"] * 3  # a card constant becomes a slice column
    assert len(set(s.dataset["content_hash"])) == 3


@pytest.mark.parametrize(
    ("rows", "message", "field"),
    [
        ([_row(0), _row(0)], "duplicate item id", "id"),
        ([_row(0), _row(1, id="")], "empty id in row 1", "id.column"),
        ([_row(0, caption=None)], "has no text in any field", "fields"),
        ([_row(0, caption=["a"])], "text field holds a list", "fields.caption"),
        ([_row(0, labels=["no_such"])], "label not in the policy", "labels.list_column"),
        ([_row(0, labels=["spam"])], "does not cover", "labels.covers"),
    ],
)
def test_row_errors_name_the_field(
    tmp_path: Path, policy: Any, rows: list[dict[str, Any]], message: str, field: str
) -> None:
    with pytest.raises(SuiteError) as e:
        _load(tmp_path, rows, policy)
    assert message in e.value.message
    assert (e.value.field or "").startswith(field)
    assert (e.value.where or "").endswith("suite.yaml")


def test_gold_arrays_are_int8(tmp_path: Path, policy: Any) -> None:
    s = _load(tmp_path, [_row(0, labels=["hate"])], policy)
    assert s.labels.dtype == np.int8 and s.overall.dtype == np.int8
