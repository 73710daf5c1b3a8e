"""Fitting speed: our batched chinchilla fit against the usual per-start scipy loop.

On the Epoch reconstruction of Hoffmann et al.'s data (240 points with loss < 3.44; a
synthetic set of the same shape where the reference data are absent), measured in one
process:

  (a) ours       ``analysis.fit.fit("chinchilla", ...)`` with the full 4,500-start grid
                 (median of 3 runs after a warm-up)
  (b) notebook   ``scipy.optimize.minimize(method="L-BFGS-B")`` once per start, on the same
                 summed Huber objective in the same log-sum-exp form, with scipy's default
                 tolerances and a 2-point numerical gradient -- how the published
                 replication's notebook does it. A random subset of the grid is timed and
                 the time scaled to 4,500 starts; its objective is the best over the subset.
  (c) analytic   the same loop with the analytic gradient (a careful notebook).
  (d) package    the ``chinchilla`` PyPI package (BFGS from each start of a 243-start
                 sub-grid, extended precision, a process per core), scaled to 4,500,
                 if it is installed; skipped otherwise.
  (e) bootstrap  1,000 bootstrap refits: ``fit(..., init=optimum, bootstrap=1000)`` minus
                 the same fit without refits; and the full grid fit with them.
  (f) new laws   ``bnsl``, ``bnsl2``, ``kaplan``, ``overtraining`` and
                 ``data_constrained`` on 240 synthetic points drawn from a known truth
                 (0.5 % noise): the fit from each law's default grid (median of 3), and
                 1,000 bootstrap refits timed as in (e). Goals: under 1 s and under 10 s.

Objectives are all evaluated by one function, the summed Huber (delta 1e-3) of log
residuals, so they compare directly.

    python benchmarks/fit_speed.py                  # under a minute on 2 CPU cores
    python benchmarks/fit_speed.py --scipy-starts 50 --no-package   # quicker

Ends with one JSON line: speedup_vs_scipy, objective_ours, objective_scipy_best,
bootstrap_1000_s, ``laws`` (per new law: starts, fit_s, bootstrap_1000_s, converged),
and the other figures. ``--laws-only`` times (a) and (f) alone.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.fit import default_grid, fit

DELTA = 1e-3
EPOCH_CSV = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "chinchilla-epoch"
    / "svg_extracted_data.csv"
)
# Besiroglu et al.'s point estimate, used to generate data when the reference file is absent.
BESIROGLU = {"E": 1.82, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(N, D, loss, description) -- the Epoch data, or a synthetic set of the same shape."""
    if EPOCH_CSV.exists():
        df = pd.read_csv(EPOCH_CSV)
        df = df[df["loss"] < 3.44]
        n = df["Model Size"].to_numpy(dtype=float)
        d = df["Training FLOP"].to_numpy(dtype=float) / (6 * n)
        return n, d, df["loss"].to_numpy(dtype=float), f"Epoch data, {len(n)} points"
    rng = np.random.default_rng(0)
    n = np.exp(rng.uniform(np.log(6e7), np.log(1.6e10), 240))
    d = n * np.exp(rng.uniform(np.log(0.5), np.log(340), 240))
    p = BESIROGLU
    loss = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
    loss *= np.exp(rng.normal(0, 0.01, 240))
    return n, d, loss, "synthetic data (reference file absent), 240 points"


# ---------------------------------------------------------------------------------------
# The objective as a notebook writes it: one parameter vector (a, b, e, alpha, beta)


def notebook_objective(
    x: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray
) -> float:
    from scipy.special import huber, logsumexp

    a, b, e, alpha, beta = x
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    return float(huber(DELTA, logsumexp(terms, axis=0) - log_l).sum())


def notebook_objective_and_grad(
    x: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray
) -> tuple[float, np.ndarray]:
    from scipy.special import huber, logsumexp

    a, b, e, alpha, beta = x
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    lse = logsumexp(terms, axis=0)
    w = np.exp(terms - lse)  # d lse / d term
    r = lse - log_l
    dh = np.clip(r, -DELTA, DELTA)
    grad = np.array([dh @ w[0], dh @ w[1], dh @ w[2], -(dh * w[0]) @ log_n, -(dh * w[1]) @ log_d])
    return float(huber(DELTA, r).sum()), grad


