"""The README's Python example runs as written, and gives what the CLI gives.

The example is the notebook path a researcher copies; if a name in it is renamed, or
``fit_frame``'s defaults drift from the command's, it would silently teach the wrong
thing. Both the example and ``scaling-analyze fit --json`` run on the demo records
committed in ``results/demo``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import warnings
from pathlib import Path

import pytest

from analysis.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### From Python", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README: no python block under 'From Python'"
    return match.group(1)


def test_python_example_runs_and_matches_the_cli(tmp_path: Path, monkeypatch) -> None:
    if not (ROOT / "results" / "demo").is_dir():
        pytest.skip("no demo records")
    monkeypatch.chdir(ROOT)
    code = _example().replace('"residuals.png"', repr(str(tmp_path / "residuals.png")))
    scope: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - the README's own example
    assert (tmp_path / "residuals.png").stat().st_size > 0

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["fit", "results/demo", "--law", "chinchilla", "--json"]) == 0
    cli = json.loads(out.getvalue())
    api = scope["result"]
    # same defaults: the same resamples drawn the same way give the same intervals
    assert cli["bootstrap"]["resamples"] == 200
    for name, (lo, hi) in cli["intervals"].items():
        assert api.intervals[name] == pytest.approx((lo, hi), rel=1e-9), name
    for name, value in cli["params"].items():
        assert api.params[name] == pytest.approx(value, rel=1e-9), name
    # the prediction at a budget carries a band around it and says it extrapolates
    best = scope["best"]
    assert best.interval[0] < best.loss < best.interval[1]
    assert best.extrapolation > 1
