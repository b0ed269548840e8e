"""Hostile inputs to the change-management commands: each exits with the documented
code and one line naming the file and the field (no traceback)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.change._util import harassment_rows, policy_data, write_policy, write_suite, write_yaml
from tests.change.test_pathways import shipped, synced_to_v2
from tests.helpers.cli import run_cli

Case = Callable[[Path], tuple[list[str], int, str, str]]
"""Builds inputs under tmp; returns (cli args, exit code, where text, field text)."""


def _v2(tmp: Path, mutate: Callable[[dict[str, Any]], None]) -> tuple[Path, Path]:
    a = write_policy(tmp / "pol", policy_data("platform-v1"))
    d = policy_data("platform-v2")
    mutate(d)
    return a, write_policy(tmp / "pol", d)


def _diff(tmp: Path, mutate: Callable[[dict[str, Any]], None]) -> list[str]:
    a, b = _v2(tmp, mutate)
    return ["policy", "diff", str(a), str(b)]


def _split(d: dict[str, Any]) -> dict[str, Any]:
    r: dict[str, Any] = d["retired"][0]
    return r


def c_supersedes_cycle(t: Path):
    a = policy_data("platform-v1")
    a["supersedes"] = "platform-v2"
    pa = write_policy(t / "pol", a)
    pb = write_policy(t / "pol", policy_data("platform-v2"))
    return ["policy", "diff", str(pa), str(pb)], 2, "platform-v1.yaml", "supersedes"


def c_supersedes_itself(t: Path):
    return (
        _diff(t, lambda d: d.update(supersedes="platform-v2")),
        2,
        "platform-v2.yaml",
        "supersedes",
    )


def c_missing_predecessor(t: Path):
    pb = write_policy(t / "lonely", policy_data("platform-v2"))
    pa = write_policy(t / "pol", policy_data("platform-v1"))
    return ["policy", "diff", str(pa), str(pb)], 2, "platform-v2.yaml", "supersedes"


def c_split_leaves_items_unassigned(t: Path):
    return (
        _diff(t, lambda d: _split(d).pop("unassigned")),
        2,
        "platform-v2.yaml",
        "retired[0]",
    )


def c_merge_into_missing_category(t: Path):
    def m(d: dict[str, Any]) -> None:
        r = _split(d)
        r.pop("split_into")
        r.pop("unassigned")
        r["merged_into"] = "abuse"

    return _diff(t, m), 2, "platform-v2.yaml", "retired[0].merged_into"


def c_split_into_missing_category(t: Path):
    return (
        _diff(t, lambda d: _split(d)["split_into"][5].update(into="peer_abuse")),
        2,
        "platform-v2.yaml",
        "retired[0].split_into[5].into",
    )


def c_split_bad_regex(t: Path):
    return (
        _diff(t, lambda d: _split(d)["split_into"][4]["when"].update(text_matches="(unclosed")),
        2,
        "platform-v2.yaml",
        "retired[0].split_into[4].when",
    )


def c_split_label_unknown_in_old(t: Path):
    return (
        _diff(t, lambda d: _split(d)["split_into"][0]["when"].update(label="bullying")),
        2,
        "platform-v2.yaml",
        "retired[0].split_into[0].when.label",
    )


def c_category_vanishes(t: Path):
    return _diff(t, lambda d: d.update(retired=[])), 2, "platform-v2.yaml", "retired"


def c_renamed_from_unknown(t: Path):
    def m(d: dict[str, Any]) -> None:
        d["categories"][-1]["renamed_from"] = "junk"

    return _diff(t, m), 2, "platform-v2.yaml", "categories[10].renamed_from"


def c_manifest_unknown_type(t: Path):
    d = shipped()
    d["pathways"][3]["type"] = "regex_filter"
    p = write_yaml(t / "pathways.yaml", d)
    return ["pathways", "check", "--manifest", str(p)], 2, "pathways.yaml", "pathways[3].type"


def c_manifest_unknown_policy(t: Path):
    d = shipped()
    d["policy"] = "platform-v9"
    p = write_yaml(t / "pathways.yaml", d)
    return ["pathways", "check", "--manifest", str(p)], 2, "pathways.yaml", "policy"


def c_pathway_implements_unknown_version(t: Path):
    d = shipped()
    d["pathways"][1]["implements"]["policy"] = "platform-v0"
    p = write_yaml(t / "pathways.yaml", d)
    return (
        ["pathways", "check", "--manifest", str(p)],
        2,
        "pathways.yaml",
        "pathways[1].implements.policy",
    )


def c_pathway_digest_mismatch(t: Path):
    d = synced_to_v2()
    d["pathways"][0]["implements"]["digest"] = "a" * 64
    p = write_yaml(t / "pathways.yaml", d)
    return (
        ["pathways", "check", "--manifest", str(p)],
        3,
        "pathways.yaml",
        "pathways[0].implements.digest",
    )


def c_pathway_maps_onto_removed(t: Path):
    d = synced_to_v2()
    d["pathways"][5]["routes"].append(
        {"category": "harassment", "queue": "standard-review", "min_score": 0.7, "action": "remove"}
    )
    p = write_yaml(t / "pathways.yaml", d)
    return (
        ["pathways", "check", "--manifest", str(p)],
        3,
        "pathways.yaml",
        "pathways[5].covers/routes",
    )


def c_guideline_missing(t: Path):
    d = shipped()
    d["pathways"][4]["document"] = "docs/guidelines/nowhere.md"
    p = write_yaml(t / "pathways.yaml", d)
    return ["pathways", "check", "--manifest", str(p)], 2, "pathways.yaml", "pathways[4].document"


def c_duplicate_pathway(t: Path):
    d = shipped()
    d["pathways"][1]["id"] = "minilm_head"
    p = write_yaml(t / "pathways.yaml", d)
    return ["pathways", "check", "--manifest", str(p)], 2, "pathways.yaml", "pathways[1].id"


def c_manifest_missing_validation(t: Path):
    d = shipped()
    d["pathways"][0].pop("validated")
    p = write_yaml(t / "pathways.yaml", d)
    return ["pathways", "check", "--manifest", str(p)], 2, "pathways.yaml", "pathways[0]"


def c_suite_diff_id_schemes(t: Path):
    a = write_suite(t / "a")
    b = write_suite(t / "b", [dict(r, id=f"x-{k}") for k, r in enumerate(harassment_rows())])
    return ["suite", "diff", str(a), str(b)], 2, "suite.yaml vs", "id"


def c_suite_diff_duplicate_content(t: Path):
    rows = harassment_rows()
    rows[1] = dict(rows[0], id="r02")
    a = write_suite(t / "a", rows)
    return ["suite", "diff", str(a), str(a), "--key", "hash"], 2, "suite.yaml", "content_hash"


def c_suite_diff_bad_revision(t: Path):
    import subprocess

    repo = t / "repo"
    card = write_suite(repo / "suites")
    subprocess.run(["git", "-C", str(repo), "init", "-q"], check=True)
    return ["suite", "diff", f"{card}@no-such-rev", str(card)], 2, "@no-such-rev", "@revision"


def c_impact_config_unknown_key(t: Path):
    card = write_suite(t / "s")
    cfg = write_yaml(t / "impact.yaml", {"judge": {"name": "j", "type": "fake"}, "n_boots": 5})
    args = [
        "policy",
        "impact",
        "--from",
        "platform-v1",
        "--to",
        "platform-v2",
        "--suite",
        str(card),
    ]
    return [*args, "--config", str(cfg), "--out", str(t / "o")], 2, "impact.yaml", "n_boots"


def c_impact_unknown_judge_type(t: Path):
    card = write_suite(t / "s")
    cfg = write_yaml(t / "impact.yaml", {"judge": {"name": "j", "type": "llm_jduge"}})
    args = [
        "policy",
        "impact",
        "--from",
        "platform-v1",
        "--to",
        "platform-v2",
        "--suite",
        str(card),
    ]
    return [*args, "--config", str(cfg), "--out", str(t / "o")], 2, "impact.yaml", "judge.type"


def c_impact_suite_on_other_policy(t: Path):
    card = write_suite(t / "s")
    cfg = write_yaml(t / "impact.yaml", {"judge": {"name": "j", "type": "fake"}})
    args = [
        "policy",
        "impact",
        "--from",
        "platform-v2",
        "--to",
        "platform-v2",
        "--suite",
        str(card),
    ]
    return [*args, "--config", str(cfg), "--out", str(t / "o")], 2, "suite.yaml", "policy"


def c_impact_split_on_missing_slice(t: Path):
    a, b = _v2(
        t,
        lambda d: _split(d)["split_into"].insert(
            0, {"into": "bullying", "when": {"slice": {"school_year": ["7"]}}}
        ),
    )
    card = write_suite(t / "s")
    cfg = write_yaml(t / "impact.yaml", {"judge": {"name": "j", "type": "fake"}})
    args = ["policy", "impact", "--from", str(a), "--to", str(b), "--suite", str(card)]
    return (
        [*args, "--config", str(cfg), "--out", str(t / "o")],
        2,
        "platform-v2.yaml",
        "retired[0].split_into[0].when.slice",
    )


CASES: list[Case] = [
    c_supersedes_cycle,
    c_supersedes_itself,
    c_missing_predecessor,
    c_split_leaves_items_unassigned,
    c_merge_into_missing_category,
    c_split_into_missing_category,
    c_split_bad_regex,
    c_split_label_unknown_in_old,
    c_category_vanishes,
    c_renamed_from_unknown,
    c_manifest_unknown_type,
    c_manifest_unknown_policy,
    c_pathway_implements_unknown_version,
    c_pathway_digest_mismatch,
    c_pathway_maps_onto_removed,
    c_guideline_missing,
    c_duplicate_pathway,
    c_manifest_missing_validation,
    c_suite_diff_id_schemes,
    c_suite_diff_duplicate_content,
    c_suite_diff_bad_revision,
    c_impact_config_unknown_key,
    c_impact_unknown_judge_type,
    c_impact_suite_on_other_policy,
    c_impact_split_on_missing_slice,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__[2:] for c in CASES])
def test_hostile_input(case: Case, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    args, code, where, field = case(tmp_path)
    r = run_cli(capsys, *args)
    assert r.code == code, (r.code, r.err)
    lines = [x for x in r.err.strip().splitlines() if x.strip()]
    assert "Traceback" not in r.err
    if code == 2:
        assert len(lines) == 1, r.err
        assert lines[0].startswith("error: "), lines[0]
    hit = [x for x in lines if where in x and field in x]
    assert hit, f"expected a line naming {where!r} and {field!r}:\n{r.err}"
