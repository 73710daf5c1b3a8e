"""Synthetic run records for the analysis tests, written as docs/run-record.md describes.

Losses follow a known L(N, D) = E + A/N^alpha + B/D^beta (N = non-embedding parameters,
D = tokens seen) with multiplicative noise, so tests can check what the analysis
recovers without training anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# Constants chosen so models of 1e5..1e7 parameters land at losses of 2..6 nats/token,
# like the project's small sweeps; a = beta / (alpha + beta) = 0.45.
TRUE = {"E": 1.5, "A": 75.0, "B": 90.0, "alpha": 0.34, "beta": 0.28}
VOCAB = 256
CONTEXT = 128


def true_loss(n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray:
    """The law the synthetic runs are drawn from."""
    t = TRUE
    return t["E"] + t["A"] / np.power(n, t["alpha"]) + t["B"] / np.power(d, t["beta"])


def sizes(n_layers: int, d_model: int) -> dict[str, int]:
    """Parameter counts of a GPT-like model under the three conventions."""
    nonembed = 12 * n_layers * d_model**2
    matmul = nonembed + VOCAB * d_model
    total = matmul + VOCAB * d_model + CONTEXT * d_model
    return {"params_nonembed": nonembed, "params_matmul": matmul, "params_total": total}


def write_run(
    sweep_dir: Path,
    run_id: str,
    *,
    n_layers: int,
    d_model: int,
    tokens: float,
    status: str = "completed",
    n_evals: int = 16,
    noise: float = 0.005,
    seed: int = 0,
) -> Path:
    """Write one run's summary.json and metrics.jsonl; return the run directory."""
    rng = np.random.default_rng(seed)
    run_dir = sweep_dir / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    counts = sizes(n_layers, d_model)
    per_token = 6 * counts["params_matmul"] + 12 * n_layers * CONTEXT * d_model
    batch = 4096
    steps_total = max(n_evals, int(round(tokens / batch)))
    # Evaluations log-spaced from early in training, so curves of neighbouring sizes overlap
    # in compute, as real learning curves do (the envelope of approach 1 needs that).
    eval_steps = np.unique(np.geomspace(steps_total / 300, steps_total, n_evals).astype(int))
    eval_steps = eval_steps[eval_steps > 0]
    lines = []
    for step in eval_steps:
        seen = float(step * batch)
        clean = true_loss(counts["params_nonembed"], seen)
        val = float(clean * np.exp(noise * rng.standard_normal()))
        lines.append(
            {
                "step": int(step),
                "tokens": seen,
                "flops": seen * per_token,
                "train_loss": val * 1.01,
                "val_loss": val,
                "lr": 1e-3,
                "elapsed_s": float(step) * 0.01,
            }
        )
    final = lines[-1]
    if status == "diverged":
        final_loss = float("nan")
    else:
        final_loss = final["val_loss"]
    summary = {
        "schema": 1,
        "run_id": run_id,
        "sweep": sweep_dir.name,
        "status": status,
        "family": "gpt2",
        "n_layers": n_layers,
        "d_model": d_model,
        "n_heads": max(1, d_model // 64),
        "d_ff": 4 * d_model,
        "vocab_size": VOCAB,
        "context": CONTEXT,
        **counts,
        "tokens": final["tokens"],
        "tokens_target": final["tokens"],
        "flops": final["flops"],
        "flops_6nd": 6.0 * counts["params_nonembed"] * final["tokens"],
        "flops_per_token": per_token,
        "step": final["step"],
        "steps_total": final["step"],
        "final_val_loss": final_loss,
        "best_val_loss": min(line["val_loss"] for line in lines),
        "wall_s": 10.0,
        "tokens_per_s": 1e5,
        "mfu": 0.1,
        "peak_flops": 1e12,
        "device": "cpu",
        "versions": {"python": "3.11", "torch": None, "transformers": None, "scaling_lab": "0"},
        "git_sha": None,
        "corpus": {
            "name": "synthetic",
            "fingerprint": "abc123",
            "n_train_tokens": 1,
            "n_val_tokens": 1,
        },
        "tokenizer": {"name": "bytes", "vocab_size": VOCAB, "fingerprint": "bytes"},
        "seed": seed,
        "optim": {"lr": 1e-3},
        "launcher": {"kind": "local", "job_id": None},
        "error": "loss is NaN at step 40" if status == "diverged" else None,
        "updated_at": "2026-01-01T00:00:00Z",
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return run_dir


# (n_layers, d_model) of a size ladder spanning two orders of magnitude of parameters.
LADDER = [(2, 64), (3, 96), (4, 128), (6, 192), (8, 256), (10, 320), (12, 384)]


def write_sweep(
    root: Path,
    name: str = "demo",
    *,
    tokens_per_param: float = 20.0,
    fixed_tokens: float | None = None,
    ladder: list[tuple[int, int]] | None = None,
    diverged: bool = False,
    noise: float = 0.005,
    prefix: str = "run",
) -> Path:
    """A sweep dir with one completed run per ladder size (+ an optional diverged run).

    Each size trains on ``tokens_per_param`` tokens per non-embedding parameter (the
    usual size sweep), or on ``fixed_tokens`` tokens whatever its size: then the smaller
    models train far past their compute-optimal point and the learning curves of
    neighbouring sizes overlap in compute, as approach 1 needs.
    """
    sweep = root / name
    for i, (n_layers, d_model) in enumerate(ladder or LADDER):
        n = sizes(n_layers, d_model)["params_nonembed"]
        write_run(
            sweep,
            f"{prefix}{i:02d}{d_model:04d}",
            n_layers=n_layers,
            d_model=d_model,
            tokens=fixed_tokens if fixed_tokens is not None else tokens_per_param * n,
            noise=noise,
            seed=i,
        )
    if diverged:
        write_run(sweep, "divergedrun1", n_layers=4, d_model=512, tokens=1e7, status="diverged")
    return sweep


#: Tokens of the largest ladder model at 20 tokens per parameter; with ``fixed_tokens``
#: set to this, every smaller model trains well past its compute-optimal point.
FIXED_TOKENS = 20.0 * sizes(*LADDER[-1])["params_nonembed"]


def write_isoflop_sweep(root: Path, name: str = "isoflop", *, noise: float = 0.003) -> Path:
    """A sweep with several model sizes at each of three compute budgets (IsoFLOP slices)."""
    sweep = root / name
    budgets = [3e13, 1e14, 3e14]
    for b, budget in enumerate(budgets):
        for i, (n_layers, d_model) in enumerate(LADDER):
            counts = sizes(n_layers, d_model)
            per_token = 6 * counts["params_matmul"] + 12 * n_layers * CONTEXT * d_model
            tokens = budget / per_token
            if tokens < 4096 * 12:  # too few steps to be a run
                continue
            write_run(
                sweep,
                f"iso{b}{i:02d}{d_model:04d}",
                n_layers=n_layers,
                d_model=d_model,
                tokens=tokens,
                noise=noise,
                seed=10 * b + i,
            )
    return sweep
