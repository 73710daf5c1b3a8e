"""Train one run of a sweep, resumably, and keep its record up to date.

Reads top to bottom: resolve the per-size rules, build data and model, restore the
checkpoint if there is one, then the loop (schedule, accumulate, clip, step, evaluate,
log, checkpoint). Every decision a fit later depends on (parameter counts, tokens,
FLOPs, learning rate, batch) is written to the run's record.
"""

from __future__ import annotations

import contextlib
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
from torch.nn.parallel import DistributedDataParallel

from scaling import distributed, results
from scaling.data import DataSpec, prepare, sample_batch, val_batches
from scaling.families import build_model, param_counts, shape_for
from scaling.flops import flops_6nd, flops_per_token

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
    cfg: Mapping[str, Any], n_params: int, context: int, world: int = 1
) -> dict[str, Any]:
    """Token budget, batch, learning rate and schedule lengths for one model size.

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

    Returns
    -------
    dict
        ``tokens_target, batch_tokens, micro_batch, grad_accum, steps_total, lr, min_lr,
        warmup_steps, eval_every`` — stored in the record's ``optim`` and ``summary``.
    """
    optim, train = cfg["optim"], cfg["train"]

    # batch in tokens: explicit, or base * (N / n_base)^exponent, a multiple of micro*context
    micro = int(train["micro_batch"])
    seq_per_micro = micro * context
    if optim.get("batch_tokens"):
        batch_tokens = int(optim["batch_tokens"])
    else:
        rule = optim["batch_rule"]
        batch_tokens = rule["base"] * (n_params / rule["n_base"]) ** rule["exponent"]
        batch_tokens = min(max(batch_tokens, rule["min"]), rule["max"])
    grad_accum = max(1, round(batch_tokens / (seq_per_micro * world))) * world
    batch_tokens = grad_accum * seq_per_micro

    # tokens: explicit, or tokens_per_param * N (Chinchilla's compute-optimal ratio is ~20)
    tokens_target = train.get("tokens") or train["tokens_per_param"] * n_params
    steps_total = max(1, math.ceil(tokens_target / batch_tokens))
    if train.get("max_steps"):
        steps_total = min(steps_total, int(train["max_steps"]))

    # learning rate: explicit, or base * (d_base / d_model)^exponent (wider -> smaller)
    if optim.get("lr"):
        lr = float(optim["lr"])
    else:
        rule = optim["lr_rule"]
        lr = rule["base"] * (rule["d_base"] / cfg["model"]["d_model"]) ** rule["exponent"]
    warmup = optim.get("warmup_steps")
    if warmup is None:
        warmup = round(optim["warmup_frac"] * steps_total)
    n_evals = max(1, int(train["n_evals"]))
    return {
        "tokens_target": int(tokens_target),
        "batch_tokens": batch_tokens,
        "micro_batch": micro,
        "grad_accum": grad_accum,
        "steps_total": steps_total,
        "lr": lr,
        "min_lr": lr * optim["min_lr_ratio"],
        "warmup_steps": min(int(warmup), steps_total),
        "eval_every": max(1, steps_total // n_evals),
    }


def lr_at(step: int, plan: Mapping[str, Any]) -> float:
    """Linear warmup to the peak, then cosine down to ``min_lr`` at the last step."""
    lr, min_lr, warmup, total = (
        plan["lr"],
        plan["min_lr"],
        plan["warmup_steps"],
        plan["steps_total"],
    )
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


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
        groups, lr=plan["lr"], betas=tuple(optim["betas"]), eps=optim["eps"], fused=fused
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
    with contextlib.suppress(ImportError, ValueError):
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
        return _train(cfg, out, summary, stop, procs)
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
    cfg: Mapping, out: Path, summary: dict, stop: StopFlag, procs: distributed.Group
) -> dict[str, Any]:
    t_start = time.perf_counter()
    tcfg, mcfg = cfg["train"], cfg["model"]
    if tcfg.get("threads"):
        torch.set_num_threads(int(tcfg["threads"]))
    device = pick_device(tcfg["device"])
    dtype = pick_dtype(tcfg["dtype"], device)
    torch.manual_seed(cfg["seed"])

    # data: tokenized once per corpus+tokenizer and shared by every run of the sweep
    data = prepare(DataSpec.from_config(cfg["data"]))

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
    plan = resolve_plan(cfg, counts[tcfg["budget_params"]], shape.context, procs.world)
    fpt = flops_per_token(shape)
    peak = tcfg.get("peak_flops") or PEAK_FLOPS[(device.type, dtype)]

    model = build_model(shape, seed=cfg["seed"]).to(device)
    optimizer = make_optimizer(model, plan, cfg["optim"], device)
    # DDP averages gradients over processes; the record and checkpoint keep the bare model
    ddp = None
    if procs.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        ddp = DistributedDataParallel(model, device_ids=ids)
    step_fn = ddp or model
    step_fn = torch.compile(step_fn) if tcfg["compile"] else step_fn

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
        optim={
            **{k: plan[k] for k in ("lr", "min_lr", "warmup_steps", "batch_tokens")},
            "micro_batch": plan["micro_batch"],
            "grad_accum": plan["grad_accum"],
            "weight_decay": cfg["optim"]["weight_decay"],
            "betas": list(cfg["optim"]["betas"]),
            "grad_clip": cfg["optim"]["grad_clip"],
        },
    )

    # resume: everything the loop reads is in the checkpoint, so the run continues exactly
    ckpt_path = out / "checkpoint.pt"
    step, wall_before, best_val, train_loss_sum, train_loss_n = 0, 0.0, math.inf, 0.0, 0
    metrics_offset = None
    if ckpt_path.exists():
        ckpt = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if device.type == "cuda" and ckpt.get("rng_cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng_cuda"], device)
        step, wall_before, best_val = ckpt["step"], ckpt["wall_s"], ckpt["best_val_loss"]
        train_loss_sum, train_loss_n = ckpt["train_loss_sum"], ckpt["train_loss_n"]
        metrics_offset = ckpt["metrics_offset"]
        if procs.main:
            print(f"[{out.name}] resuming from step {step}/{plan['steps_total']}", flush=True)
    # only rank 0 writes; the other processes of a data-parallel run keep their hands off
    metrics = (
        results.MetricsLog(out / "metrics.jsonl", truncate_to=metrics_offset)
        if procs.main
        else None
    )

    def save_checkpoint() -> None:
        if not procs.main:
            return
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
            "step": step,
            "wall_s": wall_before + time.perf_counter() - t_start,
            "best_val_loss": best_val,
            "train_loss_sum": train_loss_sum,
            "train_loss_n": train_loss_n,
            "metrics_offset": metrics.tell(),
        }
        tmp = ckpt_path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, ckpt_path)

    def record(**fields: Any) -> dict[str, Any]:
        tokens = step * plan["batch_tokens"]
        if not procs.main:
            return summary
        summary.update(
            step=step,
            tokens=tokens,
            flops=tokens * fpt,
            flops_6nd=flops_6nd(shape, tokens),
            wall_s=wall_before + time.perf_counter() - t_start,
            best_val_loss=None if math.isinf(best_val) else best_val,
            **fields,
        )
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
    while step < plan["steps_total"]:
        t_step = time.perf_counter()
        lr = lr_at(step, plan)
        for param_group in optimizer.param_groups:
            param_group["lr"] = lr
        loss_accum = torch.zeros((), device=device)
        # this process's share of the step's micro-batches (all of them when alone)
        mine = range(procs.rank, plan["grad_accum"], procs.world)
        for micro in mine:
            # batches are a pure function of (seed, step, micro): a resumed run draws the
            # same, and so does a data-parallel one, whatever its number of processes
            x, y = sample_batch(
                data.train, plan["micro_batch"], shape.context, cfg["seed"], step, micro
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
        train_loss_sum += loss_accum
        train_loss_n += 1

        if not first_step or step == plan["steps_total"] and steps_timed == 0:
            train_time += time.perf_counter() - t_step
            steps_timed += 1
            tokens_per_s = steps_timed * plan["batch_tokens"] / train_time
            mfu = tokens_per_s * fpt / peak
        first_step = False
        log_now = step % tcfg["log_every"] == 0 or step == plan["steps_total"]
        if procs.main and tokens_per_s and log_now:
            eta = (plan["steps_total"] - step) * train_time / steps_timed
            print(
                f"[{out.name}] step {step}/{plan['steps_total']} loss {loss_accum:.4f} "
                f"lr {lr:.2e} {tokens_per_s:,.0f} tok/s mfu {100 * mfu:.1f}% eta {eta:.0f}s",
                flush=True,
            )

        if step % plan["eval_every"] == 0 or step == plan["steps_total"]:
            val_loss = evaluate(model, val, device, dtype)
            best_val = min(best_val, val_loss)
            if procs.main:
                metrics.append(
                    {
                        "step": step,
                        "tokens": step * plan["batch_tokens"],
                        "flops": step * plan["batch_tokens"] * fpt,
                        "train_loss": train_loss_sum / train_loss_n,
                        "val_loss": val_loss,
                        "lr": lr,
                        "elapsed_s": round(wall_before + time.perf_counter() - t_start, 3),
                    }
                )
            train_loss_sum, train_loss_n = 0.0, 0
            record(status="running", final_val_loss=val_loss)

        if procs.any(stop.signum is not None, device):
            save_checkpoint()
            record(status="interrupted", tokens_per_s=tokens_per_s, mfu=mfu)
            if metrics:
                metrics.close()
                print(f"[{out.name}] checkpoint at step {step}, stopping", flush=True)
            procs.barrier()  # the checkpoint is on disk before any process leaves
            stop.forward()
        if step % tcfg["ckpt_every"] == 0 and step < plan["steps_total"]:
            save_checkpoint()

    if procs.main:
        metrics.close()
        if tcfg.get("save_model"):
            model.save_pretrained(out / "model", safe_serialization=True)
        if not tcfg.get("keep_checkpoint"):
            ckpt_path.unlink(missing_ok=True)
    return record(status="completed", tokens_per_s=tokens_per_s, mfu=mfu)
