"""bf16 MFU of our training loop on a GPU, for a ~124M-parameter model of the ladder.

Runs `scaling.train.train` exactly as `scaling-train -m experiment=ladder` would for one
size (d_model 768: 12 layers, 12 heads, 85M non-embedding parameters, 134M in all with
a 32k vocabulary), for a fixed number of steps, with bf16 autocast, fused AdamW and
torch.compile, and reports tokens/s and MFU against the GPU's dense bf16 peak.

    python benchmarks/gpu_mfu.py                      # needs a CUDA GPU, ~3 minutes
    python benchmarks/gpu_mfu.py --peak 989e12        # state the peak (default: H100/H200)

Ends with one JSON line: tokens_per_s, mfu, and the settings measured.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=768)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--micro-batch", type=int, default=16)
    parser.add_argument("--peak", type=float, default=989e12, help="dense bf16 FLOP/s")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_mfu.py needs a CUDA GPU")

    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from scaling.results import read_summary
    from scaling.train import train

    context = 2048
    batch_tokens = args.micro_batch * context * 8  # 8 micro-batches per step: 262k tokens
    overrides = [
        "experiment=ladder",  # the ladder's data too: a 32k BPE on the embedded corpus
        f"model.d_model={args.d_model}",
        f"train.micro_batch={args.micro_batch}",
        f"optim.batch_tokens={batch_tokens}",
        f"train.tokens={(args.steps + 1) * batch_tokens}",
        "train.n_evals=1",
        "train.eval_batches=4",
        "train.log_every=10",
        f"train.peak_flops={args.peak}",
        f"train.compile={'false' if args.no_compile else 'true'}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        with initialize_config_module("sweeps", version_base="1.3"):
            cfg = compose("config", overrides=[*overrides, f"results_dir={tmp}"])
        cfg = OmegaConf.to_container(cfg, resolve=True)
        out = Path(tmp) / "run"
        train(cfg, out)
        s = read_summary(out)
    print(
        f"{torch.cuda.get_device_name()}: d_model {s['d_model']}, {s['params_total'] / 1e6:.0f}M "
        f"params, {s['tokens_per_s']:,.0f} tok/s, MFU {s['mfu']:.1%} of {args.peak / 1e12:.0f} TFLOP/s"
    )
    print(
        json.dumps(
            {
                "benchmark": "gpu_mfu",
                "device": s["device"],
                "d_model": s["d_model"],
                "params_total": s["params_total"],
                "params_nonembed": s["params_nonembed"],
                "tokens_per_s": s["tokens_per_s"],
                "mfu": s["mfu"],
                "peak_flops": args.peak,
                "dtype": s["dtype"],
                "compile": not args.no_compile,
            }
        )
    )


if __name__ == "__main__":
    main()
