"""Train one run of a sweep, resumably, and keep its record up to date.

Reads top to bottom: plan the run (its data, shape, budgets and per-size rules:
scaling/plan.py), build the model, restore the checkpoint if there is one, then the
loop (schedule, accumulate, clip, step, evaluate, log, checkpoint). Every decision a
fit later depends on (parameter counts, tokens, FLOPs, learning rate, batch) is
written to the run's record.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
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

from scaling import budgets, distributed, results
from scaling.data import sample_train_batch, val_batches
from scaling.families import build_model
from scaling.flops import flops_6nd
from scaling.hardware import (
    PEAK_FLOPS,
    autocast,
    make_optimizer,
    pick_device,
    pick_dtype,
    to_device,
)
from scaling.plan import lr_at, phase_of, plan_run
from scaling.provenance import launcher_info, versions
from scaling.stop import Interrupted, StopFlag
from scaling.trackers import Trackers, open_trackers


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


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


class NextTokenLoss(torch.nn.Module):
    """The model and its training loss as one module: mean cross-entropy of next tokens.

    One module, so that ``torch.compile`` sees the loss with the model and fuses the
    fp32 cast of the logits into the cross-entropy; compiled alone, the model hands
    eager code bf16 logits that are then copied to fp32 (4 GB per micro-batch of 16 ×
    2048 tokens at a 32k vocabulary) and read again by every pass of the loss. Eager,
    it computes exactly what the model and the loss computed apart.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device, dtype: str):
        super().__init__()
        self.model, self.device, self.dtype = model, device, dtype

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.dtype):
            logits = self.model(input_ids=x).logits
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())


def evaluate(
    model: torch.nn.Module,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    device: torch.device,
    dtype: str,
) -> float:
    """Mean cross-entropy (nats per token) over ``batches`` of (inputs, next tokens)."""
    loss_of = NextTokenLoss(model, device, dtype)
    model.eval()
    # summed in float64 on the device, as Python's float would, and read once: one host
    # sync per evaluation rather than one per batch
    total = torch.zeros((), dtype=torch.float64, device=device)
    with torch.no_grad():
        for x, y in batches:
            total += loss_of(x.to(device), y.to(device)).double()
    model.train()
    return total.item() / len(batches)


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
    torch.manual_seed(cfg["seed"])

    # data, the model's shape and the per-size rules; a data-constrained run
    # (data.unique_tokens) repeats its first tokens epoch after epoch
    spec, data, shape, counts, fpt, plan = plan_run(cfg, procs.world)
    dtype = pick_dtype(tcfg["dtype"], device, shape.d_model)
    unique = spec.unique_tokens or len(data.train)
    peak = tcfg.get("peak_flops") or PEAK_FLOPS[(device.type, dtype)]
    n_evals = max(1, int(tcfg["n_evals"]))

    model = build_model(shape, seed=cfg["seed"]).to(device)
    optimizer = make_optimizer(model, plan, cfg["optim"], device)
    loss_of = NextTokenLoss(model, device, dtype)
    # DDP averages gradients over processes; the record and checkpoint keep the bare model
    ddp = None
    if procs.world > 1:
        ids = [device.index] if device.type == "cuda" else None
        ddp = DistributedDataParallel(loss_of, device_ids=ids)
    step_fn = ddp or loss_of
    if tcfg["compile"]:
        # a process that trains one size after another (the local and parallel
        # launchers) keeps every earlier size's graph, and past dynamo's recompile limit
        # (8) would train the next ones eager: each run compiles afresh
        torch.compiler.reset()
        step_fn = torch.compile(step_fn)

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
        # take: its loss and speed are the ones it had reached
        summary["final_val_loss"] = state.get("val_loss")
        summary.update(tokens_per_s=state.get("tokens_per_s"), mfu=state.get("mfu"))
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
            "tokens_per_s": tokens_per_s,
            "mfu": mfu,
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
    val = [(to_device(x, device), to_device(y, device)) for x, y in val]
    record(status="running")
    stop.install()

    # the loop ------------------------------------------------------------------------
    model.train()
    # throughput counts optimiser steps only: not evaluation, and not the first step of
    # this process (allocator warm-up, torch.compile)
    train_time, steps_timed, first_step = 0.0, 0, True
    tokens_per_s = mfu = None

    def speed() -> dict[str, float]:
        # what this process measured; a process that took no step keeps its checkpoint's
        return {} if tokens_per_s is None else {"tokens_per_s": tokens_per_s, "mfu": mfu}

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
                x, y = to_device(x, device), to_device(y, device)
                # DDP would average gradients after every backward: only after the last one
                sync = ddp is None or micro == mine[-1]
                with contextlib.nullcontext() if sync else ddp.no_sync():
                    loss = step_fn(x, y)
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
                record(status="interrupted", **speed())
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
            summary.update(speed())
            _write_budget_record(cfg, out, summary, plan, seg.budget, record_ids, model, unique)
            record(status="running")

    if procs.main:
        metrics.close()
        trackers.close("completed")
        if tcfg.get("save_model") and not trunk:
            model.save_pretrained(out / "model", safe_serialization=True)
        if not tcfg.get("keep_checkpoint"):
            ckpt_path.unlink(missing_ok=True)
    return record(status="completed", **speed())


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
