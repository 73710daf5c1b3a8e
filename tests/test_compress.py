"""Compressing a sweep's models: quantization, pruning, recovery, bytes, speed, records."""

import copy
import math
from pathlib import Path

import pytest
import torch
import yaml
from downstream_fixtures import compose, pretrained_sweep

from scaling import results
from scaling.compress import job, measure, quantize, sparsity
from scaling.compress.quantize import Quantization
from scaling.families import build_model, shape_for
from scaling.sources import SourceRun, find_sources

# the smoke sizes are 16 and 32 wide: group 16 divides every layer of d32 (inputs 32
# and 96) but equals d16's width, where it is one scale per channel again and is skipped
OVERRIDES = (
    "compress.group_sizes=[null,16]",
    "compress.throughput_seconds=0.05",
    "compress.recover_tokens=16384",
)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    return pretrained_sweep(tmp_path_factory.getbasetemp() / "pretrained")


@pytest.fixture(scope="module")
def compressed(sweep):
    """Run the compression job on the sweep, as `scaling-train -m experiment=compress`."""
    from scaling.main import run

    run(compose("experiment=compress", f"source={sweep}", *OVERRIDES))
    return {s["source"]["run_id"]: s for _, s in results.iter_runs(sweep.parent / "smoke-compress")}


def variants(summary):
    return {v["variant"]: v for v in summary["variants"]}


def by_width(compressed, sweep):
    return {s.summary["d_model"]: compressed[s.run_id] for s in find_sources(sweep)[0]}


def test_every_model_gets_every_variant_and_a_complete_record(compressed, sweep):
    sources = find_sources(sweep)[0]
    assert sorted(compressed) == sorted(s.run_id for s in sources)
    quantized = ["rtn_w8", "rtn_w8_g16", "rtn_w4", "rtn_w4_g16", "rtn_w3", "rtn_w3_g16"]
    pruned = ["prune0.25", "prune0.5", "prune0.75", "2:4"]
    recovered = [f"{p}_r16384" for p in pruned]
    for src in sources:
        s = compressed[src.run_id]
        assert s["status"] == "completed" and s["job"] == "compress"
        names = list(variants(s))
        # each pruned model is recorded, then again after its recovery
        want = ["baseline", *quantized, "w8a8", "fp8"]
        for p, r in zip(pruned, recovered, strict=True):
            want += [p, r]
        if src.summary["d_model"] == 16:
            want = [n for n in want if "_g16" not in n]
            assert sum("group size 16" in n for n in s["notes"]) == 3
        assert names == want, names
        # measured on the run's own validation batches: the baseline is its last evaluation
        v = variants(s)
        assert v["baseline"]["val_loss"] == pytest.approx(src.summary["final_val_loss"], abs=1e-6)
        rows = results.read_metrics(sweep.parent / "smoke-compress" / s["run_id"])
        assert [r["variant"] for r in rows] == names
        config = yaml.safe_load(
            (sweep.parent / "smoke-compress" / s["run_id"] / "config.yaml").read_text()
        )
        assert results.run_id(config) == s["run_id"]
        # the identity of a variant is in its row
        assert (v["rtn_w4"]["scheme"], v["rtn_w4"]["bits"], v["rtn_w4"]["group_size"]) == (
            "rtn", 4, None,
        )  # fmt: skip
        assert v["w8a8"]["activation_bits"] == 8 and v["rtn_w8"]["activation_bits"] is None
        assert v["2:4"]["scheme"] == "2:4" and v["prune0.5_r16384"]["recover_tokens"] == 16384


