"""Policy versions: platform-v1 unchanged, platform-v2 as a declared revision, the diff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from audit.change import diff_markdown, diff_policies, lineage, load_chain
from audit.policy import load_policy
from tests.change._util import policy_data, write_policy
from tests.helpers.cli import run_cli

#: the digest runs and configs/baselines/release.json recorded before versioning existed
V1_DIGEST = "c7a0177dd144befe2576a39b70791bebbf9634c5226d4ffcdabd28f299cfc23f"


def test_platform_v1_loads_unchanged() -> None:
    p = load_policy("platform-v1")
    assert p.digest() == V1_DIGEST
    assert p.supersedes is None and p.retired == ()
    assert all(c.threshold is None and c.renamed_from is None for c in p.categories)


def test_platform_v2_is_a_declared_revision() -> None:
    a, b = load_policy("platform-v1"), load_policy("platform-v2")
    assert b.supersedes == a.ref
    assert "harassment" not in b.category_ids
    assert {"targeted_harassment", "bullying"} <= set(b.category_ids)
    assert b.category("spam").threshold == 0.7
    lin = lineage(a, b)
    assert lin.fates["harassment"].kind == "split"
    assert lin.fates["harassment"].targets == ("targeted_harassment", "bullying")
    assert lin.fates["hate"].kind == "kept"
    assert (("harassment",), ("targeted_harassment", "bullying")) in lin.groups()
    assert [p.ref for p in load_chain("platform-v2")] == ["platform-v2", "platform-v1"]


def test_diff_lists_every_change_category_by_category() -> None:
    a, b = load_policy("platform-v1"), load_policy("platform-v2")
    d = diff_policies(a, b)
    kinds = {(c.category, c.kind, c.field) for c in d.changes}
    assert ("harassment", "split", "retired.split_into") in kinds
    assert ("targeted_harassment", "added", "categories") in kinds
    assert ("bullying", "added", "categories") in kinds
    assert ("spam", "threshold", "threshold") in kinds
    assert ("spam", "definition", "definition") in kinds
    assert ("hate", "definition", "definition") in kinds
    assert ("hate", "examples", "allowed") in kinds
    added = next(c for c in d.changes if c.category == "hate" and c.field == "allowed")
    assert any("counter" in x.lower() or "bigot" in x for x in added.after)
    assert ("*", "metadata", "effective_date") in kinds
    # unchanged categories do not appear at all
    assert not [c for c in d.changes if c.category == "self_harm" and c.kind != "mapping"]
    md = diff_markdown(d)
    assert "## harassment" in md and "## spam" in md and "| threshold |" in md
    js = d.to_json()
    assert js["declared_succession"] is True and js["n_changes"] == len(d.changes)
    assert js["from"]["digest"] == V1_DIGEST


def test_rename_and_merge_are_structural(tmp_path: Path) -> None:
    base = policy_data("platform-v1")
    v2 = policy_data("platform-v1")
    v2["version"] = 2
    v2["supersedes"] = "platform-v1"
    for c in v2["categories"]:
        if c["id"] == "spam":
            c["id"], c["renamed_from"] = "fake_engagement", "spam"
    v2["categories"] = [c for c in v2["categories"] if c["id"] != "graphic_violence"]
    v2["retired"] = [
        {
            "id": "graphic_violence",
            "reason": "folded into violent content",
            "merged_into": "violent_threats",
        }
    ]
    for m in v2["mappings"].values():
        for e in m["edges"]:
            if e["target"] == "spam":
                e["target"] = "fake_engagement"
            if e["target"] == "graphic_violence":
                e["target"] = "violent_threats"
    a = load_policy(write_policy(tmp_path, base))
    b = load_policy(write_policy(tmp_path, v2))
    lin = lineage(a, b)
    assert lin.fates["spam"].kind == "renamed" and lin.fates["spam"].targets == ("fake_engagement",)
    assert lin.fates["graphic_violence"].kind == "merged"
    assert lin.origins["violent_threats"] == ("violent_threats", "graphic_violence")
    d = diff_policies(a, b)
    assert any(c.kind == "renamed" and c.before == "spam" for c in d.changes)
    assert any(c.kind == "merged" and c.after == "violent_threats" for c in d.changes)
    # a renamed category with identical text has no field edits
    assert not [
        c
        for c in d.changes
        if c.category == "fake_engagement" and c.kind in ("definition", "examples")
    ]


def test_undeclared_succession_matches_by_id() -> None:
    a, b = load_policy("platform-v2"), load_policy("platform-v1")  # backwards: not declared
    d = diff_policies(a, b)
    assert d.declared is False
    assert any(c.kind == "removed" and c.category == "bullying" for c in d.changes)
    assert any(c.kind == "added" and c.category == "harassment" for c in d.changes)


def test_cli_policy_diff_writes_json_and_markdown(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    r = run_cli(
        capsys, "policy", "diff", "platform-v1", "platform-v2", "--out", str(tmp_path / "d")
    )
    assert r.code == 0, r.err
    js = json.loads((tmp_path / "d" / "policy_diff.json").read_text(encoding="utf-8"))
    assert js["to"]["ref"] == "platform-v2" and js["by_kind"]["split"] == 1
    assert (
        (tmp_path / "d" / "policy_diff.md").read_text(encoding="utf-8").startswith("# Policy diff")
    )
    assert "targeted_harassment" in r.out
