"""Precision chosen by what the hardware runs natively, and by the model's width."""

import pytest


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_where_the_cpu_runs_it_natively(monkeypatch, native):
    import torch

    from scaling import hardware

    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert hardware.pick_dtype("auto", cpu, 256) == ("bf16" if native else "fp32")
    assert hardware.pick_dtype("fp32", cpu, 256) == "fp32"  # an explicit choice always wins
    with pytest.raises(ValueError, match="train.dtype must be auto, bf16 or fp32"):
        hardware.pick_dtype("fp16", cpu, 256)


def test_auto_precision_keeps_narrow_models_in_fp32_on_a_bf16_cpu(monkeypatch):
    # their matmuls are too small for bf16 to pay for the casts: the demos' and the smoke
    # sweep's sizes compute in fp32 on every CPU, whether it multiplies bf16 natively or not
    import torch

    from scaling import hardware

    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: True)
    cpu = torch.device("cpu")
    assert hardware.CPU_BF16_MIN_D_MODEL == 128
    assert [hardware.pick_dtype("auto", cpu, d) for d in (8, 64, 96, 127)] == ["fp32"] * 4
    assert [hardware.pick_dtype("auto", cpu, d) for d in (128, 768)] == ["bf16"] * 2
    assert hardware.pick_dtype("bf16", cpu, 16) == "bf16"  # asked for, it is used
