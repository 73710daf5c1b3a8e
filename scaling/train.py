"""Train one run of a sweep, resumably, and keep its record up to date.

Reads top to bottom: resolve the per-size rules, build data and model, restore the
checkpoint if there is one, then the loop (schedule, accumulate, clip, step, evaluate,
log, checkpoint). Every decision a fit later depends on (parameter counts, tokens,
FLOPs, learning rate, batch) is written to the run's record.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import yaml
from omegaconf.errors import OmegaConfBaseException
from torch.nn.parallel import DistributedDataParallel

from scaling import budgets, distributed, results, rules, schedules
from scaling.data import DataSpec, prepare, repeated_windows, sample_train_batch, val_batches
from scaling.families import build_model, param_counts, shape_for
from scaling.flops import flops_6nd, flops_per_token
from scaling.trackers import Trackers, open_trackers

# Dense peak FLOP/s used for MFU, by device. A stated number, not a measurement: the
# CPU figure is fp32 on two AVX-512 cores; set `train.peak_flops` for your hardware.
PEAK_FLOPS = {
    ("cuda", "bf16"): 989e12,  # H100/H200 SXM dense bf16
    ("cuda", "fp32"): 67e12,
    ("cpu", "bf16"): 400e9,
    ("cpu", "fp32"): 180e9,
}


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


class Interrupted(RuntimeError):
    """A stop signal arrived; the checkpoint has been written."""

    def __init__(self, signum: int, why: str = "") -> None:
        what = f"stopped by signal {signal.Signals(signum).name}"
        super().__init__(f"{what} ({why})" if why else what)
        self.signum = signum


# ----------------------------------------------------------------------------------------
# The per-size rules, stated in the config and resolved here once per run


def resolve_plan(
    cfg: Mapping[str, Any],
    n_params: int,
    context: int,
    world: int = 1,
    flops_per_token: float | None = None,
    *,
    n_nonembed: int | None = None,
    n_layers: int | None = None,
) -> dict[str, Any]:
    """Token budgets, batch, learning rate and schedule for one model size.

    Parameters
    ----------
    cfg : Mapping
        The run config (``optim`` and ``train`` sections are read).
    n_params : int
        The parameter count the rules scale with (``train.budget_params`` convention).
    context : int
        Sequence length in tokens.
    world : int
        Data-parallel processes: the micro-batches of a step are shared among them, so
        their number is rounded to a multiple of it.
    flops_per_token : float, optional
        The shape's analytic training FLOPs per token; needed for ``train.flops``.
    n_nonembed, n_layers : int, optional
        Non-embedding parameters and depth, for the ``porian`` and ``deepseek`` rules
        (``optim.rules``); default: ``n_params`` and ``model.n_layers``.

    Returns
    -------
    dict
        ``tokens_target, batch_tokens, micro_batch, grad_accum, steps_total, lr, min_lr,
        betas, rules, warmup_steps, eval_every`` — stored in the record's ``optim`` and ``summary`` —
        and ``schedule, decay_frac, decay_shape, flops_target``, ``budgets`` (one
        :class:`scaling.budgets.Budget` each) and ``segments`` (what the loop trains).
    """
    optim, train = cfg["optim"], cfg["train"]
    schedule = optim.get("schedule", "cosine")
    decay_frac = float(optim.get("decay_frac", 0.2))
    decay_shape = optim.get("decay_shape", "linear")
    schedules.check(schedule, decay_shape, decay_frac)

    # tokens: several budgets from one run, a compute budget, an explicit count, or
    # tokens_per_param * N (Chinchilla's compute-optimal ratio is ~20)
    many = budgets.budget_tokens(train, n_params)
    flops_target = None
    if many is not None:
        targets, asked = many, budgets.budget_list(train)
    elif train.get("flops") is not None:
        flops_target = _positive(train["flops"], "train.flops")
        if not flops_per_token:
            raise ValueError("train.flops needs the shape's FLOPs per token")
        targets = asked = [flops_target / flops_per_token]  # made whole steps below
    else:
        tokens = train.get("tokens")
        if tokens is None:
            tokens = _positive(train["tokens_per_param"], "train.tokens_per_param") * n_params
        targets = [_positive(tokens, "train.tokens")]
        asked = [targets[0]]
    if optim.get("rules") == "deepseek" and many is not None and len(many) > 1:
        raise ValueError(
            "optim.rules=deepseek sets the rate and batch from one compute budget: use it "
            "with train.tokens or train.flops, or optim.rules=porian with several budgets"
        )

    # batch, peak rate, warmup and betas by the per-size rules (scaling/rules.py); a
    # trunk's follow from its first budget, so asking it for more budgets changes none
    micro = int(train["micro_batch"])
    sized = rules.resolve_rules(
        optim,
        n_params=n_params,
        n_nonembed=n_nonembed if n_nonembed is not None else n_params,
        d_model=cfg["model"]["d_model"],
        n_layers=n_layers or cfg["model"].get("n_layers") or 1,
        context=context,
        tokens=targets[0],
        schedule=schedule,
        batch_multiple=micro * context * world,
    )
    batch_tokens, lr = sized.batch_tokens, sized.lr
    grad_accum = batch_tokens // (micro * context)
    if flops_target is not None:
        # whole steps, as close to the asked compute as they come
        steps = max(1, round(flops_target / (flops_per_token * batch_tokens)))
        targets = [steps * batch_tokens]
    steps_total = max(1, math.ceil(targets[-1] / batch_tokens))
    if train.get("max_steps") and many is None:
        steps_total = min(steps_total, int(train["max_steps"]))

    # warmup: explicit steps or tokens, the rule's, else a share of the (first) budget;
    # a trunk's warmup must not depend on how many budgets it is later asked for
    first_steps = max(1, math.ceil(targets[0] / batch_tokens))
    if optim.get("warmup_steps") is not None:
        warmup = int(optim["warmup_steps"])
    elif optim.get("warmup_tokens") is not None:
        warmup = math.ceil(float(optim["warmup_tokens"]) / batch_tokens)
    elif sized.warmup_tokens is not None:
        warmup = math.ceil(sized.warmup_tokens / batch_tokens)
    else:
        warmup = round(optim["warmup_frac"] * (first_steps if many else steps_total))
    warmup = min(int(warmup), steps_total)

    if many is not None:
        plan_budgets = budgets.plan_budgets(
            targets, asked, batch_tokens,
            schedule=schedule, decay_frac=decay_frac, warmup_steps=warmup,
        )
        segments = budgets.segments(plan_budgets, schedule)
    else:
        if schedule == "cosine":
            decay_start = warmup
        else:  # plain WSD: warmup, constant, one decay over the last decay_frac
            decay_start = max(warmup, steps_total - max(1, round(decay_frac * steps_total)))
        only = budgets.Budget(0, asked[0], int(targets[0]), steps_total, decay_start)
        plan_budgets, segments = [only], budgets.single(only, schedule)
    n_evals = max(1, int(train["n_evals"]))
    return {
        "tokens_target": int(targets[-1]),
        "batch_tokens": batch_tokens,
        "micro_batch": micro,
        "grad_accum": grad_accum,
        "steps_total": steps_total,
        "lr": lr,
        "min_lr": lr * optim["min_lr_ratio"],
        "betas": list(sized.betas),
        "rules": sized.source,
        "warmup_steps": warmup,
        "eval_every": max(1, steps_total // n_evals),
        "schedule": schedule,
        "decay_frac": decay_frac,
        "decay_shape": decay_shape,
        "flops_target": flops_target,
        "trunk": many is not None,
        "budgets": plan_budgets,
        "segments": segments,
    }


def _positive(value: Any, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"{key} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{key} must be finite, got {value!r}")
    return value


def lr_at(step: int, plan: Mapping[str, Any], decay: tuple[int, int] | None = None) -> float:
    """The learning rate of the update made at ``step`` (0-based).

    Cosine runs decay over the whole run; under WSD and WSD-S, ``decay`` is the decay
    window of the segment being trained (None on a stable trunk).
    """
    if plan.get("schedule", "cosine") == "cosine":
        return schedules.cosine_lr(
            step, plan["lr"], plan["min_lr"], plan["warmup_steps"], plan["steps_total"]
        )
    return schedules.wsd_lr(
        step, plan["lr"], plan["min_lr"], plan["warmup_steps"], decay, plan["decay_shape"]
    )


def phase_of(step: int, plan: Mapping[str, Any], decay: tuple[int, int] | None) -> str:
    """What the schedule was doing at the update that led to ``step`` steps done."""
    if step <= plan["warmup_steps"]:
        return "warmup"
    if plan["schedule"] == "cosine":
        return "cosine"
    return "decay" if decay is not None and step > decay[0] else "stable"


# ----------------------------------------------------------------------------------------
# Device, precision and the optimiser, each chosen by what the hardware offers


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    # oneDNN runs bf16 matmuls natively on CPUs with AVX-512 BF16 or AMX (about 2.4x the
    # fp32 rate on a Zen 4 core); elsewhere it emulates them, slower than fp32
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(name: str, device: torch.device) -> str:
    # bf16 autocast (fp32 master weights) wherever the hardware runs bf16 natively: every
    # recent GPU, and CPUs with AVX-512 BF16 or AMX; fp32 everywhere else
    if name == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
        return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "fp32"
    if name not in ("bf16", "fp32"):
        raise ValueError(f"train.dtype must be auto, bf16 or fp32, got {name!r}")
    return name


def autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: torch.nn.Module, plan: Mapping, optim: Mapping, device: torch.device):
    # no weight decay on norms and biases (1-D tensors), as in GPT-2/Llama training
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": optim["weight_decay"]},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # the fused kernel updates every tensor in one pass: on GPUs one launch instead of
    # hundreds, on CPUs several times faster than the per-tensor loop (benchmarks/)
    fused = device.type in ("cuda", "cpu")
    return torch.optim.AdamW(
        groups, lr=plan["lr"], betas=tuple(plan["betas"]), eps=optim["eps"], fused=fused
    )


# ----------------------------------------------------------------------------------------
# Stop signals: SLURM sends USR2 before preemption or the time limit, a user sends TERM


class StopFlag:
    """Records a stop signal so the loop can checkpoint at the next step boundary."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.previous: dict[int, Any] = {}

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGUSR2):
            self.previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum

    def restore(self) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def forward(self) -> None:
        """After checkpointing, let whoever handled the signal before us act on it.

        Under submitit, USR2's handler is submitit's: it asks the task how to resubmit
        itself (the Hydra launcher: the same task from the start, which finds this run's
        checkpoint and resumes), requeues the job and exits with ``SystemExit``. After
        too many time-outs (``max_num_timeout``) it raises instead: the run is then
        interrupted all the same, not failed (its checkpoint is on disk, and a relaunch
        resumes it). Its SIGTERM handler only logs. Whenever the previous handler
        returns, the run stops with :class:`Interrupted`.
        """
        if self.signum is None:  # another process of a data-parallel run was signalled
            self.restore()
            raise Interrupted(signal.SIGTERM)
        prev = self.previous.get(self.signum)
        self.restore()
        if callable(prev):
            try:
                prev(self.signum, None)
            except Exception as e:  # not SystemExit: a requeue leaves through that
                raise Interrupted(self.signum, f"{type(e).__name__}: {e}") from e
        raise Interrupted(self.signum)


