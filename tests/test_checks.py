"""`scaling/checks.py`: every value no run can be trained from is refused, naming its key.

Each case composes the real config tree (as `scaling-train` does), changes one value
and asserts the `ConfigError`'s key and that its one-line message gives the fix. The
end-to-end refusals through `scaling-train` (exit code, one line, no record) are in
tests/test_main.py.
"""

import copy
import os
from pathlib import Path

import pytest

from scaling import checks
from scaling.checks import ConfigError, Refused, check_config, check_results_dir, resolve

BASE = ("experiment=smoke", "model.d_model=16")


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> dict:
    """A resolved smoke config that passes every check (composed once: Hydra is slow)."""
    from hydra import compose, initialize_config_module

    results_dir = tmp_path_factory.mktemp("checks") / "r"
    with initialize_config_module("sweeps", version_base="1.3"):
        cfg = resolve(compose("config", overrides=[*BASE, f"results_dir={results_dir}"]))
    check_config(cfg)  # the baseline is valid: every failure below is the one change's
    return cfg


@pytest.fixture
def base(valid) -> dict:
    return copy.deepcopy(valid)


def short(value) -> str:
    text = repr(value)
    return text if len(text) < 40 else text[:20] + "..."


def changed(cfg: dict, key: str, value) -> dict:
    """A deep copy of ``cfg`` with the dotted ``key`` set to ``value``."""
    out = copy.deepcopy(cfg)
    *parents, last = key.split(".")
    node = out
    for p in parents:
        node = node[p]
    node[last] = value
    return out


def refusal(cfg: dict) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        check_config(cfg)
    message = str(err.value)
    assert "\n" not in message, message
    return err.value


def test_a_config_error_is_a_refusal_hydra_prints_alone():
    e = ConfigError("train.tokens", "train.tokens=-1 must be positive")
    assert isinstance(e, Refused) and isinstance(e, ValueError)
    assert e.key == "train.tokens" and str(e) == "train.tokens=-1 must be positive"


def test_the_family_list_matches_the_shape_rules():
    from scaling.families import FAMILIES

    assert set(checks.FAMILIES) == set(FAMILIES)


# ---------------------------------------------------------------------------------------
# Numbers: (key, bad value, what the message must say, the fix it must give)

WHOLE = "must be a positive whole number"
POSITIVE = "must be a positive finite number"
NON_NEGATIVE = "must be a non-negative finite number"

BAD_NUMBERS = [
    # sizes and context
    ("model.d_model", 0, WHOLE, "e.g. model.d_model=64"),
    ("model.d_model", -16, WHOLE, "e.g. model.d_model=64"),
    ("model.d_model", 16.5, WHOLE, "e.g. model.d_model=64"),
    ("model.d_model", "abc", WHOLE, "e.g. model.d_model=64"),
    ("model.d_model", True, WHOLE, "e.g. model.d_model=64"),
    ("model.d_model", None, WHOLE, "e.g. model.d_model=64"),
    ("model.context", 0, WHOLE, "e.g. model.context=256"),
    ("model.context", "256", WHOLE, "e.g. model.context=256"),
    ("model.n_layers", 0, WHOLE, "or null for the shape rule's"),
    ("model.n_heads", -2, WHOLE, "or null for the shape rule's"),
    ("model.d_ff", 1.5, WHOLE, "or null for the shape rule's"),
    # budgets
    ("train.tokens", -1, POSITIVE, "a token count or null for tokens_per_param × N"),
    ("train.tokens", 0, POSITIVE, "a token count or null"),
    ("train.tokens", float("nan"), POSITIVE, "a token count or null"),
    ("train.tokens", float("inf"), POSITIVE, "a token count or null"),
    ("train.tokens", "1e6", POSITIVE, "a token count or null"),
    ("train.tokens", 10**400, POSITIVE, "a token count or null"),  # too large for a float
    ("train.flops", 0, POSITIVE, "a compute budget or null"),
    ("train.flops", -1e15, POSITIVE, "a compute budget or null"),
    ("train.tokens_per_param", 0, POSITIVE, "e.g. 20"),
    ("train.peak_flops", -1.0, POSITIVE, "FLOP/s, or null"),
    # batches and step counts
    ("train.micro_batch", 0, WHOLE, "e.g. train.micro_batch=16"),
    ("train.micro_batch", None, WHOLE, "e.g. train.micro_batch=16"),
    ("train.n_evals", 0, WHOLE, "e.g. train.n_evals=20"),
    ("train.eval_batches", -1, WHOLE, "e.g. train.eval_batches=8"),
    ("train.log_every", 0, WHOLE, "e.g. train.log_every=10"),
    ("train.ckpt_every", 2.5, WHOLE, "e.g. train.ckpt_every=200"),
    ("train.max_steps", 0, WHOLE, "or null for none"),
    ("train.min_steps", -5, WHOLE, "or null for none"),
    ("train.threads", 0, WHOLE, "or null for none"),
    ("optim.batch_tokens", 0, POSITIVE, "tokens per step, or null for the rule's"),
    ("optim.batch_tokens", -1024, POSITIVE, "tokens per step, or null for the rule's"),
    ("optim.warmup_steps", -1, "must be a non-negative whole number", "steps, or null"),
    ("optim.warmup_tokens", -1, NON_NEGATIVE, "tokens, or null"),
    # learning rates and the rest of the optimiser
    ("optim.lr", 0, POSITIVE, "a peak rate, or null for the rule's"),
    ("optim.lr", -3e-3, POSITIVE, "a peak rate, or null for the rule's"),
    ("optim.lr", float("nan"), POSITIVE, "a peak rate, or null for the rule's"),
    ("optim.eps", 0, POSITIVE, "e.g. optim.eps=1e-8"),
    ("optim.grad_clip", 0, POSITIVE, "e.g. optim.grad_clip=1.0"),
    ("optim.weight_decay", -0.1, NON_NEGATIVE, "e.g. 0.1"),
    # fractions: the span is the fix
    ("optim.decay_frac", 0, "must be a number in (0, 1]", "(0, 1]"),
    ("optim.decay_frac", 1.5, "must be a number in (0, 1]", "(0, 1]"),
    ("optim.warmup_frac", -0.1, "must be a number in [0, 1]", "[0, 1]"),
    ("optim.warmup_frac", 1.01, "must be a number in [0, 1]", "[0, 1]"),
    ("optim.min_lr_ratio", 2, "must be a number in [0, 1]", "[0, 1]"),
    ("optim.min_lr_ratio", "0.1", "must be a number in [0, 1]", "[0, 1]"),
    # the seed
    ("seed", "x", "must be a whole number", "e.g. seed=0"),
    ("seed", 1.5, "must be a whole number", "e.g. seed=0"),
    ("seed", True, "must be a whole number", "e.g. seed=0"),
]


