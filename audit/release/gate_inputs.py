"""What a gate run is told about its inputs besides the rules (docs/methods.md §3):
declared suite version changes (refused when undeclared) and agreement records that mark
categories with unreliable gold (docs/methods/labels.md §2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from audit.release.sides import DIGEST_FIX, Side

if TYPE_CHECKING:
    from audit.change.suite_diff import DeclaredDiff
    from audit.labels.reliability import GoldReliability
    from audit.release.gate import GateRules


def refuse_digest_changes(
    rules: GateRules, pairs: list[tuple[Any, Any]], declared: dict[str, DeclaredDiff], where: str
) -> None:
    """Refuse (exit 3) a suite scored on two versions unless the change is declared."""
    from audit.errors import GateRefusedError

    if rules.allow_digest_mismatch:
        return
    for rb, rc in pairs:
        if (rb.digest == rc.digest and rb.digest is not None) or rb.suite_key in declared:
            continue
        raise GateRefusedError(
            f"gate refused: suite {rb.suite_key} was scored on two versions (baseline digest "
            f"{str(rb.digest)[:12]}, candidate digest {str(rc.digest)[:12]})",
            where=where,
            field="suites.digest",
            expected="equal digests, or a declared suite diff",
            actual="different digests",
            fix=f"{DIGEST_FIX} (or list it under suite_diffs: in the rules; "
            "allow_digest_mismatch: true pairs the items both share without a declaration)",
        )


def gold_reliability(
    paths: list[str], candidate: Side
) -> tuple[dict[tuple[str, str], str], list[GoldReliability]]:
    """``(suite, category) → reason`` for every category with unreliable gold in the
    agreement records, each checked against the suite version the candidate scored."""
    from audit.errors import ConfigError
    from audit.labels.reliability import read_gold_reliability

    suites = candidate.data.get("suites") or {}
    out: dict[tuple[str, str], str] = {}
    records = []
    for p in paths:
        r = read_gold_reliability(p)
        entry = suites.get(f"{r.suite}:{r.split}")
        if entry is None:
            raise ConfigError(
                "agreement record is for a suite split the candidate did not score",
                where=r.path,
                field="suite.name / suite.split",
                expected=" or ".join(sorted(suites)) or "a suite of the candidate",
                actual=f"{r.suite}:{r.split}",
                fix="pass the agreement record of a suite the candidate scored",
            )
        digests = {
            entry.get("digest"),
            ((entry.get("source") or {}).get("sample") or {}).get("parent_digest"),
        }
        if r.digest not in digests:
            raise ConfigError(
                f"agreement record is for another version of {r.suite}:{r.split}",
                where=r.path,
                field="suite.digest",
                expected=f"{str(entry.get('digest'))[:12]} (the candidate's suite digest)",
                actual=r.digest[:12],
                fix="recompute it on the version the candidate scored: "
                "`audit agreement SUITE --out FILE`",
            )
        for cat in r.unreliable:
            out[(r.suite, cat)] = r.reason(cat)
        records.append(r)
    return out, records
