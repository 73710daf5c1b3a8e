"""Compressing a sweep's models: int8 quantization, magnitude pruning, sizes, records."""

import pytest
import torch
import yaml
from downstream_fixtures import compose, pretrained_sweep

from scaling import compress, results
from scaling.families import build_model, shape_for
from scaling.sources import find_sources


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return pretrained_sweep(tmp_path_factory.getbasetemp() / "pretrained")


@pytest.fixture(scope="module")
def compressed(sweep):
    """Run the compression job on the sweep, as `scaling-train -m experiment=compress`."""
    from scaling.main import run

    run(compose("experiment=compress", f"source={sweep}"))
    return {s["source"]["run_id"]: s for _, s in results.iter_runs(sweep.parent / "smoke-compress")}


def variants(summary):
    return {v["variant"]: v for v in summary["variants"]}


def test_every_model_gets_every_variant_and_a_complete_record(compressed, sweep):
    sources = find_sources(sweep)[0]
    assert sorted(compressed) == sorted(s.run_id for s in sources)
    for src in sources:
        s = compressed[src.run_id]
        assert s["status"] == "completed" and s["job"] == "compress"
        v = variants(s)
        assert list(v) == [
            "baseline",
            "int8_dynamic",
            "int8_weight",
            "prune0.25",
            "prune0.5",
            "prune0.75",
        ]
        # measured on the run's own validation batches: the baseline is its last evaluation
        assert v["baseline"]["val_loss"] == pytest.approx(src.summary["final_val_loss"], abs=1e-6)
        rows = results.read_metrics(sweep.parent / "smoke-compress" / s["run_id"])
        assert [r["variant"] for r in rows] == list(v)
        config = yaml.safe_load(
            (sweep.parent / "smoke-compress" / s["run_id"] / "config.yaml").read_text()
        )
        assert results.run_id(config) == s["run_id"]


def test_int8_costs_little_loss_and_a_quarter_of_the_bytes(compressed):
    for s in compressed.values():
        v = variants(s)
        base = v["baseline"]
        for name in ("int8_dynamic", "int8_weight"):
            q = v[name]
            assert abs(q["val_loss"] - base["val_loss"]) < 0.01 * base["val_loss"], (name, q)
            assert base["compressed_bytes"] / q["compressed_bytes"] > 1.8, (name, q)
        # int8 weights plus one fp32 scale per output channel: 4 in / (in + 4) times
        # smaller, 3.2x at the 16 inputs per channel of the smallest model, -> 4x with
        # width (torch's own int8 keeps a float64 scale and an int64 zero point per channel)
        assert base["compressed_bytes"] / v["int8_weight"]["compressed_bytes"] > 3.2
        # and the saving shows in the file (the embeddings, the head and a per-tensor
        # overhead stay; torch's packed int8 layers add a fixed overhead each, which
        # outweighs the saving at a few thousand parameters, so only int8_weight here)
        q = v["int8_weight"]
        saved = base["compressed_bytes"] - q["compressed_bytes"]
        assert base["size_bytes"] - q["size_bytes"] > 0.5 * saved


def test_pruning_zeroes_what_it_says_and_loss_rises_with_sparsity(compressed):
    for s in compressed.values():
        v = variants(s)
        losses = [v["baseline"]["val_loss"]]
        for sparsity in (0.25, 0.5, 0.75):
            p = v[f"prune{sparsity:g}"]
            assert p["achieved_sparsity"] >= sparsity
            losses.append(p["val_loss"])
        # pruning a quarter of the smallest weights is within noise of nothing at all;
        # from half on, every step up costs loss, and three quarters costs it clearly
        base, quarter, half, three_quarters = losses
        assert base < half < three_quarters and quarter < three_quarters, losses
        assert three_quarters > base + 0.01
        assert (
            v["prune0.75"]["size_bytes"] < v["prune0.5"]["size_bytes"] < v["baseline"]["size_bytes"]
        )


def test_magnitude_prune_keeps_the_largest_weights_of_each_layer():
    model = build_model(shape_for("llama", 32, 257, 64), seed=0)
    pruned, state, _, achieved = compress.magnitude_prune(model, 0.5)
    assert achieved == pytest.approx(0.5, abs=1e-3)
    layers, original = compress.block_linears(pruned), compress.block_linears(model)
    assert "lm_head" not in layers and len(layers) == 2 * 7  # q k v o gate up down
    for name, layer in layers.items():
        w, w0 = layer.weight, original[name].weight
        zero = w == 0
        assert zero.float().mean() >= 0.5
        assert w0[~zero].abs().min() >= w0[zero].abs().max()  # the smallest ones went
        assert torch.equal(w[~zero], w0[~zero])  # the others are untouched
        assert torch.equal(state[f"{name}.weight"], w0[~zero])
    assert torch.equal(pruned.lm_head.weight, model.lm_head.weight)


def test_int8_channels_round_trip_within_half_a_step():
    w = torch.randn(8, 16)
    w[3] = 0.0  # an all-zero channel must not divide by zero
    q, scale = compress.int8_channels(w)
    assert q.dtype == torch.int8 and q.abs().max() <= 127 and scale.shape == (8,)
    err = (q.float() * scale[:, None] - w).abs()
    assert (err <= scale[:, None] / 2 + 1e-7).all()
    assert torch.equal(q[3], torch.zeros(16, dtype=torch.int8))


def test_gpt2_conv1d_layers_are_compressed_too():
    model = build_model(shape_for("gpt2", 32, 257, 64), seed=0).eval()
    layers = compress.block_linears(model)
    assert len(layers) == 2 * 4  # c_attn, c_proj (attention), c_fc, c_proj (MLP)
    _, _, stored = compress.int8_weight(model)
    # one byte per weight, four per output channel's scale, the biases in fp32
    expected = sum(m.weight.numel() + 4 * m.nf + 4 * m.bias.numel() for m in layers.values())
    assert stored == expected
    x = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        ref = model(input_ids=x).logits
        quantized, _, _ = compress.int8_weight(model)
        assert (quantized(input_ids=x).logits - ref).abs().max() < 0.05
        pruned, *_, achieved = compress.magnitude_prune(model, 0.5)
        assert achieved >= 0.5 and torch.isfinite(pruned(input_ids=x).logits).all()
    assert "Conv1D" in compress.int8_dynamic(model)  # torch's int8 knows nn.Linear only