@pytest.mark.parametrize(("key", "value", "says", "fix"), BAD_NUMBERS, ids=short)
def test_a_bad_number_names_its_key_and_the_fix(base, key, value, says, fix):
    err = refusal(changed(base, key, value))
    assert err.key == key
    assert str(err).startswith(f"{key}={value!r} {says}"), str(err)
    assert fix in str(err)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("optim.warmup_steps", 0),
        ("optim.warmup_tokens", 0),
        ("optim.weight_decay", 0),
        ("optim.decay_frac", 1),
        ("optim.warmup_frac", 0),
        ("optim.min_lr_ratio", 1.0),
        ("train.tokens", 1e6),  # a float from the command line is a fine token count
        ("train.tokens", None),
        ("model.n_layers", 2),
        ("optim.lr", 1e-3),
        ("seed", 7),
    ],
)
def test_edge_values_a_run_can_use_are_accepted(base, key, value):
    check_config(changed(base, key, value))


# ---------------------------------------------------------------------------------------
# Betas, budget lists, known names


@pytest.mark.parametrize(
    "betas",
    [[0.9], [0.9, 0.95, 0.99], [0.9, 1.0], [-0.1, 0.95], [True, 0.95], "0.9,0.95", None],
    ids=repr,
)
def test_betas_must_be_two_numbers_below_one(base, betas):
    err = refusal(changed(base, "optim.betas", betas))
    assert err.key == "optim.betas"
    assert str(err) == (f"optim.betas={betas!r} must be two numbers in [0, 1), e.g. [0.9,0.95]")


@pytest.mark.parametrize(
    ("train", "says"),
    [
        ({"budgets": []}, "train.budgets must be a non-empty list of numbers"),
        ({"budgets": [2e6, 1e6]}, "train.budgets must increase"),
        ({"budgets": [1e6, -1]}, "train.budgets must hold positive numbers"),
        ({"budgets_per_param": [5, float("inf")]}, "train.budgets_per_param must hold positive"),
        ({"budgets": [1e6], "budgets_per_param": [5]}, "not both"),
        ({"budgets": [1e6], "tokens": 1e6}, "set train.budgets or train.tokens, not both"),
        ({"budgets_per_param": [5], "tokens": None, "flops": 1e12}, "or train.flops, not both"),
    ],
    ids=repr,
)
def test_bad_budget_lists_name_train_budgets_and_an_example(base, train, says):
    cfg = copy.deepcopy(base)
    cfg["train"].update(train)
    err = refusal(cfg)
    assert err.key == "train.budgets"
    assert says in str(err)
    assert str(err).endswith("e.g. 'train.budgets=[1e6,2e6,4e6]'")


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("model.family", "bert", "llama, gpt2"),
        ("model.family", None, "llama, gpt2"),
        ("train.dtype", "fp16", "auto, bf16, fp32"),
        ("train.budget_params", "embed", "total, nonembed, matmul"),
        ("optim.rules", "chinchilla", "stated, porian, deepseek"),
        ("optim.schedule", "linear", "cosine, wsd, wsd_s"),
        ("optim.decay_shape", "exp", "linear, cosine, sqrt"),
    ],
)
def test_an_unknown_name_lists_the_known_ones(base, key, value, allowed):
    err = refusal(changed(base, key, value))
    assert err.key == key
    assert str(err) == f"{key}={value!r} is unknown: use one of {allowed}"


