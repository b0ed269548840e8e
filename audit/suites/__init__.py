"""Golden suites: cards, reading sources, label rules, the canonical ``datasets`` schema,
content digests.

| module | what |
|---|---|
| ``card`` | the suite card model (``suite.yaml``) |
| ``reading`` | local CSV / JSONL / JSON / Parquet files and hub datasets → flat rows |
| ``rules`` | label rules: value lists compared by type, numeric conditions, constants |
| ``loader`` | find and load a suite: card-level checks (policy, covers, columns), then rows |
| ``canonical`` | rows → canonical rows and gold arrays, checked row by row |
| ``digest`` | the canonical ``datasets`` features and the content digest |
| ``loaded`` | ``LoadedSuite``: the validated split, seeded subsets, provenance |
| ``items`` | a loaded suite's rows as moderator ``Item``s |
| ``media_files`` | the card's media root, per-row media cells and image bytes |
"""

from audit.suites.card import SuiteCard
from audit.suites.items import suite_items
from audit.suites.loaded import LoadedSuite
from audit.suites.loader import available_suites, load_card, load_suite
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
