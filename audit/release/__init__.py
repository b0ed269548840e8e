"""Release decisions: paired comparison of two runs, the rule-based gate, baselines.

| module | what |
|---|---|
| ``compare`` | paired bootstrap deltas, McNemar, negative flips, MDE (``audit compare``) |
| ``gate`` | rules → checks → verdict, JUnit, markdown, baseline snapshots (``audit gate``) |
"""

from audit.records import Check
from audit.release.compare import Side, compare_sides, comparison_json, load_side
from audit.release.gate import (
    GateRules,
    load_rules,
    markdown_summary,
    run_gate,
    verdict,
    write_snapshot,
)

__all__ = [
    "Check",
    "GateRules",
    "Side",
    "compare_sides",
    "comparison_json",
    "load_rules",
    "load_side",
    "markdown_summary",
    "run_gate",
    "verdict",
    "write_snapshot",
]
