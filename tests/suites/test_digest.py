"""content_digest: rows sorted by id, schema included."""

from __future__ import annotations

from audit.suites.digest import canonical_features, content_digest


def test_digest_ignores_row_order_and_sees_schema_and_values() -> None:
    feats = canonical_features(("hate",), ["language"])
    cols = {"id": ["b", "a"], "caption": ["x", "y"]}
    flipped = {"id": ["a", "b"], "caption": ["y", "x"]}
    d = content_digest(cols, feats)
    assert d == content_digest(flipped, feats)
    assert d != content_digest({"id": ["b", "a"], "caption": ["x", "z"]}, feats)
    assert d != content_digest(cols, canonical_features(("hate",), ["region"]))
