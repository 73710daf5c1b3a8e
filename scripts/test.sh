#!/usr/bin/env bash
# Run the test suite: sets up .venv when needed, then pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SCALING_LAB_CACHE="${SCALING_LAB_CACHE:-$PWD/.cache}"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
