"""Scaling Lab, training half: model families, data, the training loop and the run record."""

from pathlib import Path

from omegaconf import OmegaConf

__version__ = "0.1.0"

# Resolvers of the config tree (sweeps/), registered wherever it is composed: jobs that
# start from a finished sweep put their records beside it, e.g.
# `sweep: ${basename:${source}}-finetune` in experiment/finetune.yaml.
OmegaConf.register_new_resolver("basename", lambda p: Path(str(p)).name, replace=True)
OmegaConf.register_new_resolver("dirname", lambda p: str(Path(str(p)).parent), replace=True)