# ----------------------------------------------------------------------------------------
# The record's fixed part: who, what, where


def versions() -> dict[str, str]:
    import transformers

    from scaling import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "scaling_lab": __version__,
    }


LOG_NAME = "train.log"


def say(out: Path, text: str) -> None:
    """Print a progress line and append it to the run's own ``train.log``.

    A local launcher keeps no run's output (Hydra's ``main.log`` gets only its logging,
    not prints): the file is where ``scaling-train status`` finds a run's progress, its
    tokens/s and ETA, and what to show in its ``log`` column.
    """
    print(text, flush=True)
    with contextlib.suppress(OSError), open(out / LOG_NAME, "a", encoding="utf-8") as f:
        f.write(text + "\n")


def launcher_info() -> dict[str, Any]:
    """SLURM job id, array index and log paths when running under SLURM/submitit."""
    env = os.environ
    job = env.get("SLURM_ARRAY_JOB_ID") or env.get("SLURM_JOB_ID")
    info: dict[str, Any] = {
        "kind": "slurm" if job else "local",
        "host": platform.node(),
        "pid": os.getpid(),
        "job_id": None,
        "array_index": None,
        "log": None,
        "stdout": None,
        "stderr": None,
    }
    # outside a Hydra app (a test, a notebook) there is no Hydra config, or a stale one
    with contextlib.suppress(ImportError, ValueError, OmegaConfBaseException):
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        log = Path(hc.runtime.output_dir) / f"{hc.job.name}.log"
        # relative to where the sweep was launched when inside it: records stay portable
        with contextlib.suppress(ValueError):
            log = log.relative_to(Path.cwd())
        info["log"] = str(log)
    if job:
        task = env.get("SLURM_ARRAY_TASK_ID")
        info["job_id"] = f"{job}_{task}" if task else job
        info["array_index"] = int(task) if task else None
    with contextlib.suppress(ImportError, RuntimeError):
        import submitit

        paths = submitit.JobEnvironment().paths
        info["stdout"] = str(paths.stdout)
        # SLURM creates the job's log files before it starts: no stderr file means stderr
        # goes to the stdout log (the launcher's stderr_to_stdout)
        info["stderr"] = str(paths.stderr if paths.stderr.exists() else paths.stdout)
    return info


