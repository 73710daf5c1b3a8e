"""Every config of the tree composes, and the named sweeps keep their promises."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from scaling.families import param_counts, shape_for

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
# options whose data source needs a path the user must give
NEEDS_PATH = {"text", "jsonl", "hf"}
# experiments that fine-tune or compress a finished sweep: they need its directory
NEEDS_SOURCE = {"finetune", "compress"}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (SWEEPS / group).glob("*.yaml"))


def sweep_values(cfg, key: str) -> list[int]:
    return [int(float(v)) for v in str(cfg.hydra.sweeper.params[key]).split(",")]


@pytest.mark.parametrize(
    "group,option",
    [(g, o) for g in ("model", "data", "optim", "train", "experiment") for o in options(g)]
    + [(g, o) for g in ("hydra/launcher", "hydra/sweeper") for o in options(g)],
)
def test_every_config_composes_and_resolves(compose, group, option):
    overrides = [f"{group}={option}"]
    if group == "data" and option in NEEDS_PATH:
        overrides.append("data.path=corpus.txt")
    if group == "experiment" and option in NEEDS_SOURCE:
        overrides.append("source=results/demo")
    cfg = compose(*overrides, return_hydra_config=True)
    OmegaConf.resolve(cfg)  # raises on a broken interpolation
    assert cfg.results_dir and cfg.sweep
    # records never land in a time-stamped folder: a relaunch must find them
    assert "now" not in OmegaConf.to_yaml(cfg.hydra.sweep) + OmegaConf.to_yaml(cfg.hydra.run)


def test_data_sources_that_need_a_path_say_so(compose):
    from omegaconf.errors import MissingMandatoryValue

    cfg = compose("data=jsonl")
    with pytest.raises(MissingMandatoryValue):
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def size_span(cfg, vocab: int) -> tuple[list[int], float]:
    sizes = [
        param_counts(shape_for(cfg.model.family, d, vocab, cfg.model.context))["nonembed"]
        for d in sweep_values(cfg, "model.d_model")
    ]
    return sizes, max(sizes) / min(sizes)


def test_smoke_has_three_sizes(compose):
    cfg = compose("experiment=smoke", return_hydra_config=True)
    assert len(sweep_values(cfg, "model.d_model")) == 3
    assert cfg.sweep == "smoke"


def test_demo_spans_thirty_fold_with_compute_optimal_budgets(compose):
    cfg = compose("experiment=demo", return_hydra_config=True)
    sizes, span = size_span(cfg, vocab=257)
    assert len(sizes) >= 5 and span >= 30, sizes
    assert sizes == sorted(sizes)
    # one WSD-S trunk per size gives every size every budget (a grid, so N and D can be
    # told apart), and the grid crosses Chinchilla's compute-optimal ~20 tokens per
    # parameter at three sizes
    assert cfg.optim.schedule == "wsd_s" and "train.budgets" not in cfg.hydra.sweeper.params
    budgets = list(cfg.train.budgets)
    assert len(budgets) >= 4
    near_optimal = {n for n in sizes for d in budgets if 15 <= d / n <= 25}
    assert len(near_optimal) >= 3, [[round(d / n) for d in budgets] for n in sizes]
    # even the shortest run takes hundreds of steps: fewer leave the larger models
    # worse than the smaller ones at equal tokens
    assert min(budgets) / cfg.optim.batch_tokens >= 256


def test_demo_seeds_gives_every_size_three_trunks_past_the_few_step_regime(compose):
    cfg = compose("experiment=demo_seeds", return_hydra_config=True)
    sizes, span = size_span(cfg, vocab=257)
    assert len(sizes) >= 7 and span >= 30, sizes
    # largest first, so that the last runs to start are the short ones
    assert sizes == sorted(sizes, reverse=True)
    assert sweep_values(cfg, "seed") == [0, 1, 2]
    assert cfg.optim.schedule == "wsd_s" and len(cfg.train.budgets) >= 4
    # the shortest budget takes 512 steps: at 256, d48 ends above d32 (README)
    assert min(cfg.train.budgets) / cfg.optim.batch_tokens >= 512
    assert cfg.sweep == "demo_seeds" and cfg.train.dtype == "fp32"


def test_ladder_is_a_realistic_gpu_ladder(compose):
    cfg = compose("experiment=ladder", return_hydra_config=True)
    vocab = cfg.data.vocab_size
    totals = [
        param_counts(shape_for(cfg.model.family, d, vocab, cfg.model.context))["total"]
        for d in sweep_values(cfg, "model.d_model")
    ]
    assert 5e6 <= min(totals) <= 2e7, totals
    assert 7e8 <= max(totals) <= 1.5e9, totals
    assert cfg.train.compile and cfg.data.tokenizer == "bpe"
    # OLMo-core's ladder: WSD-S decays at 0.5 ... 8 x 20 tokens per parameter, Porian's rules
    assert cfg.optim.schedule == "wsd_s" and cfg.optim.rules == "porian"
    assert [b / 20 for b in cfg.train.budgets_per_param] == [0.5, 1, 2, 4, 8]


@pytest.mark.parametrize("name", ["isoflop", "isoflop_demo"])
def test_isoflop_sweeps_cross_compute_budgets_with_sizes(compose, name):
    cfg = compose(f"experiment={name}", return_hydra_config=True)
    flops = sweep_values(cfg, "train.flops")
    assert len(flops) >= 3 and len(sweep_values(cfg, "model.d_model")) >= 5
    assert flops == sorted(flops) and cfg.train.tokens is None and cfg.train.min_steps


@pytest.mark.parametrize("option", options("task"))
def test_every_task_config_composes_into_a_task_spec(compose, option):
    from scaling.tasks import TaskSpec

    overrides = ["experiment=finetune", "source=results/demo", f"task={option}"]
    if option == "file":
        overrides.append("task.path=reviews.csv")
    cfg = compose(*overrides)
    spec = TaskSpec.from_config(OmegaConf.to_container(cfg.task, resolve=True))
    assert spec.name == option or option == "file"
