#!/usr/bin/env bash
# Run the test suite: sets up .venv when needed, then pytest in two worker processes
# (SCALING_LAB_TEST_WORKERS=N for another count, 0 for one process), with the slowest
# tests listed at the end. Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export SCALING_LAB_CACHE="${SCALING_LAB_CACHE:-$PWD/.cache}"
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -n "${SCALING_LAB_TEST_WORKERS:-2}" --durations=20 "$@"
