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


# --------------------------------------------------------------------------------------
# Multi-budget (warmup-stable-decay) records: one trunk per size, a record per budget

#: How far the stable phase's loss sits above the decayed law (nats/token): the
#: learning rate has not been annealed there.
STABLE_GAP = 0.08
#: Share of a budget's steps spent decaying, and evaluations along the decay.
DECAY_FRACTION = 0.2
DECAY_EVALS = 4
BATCH = 4096


def _per_token(n_layers: int, d_model: int) -> float:
    counts = sizes(n_layers, d_model)
    return 6 * counts["params_matmul"] + 12 * n_layers * CONTEXT * d_model


def write_trunk(
    sweep_dir: Path,
    trunk_id: str,
    *,
    n_layers: int,
    d_model: int,
    tokens: list[float],
    schedule: str = "wsd_s",
    flops_targets: list[float] | None = None,
    offset: float = 0.0,
    noise: float = 0.003,
    unique_tokens: float | None = None,
    seed: int = 0,
    trunk_record: bool = True,
) -> list[Path]:
    """Write the budget records of one trunk (and its own bookkeeping record).

    Budget ``k`` trains ``tokens[k]`` tokens (whole steps of ``BATCH``): its curve is the
    trunk's path -- the stable phase at ``true_loss + STABLE_GAP`` times the trunk's
    shared ``exp(offset)``, and for ``wsd_s`` the decays of the earlier budgets, from
    whose decayed weights WSD-S goes on -- up to where its own decay starts, then its
    decay, ending at ``true_loss(N, D_k) * exp(offset + eps_k)`` with ``eps_k`` noise of
    s.d. ``noise``. ``offset`` is shared by all budgets of the trunk: the correlated
    error that makes the bootstrap draw whole trunks. Returns the budget record dirs.
    """
    rng = np.random.default_rng(seed)
    counts = sizes(n_layers, d_model)
    n = counts["params_nonembed"]
    per_token = _per_token(n_layers, d_model)
    steps = [max(8, int(round(t / BATCH))) for t in tokens]
    if steps != sorted(steps) or len(set(steps)) != len(steps):
        raise ValueError("a trunk's budgets must increase")
    budgets = [s * BATCH for s in steps]
    starts = [int(round((1 - DECAY_FRACTION) * s)) for s in steps]
    ids = [f"{trunk_id}b{k}" for k in range(len(steps))]

    def row(step: int, loss: float, phase: str) -> dict:
        seen = float(step * BATCH)
        return {"step": int(step), "tokens": seen, "flops": seen * per_token,
                "train_loss": loss * 1.01, "val_loss": loss, "lr": 1e-3,
                "elapsed_s": step * 0.01, "phase": phase}  # fmt: skip

    def decay(k: int, final_noise: float) -> list[dict]:
        rows = []
        for u in np.linspace(0, 1, DECAY_EVALS + 1)[1:]:
            step = int(round(starts[k] + u * (steps[k] - starts[k])))
            clean = true_loss(n, step * BATCH) * np.exp(offset)
            rows.append(row(step, float(clean + STABLE_GAP * (1 - u) ** 2), "decay"))
        rows[-1]["val_loss"] = float(true_loss(n, budgets[k]) * np.exp(offset + final_noise))
        return rows

    # The trunk's path: log-spaced evaluations of its stable phase (the first few in warmup).
    path_steps = np.unique(np.geomspace(max(1, steps[0] / 60), starts[-1], 24).astype(int))
    path = []
    for i, step in enumerate(path_steps):
        clean = (true_loss(n, step * BATCH) + STABLE_GAP) * np.exp(offset)
        loss = float(clean * np.exp(noise * rng.standard_normal()))
        path.append(row(int(step), loss, "warmup" if i < 2 else "stable"))
    finals = rng.normal(0.0, noise, len(steps))
    decays = [decay(k, finals[k]) for k in range(len(steps))]

    dirs = []
    for k, run_id in enumerate(ids):
        lines = [r for r in path if r["step"] < starts[k]]
        if schedule == "wsd_s":
            # WSD-S goes on from each earlier budget's decayed weights: those decays are
            # on this budget's path, in place of the stable phase over their steps.
            lines = [
                r for r in lines if not any(starts[j] <= r["step"] <= steps[j] for j in range(k))
            ]
            lines += [r for j in range(k) for r in decays[j]]
            lines.sort(key=lambda r: r["step"])
        lines += decays[k]
        final = lines[-1]
        record = _summary(sweep_dir, run_id, n_layers, d_model, final, lines, seed)
        record.update(
            schedule=schedule,
            trunk_id=trunk_id,
            budget_index=k,
            budgets=budgets,
            flops_target=None if flops_targets is None else flops_targets[k],
        )
        if unique_tokens is not None:
            record.update(unique_tokens=unique_tokens, epochs=final["tokens"] / unique_tokens)
        run_dir = sweep_dir / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "summary.json").write_text(json.dumps(record, indent=1))
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
        dirs.append(run_dir)
    if trunk_record:
        # The trunk's own bookkeeping: its loss is at the un-decayed stable rate, no result.
        trunk_dir = sweep_dir / trunk_id
        trunk_dir.mkdir(parents=True, exist_ok=True)
        bookkeeping = {
            "schema": 1, "role": "trunk", "trunk_id": trunk_id, "sweep": sweep_dir.name,
            "status": "completed", "schedule": schedule, "step": int(path[-1]["step"]),
            "budgets": budgets, "runs": ids, "final_val_loss": path[-1]["val_loss"],
        }  # fmt: skip
        (trunk_dir / "summary.json").write_text(json.dumps(bookkeeping, indent=1))
        (trunk_dir / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in path))
    return dirs


