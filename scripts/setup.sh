#!/usr/bin/env bash
# Create .venv and install the project into it, once: torch first (the CPU build, so
# no multi-GB CUDA wheel is pulled in), then the project with its extras.
# Re-running is cheap: it reinstalls only when pyproject.toml has changed.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
PYTHON="${PYTHON:-python3}"
stamp=".venv/.installed-$(sha256sum pyproject.toml | cut -c1-12)"

if [ ! -x .venv/bin/python ]; then
    echo "creating .venv with $($PYTHON --version)" >&2
    "$PYTHON" -m venv .venv
fi
if [ ! -f "$stamp" ]; then
    echo "installing torch $TORCH_VERSION and scaling-lab into .venv ..." >&2
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q "torch==$TORCH_VERSION"
    .venv/bin/python -m pip install -q -e ".[train,hf,finetune,compress,tensorboard,wandb,mlflow,dev]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
