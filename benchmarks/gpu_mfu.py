"""bf16 MFU of our training loop on a GPU, for a ~124M-parameter model of the ladder.

Runs `scaling.train.train` exactly as `scaling-train -m experiment=ladder` would for one
size (d_model 768: 12 layers, 12 heads, 85M non-embedding parameters, 135M in all with
a 32k vocabulary), for a fixed number of steps, with bf16 autocast, fused AdamW and
(unless --no-compile) torch.compile, and reports tokens/s and MFU against the GPU's
dense bf16 peak, both the stated one and the one a large bf16 matmul reaches in this
run. With --profile, a few steps in the middle of the run are traced with
torch.profiler, and the GPU time is split into matmuls, attention, the optimiser and
everything else (norms, rotary embeddings, the loss, casts), beside the share of the
step's wall time the GPU ran no kernel.

    python benchmarks/gpu_mfu.py                      # needs a CUDA GPU, ~2 minutes
    python benchmarks/gpu_mfu.py --no-compile --profile eager.txt
    python benchmarks/gpu_mfu.py --peak 989e12        # the stated peak (H100/H200 SXM)

Ends with one JSON line: tokens_per_s, mfu, the measured peak, the profile's shares and
the settings measured.
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

# kernel names by what they compute: cuBLAS/CUTLASS GEMMs (nvjet, sm90_xmma, cutlass),
# inductor's own matmul templates, the fused attention kernels, the fused AdamW
KINDS = {
    "matmul": re.compile(r"gemm|nvjet|xmma|cutlass|wgmma|triton_tem_|splitk", re.I),
    "attention": re.compile(r"flash|fmha|attention|attn", re.I),
    "optimizer": re.compile(r"adam|multi_tensor", re.I),
}


def matmul_peak(n: int = 8192, reps: int = 10) -> float:
    """bf16 FLOP/s of an n×n×n matmul on random data: this GPU's reachable ceiling."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        a @ b
    end.record()
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (start.elapsed_time(end) / 1e3)


class StepProfiler:
    """torch.profiler over optimiser steps ``first`` to ``first + n - 1`` of a run.

    The loop is not touched: a global optimiser hook counts the steps, starts the trace
    before step ``first`` and stops it after the last step of the window.
    """

    def __init__(self, first: int, n: int):
        self.first, self.n, self.steps, self.wall = first, n, 0, 0.0
        acts = [torch.profiler.ProfilerActivity.CPU, torch.profiler.ProfilerActivity.CUDA]
        self.prof = torch.profiler.profile(activities=acts)
        self.handle = register_optimizer_step_post_hook(self.after_step)

    def after_step(self, *_args) -> None:
        self.steps += 1
        if self.steps == self.first - 1:
            torch.cuda.synchronize()
            self.prof.start()
            self.t0 = time.perf_counter()
        elif self.steps == self.first - 1 + self.n:
            torch.cuda.synchronize()
            self.wall = time.perf_counter() - self.t0
            self.prof.stop()
            self.handle.remove()

    def summary(self) -> tuple[str, dict[str, float]]:
        """A text table of the top kernels and the shares of the window's wall time."""
        # the GPU's own events (kernels, copies, memsets); the CPU ops that launched
        # them carry the same device time, and would count it twice
        kernels = [
            e for e in self.prof.key_averages()
            if e.device_type == torch.autograd.DeviceType.CUDA and e.self_device_time_total > 0
        ]
        # key_averages' device times are in microseconds
        total = sum(e.self_device_time_total for e in kernels) / 1e6
        by_kind = dict.fromkeys([*KINDS, "other"], 0.0)
        for e in kernels:
            kind = next((k for k, rx in KINDS.items() if rx.search(e.key)), "other")
            by_kind[kind] += e.self_device_time_total / 1e6
        shares = {f"{k}_share": v / self.wall for k, v in by_kind.items()}
        shares["gpu_idle_share"] = max(0.0, 1 - total / self.wall)
        lines = [
            f"{self.n} steps traced, {self.wall:.3f} s wall, {total:.3f} s of GPU kernels",
            *(f"  {k:<10} {v:7.3f} s  {v / self.wall:6.1%} of wall" for k, v in by_kind.items()),
            f"  {'idle':<10} {'':7}    {shares['gpu_idle_share']:6.1%} of wall",
            "",
            self.prof.key_averages().table(sort_by="self_device_time_total", row_limit=25),
        ]
        return "\n".join(lines), shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--accum", type=int, default=8, help="micro-batches per step")
    parser.add_argument("--peak", type=float, default=989e12, help="stated dense bf16 FLOP/s")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--profile", type=Path, help="write the profile's summary here")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_mfu.py needs a CUDA GPU")

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from scaling.results import read_summary
    from scaling.train import train

    measured_peak = matmul_peak()
    context = 2048
    batch_tokens = args.micro_batch * context * args.accum
    overrides = [
        "experiment=ladder",  # the ladder's data too: a 32k BPE on the embedded corpus
        f"model.d_model={args.d_model}",
        f"train.micro_batch={args.micro_batch}",
        f"optim.batch_tokens={batch_tokens}",
        "train.budgets_per_param=null",
        f"train.tokens={args.steps * batch_tokens}",
        "optim.schedule=cosine",
        "train.n_evals=1",
        "train.eval_batches=4",
        "train.log_every=10",
        f"train.ckpt_every={args.steps + 1}",
        f"train.peak_flops={args.peak}",
        f"train.compile={'false' if args.no_compile else 'true'}",
    ]
    # the window: three steps past the middle, well after compilation and warm-up
    profiler = StepProfiler(first=args.steps // 2, n=3) if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_module("sweeps", version_base="1.3"):
            cfg = compose("config", overrides=[*overrides, f"results_dir={tmp}"])
        cfg = OmegaConf.to_container(cfg, resolve=True)
        out = Path(tmp) / "run"
        t0 = time.perf_counter()
        train(cfg, out)
        wall = time.perf_counter() - t0
        s = read_summary(out)
    shares: dict[str, float] = {}
    if profiler:
        text, shares = profiler.summary()
        args.profile.write_text(text + "\n")
        print(text.split("\n\n")[0])
    name = torch.cuda.get_device_name()
    print(
        f"{name}: d_model {s['d_model']}, {s['params_total'] / 1e6:.0f}M params, "
        f"{'compiled' if not args.no_compile else 'eager'}, {s['tokens_per_s']:,.0f} tok/s, "
        f"MFU {s['mfu']:.1%} of {args.peak / 1e12:.0f} TFLOP/s stated, "
        f"{s['mfu'] * args.peak / measured_peak:.1%} of {measured_peak / 1e12:.0f} measured; "
        f"{wall:.0f} s in all"
    )
    print(
        json.dumps(
            {
                "benchmark": "gpu_mfu",
                "device": s["device"],
                "d_model": s["d_model"],
                "params_total": s["params_total"],
                "params_nonembed": s["params_nonembed"],
                "flops_per_token": s["flops_per_token"],
                "batch_tokens": batch_tokens,
                "steps": args.steps,
                "tokens_per_s": s["tokens_per_s"],
                "mfu": s["mfu"],
                "peak_flops": args.peak,
                "measured_peak_flops": measured_peak,
                "mfu_of_measured_peak": s["mfu"] * args.peak / measured_peak,
                "dtype": s["dtype"],
                "compile": not args.no_compile,
                "wall_s": wall,
                "max_memory_gib": torch.cuda.max_memory_allocated() / 2**30,
                **shares,
            }
        )
    )


if __name__ == "__main__":
    main()
