"""Schedule parity: does a budget cut from a trunk reach the loss of a run trained to it?

Hägele et al. (2024) report that WSD with a 20 % cooldown matches cosine at every
budget; the study-cost savings of ``benchmarks/study_cost.py`` are worth having only if
that holds here. For each size (default d_model 32 and 64, ``experiment=demo``
settings: Llama, context 128, 1,024-token steps, decay over 20 %, 1 - sqrt shape, seed
0), at one budget B (default 1,048,576 tokens), measured in one process:

  cosine  a run trained to exactly B (``optim.schedule=cosine``, ``train.tokens=B``):
          warmup 5 % of its run, cosine to 10 % of the peak at B
  wsd     budget 2 of a forked-WSD trunk ``train.budgets=[B/2, B]``: the trunk at the
          peak, its cooldown branch forking at 0.8 B and decaying to B
  wsd_s   budget 2 of a WSD-S trunk ``train.budgets=[B/2, B]``: one trajectory, decayed
          at B/2, back to the peak, decayed again over the last 20 % of (B/2, B]

and each record's ``final_val_loss`` (the same fixed validation batches for all). The
trunks' warmup is 5 % of their first budget B/2, the cosine run's 5 % of B; the floor
(10 % of the peak) and the peak rate are the same.

Noise: the cosine run at the first size is repeated with seeds 1, 2 (``--seeds``; seed
changes initialisation and data order): ``seed_std`` (sample std, ddof 1) and
``seed_range`` (max - min) over the seeds. Read a gap ``wsd - cosine`` or
``wsd_s - cosine`` (positive: the trunk's budget is worse) against them: a gap within
about one ``seed_range`` is parity at this scale; ``gap_*_over_seed_std`` gives it in
units of the noise (3 seeds pin a std only roughly).

    python benchmarks/schedule_parity.py            # 2 sizes, 1M tokens, 3 seeds
    python benchmarks/schedule_parity.py --sizes 32,64,96 --budget 2097152 --seeds 5
    python benchmarks/schedule_parity.py --quick    # d_model 16,24 at 32k tokens: a smoke test

Progress goes to stderr; the table to stdout, ending with one JSON line: ``sizes``,
``budget_tokens``, ``per_size`` (``cosine``, ``wsd``, ``wsd_s``, ``gap_wsd``, ``gap_wsd_s``
per size), ``seed_losses``, ``seed_mean``, ``seed_std``, ``seed_range``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SWEEP = "schedule_parity"
BASE = ("experiment=demo", f"sweep={SWEEP}", "train.budgets=null")
DEFAULT_SIZES, DEFAULT_BUDGET = (32, 64), 1048576
QUICK_SIZES, QUICK_BUDGET = (16, 24), 32768


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def sizes_arg(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected d_model values like 32,64, got {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive d_model values, got {text!r}")
    return values


def compose(*overrides: str) -> dict[str, Any]:
    """The config `scaling-train` would run, as plain containers (inside initialize)."""
    from hydra import compose as hydra_compose
    from omegaconf import OmegaConf

    return OmegaConf.to_container(hydra_compose("config", overrides=list(overrides)), resolve=True)


def run_dir(cfg: dict[str, Any], rid: str | None = None) -> Path:
    from scaling import results

    return results.run_dir(cfg["results_dir"], cfg["sweep"], rid or results.run_id(cfg))


def finished(cfg: dict[str, Any]) -> bool:
    """Whether the run (or the trunk and every budget record) is completed on disk."""
    from scaling import budgets, results

    ids = [results.run_id(cfg), *(budgets.record_ids(cfg) or [])]
    return all(
        (results.read_summary(run_dir(cfg, rid)) or {}).get("status") == "completed" for rid in ids
    )


def ensure(cfg: dict[str, Any], label: str) -> float:
    """Train the run unless it is recorded; the seconds it took here (0 when reused)."""
    from scaling.train import train

    if finished(cfg):
        progress(f"{label}: already recorded, reused")
        return 0.0
    progress(f"{label} ...")
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the trainer's progress: stderr
        summary = train(cfg, run_dir(cfg))
    if summary.get("status") != "completed":
        raise RuntimeError(f"{label} ended {summary.get('status')}: {summary.get('error')}")
    return time.perf_counter() - t0


def final_record(cfg: dict[str, Any], index: int | None = None) -> dict[str, Any]:
    """The summary of a run, or of budget ``index`` of a trunk."""
    from scaling import budgets, results

    rid = None if index is None else budgets.record_ids(cfg)[index]
    summary = results.read_summary(run_dir(cfg, rid))
    if not summary or summary.get("status") != "completed":
        raise RuntimeError(f"no completed record in {run_dir(cfg, rid)}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=sizes_arg, help="d_model values (default 32,64)")
    parser.add_argument(
        "--budget", type=int, help="B in tokens, the trunk's second budget (1048576)"
    )
    parser.add_argument("--seeds", type=int, default=3, help="cosine seeds at the first size (3)")
    parser.add_argument("--quick", action="store_true", help="d_model 16,24 at 32,768 tokens")
    parser.add_argument("--out", type=Path, help="keep the records here (default: a temp dir)")
    opts = parser.parse_args()
    sizes = opts.sizes or (QUICK_SIZES if opts.quick else DEFAULT_SIZES)
    budget = opts.budget or (QUICK_BUDGET if opts.quick else DEFAULT_BUDGET)
    if budget < 2:
        raise ValueError(f"--budget must be at least 2 tokens, got {budget}")
    if opts.seeds < 2:
        raise ValueError(f"--seeds must be at least 2 for a spread, got {opts.seeds}")
    trunk_budgets = f"train.budgets=[{budget // 2},{budget}]"

    from hydra import initialize_config_module

    with contextlib.ExitStack() as stack:
        if opts.out is None:
            out = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="parity-")))
        else:
            out = opts.out.resolve()
        stack.enter_context(initialize_config_module("sweeps", version_base="1.3"))
        progress(f"records in {out}")
        where = f"results_dir={out}"
        per_size: dict[str, dict[str, Any]] = {}
        seed_losses: list[float] = []
        t0 = time.perf_counter()
        for i, d in enumerate(sizes):
            size = f"model.d_model={d}"
            losses, tokens = {}, {}
            for schedule in ("wsd_s", "wsd"):
                cfg = compose(*BASE, size, "seed=0", f"optim.schedule={schedule}",
                              trunk_budgets, where)  # fmt: skip
                ensure(cfg, f"{schedule} trunk d_model {d}, budgets {budget // 2:,}, {budget:,}")
                s = final_record(cfg, index=1)
                losses[schedule], tokens[schedule] = s["final_val_loss"], s["tokens"]
            for seed in range(opts.seeds if i == 0 else 1):
                cfg = compose(*BASE, size, f"seed={seed}", "optim.schedule=cosine",
                              f"train.tokens={budget}", where)  # fmt: skip
                ensure(cfg, f"cosine d_model {d}, {budget:,} tokens, seed {seed}")
                s = final_record(cfg)
                if seed == 0:
                    losses["cosine"], tokens["cosine"], n = s["final_val_loss"], s["tokens"], s
                if i == 0:
                    seed_losses.append(s["final_val_loss"])
            if len(set(tokens.values())) != 1:
                raise RuntimeError(f"d_model {d}: the records trained unequal tokens {tokens}")
            per_size[str(d)] = {
                "params_nonembed": n["params_nonembed"],
                "tokens": tokens["cosine"],
                **losses,
                "gap_wsd": losses["wsd"] - losses["cosine"],
                "gap_wsd_s": losses["wsd_s"] - losses["cosine"],
            }
        elapsed = time.perf_counter() - t0

    seed_std = statistics.stdev(seed_losses)
    seed_range = max(seed_losses) - min(seed_losses)
    for row in per_size.values():
        for k in ("wsd", "wsd_s"):
            row[f"gap_{k}_over_seed_std"] = row[f"gap_{k}"] / seed_std if seed_std else None

    print(f"final validation loss at {budget:,} tokens (trunks: budget 2 of "
          f"[{budget // 2:,}, {budget:,}]), seed 0\n")  # fmt: skip
    print(f"{'d_model':>7} {'N nonemb':>9} {'cosine':>8} {'wsd':>8} {'wsd_s':>8} "
          f"{'wsd-cos':>8} {'wsd_s-cos':>9} {'/seed std':>9} {'/seed std':>9}")  # fmt: skip
    for d, r in per_size.items():
        over = [r[f"gap_{k}_over_seed_std"] for k in ("wsd", "wsd_s")]
        shown = [f"{x:>9.2f}" if x is not None else f"{'-':>9}" for x in over]
        print(f"{d:>7} {r['params_nonembed']:>9,} {r['cosine']:>8.4f} {r['wsd']:>8.4f} "
              f"{r['wsd_s']:>8.4f} {r['gap_wsd']:>+8.4f} {r['gap_wsd_s']:>+9.4f} "
              f"{shown[0]} {shown[1]}")  # fmt: skip
    print(f"\ncosine at d_model {sizes[0]}, seeds 0-{opts.seeds - 1}: "
          f"{', '.join(f'{x:.4f}' for x in seed_losses)}; mean {statistics.mean(seed_losses):.4f}, "
          f"std {seed_std:.4f}, max-min {seed_range:.4f}")  # fmt: skip
    worst = max(abs(r[f"gap_{k}"]) for r in per_size.values() for k in ("wsd", "wsd_s"))
    print(f"largest |gap| {worst:.4f} = {worst / seed_range if seed_range else float('nan'):.2f} "
          f"x the seed range; {elapsed:.0f} s")  # fmt: skip
    record = {
        "benchmark": "schedule_parity",
        "sizes": list(sizes),
        "budget_tokens": budget,
        "trunk_budgets": [budget // 2, budget],
        "per_size": per_size,
        "seed_losses": seed_losses,
        "seed_mean": statistics.mean(seed_losses),
        "seed_std": seed_std,
        "seed_range": seed_range,
        "max_abs_gap": worst,
        "within_seed_range": worst <= seed_range,
        "elapsed_s": round(elapsed, 1),
    }
    if opts.out is not None:
        record["out"] = str(out)
    print(json.dumps(record))


if __name__ == "__main__":
    from hydra.errors import HydraException

    try:
        main()
    except (ValueError, RuntimeError, OSError, HydraException) as e:
        raise SystemExit(f"schedule_parity: {type(e).__name__}: {e}") from None
