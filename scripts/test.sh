#!/usr/bin/env bash
# One command for contributors: set up .venv with dev tools, lint, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh --dev
.venv/bin/ruff check audit tests bench
exec .venv/bin/python -m pytest -q "$@"
