"""bf16 autocast against fp32 on this CPU: the time of one training step, by width.

`train.dtype=auto` picks bf16 on a CPU with native bf16 (AVX-512 BF16, AMX) only from
`d_model` 128 up (`scaling.hardware.CPU_BF16_MIN_D_MODEL`): narrower models train faster
in fp32 there, because their matmuls are too small for bf16's rate to pay for autocast's
casts. This measures the step (forward, backward, fused AdamW) of the default family's
model in both precisions, side by side in one process (their steps alternated), for
each width and micro-batch shape, with the bf16 and fp32 matmul peaks of the same run,
so that the threshold can be checked on any CPU.

    .venv/bin/python benchmarks/cpu_precision.py            # ~80 s on 2 cores
    .venv/bin/python benchmarks/cpu_precision.py --quick    # two widths, one shape

Ends with one JSON line: the native-bf16 flag, the peaks, and for each (shape, d_model)
the median step times and their ratio bf16 / fp32 (below 1: bf16 is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from train_throughput import measure_peak  # beside this file

from scaling.families import build_model, shape_for
from scaling.hardware import CPU_BF16_MIN_D_MODEL, autocast, cpu_has_fast_bf16

VOCAB = 257  # the byte-level vocabulary of the embedded corpus
CPU = torch.device("cpu")


def step_times(d_model: int, rows: int, context: int, steps: int) -> dict[str, float]:
    """Median seconds of a training step on ``rows`` sequences of ``context`` tokens, in
    fp32 and in bf16 autocast: one model per precision, their steps alternated, so that
    both see the same state of the machine."""
    x = torch.randint(0, VOCAB, (rows, context), generator=torch.Generator().manual_seed(0))
    runs = {}
    for dtype in ("fp32", "bf16"):
        model = build_model(shape_for("llama", d_model, VOCAB, context), seed=0)
        runs[dtype] = (model, torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True))
    times: dict[str, list[float]] = {dtype: [] for dtype in runs}
    for i in range(steps + 2):  # the first two warm the allocator and oneDNN's kernels
        for dtype, (model, opt) in runs.items():
            t = time.perf_counter()
            with autocast(CPU, dtype):
                loss = model(input_ids=x, labels=x).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if i >= 2:
                times[dtype].append(time.perf_counter() - t)
    return {dtype: statistics.median(ts) for dtype, ts in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="d_model 64 and 128, one shape")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    args = parser.parse_args()
    widths = [64, 128] if args.quick else [32, 64, 96, 128, 192, 256]
    # (sequences, context): the demo's micro-batch, and train_throughput.py's
    shapes = [(8, 128)] if args.quick else [(8, 128), (16, 256)]

    native = cpu_has_fast_bf16()
    peaks = {"fp32": measure_peak(torch.float32), "bf16": measure_peak(torch.bfloat16)}
    print(
        f"native bf16: {native}; matmul peaks fp32 {peaks['fp32'] / 1e9:.0f}, "
        f"bf16 {peaks['bf16'] / 1e9:.0f} GFLOP/s; threads {torch.get_num_threads()}; "
        f"auto picks bf16 from d_model {CPU_BF16_MIN_D_MODEL}"
    )
    print(f"{'tokens':>7} {'d_model':>7} {'fp32 ms':>8} {'bf16 ms':>8} {'bf16/fp32':>9}")
    rows = []
    for seqs, context in shapes:
        for d in widths:
            t = step_times(d, seqs, context, args.steps)
            ratio = t["bf16"] / t["fp32"]
            rows.append(
                {"tokens": seqs * context, "d_model": d, "fp32_s": t["fp32"],
                 "bf16_s": t["bf16"], "ratio_bf16_vs_fp32": ratio}
            )
            print(
                f"{seqs * context:>7} {d:>7} {t['fp32'] * 1e3:>8.1f} {t['bf16'] * 1e3:>8.1f}"
                f" {ratio:>9.2f}",
                flush=True,
            )
    print(json.dumps({"native_bf16": native, "peak_flops": peaks, "steps": rows}))


if __name__ == "__main__":
    main()
