"""Downstream analysis: loading fine-tuning/compression records, the fits, figures, CLI."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pytest

from analysis.downstream import (
    compute_downstream_fits,
    downstream_dirs,
    fits_to_dict,
    format_downstream,
    load_compress,
    load_finetune,
    plot_downstream,
)
from analysis.io import DataError, DataWarning

SIZES = np.geomspace(1e4, 1e7, 8)
ERR_N = {"E": 0.1, "A": 8.0, "alpha": 0.3}  # task error vs N
LOSS_N = {"E": 2.0, "A": 40.0, "alpha": 0.3}  # pretraining loss vs N
ERR_L = {"eps": 0.85, "k": 5.0, "gamma": 1.2}  # task error vs pretraining loss


def err_of_loss(loss, p=ERR_L):
    return p["eps"] - p["k"] * np.exp(-p["gamma"] * np.asarray(loss))


def write_record(directory, **fields):
    directory.mkdir(parents=True)
    (directory / "summary.json").write_text(json.dumps({"schema": 1, **fields}))


def source_fields(i, n, loss, tokens=1e8):
    return {
        "family": "llama",
        "d_model": 16 * (i + 1),
        "n_layers": 2,
        "params_nonembed": int(n),
        "params_matmul": int(n) + 100,
        "params_total": int(n) + 200,
        "source": {"sweep": "s", "run_id": f"src{i}", "dir": f"s/src{i}"},
        "pretrain": {"tokens": tokens, "flops": 6 * n * tokens, "final_val_loss": loss},
    }


def write_finetune(
    root, errors, losses, *, seeds=(0,), status="completed", setting="s0", val_shift=0.0,
    baselines=None,
):  # fmt: skip
    for i, (n, err, loss) in enumerate(zip(SIZES, errors, losses, strict=False)):
        for seed in seeds:
            write_record(
                root / f"ft{i}-{seed}-{setting}",
                run_id=f"ft{i}-{seed}-{setting}",
                setting=setting,
                sweep="s-finetune",
                job="finetune",
                status=status,
                **source_fields(i, n, loss),
                task={"name": "t", "n_classes": 8, "chance_accuracy": 0.125},
                test_accuracy=1 - err,
                test_loss=1.0,
                val_accuracy=1 - err + val_shift,
                step=100,
                best_step=80,
                stopped_early=True,
                seed=seed,
                **({"baselines": baselines} if baselines else {}),
            )


def write_compress(root, deltas):
    """``deltas``: variant -> loss increase per size."""
    for i, n in enumerate(SIZES):
        base = 3.0 - 0.1 * i
        variants = [{"variant": "baseline", "method": "none", "val_loss": base, "size_bytes": 4000}]
        for name, d in deltas.items():
            variants.append(
                {"variant": name, "method": name, "val_loss": base + d[i], "size_bytes": 1000}
            )
        write_record(
            root / f"c{i}",
            run_id=f"c{i}",
            sweep="s-compress",
            job="compress",
            status="completed",
            **source_fields(i, n, base),
            variants=variants,
        )


def sat(p, n):
    return p["E"] + p["A"] * n ** -p["alpha"]


@pytest.fixture
def sweep(tmp_path):
    """A pretraining sweep dir with synthetic fine-tuning and compression siblings."""
    losses = sat(LOSS_N, SIZES)
    write_finetune(tmp_path / "s-finetune", err_of_loss(losses), losses, seeds=(0, 1))
    write_compress(
        tmp_path / "s-compress",
        {
            "int8": 0.5 * SIZES**-0.4,  # hurts small models more: k = -0.4
            "prune0.5": 0.01 * SIZES**0.1,  # and this one large ones more
            "noise": np.where(np.arange(8) % 2, 1e-4, -1e-4),
        },
    )
    (tmp_path / "s").mkdir()
    return tmp_path / "s"


def test_loaders_read_the_records(sweep):
    ft_dir, comp_dir = downstream_dirs(sweep)
    assert (ft_dir.name, comp_dir.name) == ("s-finetune", "s-compress")
    assert downstream_dirs(ft_dir) == (ft_dir, comp_dir)
    ft = load_finetune(ft_dir)
    assert len(ft) == 16 and list(ft["params"]) == sorted(ft["params"])
    assert ft["test_error"].to_numpy() == pytest.approx(1 - ft["test_accuracy"].to_numpy())
    assert load_finetune(ft_dir, params="total")["params"].min() == int(SIZES[0]) + 200
    comp = load_compress(comp_dir)
    assert len(comp) == 8 * 4 and set(comp["variant"]) == {"baseline", "int8", "prune0.5", "noise"}
    assert (comp.loc[comp["variant"] == "int8", "compression"] == 4.0).all()
    base = comp[comp["variant"] == "baseline"]
    assert (base["delta_loss"] == 0).all()


def test_incomplete_runs_are_left_out_with_a_warning(tmp_path):
    losses = sat(LOSS_N, SIZES)
    write_finetune(tmp_path / "a", err_of_loss(losses), losses)
    write_finetune(tmp_path / "b", err_of_loss(losses), losses, status="failed")
    with pytest.warns(DataWarning, match="did not complete"):
        assert len(load_finetune(tmp_path)) == 8
    with pytest.raises(DataError, match="no completed compress records"):
        load_compress(tmp_path)


def test_fits_recover_the_laws_the_records_were_drawn_from(sweep):
    ft_dir, comp_dir = downstream_dirs(sweep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fits = compute_downstream_fits(load_finetune(ft_dir), load_compress(comp_dir), bootstrap=50)
    assert not {"error_vs_params", "loss_vs_params", "error_vs_loss"} & set(fits.notes)
    # step 1 and step 2 come back, and so does their composition, error vs N
    for name, value in LOSS_N.items():
        assert fits.loss_vs_params.params[name] == pytest.approx(value, rel=1e-3)
    for name, value in ERR_L.items():
        assert fits.error_vs_loss.params[name] == pytest.approx(value, rel=1e-3)
    truth = err_of_loss(sat(LOSS_N, SIZES))
    assert fits.two_step(SIZES) == pytest.approx(truth, rel=1e-3)
    assert fits.error_vs_params.law == "saturating"
    assert fits.error_vs_params.predict(SIZES) == pytest.approx(truth, rel=0.05)
    # compression: the exponent of each variant, and a note where dL is not positive
    assert fits.compression["int8"].params["k"] == pytest.approx(-0.4, abs=1e-4)
    assert fits.compression["prune0.5"].params["k"] == pytest.approx(0.1, abs=1e-4)
    assert "noise" not in fits.compression and "dL <= 0" in fits.notes["compression:noise"]
    text = format_downstream(fits)
    assert "hurts small models more" in text and "hurts large models more" in text
    assert "Err = " in text and "test accuracy per model" in text


def test_few_sizes_fall_back_to_smaller_laws(tmp_path):
    losses = sat(LOSS_N, SIZES)
    write_finetune(tmp_path / "s-finetune", err_of_loss(losses)[:4], losses[:4])
    fits = compute_downstream_fits(load_finetune(tmp_path / "s-finetune"), None, bootstrap=0)
    assert fits.error_vs_params.law == "power" and fits.loss_vs_params.law == "power"
    assert fits.error_vs_loss.fixed == ("eps",)  # held at the chance error, 1 - 1/8
    assert fits.error_vs_loss.params["eps"] == 0.875


def test_the_sigmoid_link_holds_its_ceiling_below_eight_models(tmp_path, capsys):
    """SIZES holds 8 models: the sigmoid's four parameters are all free; of 6 models,
    the ceiling is held at the chance error. The CLI takes --link."""
    losses = sat(LOSS_N, SIZES)
    write_finetune(tmp_path / "s-finetune", err_of_loss(losses), losses)
    (tmp_path / "s").mkdir()
    finetune = load_finetune(tmp_path / "s-finetune")
    fits = compute_downstream_fits(finetune, None, bootstrap=0, link="sigmoid")
    assert fits.error_vs_loss.link == "sigmoid" and fits.error_vs_loss.fixed == ()
    few = finetune[finetune["params"] <= sorted(set(finetune["params"]))[5]]
    fits = compute_downstream_fits(few, None, bootstrap=0, link="sigmoid")
    assert fits.error_vs_loss.fixed == ("ceiling",)
    assert fits.error_vs_loss.params["ceiling"] == 0.875
    from analysis.cli import main

    code = main(["downstream", str(tmp_path / "s"), "--link", "sigmoid", "--bootstrap", "0",
                 "--out", str(tmp_path / "p"), "--json"])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["error_vs_loss"]["link"] == "sigmoid"


def test_a_model_tuned_several_ways_counts_with_its_best_setting_on_validation(tmp_path):
    from analysis.downstream import per_source

    losses = sat(LOSS_N, SIZES)
    errors = err_of_loss(losses)
    write_finetune(tmp_path, errors, losses, setting="lr1", val_shift=0.01)
    # better on test, worse on validation: choosing it would be tuning on the test set
    write_finetune(tmp_path, errors - 0.05, losses, setting="lr2", val_shift=-0.1)
    points = per_source(load_finetune(tmp_path))
    assert len(points) == 8 and set(points["setting"]) == {"lr1"}
    assert points["test_error"].to_numpy() == pytest.approx(errors)


def test_settings_are_compared_on_the_seeds_they_share(tmp_path):
    """A setting run with one lucky seed does not beat one run with three on means over
    different seeds: both are judged on the seed they share, then reported on all theirs."""
    from analysis.downstream import per_source

    losses = sat(LOSS_N, SIZES)
    errors = err_of_loss(losses)
    for root, lucky_seed in ((tmp_path / "a", 0), (tmp_path / "b", 5)):
        write_finetune(root, errors, losses, seeds=(0,), setting="three", val_shift=0.1)
        write_finetune(root, errors, losses, seeds=(1, 2), setting="three", val_shift=0.0)
        write_finetune(root, errors, losses, seeds=(lucky_seed,), setting="lucky", val_shift=0.08)
    # mean validation over all seeds: three +0.033, lucky +0.08; on seed 0: +0.1, +0.08
    points = per_source(load_finetune(tmp_path / "a"))
    assert set(points["setting"]) == {"three"} and set(points["seeds"]) == {3}
    # no seed shared: each setting's mean over all its own
    points = per_source(load_finetune(tmp_path / "b"))
    assert set(points["setting"]) == {"lucky"} and set(points["seeds"]) == {1}


def test_plot_downstream_draws_every_figure(sweep, tmp_path):
    written = plot_downstream(sweep, tmp_path / "plots", bootstrap=20)
    names = sorted(p.name for p in written)
    stems = ["compression_loss_vs_params", "compression_loss_vs_size", "compression_pareto"]
    stems += ["downstream_error_vs_loss", "downstream_error_vs_params"]
    assert names == sorted(f"{s}.{ext}" for s in stems for ext in ("png", "svg"))
    assert all(p.stat().st_size > 5000 for p in written)
    (tmp_path / "lonely").mkdir()
    assert plot_downstream(tmp_path / "lonely", tmp_path / "none") == []


def test_cli_prints_the_fits_and_plot_draws_them(sweep, tmp_path, capsys):
    from analysis.cli import main

    assert main(["downstream", str(sweep), "--bootstrap", "20", "--out", str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "task error vs pretraining loss" in out and "hurts small models" in out
    assert (tmp_path / "p" / "downstream_error_vs_loss.png").is_file()
    args = ["downstream", str(sweep), "--json", "--bootstrap", "0", "--format", "png"]
    assert main([*args, "--out", str(tmp_path / "q")]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["error_vs_loss"]["params"]["gamma"] == pytest.approx(1.2, rel=1e-3)
    assert len(data["files"]) == 5  # no quantization scheme in these records: no law figures
    assert main(["downstream", str(tmp_path)]) == 2
    assert "no fine-tuning or compression records" in capsys.readouterr().err


def test_pretraining_analysis_ignores_these_records_and_plot_draws_them(sweep, capsys):
    from analysis_fixtures import write_sweep

    from analysis.cli import main
    from analysis.io import load_runs

    write_sweep(sweep.parent, "s")  # a pretraining sweep beside its -finetune/-compress
    runs = load_runs(sweep.parent)  # the whole results dir: pretraining runs only
    assert set(runs["sweep"]) == {"s"}
    out = sweep / "plots"
    assert main(["plot", str(sweep), "--bootstrap", "0", "--format", "png"]) == 0
    printed = capsys.readouterr().out
    for name in ("loss_vs_compute", "downstream_error_vs_loss", "compression_loss_vs_size"):
        assert str(out / f"{name}.png") in printed


def test_the_analysis_side_never_imports_torch():
    code = (
        "import sys, analysis.downstream; "
        "assert 'torch' not in sys.modules; assert 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_baselines_recorded_by_the_job_are_reported_and_drawn(tmp_path, capsys):
    from analysis.cli import main

    losses = sat(LOSS_N, SIZES)
    base = {"majority_test_accuracy": 0.125, "bag_of_tokens_test_accuracy": 0.41,
            "bag_of_tokens_C": 1.0}  # fmt: skip
    write_finetune(tmp_path / "s-finetune", err_of_loss(losses), losses, baselines=base)
    (tmp_path / "s").mkdir()
    finetune = load_finetune(tmp_path / "s-finetune")
    assert set(finetune["bag_of_tokens_accuracy"]) == {0.41}
    fits = compute_downstream_fits(finetune, None, bootstrap=0)
    assert fits.baselines == {"majority": 0.125, "bag_of_tokens": 0.41}
    assert "majority class 0.125, bag-of-tokens logistic 0.410" in format_downstream(fits)
    code = main(["downstream", str(tmp_path / "s"), "--bootstrap", "0", "--json",
                 "--out", str(tmp_path / "plots"), "--format", "svg"])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out)["baselines"]["bag_of_tokens"] == 0.41
    svg = (tmp_path / "plots" / "downstream_error_vs_params.svg").read_text()
    assert "bag of tokens baseline (0.590)" in svg  # the line's legend: error = 1 - 0.41
    # records written before baselines were: no line, no crash
    write_finetune(tmp_path / "old-finetune", err_of_loss(losses), losses)
    old = compute_downstream_fits(load_finetune(tmp_path / "old-finetune"), None, bootstrap=0)
    assert old.baselines == {} and "baselines" not in format_downstream(old)


def test_seeds_give_each_model_a_mean_and_a_spread_drawn_as_error_bars(tmp_path, capsys):
    """Two seeds per model whose test errors differ by 0.04: the model's point is their
    mean, its spread their s.d. (0.04/sqrt 2 = 0.0283), printed and drawn."""
    from analysis.cli import main

    losses = sat(LOSS_N, SIZES)
    errors = err_of_loss(losses)
    write_finetune(tmp_path / "s-finetune", errors - 0.02, losses, seeds=(0,))
    write_finetune(tmp_path / "s-finetune", errors + 0.02, losses, seeds=(1,))
    (tmp_path / "s").mkdir()
    points = compute_downstream_fits(
        load_finetune(tmp_path / "s-finetune"), None, bootstrap=0
    ).per_source
    assert (points["seeds"] == 2).all()
    np.testing.assert_allclose(points["test_error"], errors, atol=1e-12)
    np.testing.assert_allclose(points["accuracy_sd"], 0.04 / np.sqrt(2), atol=1e-12)
    code = main(["downstream", str(tmp_path / "s"), "--bootstrap", "0",
                 "--out", str(tmp_path / "plots"), "--format", "svg"])  # fmt: skip
    assert code == 0 and "± 0.028" in capsys.readouterr().out
    svg = (tmp_path / "plots" / "downstream_error_vs_params.svg").read_text()
    assert "± 1 s.d. over seeds" in svg


def test_the_two_step_law_fitted_on_smaller_models_predicts_the_largest(tmp_path):
    """Exact laws: fitted on the 7 smaller sizes, the two steps predict the 8th size's
    error to 1e-3; with 0.5 % noise on the errors the bootstrap interval holds the
    measured error, and the result says so in its text and JSON."""
    from analysis.downstream import backtest_two_step

    losses = sat(LOSS_N, SIZES)
    root = tmp_path
    write_finetune(root / "exact-finetune", err_of_loss(losses), losses)
    exact = backtest_two_step(load_finetune(root / "exact-finetune"), bootstrap=0)
    assert exact.params == SIZES[-1] and exact.n_train == 7
    assert exact.predicted_error == pytest.approx(err_of_loss(losses[-1]), abs=1e-3)
    assert exact.interval is None and exact.inside is None

    noisy = err_of_loss(losses) * np.exp(np.random.default_rng(0).normal(0, 0.005, 8))
    write_finetune(root / "noisy-finetune", noisy, losses)
    fits = compute_downstream_fits(load_finetune(root / "noisy-finetune"), None, bootstrap=200)
    back = fits.two_step_backtest
    lo, hi = back.interval
    assert back.measured_error == pytest.approx(noisy[-1])
    assert lo <= back.measured_error <= hi and back.inside is True
    assert "two-step backtest, the largest size held out" in format_downstream(fits)
    assert "(inside), from the 7 smaller models" in format_downstream(fits)
    assert json.loads(json.dumps(fits_to_dict(fits)))["two_step_backtest"]["inside"] is True


def test_the_two_step_interval_stays_an_error_rate(tmp_path):
    """With errors this noisy some resamples' laws extrapolate below 0 at the largest
    size; the interval is of error rates, so it stays inside [0, 1]."""
    from analysis.downstream import backtest_two_step

    losses = sat(LOSS_N, SIZES)
    noisy = err_of_loss(losses) * np.exp(np.random.default_rng(1).normal(0, 0.4, 8))
    write_finetune(tmp_path / "n-finetune", np.clip(noisy, 0.01, 0.99), losses)
    back = backtest_two_step(load_finetune(tmp_path / "n-finetune"), bootstrap=200)
    lo, hi = back.interval
    assert 0.0 <= lo <= hi <= 1.0


# --------------------------------------------------------------------------------------
# The compression laws: records in the format of the rewritten compression job

# Kumar et al.'s law the synthetic records are drawn from, noise-free, so that the fit
# must give these numbers back to rounding
KUMAR = {"C_T": 0.05, "gamma_D": 0.5, "gamma_N": 0.5, "gamma_post": 1.2}
# a pruning law of our form for the unstructured variants, and a 2:4 one
PRUNE = {"C_S": 0.02, "gamma_D": 0.3, "gamma_N": 0.4, "gamma_s": 1.5}


def kumar_delta(n, d, bits):
    k = KUMAR
    return k["C_T"] * d ** k["gamma_D"] / n ** k["gamma_N"] * np.exp(-bits / k["gamma_post"])


def prune_delta(n, d, s):
    p = PRUNE
    return p["C_S"] * d ** p["gamma_D"] / n ** p["gamma_N"] * (s / (1 - s)) ** p["gamma_s"]


def compress_ladder():
    """(n_layers, d_model) x tokens of the pretraining grid: 4 sizes x 3 budgets."""
    from analysis_fixtures import LADDER, sizes

    ladder = LADDER[:4]
    budgets = (2e7, 6e7, 2e8)
    return [(nl, dm, sizes(nl, dm)["params_nonembed"], t) for nl, dm in ladder for t in budgets]


def write_pretrain_grid(sweep):
    """Pretraining records of every (N, D) of :func:`compress_ladder` (Chinchilla losses)."""
    from analysis_fixtures import write_run

    for i, (nl, dm, _n, tokens) in enumerate(compress_ladder()):
        write_run(sweep, f"run{i:02d}", n_layers=nl, d_model=dm, tokens=tokens, seed=i)


def new_variants(n, d, base):
    """The variants of one source model as the rewritten job records them."""
    size, memory = int(4 * n), int(4 * n) + 1000

    def variant(name, scheme, bits, delta, nbytes, speed, **extra):
        return {"variant": name, "scheme": scheme, "bits": bits, "val_loss": base + delta,
                "delta_loss": delta, "size_bytes": nbytes, "compressed_bytes": nbytes - 500,
                "memory_bytes": nbytes + 1000, "compressed_memory_bytes": nbytes - 500,
                "throughput": {"batch_1": 1000.0 * speed, "batch_8": 6000.0 * speed},
                "speedup": {"batch_1": speed, "batch_8": speed}, "eval_s": 1.0,
                "group_size": None, "activation_bits": None, "sparsity": 0.0,
                "recover_tokens": 0, **extra}  # fmt: skip

    out = [variant("baseline", "none", 32, 0.0, size, 1.0)]
    for bits in (8, 4, 3):
        out.append(variant(f"rtn_w{bits}", "rtn", bits, kumar_delta(n, d, bits),
                           size * bits // 32, 0.8))  # fmt: skip
    out.append(variant("fp8", "fp8", 8, 0.7 * kumar_delta(n, d, 8), size // 4, 1.3))
    for s in (0.25, 0.5, 0.75):
        out.append(variant(f"prune{s}", "prune", 32, prune_delta(n, d, s), size, 1.0,
                           sparsity=s, achieved_sparsity=s))  # fmt: skip
    out.append(variant("2:4", "2:4", 32, 0.01 * d**0.2 / n**0.3, size, 1.1, sparsity=0.5))
    out.append(variant("2:4_r65536", "2:4", 32, 0.002 * d**0.2 / n**0.3, size, 1.1,
                       sparsity=0.5, recover_tokens=65536))  # fmt: skip
    assert memory == out[0]["memory_bytes"]
    return out


def write_new_compress(root):
    for i, (_nl, _dm, n, tokens) in enumerate(compress_ladder()):
        base = 3.0 - 0.1 * i
        write_record(
            root / f"c{i:02d}",
            run_id=f"c{i:02d}",
            sweep="g-compress",
            job="compress",
            status="completed",
            **source_fields(i, n, base, tokens=tokens),
            variants=new_variants(n, tokens, base),
        )


@pytest.fixture
def grid_sweep(tmp_path):
    """A pretraining sweep of 4 sizes x 3 budgets with its -compress records (new format)."""
    write_pretrain_grid(tmp_path / "g")
    write_new_compress(tmp_path / "g-compress")
    return tmp_path / "g"


def test_new_compression_fields_become_columns_and_old_records_still_read(tmp_path):
    write_new_compress(tmp_path / "new")
    comp = load_compress(tmp_path / "new")
    row = comp[(comp["variant"] == "rtn_w4") & (comp["run"] == "c00")].iloc[0]
    n = compress_ladder()[0][2]
    assert (row["scheme"], row["bits"], row["recover_tokens"]) == ("rtn", 4, 0)
    assert np.isnan(row["group_size"]) and np.isnan(row["activation_bits"])
    assert row["memory_bytes"] == 4 * n // 8 + 1000 and row["baseline_memory_bytes"] == 4 * n + 1000
    assert row["tokens_per_s_batch_8"] == 4800.0 and row["speedup_batch_1"] == 0.8
    assert set(comp.loc[comp["variant"] == "2:4_r65536", "recover_tokens"]) == {65536}
    assert list(comp.columns[-4:]) == [
        "tokens_per_s_batch_1", "tokens_per_s_batch_8", "speedup_batch_1", "speedup_batch_8"
    ]  # fmt: skip
    # a record written before scheme existed: its method says what it was
    variants = [
        {"variant": "baseline", "method": "none", "val_loss": 3.0, "size_bytes": 4000},
        {"variant": "int8_weight", "method": "int8_weight", "val_loss": 3.01,
         "size_bytes": 1000, "bits": 8},
        {"variant": "int8_dynamic", "method": "int8_dynamic", "val_loss": 3.02,
         "size_bytes": 1100, "bits": 8},
        {"variant": "prune0.5", "method": "prune", "val_loss": 3.2, "size_bytes": 4000,
         "sparsity": 0.5, "achieved_sparsity": 0.5},
    ]  # fmt: skip
    write_record(tmp_path / "old" / "c0", run_id="c0", sweep="o-compress", job="compress",
                 status="completed", **source_fields(0, 1e6, 3.0), variants=variants)  # fmt: skip
    old = load_compress(tmp_path / "old").set_index("variant")
    assert (old.loc["int8_weight", "scheme"], old.loc["int8_weight", "bits"]) == ("rtn", 8)
    assert np.isnan(old.loc["int8_weight", "group_size"])
    assert old.loc["int8_dynamic", "scheme"] == "w8a8"
    assert old.loc["int8_dynamic", "activation_bits"] == 8
    assert (old.loc["prune0.5", "scheme"], old.loc["prune0.5", "bits"]) == ("prune", 32)
    assert old.loc["baseline", "scheme"] == "none" and old["recover_tokens"].eq(0).all()
    assert np.isnan(old.loc["int8_weight", "memory_bytes"])
    assert old.loc["int8_weight", "compression"] == 4.0  # the old columns stay
    assert not any(c.startswith("speedup_") for c in old.columns)


def test_the_compression_laws_come_back_from_the_records_and_the_cli_prints_them(
    grid_sweep, tmp_path, capsys
):
    from analysis.cli import main

    out_dir = tmp_path / "plots"
    args = ["downstream", str(grid_sweep), "--bootstrap", "30", "--out", str(out_dir)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert main(args) == 0
        text = capsys.readouterr().out
        assert main([*args, "--json", "--format", "png"]) == 0
    data = json.loads(capsys.readouterr().out)
    for name in ("gamma_D", "gamma_N", "gamma_post", "C_T", "Kumar et al. (2024)"):
        assert name in text
    assert "critical pretraining tokens D*" in text and "slower" in text
    assert "2:4+recovery" in text and "Frantar" in text
    # the fitted law is the one the records were drawn from (noise-free: to rounding)
    rtn = data["quantization"]["rtn"]
    for name, value in KUMAR.items():
        assert rtn["params"][name] == pytest.approx(value, rel=1e-6)
    assert rtn["identified"] is True and rtn["n"] == 36
    # fp8 has one precision: gamma_post is not identified, and the result says why
    assert data["quantization"]["fp8"]["identified"] is False
    assert "distinct value(s) of P" in " ".join(data["quantization"]["fp8"]["identification"])
    for name, value in PRUNE.items():
        assert data["sparsity"]["prune"]["params"][name] == pytest.approx(value, rel=1e-6)
    assert data["sparsity"]["2:4+recovery"]["params"]["C_S"] == pytest.approx(0.002, rel=1e-6)
    # the critical D at the largest N from the closed form, with the pretraining B, beta
    law = data["pretrain_law"]
    assert law["law"] == "chinchilla"
    unidentified = "the critical D rests on a pretraining fit that is NOT identified"
    assert (unidentified in text) == (not law["identified"])
    b, beta = law["params"]["B"], law["params"]["beta"]
    n_max = max(n for *_, n, _t in compress_ladder())
    k = KUMAR
    for c in data["critical_tokens"]:
        if c["scheme"] != "rtn":
            continue
        by_hand = (b * beta * n_max ** k["gamma_N"] * np.exp(c["bits"] / k["gamma_post"])
                   / (k["gamma_D"] * k["C_T"])) ** (1 / (k["gamma_D"] + beta))  # fmt: skip
        assert c["params"] == n_max and c["tokens"] == pytest.approx(by_hand, rel=1e-5)
    assert sorted(c["bits"] for c in data["critical_tokens"] if c["scheme"] == "rtn") == [3, 4, 8]
    rows = {r["variant"]: r for r in data["bytes_table"]}
    assert rows["rtn_w4"]["speedup_batch_1"] == pytest.approx(0.8)
    assert rows["rtn_w4"]["compression"] == pytest.approx(8.0)
    assert {"scheme", "bits", "memory_bytes", "speedup_batch_8"} <= set(
        data["compression_table"][0]
    )
    # the figures of the laws, written as PNG and SVG
    for stem in ("compression_ptq_vs_data_rtn", "compression_ptq_vs_bits", "compression_pareto"):
        for ext in ("png", "svg"):
            assert (out_dir / f"{stem}.{ext}").stat().st_size > 5000
    assert not (out_dir / "compression_ptq_vs_data_fp8.png").exists()  # one precision
    svg = (out_dir / "compression_ptq_vs_data_rtn.svg").read_text()
    assert "P = 3 bits" in svg and "D/N" in svg


def test_the_pareto_front_keeps_what_nothing_smaller_beats():
    import pandas as pd

    from analysis.plots.compression import pareto_front

    points = pd.DataFrame({"variant": list("abcde"), "size_bytes": [4, 1, 2, 2, 3],
                           "val_loss": [2.0, 3.0, 2.5, 2.6, 2.7]})  # fmt: skip
    assert list(pareto_front(points)["variant"]) == ["b", "c", "a"]


def test_without_pretraining_records_the_critical_d_says_why(tmp_path, capsys):
    from analysis.cli import main

    write_new_compress(tmp_path / "g-compress")
    (tmp_path / "g").mkdir()
    args = ["downstream", str(tmp_path / "g"), "--bootstrap", "0", "--format", "png",
            "--out", str(tmp_path / "p")]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "critical pretraining tokens D*: not computed: no pretraining records" in text