@pytest.mark.parametrize(
    ("key", "value"),
    [("train.dtype", "bf16"), ("optim.rules", "porian"), ("optim.schedule", "wsd_s")],
)
def test_every_known_name_is_accepted(base, key, value):
    check_config(changed(base, key, value))


# ---------------------------------------------------------------------------------------
# Data


@pytest.mark.parametrize(
    ("data", "key", "says"),
    [
        ({"source": "s3"}, "data.source", "data.source='s3' is unknown: use one of"),
        ({"tokenizer": "word"}, "data.tokenizer", "data.tokenizer='word' is unknown: use one"),
        ({"val_fraction": 0.0}, "data.val_fraction", "must lie in (0, 1)"),
        ({"val_fraction": 1.0}, "data.val_fraction", "must lie in (0, 1)"),
        ({"val_fraction": "abc"}, "data.val_fraction", "e.g. data.val_fraction=0.01"),
        ({"val_fraction": None}, "data.val_fraction", "e.g. data.val_fraction=0.01"),
        ({"tokenizer": "bpe", "vocab_size": 100}, "data.vocab_size", "(>= 258)"),
        ({"tokenizer": "bpe", "vocab_size": "big"}, "data.vocab_size", "e.g. data.vocab_size="),
        ({"max_files": 0}, "data.max_files", "files, or null for all"),
        ({"max_files": "all"}, "data.max_files", "files, or null for all"),
        ({"unique_tokens": 2.5}, "data.unique_tokens", "positive whole number of tokens or null"),
        ({"sources": "x"}, "data", "unknown data config key(s) ['sources']; valid keys:"),
    ],
    ids=repr,
)
def test_a_bad_data_spec_names_its_key(base, data, key, says):
    cfg = copy.deepcopy(base)
    cfg["data"].update(data)
    err = refusal(cfg)
    assert err.key == key
    assert says in str(err)
    if key != "data":
        assert str(err).startswith(key)


@pytest.mark.parametrize("source", ["text", "jsonl"])
def test_a_file_source_needs_a_path_that_exists(base, tmp_path, source):
    suffix = {"text": ".txt", "jsonl": ".jsonl"}[source]
    cfg = copy.deepcopy(base)
    cfg["data"].update(source=source, path=str(tmp_path / f"missing{suffix}"))
    err = refusal(cfg)
    assert err.key == "data.path"
    assert f"data.path='{tmp_path / f'missing{suffix}'}' does not exist" in str(err)
    assert str(err).endswith(f"give a {suffix} file or a directory holding {suffix} files")
    # a file or a directory that is there is accepted
    (tmp_path / f"corpus{suffix}").write_text("")
    check_config(changed(cfg, "data.path", str(tmp_path / f"corpus{suffix}")))
    check_config(changed(cfg, "data.path", str(tmp_path)))


def test_a_file_source_without_a_path_names_data_path(base):
    cfg = copy.deepcopy(base)
    cfg["data"].update(source="text", path=None)
    err = refusal(cfg)
    assert err.key == "data.path"
    assert "data.source='text' needs data.path" in str(err)


def test_an_hf_path_is_a_dataset_name_not_a_file(base):
    # hf takes builder names (json, parquet) and hub ids: nothing to find on disk
    cfg = copy.deepcopy(base)
    cfg["data"].update(source="hf", path="roneneldan/TinyStories")
    check_config(cfg)


# ---------------------------------------------------------------------------------------
# Where records go


def test_a_results_dir_that_is_a_regular_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("keep")
    for where in (tmp_path / "afile", tmp_path / "afile" / "deeper" / "still"):
        with pytest.raises(ConfigError) as err:
            check_results_dir(str(where), "smoke")
        assert err.value.key == "results_dir"
        assert f"{tmp_path / 'afile'} is a file, not a directory" in str(err.value)
        assert str(err.value).endswith("choose another results_dir")
    assert (tmp_path / "afile").read_text() == "keep"


