"""Golden suites: cards, reading sources, label rules, the canonical ``datasets`` schema,
content digests.

| module | what |
|---|---|
| ``card`` | the suite card model (``suite.yaml``) |
| ``reading`` | local CSV / JSONL / JSON / Parquet files and hub datasets → flat rows |
| ``rules`` | label rules: value lists compared by type, numeric conditions, constants |
| ``loader`` | rows → canonical ``datasets.Dataset``, gold arrays, digest, moderator items |
"""

from audit.suites.card import SuiteCard
from audit.suites.loader import LoadedSuite, available_suites, load_card, load_suite, suite_items
from audit.suites.reading import SuiteDataMissing

__all__ = [
    "LoadedSuite",
    "SuiteCard",
    "SuiteDataMissing",
    "available_suites",
    "load_card",
    "load_suite",
    "suite_items",
]
