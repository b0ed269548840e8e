"""The typed record's JSON Schema is committed (docs/record.schema.json) and current."""

from __future__ import annotations

import json
from pathlib import Path

from audit.records import SCHEMA_VERSION, record_json_schema, record_json_schema_text

DOC = Path(__file__).resolve().parent.parent / "docs" / "record.schema.json"


def test_committed_schema_equals_the_generated_one() -> None:
    assert DOC.read_text(encoding="utf-8") == record_json_schema_text(), (
        "docs/record.schema.json is stale: regenerate it with "
        "`python -m audit.records > docs/record.schema.json`"
    )


def test_schema_names_the_version_and_the_typed_parts() -> None:
    schema = record_json_schema()
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    defs = schema["$defs"]
    for name in ("MetricValue", "ResultEntry", "ErrorSlice", "Provenance", "SuiteEntry"):
        assert name in defs, name
    mv = defs["MetricValue"]["properties"]
    assert {"value", "ci_low", "ci_high", "n", "reason", "direction"} <= set(mv)
    json.dumps(schema)  # plain JSON, no NaN
