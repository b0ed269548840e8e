"""Policy change management: version diffs, relabel impact, pathway sync, suite diffs.

METHODS.md §9 and §11; docs/methods/change.md. The CLI (``audit policy diff``,
``audit policy impact``, ``audit pathways check``, ``audit suite diff``) lives in
:mod:`audit.cli_change` and only calls what is exported here.
"""

from __future__ import annotations

from audit.change.lineage import Fate, Lineage, check_succession, lineage, load_chain
from audit.change.policy_diff import Change, PolicyDiff, diff_markdown, diff_policies

__all__ = [
    "Change",
    "Fate",
    "Lineage",
    "PolicyDiff",
    "check_succession",
    "diff_markdown",
    "diff_policies",
    "lineage",
    "load_chain",
]
