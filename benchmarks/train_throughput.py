"""Training throughput: our loop against a hand-written GPT and the Hugging Face Trainer.

For several sizes of the default family (Llama shapes), measured side by side in one
process, interleaved over rounds, medians reported:

  (a) ours     `scaling.train.train`, exactly as `scaling-train` runs it (`train.dtype=auto`:
               bf16 autocast where the CPU runs bf16 natively, from d_model 128, else fp32)
  (b) plain    a nanoGPT-style model of identical shape in plain torch (SDPA attention,
               fused AdamW), trained by a ten-line loop in the same precision as (a), so
               that (a)/(b) measures the framework and not the number format
  (c) trainer  the Hugging Face `Trainer` on the same HF model with its defaults (fp32)
  (a') ours with `train.dtype=fp32`, to show what (a)/(c) owes to the precision choice

MFU is against peaks measured in the same run with large fp32 and bf16 matmuls: that of
the precision each loop computes in, and, as the goal states it, the fp32 peak.

    python benchmarks/train_throughput.py            # ~3 minutes on 2 CPU cores
    python benchmarks/train_throughput.py --quick    # one small size, a smoke check

Ends with one JSON line: ratio_vs_plain and ratio_vs_hf_trainer (smallest over sizes),
mfu_largest (against the peak of the precision used) and mfu_largest_vs_fp32_peak,
ratio_fp32_vs_hf_trainer, and the per-size figures.
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


def measure_peak(dtype: torch.dtype, n: int = 2048, reps: int = 10) -> float:
    """FLOP/s of a large matmul: the ceiling MFU is measured against."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t)
    return 2 * n**3 / min(times)


# ---------------------------------------------------------------------------------------
# (a) ours: the real training function on the real corpus


def ours(d_model: int, steps: int, workdir: Path, dtype: str = "auto") -> tuple[float, str]:
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
        f"train.dtype={dtype}",
    ]
    with initialize_config_module("sweeps", version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    out = workdir / f"ours-{d_model}-{time.monotonic_ns()}"
    train(cfg, out)
    summary = read_summary(out)
    return summary["tokens_per_s"], summary["dtype"]


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


def plain(d_model: int, steps: int, tokens, dtype: str) -> float:
    shape = shape_for("llama", d_model, VOCAB, CONTEXT)
    torch.manual_seed(0)
    model = PlainLlama(shape)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    times = []
    for step in range(steps + 1):
        x, y = (torch.from_numpy(a) for a in sample_batch(tokens, MICRO_BATCH, CONTEXT, 0, step))
        t = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
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
    peaks = {"fp32": measure_peak(torch.float32), "bf16": measure_peak(torch.bfloat16)}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(
        f"measured matmul peaks: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
        f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s"
    )

    loops = ("ours", "plain", "trainer", "ours_fp32")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for d in args.sizes:
            shape = shape_for("llama", d, VOCAB, CONTEXT)
            fpt = flops_per_token(shape)
            # roughly equal wall time per measurement across sizes
            steps = args.steps or max(4, min(40, int(3e11 / (fpt * MICRO_BATCH * CONTEXT))))
            runs = {k: [] for k in loops}
            for _ in range(args.rounds):  # interleaved, so drifts in load hit all of them
                tok_s, dtype = ours(d, steps, workdir)
                runs["ours"].append(tok_s)
                runs["plain"].append(plain(d, steps, tokens, dtype))
                runs["trainer"].append(hf_trainer(d, steps, tokens, workdir))
                runs["ours_fp32"].append(ours(d, steps, workdir, "fp32")[0])
            med = {k: statistics.median(v) for k, v in runs.items()}
            precision = {"ours": dtype, "plain": dtype, "trainer": "fp32", "ours_fp32": "fp32"}
            rows.append(
                {
                    "d_model": d,
                    "params_nonembed": param_counts(shape)["nonembed"],
                    "steps": steps,
                    "dtype": dtype,
                    "tokens_per_s": med,
                    "mfu": {k: med[k] * fpt / peaks[precision[k]] for k in loops},
                    "mfu_vs_fp32_peak": {k: med[k] * fpt / peaks["fp32"] for k in loops},
                    "ratio_vs_plain": med["ours"] / med["plain"],
                    "ratio_vs_hf_trainer": med["ours"] / med["trainer"],
                    "ratio_fp32_vs_hf_trainer": med["ours_fp32"] / med["trainer"],
                    "spread": {k: (min(v), max(v)) for k, v in runs.items()},
                }
            )

    print()
    print("tokens/s (median over rounds); MFU against the peak of the precision used")
    print(
        f"{'d_model':>7} {'N':>10} {'dtype':>5} {'ours':>8} {'plain':>8} {'trainer':>8} "
        f"{'ours fp32':>9} {'ours MFU':>8} {'vs plain':>8} {'vs trainer':>10} {'(fp32)':>6}"
    )
    for r in rows:
        t = r["tokens_per_s"]
        print(
            f"{r['d_model']:>7} {r['params_nonembed']:>10,} {r['dtype']:>5} {t['ours']:>8,.0f} "
            f"{t['plain']:>8,.0f} {t['trainer']:>8,.0f} {t['ours_fp32']:>9,.0f} "
            f"{r['mfu']['ours']:>8.1%} {r['ratio_vs_plain']:>8.2f} "
            f"{r['ratio_vs_hf_trainer']:>10.2f} {r['ratio_fp32_vs_hf_trainer']:>6.2f}"
        )
    largest = rows[-1]
    summary = {
        "benchmark": "train_throughput",
        "peak_flops": peaks,
        "ratio_vs_plain": min(r["ratio_vs_plain"] for r in rows),
        "ratio_vs_hf_trainer": min(r["ratio_vs_hf_trainer"] for r in rows),
        "ratio_fp32_vs_hf_trainer": min(r["ratio_fp32_vs_hf_trainer"] for r in rows),
        "mfu_largest": largest["mfu"]["ours"],
        "mfu_largest_vs_fp32_peak": largest["mfu_vs_fp32_peak"]["ours"],
        "dtype": largest["dtype"],
        "sizes": rows,
    }
    print(json.dumps(summary, default=lambda x: round(x, 6) if isinstance(x, float) else x))
    if not math.isfinite(summary["ratio_vs_plain"]):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
