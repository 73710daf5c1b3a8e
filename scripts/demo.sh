#!/usr/bin/env bash
# The demo: train six model sizes on the embedded corpus, then fit and plot them.
# Sets up .venv when needed. Relaunching skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/scaling-train -m experiment=demo "$@"
