"""Data parallelism for one run over several processes (GPUs, or CPU processes with gloo).

A run becomes data-parallel when it is started by ``torchrun`` (which sets ``WORLD_SIZE``,
``RANK``, ``LOCAL_RANK``) or as a multi-task SLURM job (``hydra.launcher.tasks_per_node``
> 1), whose environment submitit translates. Every process draws its share of each
step's micro-batches; gradients are averaged by DDP; only rank 0 writes the record.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    """Where this process stands in the run: ``rank`` of ``world`` processes."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one process that writes records, checkpoints and progress lines."""
        return self.rank == 0

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` averaged over the processes (itself when alone)."""
        if self.world > 1:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.world
        return value

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every process when it is true on one (e.g. a stop signal)."""
        if self.world == 1:
            return flag
        t = torch.tensor([int(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def setup() -> Group:
    """Join the process group when started as one of several processes; else a group of one."""
    if "WORLD_SIZE" not in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        # a multi-task SLURM job: submitit knows the master address and ranks
        from submitit.helpers import TorchDistributedEnvironment

        TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Group()
    if not dist.is_initialized():
        # NCCL between GPUs; gloo between CPU processes (and to test this on a laptop)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Group(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown(group: Group) -> None:
    if group.world > 1 and dist.is_initialized():
        dist.destroy_process_group()
