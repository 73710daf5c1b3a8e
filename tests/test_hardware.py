"""Precision chosen by what the hardware runs natively."""

import pytest


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bf16_only_where_the_cpu_runs_it_natively(monkeypatch, native):
    import torch

    from scaling import hardware

    monkeypatch.setattr(hardware, "cpu_has_fast_bf16", lambda: native)
    cpu = torch.device("cpu")
    assert hardware.pick_dtype("auto", cpu) == ("bf16" if native else "fp32")
    assert hardware.pick_dtype("fp32", cpu) == "fp32"  # an explicit choice always wins
    with pytest.raises(ValueError, match="train.dtype must be auto, bf16 or fp32"):
        hardware.pick_dtype("fp16", cpu)
