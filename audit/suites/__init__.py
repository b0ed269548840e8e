"""Golden suites: cards, loading into the canonical ``datasets`` schema, digests."""

from audit.suites.card import SuiteCard
from audit.suites.loader import LoadedSuite, available_suites, load_card, load_suite, suite_items

__all__ = ["LoadedSuite", "SuiteCard", "available_suites", "load_card", "load_suite", "suite_items"]
