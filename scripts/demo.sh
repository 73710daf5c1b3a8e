#!/usr/bin/env bash
# The demo: train six model sizes on the embedded corpus, then fit and plot them.
# Sets up .venv when needed. Relaunching skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# --with-downstream (first): keep the weights, then fine-tune and compress every model
# and fit how both scale with size (README, "Downstream and compression")
if [[ "${1:-}" == --with-downstream ]]; then
    shift
    .venv/bin/scaling-train -m experiment=demo train.save_model=true "$@"
    .venv/bin/scaling-train -m experiment=finetune source=results/demo
    .venv/bin/scaling-train -m experiment=compress source=results/demo
    exec .venv/bin/scaling-analyze downstream results/demo
fi
.venv/bin/scaling-train -m experiment=demo "$@"