def test_fewer_bits_cost_more_loss(compressed):
    for s in compressed.values():
        v = variants(s)
        base = v["baseline"]["val_loss"]
        # 8 bits is within rounding of the float model; 3 bits costs more than 4
        for name in ("rtn_w8", "w8a8", "fp8"):
            assert abs(v[name]["delta_loss"]) < 0.005 * base, (name, v[name])
    # the smoke models are trained for 64 steps: too little for 3 or 4 bits to cost loss
    # reliably (on the demo's models they do); their outputs must move more, though
    model = build_model(shape_for("llama", 32, 257, 64), seed=0).eval()
    x = torch.randint(0, 256, (4, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ref = model(input_ids=x).logits
        moved = [
            (quantize.quantize(model, Quantization("rtn", b)).forward(input_ids=x).logits - ref)
            .abs()
            .mean()
            for b in (8, 4, 3)
        ]
    assert moved[0] < moved[1] < moved[2], moved
    assert moved[1] > 4 * moved[0]


def _layer_shapes(summary):
    model = build_model(
        shape_for("llama", summary["d_model"], summary["vocab_size"], summary["context"]), seed=0
    )
    return [tuple(m.weight.shape) for m in measure.block_linears(model).values()]


def test_bytes_on_disk_pack_the_bits_and_memory_holds_what_the_runtime_keeps(compressed):
    for s in compressed.values():
        v = variants(s)
        shapes = _layer_shapes(s)
        weights = sum(o * i for o, i in shapes)
        scales = sum(4 * o for o, _ in shapes)  # one fp32 scale per output channel
        # on disk: the values packed `bits` to the value, plus the scales (no bias)
        assert v["baseline"]["compressed_bytes"] == 4 * weights
        assert v["rtn_w8"]["compressed_bytes"] == weights + scales
        assert v["rtn_w4"]["compressed_bytes"] == sum(
            math.ceil(o * i * 4 / 8) + 4 * o for o, i in shapes
        )
        assert v["rtn_w3"]["compressed_bytes"] == sum(
            math.ceil(o * i * 3 / 8) + 4 * o for o, i in shapes
        )
        # and the whole file shrinks by most of what the layers saved (embeddings and
        # norms stay; each layer's extra scale tensor costs torch.save a few hundred
        # bytes of its own, which matters at the smoke models' few thousand weights)
        saved = v["baseline"]["compressed_bytes"] - v["rtn_w3"]["compressed_bytes"]
        assert v["baseline"]["size_bytes"] - v["rtn_w3"]["size_bytes"] > 0.6 * saved
        # in memory torchao's CPU layout keeps a 3- or 4-bit value in a byte: int8-sized
        assert v["rtn_w3"]["compressed_memory_bytes"] == v["rtn_w8"]["compressed_memory_bytes"]
        assert v["rtn_w8"]["compressed_memory_bytes"] < v["baseline"]["compressed_memory_bytes"] / 3
        # pruning stores the kept values and a bit per weight
        kept = round(weights * 0.25)
        assert v["prune0.75"]["compressed_bytes"] == pytest.approx(4 * kept + weights / 8, rel=0.01)


def test_pruning_zeroes_what_it_says_and_recovery_wins_loss_back(compressed):
    for s in compressed.values():
        v = variants(s)
        losses = [v["baseline"]["val_loss"]] + [
            v[f"prune{x:g}"]["val_loss"] for x in (0.25, 0.5, 0.75)
        ]
        for x in (0.25, 0.5, 0.75):
            assert v[f"prune{x:g}"]["achieved_sparsity"] >= x
            # recovery keeps the pruned weights at zero
            assert v[f"prune{x:g}_r16384"]["achieved_sparsity"] >= x
        base, quarter, half, three_quarters = losses
        assert base < half < three_quarters and quarter < three_quarters, losses
        assert three_quarters > base + 0.01
        assert v["2:4"]["achieved_sparsity"] == pytest.approx(0.5, abs=1e-9)
        # 16 steps of recovery win back part of what three quarters pruned away
        assert v["prune0.75_r16384"]["val_loss"] < three_quarters - 0.01
        assert v["2:4_r16384"]["val_loss"] < v["2:4"]["val_loss"]


def test_throughput_is_timed_against_the_float_model(compressed):
    for s in compressed.values():
        v = variants(s)
        assert v["baseline"]["speedup"] == {"batch_1": 1.0, "batch_8": 1.0}
        for row in v.values():
            assert set(row["throughput"]) == {"batch_1", "batch_8"}
            assert all(t > 0 for t in row["throughput"].values())
            for k, t in row["throughput"].items():
                ratio = t / v["baseline"]["throughput"][k]
                assert row["speedup"][k] == pytest.approx(ratio)


def test_one_run_per_shape_is_timed_the_one_with_most_tokens():
    runs = [
        SourceRun(dir=Path(f"/s/{rid}"), summary=s, config={})
        for rid, s in [
            ("a", {"d_model": 16, "tokens": 100}),
            ("b", {"d_model": 16, "tokens": 400}),
            ("c", {"d_model": 32, "tokens": 400}),
            ("d", {"d_model": 32, "tokens": 400}),
        ]
    ]
    assert job.timed_runs(runs) == {"b", "c"}


# --------------------------------------------------------------------------------------
# The methods, on a model of their own


@pytest.mark.parametrize("bits", [3, 4, 2])
def test_pack_bits_round_trips_every_value_in_as_few_bytes(bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    q = torch.arange(lo, hi + 1, dtype=torch.int8).repeat(7)[:-3].reshape(-1)
    packed = measure.pack_bits(q, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == math.ceil(q.numel() * bits / 8)
    assert torch.equal(measure.unpack_bits(packed, bits, tuple(q.shape)), q)


def test_two_four_keeps_the_two_largest_of_every_four_inputs():
    model = build_model(shape_for("llama", 32, 257, 64), seed=0)
    masks = sparsity.two_four_masks(model)
    layers = measure.block_linears(model)
    for name, keep in masks.items():
        w = layers[name].weight.detach()
        groups, kept = w.abs().reshape(w.shape[0], -1, 4), keep.reshape(w.shape[0], -1, 4)
        assert (kept.sum(-1) == 2).all()
        smallest_kept = torch.where(kept, groups, torch.inf).amin(-1)
        largest_dropped = torch.where(kept, -torch.inf, groups).amax(-1)
        assert (smallest_kept >= largest_dropped).all()
    pruned, achieved = sparsity.prune(model, masks)
    assert achieved == pytest.approx(0.5)
    assert torch.equal(pruned.lm_head.weight, model.lm_head.weight)


def test_magnitude_masks_keep_the_largest_weights_of_each_layer():
    model = build_model(shape_for("llama", 32, 257, 64), seed=0)
    masks = sparsity.magnitude_masks(model, 0.5)
    pruned, achieved = sparsity.prune(model, masks)
    assert achieved == pytest.approx(0.5, abs=1e-3)
    layers, original = measure.block_linears(pruned), measure.block_linears(model)
    assert "lm_head" not in layers and len(layers) == 2 * 7  # q k v o gate up down
    for name, layer in layers.items():
        w, w0 = layer.weight, original[name].weight
        zero = w == 0
        assert w0[~zero].abs().min() >= w0[zero].abs().max()  # the smallest ones went
        assert torch.equal(w[~zero], w0[~zero])  # the others are untouched


def test_quantized_weights_round_to_nearest_within_half_a_step():
    model = build_model(shape_for("llama", 32, 257, 64), seed=0).eval()
    for q in (Quantization("rtn", 4), Quantization("rtn", 3, 16), Quantization("rtn", 8)):
        quantized = quantize.quantize(model, q)
        for name, layer in measure.block_linears(quantized).items():
            w = measure.block_linears(model)[name].weight.detach()
            qw = layer.weight
            assert int(qw.qdata.min()) >= -(1 << (q.bits - 1))
            assert int(qw.qdata.max()) <= (1 << (q.bits - 1)) - 1
            groups = q.group_size or w.shape[1]
            amax = w.abs().reshape(w.shape[0], -1, groups).amax(-1, keepdim=True)
            step = (amax / ((1 << (q.bits - 1)) - 0.5)).expand(-1, -1, groups).reshape(w.shape)
            err = (qw.dequantize() - w).abs()
            assert (err <= step / 2 + 1e-6).all(), (q, name)


def test_gpt2_conv1d_layers_are_quantized_and_pruned_too():
    model = build_model(shape_for("gpt2", 32, 257, 64), seed=0).eval()
    assert len(measure.block_linears(model)) == 2 * 4  # c_attn, c_proj, c_fc, c_proj
    x = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        ref = model(input_ids=x).logits
        linear = quantize.as_linears(copy.deepcopy(model))
        assert all(isinstance(m, torch.nn.Linear) for m in measure.block_linears(linear).values())
        assert torch.allclose(linear(input_ids=x).logits, ref, atol=1e-5)
        quantized = quantize.quantize(model, Quantization("rtn", 8))
        assert (quantized(input_ids=x).logits - ref).abs().max() < 0.05
        pruned, achieved = sparsity.prune(model, sparsity.two_four_masks(model))
        assert achieved == pytest.approx(0.5) and torch.isfinite(pruned(input_ids=x).logits).all()


def test_memory_bytes_count_a_quantized_weights_inner_tensors():
    model = build_model(shape_for("llama", 32, 257, 64), seed=0).eval()
    shapes = [tuple(m.weight.shape) for m in measure.block_linears(model).values()]
    weights = sum(o * i for o, i in shapes)
    assert measure.layers_memory_bytes(model) == 4 * weights
    quantized = quantize.quantize(model, Quantization("rtn", 8))
    # int8 values, and per output channel an fp32 scale and an int8 zero point
    assert measure.layers_memory_bytes(quantized) == weights + sum(5 * o for o, _ in shapes)
    # the rest of the model is untouched: the difference is the layers' alone
    saved = measure.model_memory_bytes(model) - measure.model_memory_bytes(quantized)
    assert saved == 4 * weights - measure.layers_memory_bytes(quantized)
