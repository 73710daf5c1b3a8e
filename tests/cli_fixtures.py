"""What the ``scaling-analyze`` tests share: running the command, and the sweeps it reads."""

from __future__ import annotations

from pathlib import Path

from analysis_fixtures import FIXED_TOKENS, write_isoflop_sweep, write_sweep

from analysis.cli import main


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    """Run ``scaling-analyze argv``; its exit status, stdout and stderr."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_sweeps(root: Path) -> dict[str, Path]:
    """Three sweeps of records under ``root``: one with a diverged run, an IsoFLOP grid, and
    one whose runs all train on the same tokens."""
    return {
        "demo": write_sweep(root, "demo", diverged=True),
        "iso": write_isoflop_sweep(root, "iso"),
        "fixed": write_sweep(root, "fixed", fixed_tokens=FIXED_TOKENS),
    }