def evaluate(model, batches, device, dtype) -> float:
    model.eval()
    total = 0.0
    with torch.no_grad(), autocast(device, dtype):
        for x, y in batches:
            logits = model(input_ids=x.to(device)).logits
            total += F.cross_entropy(logits.float().flatten(0, 1), y.to(device).flatten()).item()
    model.train()
    return total / len(batches)


# ----------------------------------------------------------------------------------------


def plan_run(cfg: Mapping[str, Any], world: int = 1) -> tuple:
    """Data, shape and plan of a run: ``(spec, data, shape, counts, fpt, plan)``.

    The tokenized corpus is prepared (or found in the cache), the family's shape rule
    turns the one size knob into an architecture, and :func:`resolve_plan` applies the
    per-size rules. Nothing is written to the run's directory.
    """
    mcfg = cfg["model"]
    # data: tokenized once per corpus+tokenizer and shared by every run of the sweep
    spec = DataSpec.from_config(cfg["data"])
    data = prepare(spec)
    # model: the family's shape rule turns the one size knob into an architecture
    shape = shape_for(
        mcfg["family"],
        mcfg["d_model"],
        vocab_size=data.vocab_size,
        context=mcfg["context"],
        n_layers=mcfg.get("n_layers"),
        n_heads=mcfg.get("n_heads"),
        d_ff=mcfg.get("d_ff"),
    )
    counts = param_counts(shape)
    fpt = flops_per_token(shape)
    # a data-constrained run draws from the first unique_tokens tokens, epoch after epoch
    if spec.unique_tokens is not None:
        repeated_windows(spec.unique_tokens, shape.context, len(data.train))
    plan = resolve_plan(
        cfg, counts[cfg["train"]["budget_params"]], shape.context, world, fpt,
        n_nonembed=counts["nonembed"], n_layers=shape.n_layers,
    )
    return spec, data, shape, counts, fpt, plan


