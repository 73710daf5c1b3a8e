"""Shared fixtures: composed configs and a tokenized-corpus cache shared by all tests."""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Tokenize the embedded corpus once for the whole suite (and across runs of it).
os.environ.setdefault("SCALING_LAB_CACHE", str(ROOT / ".cache"))


def pytest_xdist_make_scheduler(config, log):
    """Under pytest-xdist: the SLURM tests on one worker, one after another, first (the
    largest unit of work); every other test is balanced on its own.

    The SLURM tests share one node, and a preempting job of one would requeue the jobs of
    another running meanwhile. (xdist's `--dist loadgroup` would do this with a marker,
    but does not group them with the pytest in use.)
    """
    from xdist.scheduler import LoadScopeScheduling

    class SlurmTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "slurm" if nodeid.startswith("tests/test_slurm.py::") else nodeid

    return SlurmTestsTogether(config, log)


@pytest.fixture
def compose():
    """Compose the project's config tree with overrides, as `scaling-train` would."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    def _compose(*overrides: str, return_hydra_config: bool = False):
        with initialize_config_module("sweeps", version_base="1.3"):
            return hydra_compose(
                "config", overrides=list(overrides), return_hydra_config=return_hydra_config
            )

    return _compose


@pytest.fixture
def resolved(compose):
    """A composed config as the plain dict a run sees."""
    from omegaconf import OmegaConf

    def _resolved(*overrides: str) -> dict:
        return OmegaConf.to_container(compose(*overrides), resolve=True)

    return _resolved
