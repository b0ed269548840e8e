"""Private utilities shared by every layer: scoped settings, strict YAML → Pydantic
validation, the named registry, JSON conversion. Nothing here imports other ``audit``
modules except :mod:`audit.errors`."""