def too_short(cfg: Mapping[str, Any]) -> str | None:
    """Why a run is not worth training (fewer steps than ``train.min_steps``), or None.

    IsoFLOP grids cross every size with every compute budget; at a small budget the
    largest sizes get too few steps to mean anything, and are skipped.
    """
    least = cfg["train"].get("min_steps")
    if not least:
        return None
    *_, counts, _, plan = plan_run(cfg)
    if plan["steps_total"] >= int(least):
        return None
    asked = plan["flops_target"]
    budget = f"{asked:.3g} FLOPs" if asked else f"{plan['tokens_target']:,} tokens"
    return (
        f"{budget} gives N = {counts['nonembed']:,} only {plan['steps_total']} steps of "
        f"{plan['batch_tokens']:,} tokens, under train.min_steps={least}: skipped"
    )


def train(cfg: Mapping[str, Any], run_directory: str | os.PathLike) -> dict[str, Any]:
    """Train one run to its token budget, resuming from its checkpoint when present.

    Parameters
    ----------
    cfg : Mapping
        The fully resolved run config (plain containers).
    run_directory : path
        Where the record is written (``<results_dir>/<sweep>/<run_id>``).

    Returns
    -------
    dict
        The final ``summary.json``. Exceptions are recorded (status ``failed``, traceback
        in ``error.txt``) and re-raised; a NaN/inf loss ends the run as ``diverged``.
    """
    out = Path(run_directory)
    out.mkdir(parents=True, exist_ok=True)
    results.atomic_write_text(out / "config.yaml", yaml.safe_dump(dict(cfg), sort_keys=False))
    # where it runs comes first: a run that fails while starting up (a bad config, no
    # data) still tells which job it was and where that job's log is
    summary: dict[str, Any] = {
        "run_id": out.name,
        "sweep": cfg["sweep"],
        "status": "running",
        "launcher": launcher_info(),
    }
    stop = StopFlag()
    procs = distributed.setup()
    try:
        # what the run holds open to the end, however it ends: its tracker runs
        with contextlib.ExitStack() as hold:
            return _train(cfg, out, summary, stop, procs, hold)
    except Interrupted:
        raise
    except Diverged as e:
        summary.update(status="diverged", error=str(e))
        print(f"[{out.name}] diverged: {e}", file=sys.stderr, flush=True)
        return results.write_summary(out, summary) if procs.main else summary
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt | SystemExit) or not procs.main:
            raise
        results.atomic_write_text(out / "error.txt", traceback.format_exc())
        summary.update(status="failed", error=f"{type(e).__name__}: {e}")
        results.write_summary(out, summary)
        raise
    finally:
        stop.restore()
        distributed.teardown(procs)


