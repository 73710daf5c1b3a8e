"""What each compression variant buys at a real width: bytes and forward throughput.

The demo's models are a few hundred thousand parameters wide, where a forward pass is
all overhead and every compressed variant is slower than float. This builds one Llama
of a real width (random weights: neither bytes nor speed depend on what a model
learnt), makes every variant the compression job makes (scaling.compress), and
measures side by side in one process:

  bytes     on disk (torch.save of the packed storage) and in memory, whole model and
            compressed layers (the block linears) alone
  speed     forward tokens/s at batch 1 and at a larger batch, the median over rounds
            that each time every variant in turn, and the ratio to float; a
            variant slower than float says so

    python benchmarks/compress_speed.py                # ~2 minutes on 2 CPU cores
    python benchmarks/compress_speed.py --quick        # a narrow model, a smoke check
    python benchmarks/compress_speed.py --json out.json

Ends with one JSON line: the machine, the shape, and per variant its bytes and speeds.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

from scaling.compress import measure, quantize, sparsity
from scaling.compress.quantize import Quantization
from scaling.families import build_model, param_counts, shape_for

VOCAB = 32_000  # a real tokenizer's vocabulary: the embeddings' share of bytes is real too


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def variants(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module, dict, dict]]:
    """(name, model, file state, compressed layers' part of it) per variant."""
    out = []
    layers = measure.block_linears(model)
    dense = {f"{n}.{k}": v for n, m in layers.items() for k, v in m.state_dict().items()}
    out.append(("float", model, model.state_dict(), dense))
    qs = [
        Quantization("rtn", 8),
        Quantization("rtn", 8, 128),
        Quantization("rtn", 4),
        Quantization("rtn", 4, 128),
        Quantization("rtn", 3),
        Quantization("rtn", 3, 128),
        Quantization("w8a8"),
        Quantization("fp8"),
    ]
    for q in qs:
        if q.unfit(model):
            continue
        m = quantize.quantize(model, q)
        out.append((q.name, m, *quantize.storage(m, q)))
    for name, masks in (
        ("prune0.5", sparsity.magnitude_masks(model, 0.5)),
        ("2:4", sparsity.two_four_masks(model)),
    ):
        m, _ = sparsity.prune(model, masks)
        out.append((name, m, *sparsity.storage(m)))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--d-model", type=int, default=512)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch", type=int, default=8, help="the larger batch (default 8)")
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per measurement")
    p.add_argument("--rounds", type=int, default=2, help="rounds over all variants (median)")
    p.add_argument("--quick", action="store_true", help="d_model 256, 0.3 s per measurement")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()
    if args.quick:
        args.d_model, args.seconds, args.rounds = 256, 0.3, 2
    if quantize.torchao_missing():
        raise SystemExit(quantize.torchao_missing())
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = shape_for("llama", args.d_model, VOCAB, args.context)
    model = build_model(shape, seed=0).eval().to(device)
    counts = param_counts(shape)
    print(
        f"{shape.family} d_model {shape.d_model}, {shape.n_layers} layers, "
        f"{counts['nonembed']:,} non-embedding parameters, vocabulary {VOCAB:,}; "
        f"{cpu_name() if device.type == 'cpu' else torch.cuda.get_device_name()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        flush=True,
    )
    t0 = time.perf_counter()
    made = variants(model)

    def speed(m: torch.nn.Module) -> dict[str, float]:
        return {
            f"batch_{b}": measure.throughput(
                m, b, args.context, VOCAB, device, min_seconds=args.seconds
            )
            for b in (1, args.batch)
        }

    rows = [
        {
            "variant": name,
            "size_bytes": measure.serialized_bytes(state),
            "compressed_bytes": measure.memory_bytes(part.values()),
            "memory_bytes": measure.model_memory_bytes(m),
            "compressed_memory_bytes": measure.layers_memory_bytes(m),
        }
        for name, m, state, part in made
    ]
    # rounds over every variant, the median of each: a drift of the machine (another
    # process, the clock) then touches every variant alike instead of the last ones
    timings: list[list[dict[str, float]]] = [[] for _ in made]
    speed(model)  # the first passes of a process are slow (thread pool, allocator)
    for r in range(args.rounds):
        for i, (_, m, *_) in enumerate(made):
            timings[i].append(speed(m))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    for row, times in zip(rows, timings, strict=True):
        row["tokens_per_s"] = {k: statistics.median(t[k] for t in times) for k in times[0]}
        row["spread"] = {
            k: (max(t[k] for t in times) - min(t[k] for t in times)) / row["tokens_per_s"][k]
            for k in times[0]
        }
    again = {k: timings[0][-1][k] for k in timings[0][-1]}  # float in the last round
    base = rows[0]
    keys = list(base["tokens_per_s"])
    header = (
        "| variant | file MB | layers on disk MB | in memory MB | layers in memory MB | "
        + " | ".join(f"tok/s b{k.removeprefix('batch_')} (× float)" for k in keys)
        + " |"
    )
    print("\n" + header + "\n" + "|---" * (5 + len(keys)) + "|")
    for r in rows:
        ratios = {k: r["tokens_per_s"][k] / base["tokens_per_s"][k] for k in keys}
        r["speedup"] = ratios
        cells = [
            f"{r['tokens_per_s'][k]:,.0f} ({ratios[k]:.2f}×{', slower' if ratios[k] < 1 else ''})"
            for k in keys
        ]
        print(
            f"| {r['variant']} | {r['size_bytes'] / 1e6:.1f} | {r['compressed_bytes'] / 1e6:.1f} "
            f"| {r['memory_bytes'] / 1e6:.1f} | {r['compressed_memory_bytes'] / 1e6:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    drift = {k: again[k] / base["tokens_per_s"][k] for k in keys}
    spread = max(v for r in rows for v in r["spread"].values())
    print(
        f"\nfloat in the last round against its median: "
        f"{', '.join(f'{k} {v:.2f}×' for k, v in drift.items())}; the widest spread of a "
        f"variant over rounds: {spread:.0%} of its median"
    )
    print(f"wall {time.perf_counter() - t0:.0f} s")
    result = {
        "device": cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "shape": {"d_model": shape.d_model, "n_layers": shape.n_layers, "context": args.context},
        "params_nonembed": counts["nonembed"],
        "float_drift": drift,
        "variants": rows,
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
