"""Compression as a scaling study: quantize and prune every model of a finished sweep.

    scaling-train -m experiment=compress source=results/demo

Modules
    :mod:`~scaling.compress.quantize`
        Post-training quantization through torchao: weight-only round-to-nearest at 8,
        4 and 3 bits (per channel or group-wise), int8 weights with int8 activations,
        fp8 (e4m3) weights.
    :mod:`~scaling.compress.sparsity`
        Unstructured magnitude pruning and 2:4 semi-structured pruning, by hand, with an
        optional short recovery fine-tune.
    :mod:`~scaling.compress.measure`
        Bytes on disk and in memory, and forward throughput.
    :mod:`~scaling.compress.job`
        The job over a sweep: one record per source model, one row per variant
        (docs/run-record.md).
"""

from scaling.compress.job import execute, record_config

__all__ = ["execute", "record_config"]
