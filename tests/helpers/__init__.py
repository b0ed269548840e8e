"""Importable test helpers shared across test packages (tiny models, builders)."""
