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


def test_plot_downstream_draws_every_figure(sweep, tmp_path):
    written = plot_downstream(sweep, tmp_path / "plots", bootstrap=20)
    names = sorted(p.name for p in written)
    stems = ["compression_loss_vs_params", "compression_loss_vs_size"]
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
    assert len(data["files"]) == 4
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