def _train(
    cfg: Mapping,
    out: Path,
    summary: dict,
    stop: StopFlag,
    procs: distributed.Group,
    hold: contextlib.ExitStack,
) -> dict[str, Any]:
    t_start = time.perf_counter()
    tcfg = cfg["train"]
    if tcfg.get("threads"):
        torch.set_num_threads(int(tcfg["threads"]))
    device = pick_device(tcfg["device"])
    dtype = pick_dtype(tcfg["dtype"], device)
    torch.manual_seed(cfg["seed"])

    # data, the model's shape and the per-size rules; a data-constrained run
    # (data.unique_tokens) repeats its first tokens epoch after epoch
    spec, data, shape, counts, fpt, plan = plan_run(cfg, procs.world)
    unique = spec.unique_tokens or len(data.train)
    peak = tcfg.get("peak_flops") or PEAK_FLOPS[(device.type, dtype)]
    n_evals = max(1, int(tcfg["n_evals"]))

    model = build_model(shape, seed=cfg["seed"]).to(device)
    optimizer = make_optimizer(model, plan, cfg["optim"], device)
    # DDP averages gradients over processes; the record and checkpoint keep the bare model
    ddp = None
    if procs.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)
    step_fn = ddp or model
    step_fn = torch.compile(step_fn) if tcfg["compile"] else step_fn

    # a run with several budgets is a trunk: its own record keeps the trajectory, and
    # each budget becomes a record of its own (scaling/budgets.py)
    trunk = plan["trunk"]
    record_ids = budgets.record_ids(cfg) if trunk else [out.name]
    summary.update(
        shape.as_dict(),
        params_total=counts["total"],
        params_nonembed=counts["nonembed"],
        params_matmul=counts["matmul"],
        tokens=0,
        tokens_target=plan["tokens_target"],
        flops=0.0,
        flops_6nd=0.0,
        flops_per_token=fpt,
        flops_target=plan["flops_target"],
        step=0,
        steps_total=plan["steps_total"],
        final_val_loss=None,
        best_val_loss=None,
        wall_s=0.0,
        tokens_per_s=None,
        mfu=None,
        peak_flops=peak,
        device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        dtype=dtype,
        world_size=procs.world,
        versions=versions(),
        git_sha=results.git_sha(),
        corpus=data.corpus,
        tokenizer=data.tokenizer,
        seed=cfg["seed"],
        schedule=plan["schedule"],
        trunk_id=out.name,
        budget_index=0,
        decay=_decay_info(plan, plan["budgets"][0]),
        optim={
            **{k: plan[k] for k in ("lr", "min_lr", "warmup_steps", "batch_tokens")},
            "micro_batch": plan["micro_batch"],
            "grad_accum": plan["grad_accum"],
            "weight_decay": cfg["optim"]["weight_decay"],
            "betas": plan["betas"],
            "rules": plan["rules"],
            "grad_clip": cfg["optim"]["grad_clip"],
        },
    )
    if trunk:
        summary.update(role="trunk", budget_index=None, decay=None, steps_trained=0, budgets=[])
        for b, rid in zip(plan["budgets"], record_ids, strict=True):
            done = results.read_summary(results.run_dir(cfg["results_dir"], cfg["sweep"], rid))
            summary["budgets"].append(
                {"index": b.index, "asked": b.asked, "tokens": b.steps * plan["batch_tokens"],
                 "run_id": rid, "status": (done or {}).get("status", "pending"),
                 "final_val_loss": (done or {}).get("final_val_loss")}
            )

    # what is left: every budget of a one-budget run; the budgets without a finished
    # record of a trunk (a relaunch asking for more budgets continues from the trunk's
    # stable state, a resumed one from its checkpoint)
    needed = {0}
    if trunk:
        needed = {b["index"] for b in summary["budgets"] if not _recorded(cfg, b["run_id"])}
    ckpt_path, stable_path = out / "checkpoint.pt", out / "stable.pt"
    ckpt = _load(ckpt_path, device)
    stable = _load(stable_path, device) if trunk else None
    todo, first, source = budgets.to_train(
        plan["segments"], needed, ckpt and ckpt.get("segment"), stable and stable.get("key")
    )

    # resume: everything the loop reads is in the checkpoint, so the run continues exactly
    step, wall_before, best_val, train_loss_sum, train_loss_n = 0, 0.0, math.inf, 0.0, 0
    # a trunk's cost: every optimiser step it took, cooldowns and later launches included
    steps_trained = (results.read_summary(out) or {}).get("steps_trained") or 0

    def load_state(state: Mapping[str, Any]) -> int:
        nonlocal step, best_val, train_loss_sum, train_loss_n
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng_cpu"])
        if device.type == "cuda" and state.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(state["rng_cuda"], device)
        step, best_val = state["step"], state["best_val_loss"]
        train_loss_sum, train_loss_n = state["train_loss_sum"], state["train_loss_n"]
        # a run stopped right after its last evaluation resumes with no step left to
        # take: its loss is the one it had reached
        summary["final_val_loss"] = state.get("val_loss")
        return state["metrics_offset"]

    metrics_offset = None
    if source == "checkpoint":
        metrics_offset = load_state(ckpt)
        wall_before, steps_trained = ckpt["wall_s"], ckpt.get("steps_trained", ckpt["step"])
        if procs.main:
            say(out, f"[{out.name}] resuming from step {step}/{plan['steps_total']}")
    elif source == "stable":
        metrics_offset = load_state(stable)
        wall_before = stable["wall_s"]
        if procs.main:
            say(out, f"[{out.name}] continuing the trunk from its stable state at step {step}")
    del ckpt, stable
    if trunk:
        summary["steps_trained"] = steps_trained
    # only rank 0 writes; the other processes of a data-parallel run keep their hands off
    metrics = (
        results.MetricsLog(out / "metrics.jsonl", truncate_to=metrics_offset)
        if procs.main
        else None
    )
    # the trackers of train.loggers get what metrics.jsonl gets, first the rows it holds
    # that a kill kept from them (scaling/trackers.py)
    trackers = hold.enter_context(
        open_trackers(cfg, out.name, counts, results.read_metrics(out))
        if procs.main
        else Trackers()
    )

    def snapshot(**extra: Any) -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "step": step,
            "wall_s": wall_before + time.perf_counter() - t_start,
            "steps_trained": steps_trained,
            "best_val_loss": best_val,
            "val_loss": summary["final_val_loss"],
            "train_loss_sum": train_loss_sum,
            "train_loss_n": train_loss_n,
            "metrics_offset": metrics.tell(),
            **extra,
        }

    def save(path: Path, state: dict[str, Any]) -> None:
        tmp = path.with_suffix(".pt.tmp")
        try:
            torch.save(state, tmp)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk or a kill mid-save leaves no temp file
            raise

    def record(**fields: Any) -> dict[str, Any]:
        tokens = step * plan["batch_tokens"]
        if not procs.main:
            return summary
        summary.update(
            step=step,
            tokens=tokens,
            flops=tokens * fpt,
            flops_6nd=flops_6nd(shape, tokens),
            unique_tokens=min(tokens, unique),
            epochs=tokens / unique,
            wall_s=wall_before + time.perf_counter() - t_start,
            best_val_loss=None if math.isinf(best_val) else best_val,
            **fields,
        )
        if trunk:
            summary["steps_trained"] = steps_trained
        return results.write_summary(out, summary)

    # the same validation windows for every run of a sweep, whatever its seed, so that
    # losses are compared on the same text
    val = val_batches(data.val, tcfg["eval_batches"], plan["micro_batch"], shape.context, seed=0)
    val = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in val]
    record(status="running")
    stop.install()

    # the loop ------------------------------------------------------------------------
    model.train()
    # throughput counts optimiser steps only: not evaluation, and not the first step of
    # this process (allocator warm-up, torch.compile)
    train_time, steps_timed, first_step = 0.0, 0, True
    tokens_per_s = mfu = None
    state_key = todo[first].start_key
    for i, seg in enumerate(todo[first:], start=first):
        if state_key != seg.start_key and not (i == first and source == "checkpoint"):
            # a forked cooldown is done: the trunk goes on from where the branch forked,
            # and its log from the line it had reached there
            offset = load_state(_load(stable_path, device))
            if metrics:
                metrics.close()
                metrics = results.MetricsLog(out / "metrics.jsonl", truncate_to=offset)
        if procs.main and trunk:
            say(out, f"[{out.name}] {_describe(seg, plan)}")
        later = sum(s.end - s.start for s in todo[i + 1 :])
        while step < seg.end:
            t_step = time.perf_counter()
            lr = lr_at(step, plan, seg.decay)
            for param_group in optimizer.param_groups:
                param_group["lr"] = lr
            loss_accum = torch.zeros((), device=device)
            # this process's share of the step's micro-batches (all of them when alone)
            mine = range(procs.rank, plan["grad_accum"], procs.world)
            for micro in mine:
                # batches are a pure function of (seed, step, micro): a resumed run draws
                # the same, so does a data-parallel one whatever its number of processes,
                # and so does a cooldown branch the trunk's
                x, y = sample_train_batch(
                    data.train, plan["micro_batch"], shape.context, cfg["seed"], step, micro,
                    plan["grad_accum"], spec.unique_tokens,
                )
                x, y = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
                # DDP would average gradients after every backward: only after the last one
                sync = ddp is None or micro == mine[-1]
                with contextlib.nullcontext() if sync else ddp.no_sync():
                    with autocast(device, dtype):
                        logits = step_fn(input_ids=x).logits
                    loss = F.cross_entropy(logits.float().flatten(0, 1), y.flatten())
                    # DDP averages gradients over processes; the step wants their sum over
                    # micro-batches divided by grad_accum
                    (loss * procs.world / plan["grad_accum"]).backward()
                loss_accum += loss.detach() / plan["grad_accum"]
            loss_accum = (procs.mean(loss_accum) * procs.world).item()  # one host sync per step
            if not math.isfinite(loss_accum):
                raise Diverged(f"training loss is {loss_accum} at step {step}")
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["optim"]["grad_clip"])
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            steps_trained += 1
            train_loss_sum += loss_accum
            train_loss_n += 1

            if not first_step or step == seg.end and steps_timed == 0:
                train_time += time.perf_counter() - t_step
                steps_timed += 1
                tokens_per_s = steps_timed * plan["batch_tokens"] / train_time
                mfu = tokens_per_s * fpt / peak
            first_step = False
            log_now = step % tcfg["log_every"] == 0 or step == seg.end
            if procs.main and tokens_per_s and log_now:
                eta = (seg.end - step + later) * train_time / steps_timed
                say(
                    out,
                    f"[{out.name}] step {step}/{plan['steps_total']} loss {loss_accum:.4f} "
                    f"lr {lr:.2e} {tokens_per_s:,.0f} tok/s mfu {100 * mfu:.1f}% eta {eta:.0f}s",
                )

            # evaluate evenly, where a decay starts (the stable loss it improves on) and at
            # the end of every segment (a budget's result, or a fork)
            decay_starts = seg.decay is not None and step == seg.decay[0]
            every = plan["eval_every"]
            if trunk:
                every = budgets.eval_stride(step, plan["budgets"][0].steps, n_evals)
            if step % every == 0 or step == seg.end or decay_starts:
                val_loss = evaluate(model, val, device, dtype)
                best_val = min(best_val, val_loss)
                if procs.main:
                    row = {
                        "step": step,
                        "tokens": step * plan["batch_tokens"],
                        "flops": step * plan["batch_tokens"] * fpt,
                        "train_loss": train_loss_sum / train_loss_n,
                        "val_loss": val_loss,
                        "lr": lr,
                        "phase": phase_of(step, plan, seg.decay),
                        "elapsed_s": round(wall_before + time.perf_counter() - t_start, 3),
                    }
                    metrics.append(row)
                    trackers.log({**row, "tokens_per_s": tokens_per_s, "mfu": mfu})
                train_loss_sum, train_loss_n = 0.0, 0
                record(status="running", final_val_loss=val_loss)

            if procs.any(stop.signum is not None, device):
                if procs.main:
                    save(ckpt_path, snapshot(segment=seg.key))
                record(status="interrupted", tokens_per_s=tokens_per_s, mfu=mfu)
                if metrics:
                    metrics.close()
                    say(out, f"[{out.name}] checkpoint at step {step}, stopping")
                procs.barrier()  # the checkpoint is on disk before any process leaves
                trackers.close("interrupted")
                stop.forward()
            if step % tcfg["ckpt_every"] == 0 and step < seg.end and procs.main:
                save(ckpt_path, snapshot(segment=seg.key))

        state_key = seg.key
        if seg.stable:
            # where later budgets start: kept after the run, so more budgets can be asked
            if procs.main:
                save(stable_path, snapshot(key=seg.key))
            procs.barrier()
        if trunk and seg.budget is not None and procs.main:
            summary.update(tokens_per_s=tokens_per_s, mfu=mfu)
            _write_budget_record(cfg, out, summary, plan, seg.budget, record_ids, model, unique)
            record(status="running")

    if procs.main:
        metrics.close()
        trackers.close("completed")
        if tcfg.get("save_model") and not trunk:
            model.save_pretrained(out / "model", safe_serialization=True)
        if not tcfg.get("keep_checkpoint"):
            ckpt_path.unlink(missing_ok=True)
    return record(status="completed", tokens_per_s=tokens_per_s, mfu=mfu)


