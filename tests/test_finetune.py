"""Fine-tuning a sweep's models: the classifier, the loop, early stopping, records, relaunch."""

import numpy as np
import pytest
import torch
import yaml
from downstream_fixtures import compose, pretrained_sweep

from scaling import finetune, results
from scaling.sources import find_sources

FOUR = "task.classes=[asyncio,email,tkinter,unittest]"  # chance 0.25
POOLED = ("last", "mean", "max")  # the heads over hidden states
QUICK = (
    "task=stdlib_packages",
    FOUR,
    "finetune.head=last",  # the package task is read from hidden states
    "finetune.head_lr=null",
    "task.val_per_class=32",
    "task.test_per_class=128",
    "finetune.batch_size=32",
    "finetune.max_steps=300",
    "finetune.warmup_steps=10",
    "finetune.eval_every=20",
    "finetune.lr_factor=0.1",  # the smallest model learns faster with it at this budget
    "finetune.patience=100",  # no early stop on a noisy 128-example validation set
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return pretrained_sweep(tmp_path_factory.getbasetemp() / "pretrained")


@pytest.fixture(scope="module")
def finetuned(sweep):
    """Run the fine-tuning job on the sweep, as `scaling-train -m experiment=finetune`."""
    from scaling.main import run

    run(compose("experiment=finetune", f"source={sweep}", *QUICK))
    return sweep.parent / "smoke-finetune"


def records(sweep_dir):
    return {d.name: s for d, s in results.iter_runs(sweep_dir)}


def test_every_model_is_fine_tuned_and_beats_chance(finetuned, sweep):
    recs = records(finetuned)
    sources = {s.run_id: s for s in find_sources(sweep)[0]}
    assert sorted(r["source"]["run_id"] for r in recs.values()) == sorted(sources)
    for rid, r in recs.items():
        assert r["status"] == "completed" and r["job"] == "finetune"
        assert r["task"]["n_classes"] == 4 and r["task"]["chance_accuracy"] == 0.25
        assert r["task"]["n_test"] == 4 * 128 and r["task"]["length"] == 64  # the context
        # 512 balanced test examples: chance is 0.25 +- 0.02
        assert r["test_accuracy"] > 0.32, (r["d_model"], r["test_accuracy"])
        src = sources[r["source"]["run_id"]]
        assert r["pretrain"]["final_val_loss"] == src.summary["final_val_loss"]
        assert r["params_nonembed"] == src.summary["params_nonembed"]
        assert r["lr"] == pytest.approx(0.1 * src.summary["optim"]["lr"])  # the lr_factor rule
        assert r["setting"] == next(iter(recs.values()))["setting"]  # one setting, two models
        # the task's baselines, computed once beside the records: majority is chance on
        # balanced classes; the bag of tokens does far better
        (kept,) = finetuned.glob("baselines-*.json")
        assert kept.name == f"baselines-{r['task']['fingerprint'][:16]}.json"
        assert r["baselines"]["majority_test_accuracy"] == 0.25
        assert r["baselines"]["bag_of_tokens_test_accuracy"] > 0.35
        # the record's identity is its config; and its curve is there
        config = yaml.safe_load((finetuned / rid / "config.yaml").read_text())
        assert results.run_id(config) == rid
        assert config["source_run"]["run_id"] == src.run_id
        rows = results.read_metrics(finetuned / rid)
        assert rows[0]["step"] == 0 and rows[0]["train_loss"] is None
        assert [row["step"] for row in rows] == list(range(0, r["step"] + 1, 20))
        best = max(rows, key=lambda row: (row["val_accuracy"], -row["val_loss"]))
        assert (r["best_step"], r["val_accuracy"]) == (best["step"], best["val_accuracy"])


def test_relaunch_skips_finished_runs(finetuned, sweep, capsys):
    from scaling.main import run

    before = records(finetuned)
    run(compose("experiment=finetune", f"source={sweep}", *QUICK))
    out = capsys.readouterr().out
    assert out.count("already completed") == len(before)
    assert "running in" not in out
    assert records(finetuned) == before
    # another setting is another run
    other = [o for o in QUICK if "max_steps" not in o] + ["finetune.max_steps=0"]
    run(compose("experiment=finetune", f"source={sweep}", *other))
    assert len(records(finetuned)) == 2 * len(before)


def test_early_stopping_ends_a_run_that_stops_improving(sweep, tmp_path):
    src = find_sources(sweep)[0][0]
    cfg_args = (
        "experiment=finetune",
        f"source={sweep}",
        "task=stdlib_packages",
        FOUR,
        "task.val_per_class=8",
        "task.test_per_class=8",
        "finetune.lr=0",  # nothing moves: no evaluation can beat the first
        "finetune.head_lr=null",  # the head's rate too
        "finetune.eval_every=2",
        "finetune.patience=3",
    )
    cfg = compose(*cfg_args)
    from omegaconf import OmegaConf

    config = finetune.record_config(OmegaConf.to_container(cfg, resolve=True), src)
    s = finetune.execute(config, src, tmp_path)
    assert s["stopped_early"] is True
    assert (s["best_step"], s["step"]) == (0, 6)  # three evaluations without progress
    rows = results.read_metrics(tmp_path)
    assert len({row["val_accuracy"] for row in rows}) == 1
    # patience null (the default) never stops early: the run goes to max_steps
    cfg = compose(*cfg_args[:-1], "finetune.patience=null", "finetune.max_steps=8")
    config = finetune.record_config(OmegaConf.to_container(cfg, resolve=True), src)
    (tmp_path / "patient").mkdir()
    s = finetune.execute(config, src, tmp_path / "patient")
    assert s["stopped_early"] is False and (s["best_step"], s["step"]) == (0, 8)


def test_classifier_has_the_pretrained_body_and_reads_the_last_real_token(sweep):
    from scaling.compress.job import load_lm

    src = find_sources(sweep)[0][0]
    lm = load_lm(src.model_dir)
    clf = finetune.load_classifier(src.model_dir, num_labels=4, pad_id=256, seed=0)
    body, lm_body = clf.model.state_dict(), lm.model.state_dict()
    assert body.keys() == lm_body.keys()
    assert all(torch.equal(body[k], lm_body[k]) for k in body)
    assert clf.config.pad_token_id == 256 and clf.score.out_features == 4
    # the new head depends on the seed alone
    again = finetune.load_classifier(src.model_dir, num_labels=4, pad_id=256, seed=0)
    other = finetune.load_classifier(src.model_dir, num_labels=4, pad_id=256, seed=1)
    assert torch.equal(clf.score.weight, again.score.weight)
    assert not torch.equal(clf.score.weight, other.score.weight)
    # padding at the end changes nothing: the head reads the last token that is not padding
    clf.eval()
    x = torch.randint(0, 256, (2, 40))
    padded = torch.cat([x, torch.full((2, 24), 256)], dim=1)
    with torch.no_grad():
        assert torch.allclose(clf(input_ids=x).logits, clf(input_ids=padded).logits, atol=1e-5)


def test_schedule_and_batches():
    lrs = [finetune.lr_at(s, 1.0, 10, 100) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert max(lrs) == pytest.approx(1.0) and lrs[-1] == pytest.approx(1 / 90)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    sampler = finetune.batches(10, 4, seed=0)
    epoch = [next(sampler) for _ in range(2)]  # whole batches only: 8 of 10 examples
    assert len(set(np.concatenate(epoch))) == 8
    assert not np.array_equal(next(sampler), epoch[0])  # a new permutation next epoch


def test_the_mean_and_max_heads_read_only_the_real_tokens(sweep):
    """Every head ignores padding after the text; on a one-token example all three read
    the same hidden state, so their logits agree; on longer ones they differ."""
    src = find_sources(sweep)[0][0]
    clf = finetune.load_classifier(src.model_dir, num_labels=4, pad_id=256, seed=0).eval()
    x = torch.randint(0, 256, (2, 40))
    padded = torch.cat([x, torch.full((2, 24), 256)], dim=1)
    one = torch.cat([x[:, :1], torch.full((2, 63), 256)], dim=1)
    with torch.no_grad():
        out = {h: finetune.logits_of(clf, padded, h, 256) for h in POOLED}
        for head in POOLED:
            bare = finetune.logits_of(clf, x, head, 256)
            assert torch.allclose(out[head], bare, atol=1e-5), head
        singles = [finetune.logits_of(clf, one, h, 256) for h in POOLED]
    assert all(torch.allclose(singles[0], s, atol=1e-5) for s in singles[1:])
    assert not torch.allclose(out["last"], out["mean"], atol=1e-3)
    assert not torch.allclose(out["mean"], out["max"], atol=1e-3)


def test_the_last_head_reads_what_the_librarys_own_pooling_reads(sweep):
    """Our pooling of the last real token gives the logits of the library's classifier."""
    src = find_sources(sweep)[0][0]
    clf = finetune.load_classifier(src.model_dir, num_labels=4, pad_id=256, seed=0).eval()
    x = torch.randint(0, 256, (3, 64))
    x[0, 40:] = 256  # ends early
    x[1, 5:] = 256
    with torch.no_grad():
        ours = finetune.logits_of(clf, x, "last", 256)
        library = clf(input_ids=x).logits
    assert torch.allclose(ours, library, atol=1e-5)
    assert not torch.allclose(ours[0], ours[2], atol=1e-3)


def test_dropout_acts_on_the_pooled_state_in_training_only(sweep):
    src = find_sources(sweep)[0][0]
    clf = finetune.load_classifier(src.model_dir, num_labels=4, pad_id=256, seed=0)
    x = torch.randint(0, 256, (4, 64))
    with torch.no_grad():
        clf.eval()
        plain = finetune.logits_of(clf, x, "mean", 256)
        assert torch.equal(finetune.logits_of(clf, x, "mean", 256, dropout=0.5), plain)
        clf.train()
        torch.manual_seed(0)
        dropped = finetune.logits_of(clf, x, "mean", 256, dropout=0.5)
    assert not torch.allclose(dropped, plain, atol=1e-3)


def test_a_dropout_outside_zero_to_one_is_refused(sweep, tmp_path):
    from omegaconf import OmegaConf

    src = find_sources(sweep)[0][0]
    cfg = compose("experiment=finetune", f"source={sweep}", *QUICK, "finetune.dropout=1.5")
    config = finetune.record_config(OmegaConf.to_container(cfg, resolve=True), src)
    with pytest.raises(ValueError, match=r"finetune.dropout=1.5: expected a rate in \[0, 1\)"):
        finetune.execute(config, src, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_negative_head_rate_is_refused(sweep, tmp_path):
    from omegaconf import OmegaConf

    no_head_lr = [o for o in QUICK if not o.startswith("finetune.head_lr")]
    src = find_sources(sweep)[0][0]
    cfg = compose("experiment=finetune", f"source={sweep}", *no_head_lr, "finetune.head_lr=-1")
    config = finetune.record_config(OmegaConf.to_container(cfg, resolve=True), src)
    with pytest.raises(ValueError, match="finetune.head_lr=-1: expected a rate >= 0"):
        finetune.execute(config, src, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_an_unknown_head_is_refused_before_anything_is_written(sweep, tmp_path):
    from omegaconf import OmegaConf

    src = find_sources(sweep)[0][0]
    cfg = compose("experiment=finetune", f"source={sweep}", *QUICK, "finetune.head=cls")
    config = finetune.record_config(OmegaConf.to_container(cfg, resolve=True), src)
    expected = "finetune.head='cls': expected one of last, mean, max, lm_loss"
    with pytest.raises(ValueError, match=expected):
        finetune.execute(config, src, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_the_lm_loss_head_reads_the_lms_own_loss_of_each_token(sweep):
    """``lm_loss`` keeps the pretrained LM whole, LM head included, and its features are
    the per-token losses whose mean is the library's own LM loss; padding reads zero."""
    from scaling.compress.job import load_lm

    src = find_sources(sweep)[0][0]
    clf = finetune.load_classifier(src.model_dir, 2, 256, seed=0, head="lm_loss", length=64)
    lm = load_lm(src.model_dir)
    body, pretrained = clf.lm.state_dict(), lm.state_dict()
    assert body.keys() == pretrained.keys()
    assert all(torch.equal(body[k], pretrained[k]) for k in body)
    assert (clf.score.in_features, clf.score.out_features) == (63, 2)
    other = finetune.load_classifier(src.model_dir, 2, 256, seed=1, head="lm_loss", length=64)
    assert not torch.equal(clf.score.weight, other.score.weight)
    clf.eval()
    x = torch.randint(0, 256, (3, 64))
    with torch.no_grad():
        losses = finetune.token_losses(clf.lm, x, 256)
        assert losses.shape == (3, 63)
        assert losses.mean().item() == pytest.approx(lm(input_ids=x, labels=x).loss.item(), 1e-5)
        padded = x.clone()
        padded[0, 40:] = 256
        short = finetune.token_losses(clf.lm, padded, 256)
        # a causal model: the losses before the padding are unchanged, those of padding 0
        assert torch.allclose(short[0, :39], losses[0, :39], atol=1e-5)
        assert torch.all(short[0, 39:] == 0) and torch.equal(short[1:], losses[1:])
        logits = finetune.logits_of(clf, x, "lm_loss", 256)
    assert torch.allclose(logits, clf.score(losses), atol=1e-6)


def test_the_lm_loss_head_needs_examples_of_two_tokens(sweep):
    src = find_sources(sweep)[0][0]
    with pytest.raises(ValueError, match="lm_loss head needs examples of >= 2 tokens"):
        finetune.load_classifier(src.model_dir, 2, 256, seed=0, head="lm_loss", length=1)


ORDER = (
    "task=stdlib_order",
    "task.train_per_class=512",
    "task.val_per_class=64",
    "task.test_per_class=256",
    "finetune.head=lm_loss",
    "finetune.head_lr=0.03",  # the smoke models' losses are less sharp than the demo's
    "finetune.max_steps=400",
    "finetune.eval_every=50",
)


def test_the_lm_loss_head_reads_word_order_that_a_bag_of_tokens_cannot(sweep, tmp_path):
    """On the order task the bag of tokens is at chance by construction; the LM's own
    losses show where the swapped halves meet, and the fine-tuned head reads them."""
    from omegaconf import OmegaConf

    src = max(find_sources(sweep)[0], key=lambda s: s.summary["params_nonembed"])
    cfg = compose("experiment=finetune", f"source={sweep}", *ORDER)
    config = finetune.record_config(OmegaConf.to_container(cfg, resolve=True), src)
    s = finetune.execute(config, src, tmp_path / "run")
    assert s["baselines"]["bag_of_tokens_test_accuracy"] == 0.5
    # 512 test examples: chance is 0.5 +- 0.022 (this model, at loss 2.73, scores 0.64)
    assert s["test_accuracy"] > 0.58, s["test_accuracy"]
    assert s["head_lr"] == 0.03 and s["lr"] == pytest.approx(0.1 * src.summary["optim"]["lr"])


def test_the_head_has_its_own_rate(sweep, tmp_path):
    """With the body's rate at zero and the head's not, only the head learns: the
    validation loss moves, where with both at zero it stays (the early-stopping test)."""
    from omegaconf import OmegaConf

    src = find_sources(sweep)[0][0]
    cfg = compose(
        "experiment=finetune",
        f"source={sweep}",
        *ORDER[:4],
        "finetune.head=lm_loss",
        "finetune.lr=0",
        "finetune.head_lr=0.01",
        "finetune.max_steps=20",
        "finetune.eval_every=10",
        "finetune.warmup_steps=2",
    )
    config = finetune.record_config(OmegaConf.to_container(cfg, resolve=True), src)
    s = finetune.execute(config, src, tmp_path / "run")
    rows = results.read_metrics(tmp_path / "run")
    assert (s["lr"], s["head_lr"]) == (0, 0.01)
    assert all(row["lr"] == 0 for row in rows)  # the log follows the body's rate
    assert len({round(row["val_loss"], 6) for row in rows}) == 3
