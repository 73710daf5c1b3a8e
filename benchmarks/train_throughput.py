"""Training throughput: our loop against a hand-written GPT and the Hugging Face Trainer.

For several sizes of the default family (Llama shapes), measured side by side in one
process, interleaved over rounds, medians reported:

  (a) ours     `scaling.train.train`, exactly as `scaling-train` runs it
  (b) plain    a nanoGPT-style model of identical shape in plain torch (SDPA attention,
               fused AdamW), trained by a ten-line loop
  (c) trainer  the Hugging Face `Trainer` on the same HF model with its defaults

MFU is against a peak measured in the same run with a large fp32 matmul.

    python benchmarks/train_throughput.py            # ~5 minutes on 2 CPU cores
    python benchmarks/train_throughput.py --quick    # one small size, a smoke check

Ends with one JSON line: ratio_vs_plain and ratio_vs_hf_trainer (smallest over sizes),
mfu_largest, and the per-size figures.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from scaling.data import DataSpec, prepare, sample_batch
from scaling.families import build_model, param_counts, shape_for
from scaling.flops import flops_per_token
from scaling.results import read_summary

CONTEXT, MICRO_BATCH, VOCAB = 256, 16, 257


def measure_peak(n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of a large fp32 matmul: the ceiling MFU is measured against."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times)


# ---------------------------------------------------------------------------------------
# (a) ours: the real training function on the real corpus


def ours(d_model: int, steps: int, workdir: Path) -> float:
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from scaling.train import train

    overrides = [
        f"model.d_model={d_model}",
        f"model.context={CONTEXT}",
        f"train.micro_batch={MICRO_BATCH}",
        f"optim.batch_tokens={MICRO_BATCH * CONTEXT}",
        f"train.tokens={(steps + 1) * MICRO_BATCH * CONTEXT}",
        "train.n_evals=1",
        "train.eval_batches=1",
        f"train.log_every={10**9}",
        f"results_dir={workdir}",
    ]
    with initialize_config_module("sweeps", version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    out = workdir / f"ours-{d_model}-{time.monotonic_ns()}"
    train(cfg, out)
    return read_summary(out)["tokens_per_s"]


# ---------------------------------------------------------------------------------------
# (b) plain torch: the same Llama shape, written out by hand


class RMSNorm(nn.Module):
    def __init__(self, d: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def rotate(x, cos, sin):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


class Block(nn.Module):
    def __init__(self, d: int, heads: int, d_ff: int):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.gate_up = nn.Linear(d, 2 * d_ff, bias=False)
        self.down = nn.Linear(d_ff, d, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        q, k = rotate(q, cos, sin), rotate(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        gate, up = self.gate_up(self.norm2(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class PlainLlama(nn.Module):
    def __init__(self, shape):
        super().__init__()
        d, h = shape.d_model, shape.n_heads
        self.embed = nn.Embedding(shape.vocab_size, d)
        self.blocks = nn.ModuleList(Block(d, h, shape.d_ff) for _ in range(shape.n_layers))
        self.norm = RMSNorm(d)
        self.head = nn.Linear(d, shape.vocab_size, bias=False)
        hd = d // h
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2).float() / hd))
        angles = torch.outer(torch.arange(shape.context).float(), inv)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, idx):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, self.cos, self.sin)
        return self.head(self.norm(x))


def plain(d_model: int, steps: int, tokens) -> float:
    shape = shape_for("llama", d_model, VOCAB, CONTEXT)
    torch.manual_seed(0)
    model = PlainLlama(shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    times = []
    for step in range(steps + 1):
        x, y = (torch.from_numpy(a) for a in sample_batch(tokens, MICRO_BATCH, CONTEXT, 0, step))
        t = time.perf_counter()
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t)
    return steps * MICRO_BATCH * CONTEXT / sum(times[1:])  # first step is warm-up


# ---------------------------------------------------------------------------------------
# (c) the Hugging Face Trainer, defaults except what makes it run offline and log nothing


def hf_trainer(d_model: int, steps: int, tokens, workdir: Path) -> float:
    from transformers import Trainer, TrainerCallback, TrainingArguments

    shape = shape_for("llama", d_model, VOCAB, CONTEXT)
    model = build_model(shape, seed=0)

    class Windows(torch.utils.data.Dataset):
        def __len__(self):
            return (steps + 1) * MICRO_BATCH

        def __getitem__(self, i):
            x, _ = sample_batch(tokens, 1, CONTEXT, 0, i)
            ids = torch.from_numpy(x[0])
            return {"input_ids": ids, "labels": ids}  # the model shifts labels itself

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.t = [], 0.0

        def on_step_begin(self, args, state, control, **kw):
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.t)

    timer = StepTimer()
    args = TrainingArguments(
        output_dir=str(workdir / "hf"),
        per_device_train_batch_size=MICRO_BATCH,
        max_steps=steps + 1,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )
    Trainer(model=model, args=args, train_dataset=Windows(), callbacks=[timer]).train()
    return steps * MICRO_BATCH * CONTEXT / sum(timer.times[1:])


# ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 384])
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one small size, one round")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.rounds = [64], 1

    import transformers

    transformers.logging.set_verbosity_error()
    tokens = prepare(DataSpec()).train
    peak = measure_peak()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"measured fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for d in args.sizes:
            shape = shape_for("llama", d, VOCAB, CONTEXT)
            fpt = flops_per_token(shape)
            # roughly equal wall time per measurement across sizes
            steps = args.steps or max(4, min(40, int(3e11 / (fpt * MICRO_BATCH * CONTEXT))))
            runs = {"ours": [], "plain": [], "trainer": []}
            for _ in range(args.rounds):  # interleaved, so drifts in load hit all three
                runs["ours"].append(ours(d, steps, workdir))
                runs["plain"].append(plain(d, steps, tokens))
                runs["trainer"].append(hf_trainer(d, steps, tokens, workdir))
            med = {k: statistics.median(v) for k, v in runs.items()}
            rows.append(
                {
                    "d_model": d,
                    "params_nonembed": param_counts(shape)["nonembed"],
                    "steps": steps,
                    "tokens_per_s": med,
                    "mfu": {k: v * fpt / peak for k, v in med.items()},
                    "ratio_vs_plain": med["ours"] / med["plain"],
                    "ratio_vs_hf_trainer": med["ours"] / med["trainer"],
                    "spread": {k: (min(v), max(v)) for k, v in runs.items()},
                }
            )

    print()
    print(
        f"{'d_model':>7} {'N':>9} {'ours tok/s':>11} {'plain':>9} {'trainer':>9} "
        f"{'ours MFU':>9} {'plain MFU':>9} {'vs plain':>9} {'vs trainer':>10}"
    )
    for r in rows:
        t, m = r["tokens_per_s"], r["mfu"]
        print(
            f"{r['d_model']:>7} {r['params_nonembed']:>9,} {t['ours']:>11,.0f} {t['plain']:>9,.0f} "
            f"{t['trainer']:>9,.0f} {m['ours']:>9.1%} {m['plain']:>9.1%} "
            f"{r['ratio_vs_plain']:>9.2f} {r['ratio_vs_hf_trainer']:>10.2f}"
        )
    summary = {
        "benchmark": "train_throughput",
        "peak_flops": peak,
        "ratio_vs_plain": min(r["ratio_vs_plain"] for r in rows),
        "ratio_vs_hf_trainer": min(r["ratio_vs_hf_trainer"] for r in rows),
        "mfu_largest": rows[-1]["mfu"]["ours"],
        "sizes": rows,
    }
    print(json.dumps(summary, default=lambda x: round(x, 6) if isinstance(x, float) else x))
    if not math.isfinite(summary["ratio_vs_plain"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