def _recorded(cfg: Mapping[str, Any], rid: str) -> bool:
    """Whether budget record ``rid`` is done (with weights, when they are asked for)."""
    rdir = results.run_dir(cfg["results_dir"], cfg["sweep"], rid)
    status = (results.read_summary(rdir) or {}).get("status")
    if status == "completed" and cfg["train"].get("save_model"):
        return results.has_weights(rdir)
    return status in results.DONE


def _load(path: Path, device: torch.device) -> dict[str, Any] | None:
    if not path.exists():
        return None
    # tensors, numbers, strings and containers only: loading runs no code from the file
    return torch.load(path, map_location=device, weights_only=True)


def _decay_info(plan: Mapping[str, Any], budget: budgets.Budget) -> dict[str, Any] | None:
    if plan["schedule"] == "cosine":
        return None
    return {
        "start_step": budget.decay_start,
        "end_step": budget.steps,
        "shape": plan["decay_shape"],
        "frac": plan["decay_frac"],
    }


def _describe(seg: budgets.Segment, plan: Mapping[str, Any]) -> str:
    n = len(plan["budgets"])
    if seg.budget is None:
        return f"trunk from step {seg.start} to {seg.end} at the peak rate"
    b = plan["budgets"][seg.budget]
    return (
        f"budget {b.index + 1}/{n} ({b.steps * plan['batch_tokens']:,} tokens): steps "
        f"{seg.start}-{seg.end}, decaying from step {b.decay_start}"
    )


