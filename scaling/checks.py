"""A run's config, checked before anything is written.

A value no run can be trained from — a size, budget, batch or context that is not
positive, a data path that does not exist, a results directory that cannot be created —
is refused here with one line naming the key and the fix, before a directory or record
exists: a typo then leaves nothing behind for later fits of the sweep to warn about.
What can only fail while training (a shape the family cannot build, a corpus that turns
out empty) is still recorded as a ``failed`` run.

Plain Python and Hydra's error type only (no torch): the launcher checks every point of
a sweep before it launches any.
"""

from __future__ import annotations

import math
import operator
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hydra.errors import CompactHydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import (
    InterpolationResolutionError,
    InterpolationToMissingValueError,
    MissingMandatoryValue,
)

from scaling import budgets, rules, schedules

# scaling/families.py holds the shape rules but imports torch; tests keep the two equal
FAMILIES = ("llama", "gpt2")
BUDGET_PARAMS = ("total", "nonembed", "matmul")
DTYPES = ("auto", "bf16", "fp32")
FILE_SOURCES = {"text": ".txt", "jsonl": ".jsonl"}


class Refused(CompactHydraException, ValueError):
    """A launch refused before anything is written; Hydra prints its message alone."""


class ConfigError(Refused):
    """A config value no run can be trained from.

    Parameters
    ----------
    key : str
        The dotted config key (``train.tokens``).
    message : str
        One line: the key, its value, what it must be and how to fix it.
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def resolve(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain containers, refusing a missing or unresolvable value.

    Raises
    ------
    ConfigError
        On a mandatory value left unset (``???``, e.g. ``data.path``) or an
        interpolation that cannot be resolved.
    """
    try:
        return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as e:
        key = str(e.full_key)
        raise ConfigError(key, f"{key} is not set: add {key}=VALUE to the command") from None
    except InterpolationResolutionError as e:
        key = str(e.full_key)
        # sweep: ${basename:${source}} fails on sweep, but the fix is to set source
        unset = _unset(cfg)
        if isinstance(e, InterpolationToMissingValueError) and unset:
            raise ConfigError(
                unset[0], f"{unset[0]} is not set: add {unset[0]}=VALUE to the command"
            ) from None
        msg = " ".join(str(e.msg).split())
        raise ConfigError(key, f"{key} cannot be resolved ({msg}): set it explicitly") from None


def _unset(cfg: DictConfig, prefix: str = "") -> list[str]:
    """The dotted keys left ``???``, found without resolving anything (hydra's aside)."""
    found = []
    for key, value in cfg.items_ex(resolve=False):
        dotted = f"{prefix}{key}"
        if dotted == "hydra":
            continue
        if OmegaConf.is_missing(cfg, key):
            found.append(dotted)
        elif isinstance(value, DictConfig):
            found += _unset(value, dotted + ".")
    return sorted(found)


def check_config(cfg: Mapping[str, Any]) -> None:
    """Refuse a resolved config no run can be trained from.

    Parameters
    ----------
    cfg : Mapping
        The fully resolved config (plain containers), without the ``hydra`` node.

    Raises
    ------
    ConfigError
        On the first bad value, naming its key and the fix.
    """
    check_results_dir(cfg.get("results_dir"), cfg.get("sweep"))
    job = cfg.get("job", "pretrain")
    if job != "pretrain":
        source = cfg.get("source")
        if not isinstance(source, str) or not Path(source).expanduser().is_dir():
            raise ConfigError(
                "source",
                f"source={source!r} is not a sweep directory: give a finished pretraining "
                "sweep's directory, e.g. source=results/demo",
            )
        return
    if isinstance(cfg.get("seed"), bool) or not isinstance(cfg.get("seed"), int):
        raise ConfigError("seed", f"seed={cfg.get('seed')!r} must be a whole number, e.g. seed=0")
    _check_model(cfg.get("model") or {})
    _check_train(cfg.get("train") or {})
    _check_optim(cfg.get("optim") or {})
    _check_data(cfg.get("data") or {})


