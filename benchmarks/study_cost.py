"""The cost of a study: one scaling grid trained three ways, in FLOPs and in wall time.

A grid of model sizes, each trained to several doubling token budgets, costs:

  cosine  one run per (size, budget), each to its own budget: the sum of every
          budget's steps (a cosine run's intermediate points are not what a shorter
          run reaches, so nothing is shared)
  wsd     one forked-WSD trunk per size (``optim.schedule=wsd``): the largest budget,
          plus the cooldown branch of every smaller one
  wsd_s   one WSD-S trunk per size (``optim.schedule=wsd_s``): the largest budget only

FLOPs are ``steps x batch tokens x analytic FLOPs per token`` of each size, the steps
taken from the project's own plan (``scaling.plan.plan_run`` on the composed config:
``scaling.budgets.plan_budgets`` and ``segments`` for the trunks, summing segment
lengths), so they are what training spends, whole steps and all. Goal:
``ratio_wsd_s_vs_cosine <= 0.55``. With budgets b, 2b, 4b, 8b the ideal is 8/15 = 0.533
for WSD-S and (8 + 0.2 * 7)/15 = 0.627 for WSD with a 20 % cooldown, whatever the sizes.

``--train`` trains the grid all three ways (in this process, one run after another),
checks each trunk's recorded ``steps_trained`` and each cosine run's ``step`` against the
plan, measures wall time, and fits Chinchilla's law ``L = E + A/N^a + B/D^b``
(``analysis.fit.fit_frame``, 200 bootstrap resamples, N non-embedding) to each set's
records, reporting the compute-optimal exponent a = beta/(alpha+beta) of
``N_opt ~ C^a`` with its 95 % bootstrap interval (``analysis.optimal.approach3``, as
``scaling-analyze frontier --approach 3``). A trunk's budgets share its noise, so its
records are resampled together (whole trunks), which widens the trunks' intervals
against the cosine runs'; read "fits no worse" as: each schedule's a lies inside the
cosine interval and its interval is of similar width.

    python benchmarks/study_cost.py                     # analytic, seconds, no training
    python benchmarks/study_cost.py --sizes 16,32,64 --budgets-per-param 5,10,20,40
    python benchmarks/study_cost.py --train             # 10.6M tokens in all (64k-512k per run)
    python benchmarks/study_cost.py --quick             # --train on 3 sizes, 16k-128k tokens

Model family, context and batch are the demo's (``experiment=demo``: Llama, context
128, 1,024 tokens per step, WSD decay over 20 %, 1 - sqrt shape), seed 0. Progress goes
to stderr; the table to stdout, ending with one JSON line: ``cosine_flops``,
``wsd_flops``, ``wsd_s_flops``, ``ratio_wsd_s_vs_cosine``, ``ratio_wsd_vs_cosine`` and,
with ``--train``, ``steps_match``, ``wall_s_*``, ``a_*`` and ``a_*_interval``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SCHEDULES = ("cosine", "wsd", "wsd_s")
DEFAULT_SIZES = (16, 24, 32, 48, 64)
DEFAULT_PER_PARAM = (2.5, 5.0, 10.0, 20.0)  # x N (total params): up to Chinchilla's ~20
TRAIN_BUDGETS = (65536, 131072, 262144, 524288)  # tokens: 64 to 512 steps of 1,024
QUICK_SIZES = (16, 24, 32)
QUICK_BUDGETS = (16384, 32768, 65536, 131072)
SWEEP = "study_cost"
BASE = ("experiment=demo", "seed=0", f"sweep={SWEEP}", "train.budgets=null")


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def numbers(kind: type):
    def parse(text: str) -> tuple:
        try:
            values = tuple(kind(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated numbers, got {text!r}"
            ) from None
        if not values or any(v <= 0 for v in values):
            raise argparse.ArgumentTypeError(f"expected positive numbers, got {text!r}")
        return values

    return parse


def compose(*overrides: str) -> dict[str, Any]:
    """The config `scaling-train` would run, as plain containers (inside initialize)."""
    from hydra import compose as hydra_compose
    from omegaconf import OmegaConf

    return OmegaConf.to_container(hydra_compose("config", overrides=list(overrides)), resolve=True)


# ---------------------------------------------------------------------------------------
# The plan: what each way of training the grid spends, by the project's own functions


def plan_grid(sizes, budgets, per_param: bool, results_dir: Path) -> list[dict[str, Any]]:
    """Per size: the configs of its runs/trunks and their planned optimiser steps."""
    from scaling.plan import plan_run

    key = "train.budgets_per_param" if per_param else "train.budgets"
    asked = "[" + ",".join(f"{b:g}" if per_param else str(int(b)) for b in budgets) + "]"
    grid = []
    for d in sizes:
        row: dict[str, Any] = {"d_model": d, "cosine_cfgs": []}
        for schedule in ("wsd", "wsd_s"):
            cfg = compose(*BASE, f"model.d_model={d}", f"optim.schedule={schedule}",
                          f"{key}={asked}", f"results_dir={results_dir / schedule}")  # fmt: skip
            *_, counts, fpt, plan = plan_run(cfg)
            row[f"{schedule}_cfg"] = cfg
            row[f"{schedule}_steps"] = sum(s.end - s.start for s in plan["segments"])
            row["budget_tokens"] = [b.tokens_target for b in plan["budgets"]]
        # a cosine run to exactly each budget the trunks were asked for, in tokens
        row["cosine_steps"] = 0
        for tokens in row["budget_tokens"]:
            cfg = compose(*BASE, f"model.d_model={d}", "optim.schedule=cosine",
                          f"train.tokens={tokens}", f"results_dir={results_dir / 'cosine'}")  # fmt: skip
            *_, plan = plan_run(cfg)
            row["cosine_cfgs"].append((cfg, plan["steps_total"]))
            row["cosine_steps"] += plan["steps_total"]
        row.update(n_nonembed=counts["nonembed"], n_total=counts["total"], fpt=fpt,
                   batch=plan["batch_tokens"])  # fmt: skip
        for s in SCHEDULES:
            row[f"{s}_flops"] = row[f"{s}_steps"] * row["batch"] * fpt
        grid.append(row)
    return grid


def print_plan(grid: list[dict[str, Any]]) -> dict[str, float]:
    print(f"{'d_model':>7} {'N nonemb':>9} {'budgets (tokens)':>36} {'steps cos':>9} "
          f"{'wsd':>6} {'wsd_s':>6} {'FLOPs cosine':>13} {'wsd':>10} {'wsd_s':>10} "
          f"{'wsd/cos':>7} {'wsd_s/cos':>9}")  # fmt: skip
    for r in grid:
        budgets = ",".join(f"{t / 1000:.0f}k" for t in r["budget_tokens"])
        print(f"{r['d_model']:>7} {r['n_nonembed']:>9,} {budgets:>36} {r['cosine_steps']:>9} "
              f"{r['wsd_steps']:>6} {r['wsd_s_steps']:>6} {r['cosine_flops']:>13.4g} "
              f"{r['wsd_flops']:>10.4g} {r['wsd_s_flops']:>10.4g} "
              f"{r['wsd_flops'] / r['cosine_flops']:>7.3f} "
              f"{r['wsd_s_flops'] / r['cosine_flops']:>9.3f}")  # fmt: skip
    totals = {s: sum(r[f"{s}_flops"] for r in grid) for s in SCHEDULES}
    print(f"{'total':>7} {'':>9} {'':>36} {sum(r['cosine_steps'] for r in grid):>9} "
          f"{sum(r['wsd_steps'] for r in grid):>6} {sum(r['wsd_s_steps'] for r in grid):>6} "
          f"{totals['cosine']:>13.4g} {totals['wsd']:>10.4g} {totals['wsd_s']:>10.4g} "
          f"{totals['wsd'] / totals['cosine']:>7.3f} {totals['wsd_s'] / totals['cosine']:>9.3f}")  # fmt: skip
    return totals


# ---------------------------------------------------------------------------------------
# --train: the grid trained three ways


def done(cfg: dict[str, Any]) -> dict[str, Any] | None:
    """The finished record of a run or trunk (all its budgets recorded), else None."""
    from scaling import budgets, results

    directory = results.run_dir(cfg["results_dir"], cfg["sweep"], results.run_id(cfg))
    summary = results.read_summary(directory)
    if not summary or summary.get("status") != "completed":
        return None
    for rid in budgets.record_ids(cfg) or []:
        record = results.read_summary(results.run_dir(cfg["results_dir"], cfg["sweep"], rid))
        if not record or record.get("status") != "completed":
            return None
    return summary


def train_one(cfg: dict[str, Any], label: str) -> tuple[dict[str, Any], bool]:
    """Train a run (or trunk) unless its records are finished; (summary, trained now)."""
    from scaling import results
    from scaling.train import train

    summary = done(cfg)
    if summary is not None:
        progress(f"{label}: already recorded, reused")
        return summary, False
    progress(f"{label} ...")
    directory = results.run_dir(cfg["results_dir"], cfg["sweep"], results.run_id(cfg))
    with contextlib.redirect_stdout(sys.stderr):  # the trainer's progress: stderr
        summary = train(cfg, directory)
    if summary.get("status") != "completed":
        raise RuntimeError(f"{label} ended {summary.get('status')}: {summary.get('error')}")
    return summary, True


def train_grid(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """Train every set; measured steps, FLOPs, wall time, and whether steps match plans."""
    out: dict[str, Any] = {"steps_match": True, "mismatches": [], "reused": 0}
    for schedule in SCHEDULES:
        steps = flops = wall = 0.0
        t0 = time.perf_counter()
        for r in grid:
            if schedule == "cosine":
                jobs = [(cfg, planned) for cfg, planned in r["cosine_cfgs"]]
            else:
                jobs = [(r[f"{schedule}_cfg"], r[f"{schedule}_steps"])]
            for cfg, planned in jobs:
                tokens = cfg["train"]["tokens"]
                label = f"{schedule} d_model {r['d_model']}" + (
                    f", {tokens:,} tokens" if tokens else " trunk"
                )
                summary, trained = train_one(cfg, label)
                out["reused"] += not trained
                real = summary["steps_trained"] if schedule != "cosine" else summary["step"]
                if real != planned:
                    out["steps_match"] = False
                    out["mismatches"].append(f"{label}: {real} steps trained, {planned} planned")
                steps += real
                flops += real * summary["optim"]["batch_tokens"] * summary["flops_per_token"]
                wall += summary["wall_s"]
        out[f"{schedule}_steps_real"] = int(steps)
        out[f"{schedule}_flops_real"] = flops
        out[f"wall_s_{schedule}"] = round(wall, 2)  # the records' own: the training loops
        out[f"elapsed_s_{schedule}"] = round(time.perf_counter() - t0, 2)  # with set-up
    return out


def fit_sets(out_dir: Path, n_boot: int) -> dict[str, Any]:
    """Chinchilla's law on each set's records: a = beta/(alpha+beta) and its interval."""
    from analysis.fit import fit_frame
    from analysis.io import load_runs
    from analysis.optimal import approach3

    fits = {}
    for schedule in SCHEDULES:
        df = load_runs(out_dir / schedule)
        result = fit_frame(df, "chinchilla", bootstrap=n_boot, seed=0)
        frontier = approach3(result)
        rms = float((result.residuals**2).mean() ** 0.5)
        fits[schedule] = {
            "n": int(result.n),
            "a": frontier.a,
            "interval": list(frontier.interval) if frontier.interval else None,
            "alpha": result.params["alpha"],
            "beta": result.params["beta"],
            "E": result.params["E"],
            "converged": bool(result.converged),
            "rms_log_residual": rms,
            "resampling": result.resampling(),
        }
    return fits


def print_training(measured: dict[str, Any], fits: dict[str, Any], planned: dict) -> None:
    print(f"\n{'set':>7} {'steps':>7} {'FLOPs':>11} {'/cosine':>8} {'wall s':>8} "
          f"{'/cosine':>8} {'fit n':>6} {'a':>7} {'95 % interval':>17} {'rms log res':>11}  bootstrap")  # fmt: skip
    for s in SCHEDULES:
        f = fits[s]
        interval = f"[{f['interval'][0]:.3f}, {f['interval'][1]:.3f}]" if f["interval"] else "-"
        wall_ratio = measured[f"wall_s_{s}"] / max(measured["wall_s_cosine"], 1e-9)
        print(f"{s:>7} {measured[f'{s}_steps_real']:>7} {measured[f'{s}_flops_real']:>11.4g} "
              f"{measured[f'{s}_flops_real'] / measured['cosine_flops_real']:>8.3f} "
              f"{measured[f'wall_s_{s}']:>8.1f} {wall_ratio:>8.3f} {f['n']:>6} {f['a']:>7.3f} "
              f"{interval:>17} {f['rms_log_residual']:>11.2e}  {f['resampling']}")  # fmt: skip
    same = "yes" if measured["steps_match"] else "NO: " + "; ".join(measured["mismatches"])
    print(f"steps trained = steps planned (trunks' steps_trained, cosine runs' step): {same}")
    for s in SCHEDULES:
        if abs(measured[f"{s}_flops_real"] - planned[s]) > 1e-6 * planned[s]:
            print(
                f"  {s}: {measured[f'{s}_flops_real']:.6g} FLOPs trained, {planned[s]:.6g} planned"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=numbers(int), help="d_model values (default 16,24,32,48,64)"
    )
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--budgets-per-param", type=numbers(float),
                     help="budgets as multiples of N (total params); default 2.5,5,10,20")  # fmt: skip
    how.add_argument("--budgets", type=numbers(int),
                     help="budgets in tokens (default with --train: 65536,...,524288)")  # fmt: skip
    parser.add_argument("--train", action="store_true", help="train the grid three ways and fit")
    parser.add_argument("--quick", action="store_true",
                        help="--train on a tiny grid: d_model 16,24,32, 16k-128k tokens")  # fmt: skip
    parser.add_argument("--bootstrap", type=int, default=200, help="resamples per fit (200)")
    parser.add_argument("--out", type=Path, help="keep the records here (default: a temp dir)")
    opts = parser.parse_args()
    opts.train = opts.train or opts.quick
    sizes = opts.sizes or (QUICK_SIZES if opts.quick else DEFAULT_SIZES)
    if opts.budgets_per_param:
        budgets, per_param = opts.budgets_per_param, True
    elif opts.budgets:
        budgets, per_param = opts.budgets, False
    elif opts.train:
        budgets, per_param = (QUICK_BUDGETS if opts.quick else TRAIN_BUDGETS), False
    else:
        budgets, per_param = DEFAULT_PER_PARAM, True

    from hydra import initialize_config_module

    with contextlib.ExitStack() as stack:
        if opts.out is None:
            out_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="study_cost-")))
        else:
            out_dir = opts.out.resolve()
        stack.enter_context(initialize_config_module("sweeps", version_base="1.3"))
        unit = "x N (total params)" if per_param else "tokens"
        print(f"grid: d_model {','.join(map(str, sizes))}; budgets "
              f"{', '.join(f'{b:g}' for b in budgets)} {unit}; experiment=demo, seed 0")  # fmt: skip
        grid = plan_grid(sizes, budgets, per_param, out_dir)
        print(f"batch {grid[0]['batch']:,} tokens; FLOPs = steps x batch x analytic FLOPs/token\n")
        totals = print_plan(grid)
        record: dict[str, Any] = {
            "benchmark": "study_cost",
            "sizes": list(sizes),
            "budgets": list(budgets),
            "budgets_unit": "per_param" if per_param else "tokens",
            "cosine_flops": totals["cosine"],
            "wsd_flops": totals["wsd"],
            "wsd_s_flops": totals["wsd_s"],
            "ratio_wsd_s_vs_cosine": round(totals["wsd_s"] / totals["cosine"], 4),
            "ratio_wsd_vs_cosine": round(totals["wsd"] / totals["cosine"], 4),
        }
        record["goal_met"] = record["ratio_wsd_s_vs_cosine"] <= 0.55
        if opts.train:
            progress(f"training into {out_dir}")
            measured = train_grid(grid)
            progress(f"fitting chinchilla to each set ({opts.bootstrap} bootstrap resamples)")
            fits = fit_sets(out_dir, opts.bootstrap)
            print_training(measured, fits, totals)
            record.update({k: v for k, v in measured.items() if k != "mismatches" or v})
            cos_a = fits["cosine"]["interval"]
            for s in SCHEDULES:
                record[f"a_{s}"] = round(fits[s]["a"], 4)
                record[f"a_{s}_interval"] = fits[s]["interval"]
                record[f"rms_log_residual_{s}"] = fits[s]["rms_log_residual"]
                if s != "cosine" and cos_a:
                    record[f"a_{s}_in_cosine_interval"] = cos_a[0] <= fits[s]["a"] <= cos_a[1]
            record["ratio_wall_wsd_s_vs_cosine"] = round(
                measured["wall_s_wsd_s"] / measured["wall_s_cosine"], 4
            )
            record["ratio_wall_wsd_vs_cosine"] = round(
                measured["wall_s_wsd"] / measured["wall_s_cosine"], 4
            )
            if opts.out is not None:
                record["out"] = str(out_dir)
        print(json.dumps(record))


if __name__ == "__main__":
    from hydra.errors import HydraException

    try:
        main()
    except (ValueError, RuntimeError, OSError, HydraException) as e:
        raise SystemExit(f"study_cost: {type(e).__name__}: {e}") from None