def _write_budget_record(
    cfg: Mapping[str, Any],
    out: Path,
    trunk_summary: dict[str, Any],
    plan: Mapping[str, Any],
    index: int,
    record_ids: list[str],
    model: torch.nn.Module,
    unique: int,
) -> None:
    """Write budget ``index``'s record: its config, its own curve, weights, then summary.

    The curve is the trunk's log as it stands: the trajectory up to this budget's decay
    (for a forked cooldown, the trunk up to the fork) and the decay itself. The summary
    comes last, so a record is complete once it says ``completed``.
    """
    budget = plan["budgets"][index]
    rid = record_ids[index]
    rdir = results.run_dir(cfg["results_dir"], cfg["sweep"], rid)
    rows = results.read_metrics(out)
    tokens = budget.steps * plan["batch_tokens"]
    fpt = trunk_summary["flops_per_token"]
    config = budgets.record_config(cfg, index)
    results.atomic_write_text(rdir / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    text = "".join(json.dumps(r) + "\n" for r in rows)
    results.atomic_write_text(rdir / "metrics.jsonl", text)
    if cfg["train"].get("save_model"):
        model.save_pretrained(rdir / "model", safe_serialization=True)
    summary = {k: v for k, v in trunk_summary.items() if k not in ("role", "budgets", "steps_trained")}
    summary.update(
        run_id=rid,
        status="completed",
        trunk_id=out.name,
        budget_index=index,
        budget_asked=budget.asked,
        budgets=[b.steps * plan["batch_tokens"] for b in plan["budgets"]],
        decay=_decay_info(plan, budget),
        tokens=tokens,
        tokens_target=budget.tokens_target,
        flops=tokens * fpt,
        flops_6nd=6 * trunk_summary["params_nonembed"] * tokens,
        unique_tokens=min(tokens, unique),
        epochs=tokens / unique,
        step=budget.steps,
        steps_total=budget.steps,
        final_val_loss=rows[-1]["val_loss"],
        best_val_loss=min(r["val_loss"] for r in rows),
    )
    results.write_summary(rdir, summary)
    entry = trunk_summary["budgets"][index]
    entry.update(status="completed", final_val_loss=summary["final_val_loss"])