def check_results_dir(results_dir: Any, sweep: Any) -> None:
    """Refuse a results directory (or sweep name) whose records could not be written.

    The deepest part of ``results_dir/sweep`` that exists must be a directory this
    process may write into; nothing is created.

    Raises
    ------
    ConfigError
        Naming ``results_dir`` (or ``sweep``) and what to do.
    """
    if not isinstance(sweep, str) or not sweep.strip():
        raise ConfigError("sweep", f"sweep={sweep!r} must be a name, e.g. sweep=mine")
    if not isinstance(results_dir, str | os.PathLike) or not str(results_dir).strip():
        raise ConfigError(
            "results_dir", f"results_dir={results_dir!r} must be a directory, e.g. results"
        )
    target = Path(results_dir).expanduser() / sweep
    existing = target
    # Path.exists() is False below a regular file as well: climb to what really exists
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    fix = "choose another results_dir"
    if existing.is_symlink() and not existing.exists():
        raise ConfigError(
            "results_dir", f"results_dir={str(results_dir)!r}: {existing} is a broken link: {fix}"
        )
    if not existing.is_dir():
        raise ConfigError(
            "results_dir",
            f"results_dir={str(results_dir)!r} cannot be created: {existing} is a file, not a "
            f"directory: {fix}",
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(
            "results_dir",
            f"results_dir={str(results_dir)!r} cannot be written: no write permission in "
            f"{existing}: {fix} or change its permissions",
        )


# ----------------------------------------------------------------------------------------
# One section each


def _check_model(model: Mapping[str, Any]) -> None:
    family = model.get("family")
    if family not in FAMILIES:
        raise ConfigError(
            "model.family", f"model.family={family!r} is unknown: use one of {', '.join(FAMILIES)}"
        )
    _whole("model.d_model", model.get("d_model"), "the width, e.g. model.d_model=64")
    _whole("model.context", model.get("context"), "tokens per sequence, e.g. model.context=256")
    for key in ("n_layers", "n_heads", "d_ff"):
        _whole(f"model.{key}", model.get(key), "or null for the shape rule's", optional=True)


def _check_train(train: Mapping[str, Any]) -> None:
    null_default = "or null for tokens_per_param × N"
    _number("train.tokens", train.get("tokens"), f"a token count {null_default}", optional=True)
    _number("train.flops", train.get("flops"), f"a compute budget {null_default}", optional=True)
    _number("train.tokens_per_param", train.get("tokens_per_param"), "e.g. 20", optional=True)
    try:
        budgets.budget_list(train)
    except (TypeError, ValueError) as e:
        raise ConfigError("train.budgets", f"{e}: e.g. 'train.budgets=[1e6,2e6,4e6]'") from None
    for key in ("max_steps", "min_steps", "threads"):
        _whole(f"train.{key}", train.get(key), "or null for none", optional=True)
    for key, example in (
        ("micro_batch", "sequences per forward pass, e.g. train.micro_batch=16"),
        ("n_evals", "evaluations per run, e.g. train.n_evals=20"),
        ("eval_batches", "validation batches, e.g. train.eval_batches=8"),
        ("log_every", "steps, e.g. train.log_every=10"),
        ("ckpt_every", "steps, e.g. train.ckpt_every=200"),
    ):
        _whole(f"train.{key}", train.get(key), example)
    _number("train.peak_flops", train.get("peak_flops"), "FLOP/s, or null", optional=True)
    _one_of("train.budget_params", train.get("budget_params"), BUDGET_PARAMS)
    _one_of("train.dtype", train.get("dtype"), DTYPES)
    from scaling.trackers import logger_problem  # plain Python: the packages are only found

    if (problem := logger_problem(train)) is not None:
        raise ConfigError("train.loggers", problem)


def _check_optim(optim: Mapping[str, Any]) -> None:
    _one_of("optim.rules", optim.get("rules") or "stated", rules.RULES)
    _one_of("optim.schedule", optim.get("schedule", "cosine"), schedules.SCHEDULES)
    _one_of("optim.decay_shape", optim.get("decay_shape", "linear"), schedules.DECAY_SHAPES)
    _number("optim.lr", optim.get("lr"), "a peak rate, or null for the rule's", optional=True)
    _number(
        "optim.batch_tokens",
        optim.get("batch_tokens"),
        "tokens per step, or null for the rule's",
        optional=True,
    )
    _whole(
        "optim.warmup_steps", optim.get("warmup_steps"), "steps, or null", optional=True, least=0
    )
    _number(
        "optim.warmup_tokens",
        optim.get("warmup_tokens"),
        "tokens, or null",
        optional=True,
        zero=True,
    )
    _number("optim.eps", optim.get("eps", 1e-8), "e.g. optim.eps=1e-8")
    _number("optim.grad_clip", optim.get("grad_clip", 1.0), "e.g. optim.grad_clip=1.0")
    _number("optim.weight_decay", optim.get("weight_decay", 0.0), "e.g. 0.1", zero=True)
    _fraction("optim.decay_frac", optim.get("decay_frac", 0.2), low_open=True)
    _fraction("optim.warmup_frac", optim.get("warmup_frac", 0.0))
    _fraction("optim.min_lr_ratio", optim.get("min_lr_ratio", 0.0))
    betas = optim.get("betas")
    ok = isinstance(betas, list | tuple) and len(betas) == 2
    if not ok or not all(_is_number(b) and 0 <= b < 1 for b in betas):
        raise ConfigError(
            "optim.betas", f"optim.betas={betas!r} must be two numbers in [0, 1), e.g. [0.9,0.95]"
        )


def _check_data(data: Mapping[str, Any]) -> None:
    from scaling.data import DataSpec  # numpy only; its checks name the key already

    # DataSpec calls float()/int() on these: a string would fail there without the key
    fraction = data.get("val_fraction", 0.01)
    if not (_is_number(fraction) and 0 < fraction < 1):
        raise ConfigError(
            "data.val_fraction",
            f"data.val_fraction={fraction!r} must lie in (0, 1), e.g. data.val_fraction=0.01",
        )
    _whole("data.vocab_size", data.get("vocab_size", 4096), "e.g. data.vocab_size=4096")
    _whole("data.max_files", data.get("max_files"), "files, or null for all", optional=True)
    try:
        spec = DataSpec.from_config(data)
    except (TypeError, ValueError) as e:
        message = " ".join(str(e).split())
        named = re.match(r"data\.\w+", message)
        key = "data.path" if "needs data.path" in message else named[0] if named else "data"
        raise ConfigError(key, message) from None
    suffix = FILE_SOURCES.get(spec.source)
    if suffix and not Path(str(spec.path)).expanduser().exists():
        raise ConfigError(
            "data.path",
            f"data.path={spec.path!r} does not exist (data.source={spec.source}): give a "
            f"{suffix} file or a directory holding {suffix} files",
        )


# ----------------------------------------------------------------------------------------
# Kinds of value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _whole(key: str, value: Any, fix: str, optional: bool = False, least: int = 1) -> None:
    if value is None and optional:
        return
    try:
        whole = not isinstance(value, bool) and operator.index(value) >= least
    except TypeError:
        whole = False
    if not whole:
        what = "positive" if least > 0 else "non-negative"
        raise ConfigError(key, f"{key}={value!r} must be a {what} whole number: {fix}")


def _number(key: str, value: Any, fix: str, optional: bool = False, zero: bool = False) -> None:
    """A finite number above zero (at or above it with ``zero``), or null when optional."""
    if value is None and optional:
        return
    try:
        # an int past float's range (1e400 written out) overflows every later use
        ok = _is_number(value) and math.isfinite(value) and (value >= 0 if zero else value > 0)
    except OverflowError:
        ok = False
    if not ok:
        what = "a non-negative" if zero else "a positive"
        raise ConfigError(key, f"{key}={value!r} must be {what} finite number: {fix}")


def _fraction(key: str, value: Any, low_open: bool = False) -> None:
    ok = _is_number(value) and (0 < value <= 1 if low_open else 0 <= value <= 1)
    if not ok:
        span = "(0, 1]" if low_open else "[0, 1]"
        raise ConfigError(key, f"{key}={value!r} must be a number in {span}")


def _one_of(key: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(key, f"{key}={value!r} is unknown: use one of {', '.join(allowed)}")
