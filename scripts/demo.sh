#!/usr/bin/env bash
# The demo: train six model sizes, each once with a WSD-S schedule that yields five
# token budgets, on the embedded corpus, then fit and plot them.
# Sets up .venv when needed. Relaunching skips finished runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# --with-downstream (first): keep the weights, then fine-tune and compress every model
# and fit how both scale with size (README, "Downstream and compression")
if [[ "${1:-}" == --with-downstream ]]; then
    shift
    .venv/bin/scaling-train -m experiment=demo hydra/launcher=parallel train.save_model=true "$@"
    # each size's last budget, three seeds: the accuracies get error bars
    .venv/bin/scaling-train -m experiment=finetune source=results/demo source_budgets=last seed=0,1,2
    # the demo's layers are 16-256 inputs wide: groups of 8 inputs are to them what
    # groups of 128 are to a model a few thousand wide; each pruned model also
    # recovers for 32 steps, so pruning is fitted with and without recovery
    .venv/bin/scaling-train -m experiment=compress source=results/demo \
        'compress.group_sizes=[null,8]' compress.recover_tokens=32768
    exec .venv/bin/scaling-analyze downstream results/demo
fi
# two runs at once, a core each: models this small gain more from that than from two
# threads (README, "Running a sweep on the cores of one machine")
.venv/bin/scaling-train -m experiment=demo hydra/launcher=parallel "$@"

# what the sweep says: C ∝ N^k, L(N, D), the compute-optimal frontier, a backtest
analyze=.venv/bin/scaling-analyze
$analyze fit results/demo --law power --x params --y flops
$analyze fit results/demo --law chinchilla
$analyze frontier results/demo --approach 3   # from the Chinchilla fit (approach 2: experiment=isoflop_demo)
$analyze frontier results/demo --approach 1   # the envelope of the budgets' decayed ends
$analyze backtest results/demo --law chinchilla --k 6   # predict the 6 largest-compute budgets
$analyze plot results/demo --out results/demo/plots
$analyze report results/demo
