"""Fine-tune every model of a finished sweep on a classification task; one record each.

    scaling-train -m experiment=finetune source=results/demo
    scaling-train -m experiment=finetune source=results/demo task=file task.path=reviews.csv

For each completed source run with saved weights (see :mod:`scaling.sources`):

1. Build the task (:mod:`scaling.tasks`) with the source's own tokenizer, examples as long
   as its context unless ``task.length`` says otherwise.
2. Load the pretrained body into ``AutoModelForSequenceClassification`` (the run's saved
   HF config names the architecture); its linear head is new, seeded by ``seed``, and
   reads, by ``finetune.head`` (:func:`logits_of`), the final hidden state of the last
   real token of each example (``last``, what the library's own pooling reads), or the
   mean or the maximum of those states over its real tokens (``mean``, ``max``). Or, with
   ``lm_loss``, the whole pretrained LM is kept and the head reads its loss of each next
   token (:class:`LossProfileClassifier`). ``finetune.dropout`` acts on what the head
   reads while training. The pad id is the tokenizer's end-of-document id, which never
   occurs in a text.
3. Train every weight with AdamW: linear warmup, then linear decay to zero at
   ``max_steps``. The body's peak learning rate is ``finetune.lr``, or by default
   ``lr_factor`` times the source's own peak pretraining rate -- the pretraining rule
   already scales it with width, and fine-tuning wants a fraction of it. The new head's
   is ``finetune.head_lr`` (``null``: the body's).
4. Every ``eval_every`` steps (and before the first) measure validation accuracy and loss.
   The best evaluation (highest accuracy, then lowest loss) is kept; after ``patience``
   evaluations without a better one, training stops early (``null``, the default: it
   never does -- the demo's models still gained after four evaluations without).
5. Restore the best weights and score the held-out test split once.

Every record also carries the task's baselines (:mod:`scaling.baselines`: the majority
class and a bag-of-tokens logistic regression on the same windows), computed once per
task into ``baselines-<fingerprint>.json`` beside the records.

Records land in ``<results_dir>/<sweep>/<run_id>/`` (by default ``<source>-finetune``
beside the source sweep): ``config.yaml`` (what identifies the run: job, source run,
task, settings, seed), ``metrics.jsonl`` (one line per evaluation: ``step, examples,
train_loss, val_loss, val_accuracy, lr, elapsed_s``) and ``summary.json`` (see
docs/run-record.md). A fine-tuning run is short and is not checkpointed: an interrupted
one starts over when relaunched.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from scaling import results
from scaling.baselines import ensure_baselines
from scaling.data import DataSpec, load_tokenizer
from scaling.families import import_model_code
from scaling.hardware import autocast, pick_device, pick_dtype
from scaling.provenance import launcher_info, versions
from scaling.sources import SourceRun
from scaling.tasks import Split, TaskSpec, build_task


def record_config(cfg: Mapping[str, Any], source: SourceRun) -> dict[str, Any]:
    """The config of one fine-tuning run: its identity, stored as ``config.yaml``."""
    return {
        "job": "finetune",
        "sweep": cfg["sweep"],
        "source_run": source.identity(),
        "task": dict(cfg["task"]),
        "finetune": dict(cfg["finetune"]),
        "seed": cfg["seed"],
    }


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence Hugging Face's load report and progress bars while loading weights.

    The report says that the LM head is unused and the classification head is new: true,
    intended, and printed once per model otherwise. torchao's import-time warnings are
    kept out too (:func:`scaling.families.import_model_code`).
    """
    from transformers.utils import logging as hf_logging

    import_model_code()
    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


class LossProfileClassifier(torch.nn.Module):
    """The pretrained LM, its own LM head kept, and a linear head over its per-token loss.

    ``lm_loss`` reads what the model was pretrained to produce, the loss of each next
    token (:func:`token_losses`), at every position of the example: the head is
    ``Linear(length - 1, num_labels)``. A model that predicts text better shows a sharper
    profile wherever the text stops making sense (the junction of ``stdlib_order``), so the
    head's input improves with pretraining loss, as in the task-loss step of Bhagia et
    al. (2024)'s two-step downstream law. Examples must be ``length`` tokens long (shorter
    texts are padded to it, and the loss of a padded position is zero).
    """

    def __init__(self, lm: torch.nn.Module, length: int, num_labels: int) -> None:
        super().__init__()
        self.lm = lm
        self.score = torch.nn.Linear(length - 1, num_labels)