def _summary(sweep_dir, run_id, n_layers, d_model, final, lines, seed) -> dict:
    """The summary.json of a completed run ending at ``final`` (as write_run writes it)."""
    counts = sizes(n_layers, d_model)
    return {
        "schema": 1, "run_id": run_id, "sweep": sweep_dir.name, "status": "completed",
        "family": "gpt2", "n_layers": n_layers, "d_model": d_model,
        "n_heads": max(1, d_model // 64), "d_ff": 4 * d_model, "vocab_size": VOCAB,
        "context": CONTEXT, **counts, "tokens": final["tokens"],
        "tokens_target": final["tokens"], "flops": final["flops"],
        "flops_6nd": 6.0 * counts["params_nonembed"] * final["tokens"],
        "flops_per_token": _per_token(n_layers, d_model), "step": final["step"],
        "steps_total": final["step"], "final_val_loss": final["val_loss"],
        "best_val_loss": min(line["val_loss"] for line in lines), "wall_s": 10.0,
        "tokens_per_s": 1e5, "mfu": 0.1, "peak_flops": 1e12, "device": "cpu",
        "corpus": {"name": "synthetic", "fingerprint": "abc123", "n_train_tokens": 1,
                   "n_val_tokens": 1},
        "seed": seed, "error": None, "updated_at": "2026-01-01T00:00:00Z",
    }  # fmt: skip


#: Tokens per parameter of the budgets of each trunk of :func:`write_trunk_sweep`: a
#: 256x span, so that the curves of three neighbouring sizes overlap in compute.
BUDGETS_PER_PARAM = tuple(2.0**k for k in range(9))  # 1 .. 256


def write_trunk_sweep(
    root: Path,
    name: str = "wsd",
    *,
    ladder: list[tuple[int, int]] | None = None,
    budgets_per_param: tuple[float, ...] = BUDGETS_PER_PARAM,
    schedule: str = "wsd_s",
    trunk_sd: float = 0.0,
    noise: float = 0.003,
    seed: int = 0,
) -> Path:
    """A sweep of one trunk per ladder size, each cut at ``budgets_per_param`` × N tokens.

    ``trunk_sd``: s.d. of the offset (in log loss) each trunk shares across its budgets.
    """
    sweep = root / name
    rng = np.random.default_rng(seed)
    for i, (n_layers, d_model) in enumerate(ladder or LADDER):
        n = sizes(n_layers, d_model)["params_nonembed"]
        write_trunk(
            sweep, f"trunk{i:02d}{d_model:04d}", n_layers=n_layers, d_model=d_model,
            tokens=[r * n for r in budgets_per_param], schedule=schedule,
            offset=float(rng.normal(0.0, trunk_sd)) if trunk_sd else 0.0, noise=noise,
            seed=seed * 100 + i,
        )  # fmt: skip
    return sweep


#: The compute budgets (FLOP) of :func:`write_isoflop_trunk_sweep`.
ISOFLOP_BUDGETS = (3e13, 1e14, 3e14)


def write_isoflop_trunk_sweep(
    root: Path, name: str = "isowsd", *, noise: float = 0.003, seed: int = 0
) -> Path:
    """An IsoFLOP sweep by WSD: each size's trunk decays at every budget C it can reach
    in at least 12 steps, the records asking ``flops_target = C``; the compute achieved
    in whole steps is close to C but not equal to it."""
    sweep = root / name
    for i, (n_layers, d_model) in enumerate(LADDER):
        per_token = _per_token(n_layers, d_model)
        targets = [c for c in ISOFLOP_BUDGETS if c / per_token >= BATCH * 12]
        if not targets:
            continue
        write_trunk(
            sweep, f"iso{i:02d}{d_model:04d}", n_layers=n_layers, d_model=d_model,
            tokens=[c / per_token for c in targets], flops_targets=targets, noise=noise,
            seed=seed * 100 + i,
        )  # fmt: skip
    return sweep
