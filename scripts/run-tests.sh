#!/usr/bin/env bash
# The test command: lint, types, unit tests, then the lab (root) tests.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
$VENV/bin/ruff check src tests
$VENV/bin/mypy src/tether
exec $VENV/bin/python -m pytest -q -p no:cacheprovider tests "$@"
