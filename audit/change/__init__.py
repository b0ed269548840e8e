"""Policy change management: version diffs, relabel impact, pathway sync, suite diffs.

METHODS.md §9 and §11; docs/methods/change.md. The CLI (``audit policy diff``,
``audit policy impact``, ``audit pathways check``, ``audit suite diff``) lives in
:mod:`audit.cli_change` and only calls what is exported here.
"""

from __future__ import annotations

from audit.change.impact import (
    ImpactConfig,
    ImpactResult,
    Migration,
    impact_markdown,
    judge_flips,
    load_impact_config,
    metric_change,
    migrate_gold,
    run_impact,
)
from audit.change.lineage import (
    Fate,
    Lineage,
    check_succession,
    lineage,
    load_chain,
    resolve_policy_path,
)
from audit.change.pathways import CheckResult, Manifest, check_manifest, gate_checks, load_manifest
from audit.change.policy_diff import Change, PolicyDiff, diff_markdown, diff_policies
from audit.change.suite_diff import (
    DeclaredDiff,
    SuiteDiff,
    declared_digest_pairs,
    diff_loaded,
    diff_suites,
    load_declared_diff,
)

__all__ = [
    "Change",
    "CheckResult",
    "DeclaredDiff",
    "Fate",
    "ImpactConfig",
    "ImpactResult",
    "Lineage",
    "Manifest",
    "Migration",
    "PolicyDiff",
    "SuiteDiff",
    "check_manifest",
    "check_succession",
    "declared_digest_pairs",
    "diff_loaded",
    "diff_markdown",
    "diff_policies",
    "diff_suites",
    "gate_checks",
    "impact_markdown",
    "judge_flips",
    "lineage",
    "load_chain",
    "load_declared_diff",
    "load_impact_config",
    "load_manifest",
    "metric_change",
    "migrate_gold",
    "resolve_policy_path",
    "run_impact",
]
