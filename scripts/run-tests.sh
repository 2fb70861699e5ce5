#!/usr/bin/env bash
# The test command: lint, types, the import layering and cycles, unit tests, then the lab (root) tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
$VENV/bin/ruff check src tests
$VENV/bin/mypy src/tether
PYTHONPATH=src $VENV/bin/lint-imports --no-cache  # this checkout's src, whatever the venv points at
$VENV/bin/python scripts/check_imports.py
exec $VENV/bin/python -m pytest -q -p no:cacheprovider tests "$@"