def test_a_sweep_name_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "smoke").write_text("")
    with pytest.raises(ConfigError, match="is a file, not a directory") as err:
        check_results_dir(str(tmp_path), "smoke")
    assert err.value.key == "results_dir"


def test_a_results_dir_through_a_broken_link_is_refused(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(ConfigError) as err:
        check_results_dir(str(tmp_path / "link"), "smoke")
    assert err.value.key == "results_dir"
    assert "is a broken link: choose another results_dir" in str(err.value)


@pytest.mark.parametrize(
    ("results_dir", "sweep", "key"),
    [
        ("", "s", "results_dir"),
        (None, "s", "results_dir"),
        ("r", "", "sweep"),
        ("r", "  ", "sweep"),
        ("r", None, "sweep"),
    ],
)
def test_an_empty_results_dir_or_sweep_is_refused(results_dir, sweep, key):
    with pytest.raises(ConfigError) as err:
        check_results_dir(results_dir, sweep)
    assert err.value.key == key
    fix = (
        "must be a name, e.g. sweep=mine" if key == "sweep" else "must be a directory, e.g. results"
    )
    assert str(err.value) == f"{key}={(sweep if key == 'sweep' else results_dir)!r} {fix}"


def test_a_results_dir_not_yet_made_is_accepted_and_not_created(tmp_path):
    check_results_dir(str(tmp_path / "a" / "b"), "smoke")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="permission bits do not stop root")
def test_a_results_dir_without_write_permission_is_refused(tmp_path):
    (tmp_path / "locked").mkdir(mode=0o500)
    try:
        with pytest.raises(ConfigError) as err:
            check_results_dir(str(tmp_path / "locked" / "r"), "smoke")
        assert err.value.key == "results_dir"
        assert f"no write permission in {tmp_path / 'locked'}" in str(err.value)
        assert "choose another results_dir or change its permissions" in str(err.value)
    finally:
        (tmp_path / "locked").chmod(0o700)


def test_check_config_checks_the_results_dir_first(base, tmp_path):
    (tmp_path / "afile").write_text("")
    cfg = changed(changed(base, "results_dir", str(tmp_path / "afile")), "train.tokens", -1)
    assert refusal(cfg).key == "results_dir"


# ---------------------------------------------------------------------------------------
# Fine-tuning and compression jobs: the source sweep


@pytest.mark.parametrize("experiment", ["finetune", "compress"])
def test_a_job_needs_a_source_sweep_directory(compose, tmp_path, experiment):
    (tmp_path / "demo").mkdir()
    (tmp_path / "afile").write_text("")
    ok = resolve(compose(f"experiment={experiment}", f"source={tmp_path / 'demo'}"))
    check_config(ok)
    assert ok["sweep"] == f"demo-{experiment}"
    for source in (str(tmp_path / "missing"), str(tmp_path / "afile"), None, 3):
        cfg = changed(ok, "source", source)
        err = refusal(cfg)
        assert err.key == "source"
        assert str(err) == (
            f"source={source!r} is not a sweep directory: give a finished pretraining "
            "sweep's directory, e.g. source=results/demo"
        )


def test_a_job_without_its_source_is_one_line_naming_source(compose):
    # sweep and results_dir interpolate source: the error names source, not them
    with pytest.raises(ConfigError) as err:
        resolve(compose("experiment=finetune"))
    assert err.value.key == "source"
    assert str(err.value) == "source is not set: add source=VALUE to the command"


# ---------------------------------------------------------------------------------------
# resolve: unset and unresolvable values


@pytest.mark.parametrize("data", ["text", "jsonl", "hf"])
def test_an_unset_data_path_is_one_line_saying_how_to_set_it(compose, data):
    with pytest.raises(ConfigError) as err:
        resolve(compose(*BASE, f"data={data}"))
    assert err.value.key == "data.path"
    assert str(err.value) == "data.path is not set: add data.path=VALUE to the command"


def test_an_unresolvable_interpolation_is_one_line_saying_set_it(compose):
    with pytest.raises(ConfigError) as err:
        resolve(compose(*BASE, "train.tokens=${train.nowhere}"))
    assert err.value.key == "train.tokens"
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("train.tokens cannot be resolved (")
    assert message.endswith("): set it explicitly")


def test_resolve_returns_plain_containers(compose, tmp_path):
    cfg = resolve(compose(*BASE, f"results_dir={tmp_path}"))
    assert type(cfg) is dict and type(cfg["optim"]["betas"]) is list
    assert cfg["model"]["d_model"] == 16 and cfg["results_dir"] == str(tmp_path)
    assert Path(cfg["results_dir"]).is_dir()
