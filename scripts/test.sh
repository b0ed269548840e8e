#!/usr/bin/env bash
# One command for contributors: set up .venv with dev tools, lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --dev
.venv/bin/ruff check audit tests bench
# layers (docs/architecture.md): an upward import fails here; the report prints only on failure
.venv/bin/lint-imports --no-cache >/tmp/audit-lint-imports.txt 2>&1 || { cat /tmp/audit-lint-imports.txt; exit 1; }
# types: mypy --strict over the package (pyproject [tool.mypy])
.venv/bin/python -m mypy --strict audit
exec .venv/bin/python -m pytest -q "$@"
