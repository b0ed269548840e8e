#!/usr/bin/env bash
# One command for a newcomer: set up .venv, then run the quickstart audit on the
# embedded defaults (the project's golden set plus the public sets when present).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/audit run configs/quickstart.yaml "$@"