def token_losses(lm, input_ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """The LM's cross-entropy of each next token, ``(batch, length - 1)``; 0 on padding."""
    logits = lm(input_ids=input_ids).logits[:, :-1].float()
    target = input_ids[:, 1:]
    nll = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")
    return nll * (target != pad_id)


def load_classifier(
    model_dir: str | Path,
    num_labels: int,
    pad_id: int,
    seed: int,
    head: str = "last",
    length: int | None = None,
):
    """A sequence classifier with the pretrained body of ``model_dir`` and a new head.

    Parameters
    ----------
    model_dir : path
        A directory written by ``save_pretrained`` (HF config and safetensors).
    num_labels : int
        Classes of the task.
    pad_id : int
        The padding id; the head reads the last token that is not padding.
    seed : int
        Seeds the new head's initialisation (the caller's random state is left alone).
    head : str
        ``lm_loss``: a :class:`LossProfileClassifier` (the LM with its LM head, and a head
        over ``length - 1`` token losses); any other head: the library's classifier.
    length : int or None
        ``lm_loss`` only: tokens per example.

    Returns
    -------
    torch.nn.Module
        For ``last``, ``mean``, ``max``: a ``transformers`` sequence classifier, whose
        ``forward(input_ids)`` returns ``logits`` of shape ``(batch, num_labels)``; for
        ``lm_loss``: a :class:`LossProfileClassifier`. Read either's logits through
        :func:`logits_of`, which applies every head.
    """
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if head == "lm_loss":
        if length is None or length < 2:
            raise ValueError(f"the lm_loss head needs examples of >= 2 tokens, not {length}")
        with quiet_transformers():
            lm = AutoModelForCausalLM.from_pretrained(
                model_dir, attn_implementation="sdpa", dtype=torch.float32
            )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return LossProfileClassifier(lm, length, num_labels)
    with quiet_transformers(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForSequenceClassification.from_pretrained(
            model_dir,
            num_labels=num_labels,
            pad_token_id=pad_id,
            attn_implementation="sdpa",
            dtype=torch.float32,
        )
    return model


#: What the classification head reads (``finetune.head``).
HEADS = ("last", "mean", "max", "lm_loss")


def logits_of(
    model, input_ids: torch.Tensor, head: str, pad_id: int, dropout: float = 0.0
) -> torch.Tensor:
    """The classifier's logits for ``input_ids``, its head reading what ``head`` says.

    ``last``: the hidden state of the last token that is not padding (what the library's
    own sequence classifiers read). ``mean``, ``max``: the mean or the element-wise
    maximum of the final hidden states over the example's real tokens -- padding comes
    after the text, and a causal model's real tokens never attend to it, so no attention
    mask is needed. ``lm_loss``: the LM's loss of each next token (``model`` is then a
    :class:`LossProfileClassifier`). ``dropout`` > 0 drops features of that pooled state
    before the head while the model trains (the classifier dropout of BERT-style
    fine-tuning); in ``eval()`` mode it does nothing.
    """
    if head == "lm_loss":
        pooled = token_losses(model.lm, input_ids, pad_id)
    else:
        pooled = _pool(
            model.base_model(input_ids=input_ids).last_hidden_state, input_ids, head, pad_id
        )
    if dropout:
        pooled = F.dropout(pooled, dropout, training=model.training)
    return model.score(pooled)


def _pool(hidden: torch.Tensor, input_ids: torch.Tensor, head: str, pad_id: int) -> torch.Tensor:
    """One state per example from the final hidden states, as ``head`` says."""
    real = (input_ids != pad_id).unsqueeze(-1)
    if head == "last":
        # the rightmost real token; an example that is all padding reads position 0
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last = (positions * real.squeeze(-1)).argmax(-1)
        pooled = hidden[torch.arange(len(hidden), device=hidden.device), last]
    elif head == "mean":
        pooled = (hidden * real).sum(1) / real.sum(1).clamp_min(1)
    else:
        pooled = hidden.masked_fill(~real, float("-inf")).amax(1)
    return pooled


def evaluate(
    model, split: Split, batch_size: int, device, dtype: str, head: str = "last", pad_id: int = 0
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``split``."""
    model.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad(), autocast(device, dtype):
        for i in range(0, len(split), batch_size):
            x = torch.from_numpy(split.x[i : i + batch_size]).to(device)
            y = torch.from_numpy(split.y[i : i + batch_size]).to(device)
            logits = logits_of(model, x, head, pad_id).float()
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(-1) == y).sum().item()
    model.train()
    return loss_sum / len(split), correct / len(split)


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warmup to ``peak``, then linear decay to zero at ``total`` steps."""
    if step < warmup:
        return peak * (step + 1) / warmup
    return peak * max(0.0, (total - step) / max(1, total - warmup))


def batches(n: int, batch_size: int, seed: int) -> Iterator[np.ndarray]:
    """Indices of shuffled training batches, a new permutation every epoch, forever."""
    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for i in range(0, n - batch_size + 1, batch_size):  # whole batches only
            yield order[i : i + batch_size]
        epoch += 1


def execute(config: Mapping[str, Any], source: SourceRun, out: Path) -> dict[str, Any]:
    """Fine-tune the model of ``source`` as ``config`` says; write and return its summary."""
    t0 = time.perf_counter()
    fcfg, seed = config["finetune"], config["seed"]
    head = fcfg.get("head", "last")
    if head not in HEADS:
        raise ValueError(f"finetune.head={head!r}: expected one of {', '.join(HEADS)}")
    dropout = float(fcfg.get("dropout", 0.0))
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"finetune.dropout={dropout}: expected a rate in [0, 1), e.g. 0.1")
    head_lr = fcfg.get("head_lr")
    if head_lr is not None and not (isinstance(head_lr, (int, float)) and head_lr >= 0):
        raise ValueError(
            f"finetune.head_lr={head_lr!r}: expected a rate >= 0, or null for the body's"
        )
    if fcfg.get("threads"):
        torch.set_num_threads(int(fcfg["threads"]))
    device = pick_device(fcfg["device"])
    dtype = pick_dtype(fcfg["dtype"], device, source.summary["d_model"])

    # the task, in the tokens the model was pretrained on
    context = source.summary["context"]
    spec = TaskSpec.from_config(config["task"])
    length = int(spec.length or context)
    if length > context:
        raise ValueError(f"task.length={length} exceeds the model's context ({context})")
    tokenizer = load_tokenizer(DataSpec.from_config(source.config["data"]))
    task = build_task(spec, tokenizer, length)
    # what the model must beat, on the same windows (once per task, scaling/baselines.py)
    base = ensure_baselines(task, int(source.summary["vocab_size"]), out.parent)
    train_split = task.splits["train"]
    batch_size = min(int(fcfg["batch_size"]), len(train_split))
    eval_batch = 2 * batch_size  # no gradients to hold: twice the batch fits

    model = load_classifier(
        source.model_dir, len(task.classes), task.pad_id, seed, head, length
    ).to(device)
    peak = fcfg.get("lr")
    if peak is None:  # a fraction of the source's peak rate, which already scales with width
        peak = fcfg["lr_factor"] * source.summary["optim"]["lr"]
    # The new head may have a rate of its own: the pretraining rule scales the body's with
    # 1/width, which suits a head over hidden states, but lm_loss's head reads losses in
    # nats, whose scale does not change with width.
    head_peak = peak if head_lr is None else float(head_lr)
    head_ids = {id(p) for p in model.score.parameters()}
    groups = []
    for part_peak, in_head in ((peak, False), (head_peak, True)):
        part = [p for p in model.parameters() if (id(p) in head_ids) == in_head]
        # no weight decay on norms and biases, as in pretraining
        groups += [
            {"params": [p for p in part if p.dim() >= 2], "weight_decay": fcfg["weight_decay"]},
            {"params": [p for p in part if p.dim() < 2], "weight_decay": 0.0},
        ]
        for group in groups[-2:]:
            group["peak"] = part_peak
    optimizer = torch.optim.AdamW(groups, lr=peak, betas=tuple(fcfg["betas"]))
    max_steps, warmup = int(fcfg["max_steps"]), int(fcfg["warmup_steps"])

    summary: dict[str, Any] = {
        "run_id": out.name,
        "sweep": config["sweep"],
        "job": "finetune",
        "status": "running",
        **source.record_fields(),
        "task": task.describe(),
        "baselines": {
            "majority_test_accuracy": base["majority"]["test_accuracy"],
            "bag_of_tokens_test_accuracy": base["bag_of_tokens"]["test_accuracy"],
            "bag_of_tokens_C": base["bag_of_tokens"]["C"],
        },
        # the same task and settings whatever the model and seed: what groups the runs of
        # one configuration together when a sweep tries several (e.g. learning rates)
        "setting": results.run_id({**config, "source_run": None, "seed": None}),
        "finetune": dict(fcfg),
        "seed": seed,
        "lr": peak,
        "head_lr": head_peak,
        "batch_size": batch_size,
        "steps_total": max_steps,
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "dtype": dtype,
        "versions": versions(),
        "git_sha": results.git_sha(),
        "launcher": launcher_info(),
    }
    results.write_summary(out, summary)
    metrics = results.MetricsLog(out / "metrics.jsonl")

    # the loop: evaluate first (the new head alone is the baseline), then every K steps
    best = {"val_accuracy": -1.0, "val_loss": math.inf, "step": 0}
    best_state: dict[str, torch.Tensor] = {}
    step, bad_evals, stopped_early = 0, 0, False
    train_loss_sum, train_loss_n = 0.0, 0
    sampler = batches(len(train_split), batch_size, seed)
    model.train()
    while True:
        if step % fcfg["eval_every"] == 0 or step == max_steps:
            val_loss, val_acc = evaluate(
                model, task.splits["val"], eval_batch, device, dtype, head, task.pad_id
            )
            metrics.append(
                {
                    "step": step,
                    "examples": step * batch_size,
                    "train_loss": train_loss_sum / train_loss_n if train_loss_n else None,
                    "val_loss": val_loss,
                    "val_accuracy": val_acc,
                    "lr": lr_at(max(step - 1, 0), peak, warmup, max_steps),
                    "elapsed_s": round(time.perf_counter() - t0, 3),
                }
            )
            train_loss_sum, train_loss_n = 0.0, 0
            if (val_acc, -val_loss) > (best["val_accuracy"], -best["val_loss"]):
                best = {"val_accuracy": val_acc, "val_loss": val_loss, "step": step}
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                bad_evals = 0
            else:
                bad_evals += 1
            patience = fcfg["patience"]
            if step < max_steps and patience is not None and bad_evals >= patience:
                stopped_early = True
                break
            if step % fcfg["log_every"] == 0 or step == max_steps:
                print(
                    f"[{out.name}] step {step}/{max_steps} val acc {val_acc:.3f} "
                    f"loss {val_loss:.4f} (best {best['val_accuracy']:.3f} at {best['step']})",
                    flush=True,
                )
        if step == max_steps:
            break

        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, group["peak"], warmup, max_steps)
        idx = next(sampler)
        x = torch.from_numpy(train_split.x[idx]).to(device)
        y = torch.from_numpy(train_split.y[idx]).to(device)
        with autocast(device, dtype):
            logits = logits_of(model, x, head, task.pad_id, dropout)
        loss = F.cross_entropy(logits.float(), y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"fine-tuning loss is {loss.item()} at step {step}")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), fcfg["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        train_loss_sum += loss.item()
        train_loss_n += 1
        step += 1
    metrics.close()

    # the held-out test, once, with the weights of the best validation evaluation
    model.load_state_dict(best_state)
    test_loss, test_acc = evaluate(
        model, task.splits["test"], eval_batch, device, dtype, head, task.pad_id
    )
    print(
        f"[{out.name}] test accuracy {test_acc:.3f} (chance {task.chance_accuracy:.3f}, "
        f"majority {base['majority']['test_accuracy']:.3f}, bag of tokens "
        f"{base['bag_of_tokens']['test_accuracy']:.3f}), "
        f"best step {best['step']}, {'stopped early' if stopped_early else 'ran to the end'} "
        f"at step {step}",
        flush=True,
    )
    summary.update(
        status="completed",
        test_accuracy=test_acc,
        test_loss=test_loss,
        val_accuracy=best["val_accuracy"],
        val_loss=best["val_loss"],
        best_step=best["step"],
        step=step,
        examples=step * batch_size,
        epochs=step * batch_size / len(train_split),
        stopped_early=stopped_early,
        wall_s=time.perf_counter() - t0,
    )
    return results.write_summary(out, summary)