def grid_starts() -> np.ndarray:
    """The 4,500 starts as (a, b, e, alpha, beta) rows, the notebook's order."""
    g = default_grid("chinchilla")
    mesh = np.meshgrid(g["a"], g["b"], g["e"], g["alpha"], g["beta"], indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def to_params(x: np.ndarray) -> dict[str, float]:
    a, b, e, alpha, beta = x
    return {"E": float(np.exp(e)), "A": float(np.exp(a)), "B": float(np.exp(b)),
            "alpha": float(alpha), "beta": float(beta)}  # fmt: skip


# ---------------------------------------------------------------------------------------
# Measurements


def time_ours(n: np.ndarray, d: np.ndarray, loss: np.ndarray, reps: int = 3):
    fit("chinchilla", (n, d), loss)  # warm-up: first-call costs (imports, caches)
    times, result = [], None
    for _ in range(reps):
        start = time.perf_counter()
        result = fit("chinchilla", (n, d), loss)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def time_bootstrap(n: np.ndarray, d: np.ndarray, loss: np.ndarray, optimum: dict[str, float]):
    """Seconds for 1,000 refits alone, seconds for grid fit + refits, and that result."""
    start = time.perf_counter()
    fit("chinchilla", (n, d), loss, init=optimum)
    alone = time.perf_counter() - start
    start = time.perf_counter()
    fit("chinchilla", (n, d), loss, init=optimum, bootstrap=1000, seed=0)
    refits = time.perf_counter() - start - alone
    start = time.perf_counter()
    result = fit("chinchilla", (n, d), loss, bootstrap=1000, seed=0)
    return refits, time.perf_counter() - start, result


def time_scipy_loop(
    starts: np.ndarray, n: np.ndarray, d: np.ndarray, loss: np.ndarray, analytic: bool
) -> tuple[float, float, dict[str, float]]:
    """Seconds per start, and the best objective and parameters over the starts."""
    from scipy.optimize import minimize

    args = (np.log(n), np.log(d), np.log(loss))
    best_f, best_x = np.inf, None
    start = time.perf_counter()
    for x0 in starts:
        if analytic:
            res = minimize(notebook_objective_and_grad, x0, args=args, jac=True, method="L-BFGS-B")
        else:
            res = minimize(notebook_objective, x0, args=args, method="L-BFGS-B")
        f = notebook_objective(res.x, *args)  # re-evaluated: the same function for all
        if np.isfinite(f) and f < best_f:
            best_f, best_x = f, res.x
    per_start = (time.perf_counter() - start) / len(starts)
    return per_start, best_f, to_params(best_x)


def time_package(n: np.ndarray, d: np.ndarray, loss: np.ndarray):
    """The chinchilla package on a 3^5 sub-grid; None when it is not installed."""
    try:
        from chinchilla import Chinchilla
        from chinchilla._metrics import log_huber
    except ImportError:
        return None
    grid = {"e": (-1.0, 0.0, 1.0), "a": (0.0, 10.0, 20.0), "b": (0.0, 10.0, 20.0),
            "alpha": (0.0, 1.0, 2.0), "beta": (0.0, 1.0, 2.0)}  # fmt: skip
    n_starts = int(np.prod([len(v) for v in grid.values()]))
    with tempfile.TemporaryDirectory() as tmp:
        # The package reads its runs from <project>/df.csv and writes figures there.
        pd.DataFrame({"C": 6 * n * d, "N": n, "D": d, "loss": loss}).to_csv(
            os.path.join(tmp, "df.csv"), index=False
        )
        cc = Chinchilla(
            tmp,
            param_grid=grid,
            loss_fn=functools.partial(log_huber, delta=DELTA),
            model_search_config=None,
            log_level=50,
        )
        start = time.perf_counter()
        cc.fit(parallel=True)
        seconds = time.perf_counter() - start
        params = {k: float(v) for k, v in cc.params.items()}
    return seconds, n_starts, params


def objective_at(params: dict[str, float], n, d, loss) -> float:
    x = np.array([np.log(params["A"]), np.log(params["B"]), np.log(params["E"]),
                  params["alpha"], params["beta"]])  # fmt: skip
    return notebook_objective(x, np.log(n), np.log(d), np.log(loss))


# Truths of the new laws' benchmark sets: a break in the middle of six decades (one
# break), two breaks two decades apart, Kaplan et al.'s own L(N, D) (Table 2), and
# Gadre et al.'s L(C, M) as it fits Hoffmann et al.'s runs, and a data-constrained law
# with R* of the size Muennighoff et al. report.
NEW_LAWS = {
    "bnsl": {"a": 0.5, "b": 20.0, "c0": 0.2, "c1": 0.4, "d1": 1e6, "f1": 0.5},
    "bnsl2": {"a": 0.5, "b": 20.0, "c0": 0.2, "c1": 0.4, "d1": 1e5, "f1": 0.5,
              "c2": -0.3, "d2": 1e7, "f2": 0.3},
    "kaplan": {"N_c": 6.4e13, "D_c": 1.8e13, "alpha_N": 0.076, "alpha_D": 0.103},
    "overtraining": {"E": 1.818, "A": 773.2, "B": 2413.0, "eta": 0.1785},
    "data_constrained": {"E": 1.87, "A": 521.0, "B": 1488.0, "alpha": 0.353, "beta": 0.353,
                         "R_N": 5.3, "R_D": 15.4},
}  # fmt: skip


def new_law_data(name: str, seed: int = 0) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    from analysis.laws import get_law

    rng = np.random.default_rng(seed)
    law = get_law(name)
    if name == "data_constrained":  # 1-40 epochs of U unique tokens
        from analysis.laws.repeated import repetition_inputs

        n = np.exp(rng.uniform(np.log(1e7), np.log(1e9), 240))
        u = np.exp(rng.uniform(np.log(2e8), np.log(5e9), 240))
        d = u * np.exp(rng.uniform(0.0, np.log(40), 240))
        xs = repetition_inputs(n, d, u)
    elif law.n_inputs == 2:
        n = np.exp(rng.uniform(np.log(1e7), np.log(1e10), 240))
        xs = (n, n * np.exp(rng.uniform(np.log(2), np.log(200), 240)))
        if name == "overtraining":  # its inputs are C = 6ND and M = D/N
            xs = (6 * xs[0] * xs[1], xs[1] / xs[0])
    else:
        xs = (np.geomspace(1e3, 1e9, 240),)
    y = law.predict(NEW_LAWS[name], *xs) * np.exp(rng.normal(0, 0.005, 240))
    return xs, y


def time_new_laws(reps: int = 3) -> dict[str, dict]:
    """Per new law: starts, median fit seconds, 1,000 refits' seconds, convergence."""
    out = {}
    for name in NEW_LAWS:
        xs, y = new_law_data(name)
        x = xs if len(xs) > 1 else xs[0]
        fit(name, x, y)  # warm-up
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            result = fit(name, x, y)
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
        fit(name, x, y, init=result.params)
        alone = time.perf_counter() - start
        start = time.perf_counter()
        boot = fit(name, x, y, init=result.params, bootstrap=1000, seed=0)
        refits = time.perf_counter() - start - alone
        out[name] = {
            "starts": result.n_starts,
            "fit_s": round(statistics.median(times), 3),
            "bootstrap_1000_s": round(refits, 3),
            "converged": result.converged,
            "boot_converged": boot.boot_converged,
        }
        print(f"{name:<8} {result.n_starts:>6} starts: fit {statistics.median(times):.3f} s, "
              f"1,000 refits {refits:.2f} s ({boot.boot_converged:.1%} converged); "
              f"converged: {result.converged}")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scipy-starts", type=int, default=200, help="random starts timed")
    parser.add_argument("--no-package", action="store_true", help="skip the chinchilla package")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--laws-only", action="store_true", help="time (a) and (f) alone")
    opts = parser.parse_args()

    n, d, loss, source = load_data()
    if opts.laws_only:
        ours_s, ours = time_ours(n, d, loss)
        print(f"chinchilla 4500 starts: fit {ours_s:.3f} s ({source})")
        print(json.dumps({"data": source, "fit_s": round(ours_s, 4), "laws": time_new_laws()}))
        return
    full = grid_starts()
    subset = full[
        np.random.default_rng(opts.seed).choice(len(full), opts.scipy_starts, replace=False)
    ]
    print(f"{source}; chinchilla law, Huber delta {DELTA}, summed over points")
    print(
        f"grid: {len(full)} starts; the scipy loops time {len(subset)} random ones and scale up\n"
    )

    ours_s, ours = time_ours(n, d, loss)
    ours_f = objective_at(ours.params, n, d, loss)

    # The refits alone: a fit started at the optimum, with and without 1,000 refits.
    boot_s, boot_total, boot = time_bootstrap(n, d, loss, ours.params)

    num_per, num_f, num_p = time_scipy_loop(subset, n, d, loss, analytic=False)
    ana_per, ana_f, ana_p = time_scipy_loop(subset, n, d, loss, analytic=True)
    package = None if opts.no_package else time_package(n, d, loss)

    rows = [
        ("ours: batched Newton, 4,500 starts", ours_s, ours_s, ours_f, ours.params["E"]),
        (f"scipy L-BFGS-B loop, numerical grad ({len(subset)} starts)", num_per * len(subset),
         num_per * len(full), num_f, num_p["E"]),
        (f"scipy L-BFGS-B loop, analytic grad ({len(subset)} starts)", ana_per * len(subset),
         ana_per * len(full), ana_f, ana_p["E"]),
    ]  # fmt: skip
    if package is not None:
        pkg_s, pkg_starts, pkg_p = package
        rows.append((f"chinchilla package, BFGS ({pkg_starts} starts)", pkg_s,
                     pkg_s / pkg_starts * len(full), objective_at(pkg_p, n, d, loss), pkg_p["E"]))  # fmt: skip
    print(f"{'method':<52} {'timed s':>9} {'4,500-start s':>14} {'objective':>14} {'E':>7}")
    for name, timed, scaled, f, e in rows:
        print(f"{name:<52} {timed:>9.2f} {scaled:>14.1f} {f:>14.8e} {e:>7.4f}")
    if package is None:
        reason = "skipped by --no-package" if opts.no_package else "not installed"
        print(f"{'chinchilla package (PyPI)':<52} {reason}")
    lo, hi = boot.intervals["E"]
    print(f"\n1,000 bootstrap refits: {boot_s:.2f} s (4,500-start fit + refits: {boot_total:.2f} s); "
          f"E 95 % interval [{lo:.4f}, {hi:.4f}], {boot.boot_converged:.1%} converged")  # fmt: skip
    print()
    laws = time_new_laws()
    speedup = num_per * len(full) / ours_s
    print(f"speed-up over the numerical-gradient loop: {speedup:.0f}x; "
          f"over the analytic-gradient loop: {ana_per * len(full) / ours_s:.0f}x")  # fmt: skip

    record = {
        "data": source,
        "fit_s": round(ours_s, 4),
        "objective_ours": ours_f,
        "converged": ours.converged,
        "scipy_gradient": "numerical (2-point finite differences, scipy's default)",
        "scipy_starts_timed": len(subset),
        "scipy_s_per_start": round(num_per, 5),
        "scipy_4500_est_s": round(num_per * len(full), 1),
        "objective_scipy_best": num_f,
        "speedup_vs_scipy": round(speedup, 1),
        "scipy_analytic_4500_est_s": round(ana_per * len(full), 1),
        "objective_scipy_analytic_best": ana_f,
        "speedup_vs_scipy_analytic": round(ana_per * len(full) / ours_s, 1),
        "package_4500_est_s": None
        if package is None
        else round(package[0] / package[1] * len(full), 1),
        "objective_package": None if package is None else objective_at(package[2], n, d, loss),
        "bootstrap_1000_s": round(boot_s, 3),
        "fit_plus_bootstrap_1000_s": round(boot_total, 3),
        "bootstrap_E_interval": [lo, hi],
        "laws": laws,
    }
    print(json.dumps(record))


if __name__ == "__main__":
    main()
