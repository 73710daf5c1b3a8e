"""The analysis package works without torch and imports fast."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from analysis_fixtures import LADDER, write_sweep

ROOT = Path(__file__).resolve().parents[1]

# Imports every analysis module, fits a law, draws every figure, then reports which
# heavy modules ended up loaded.
NO_TORCH_SCRIPT = """
import json, sys, warnings
warnings.simplefilter("ignore")
import analysis, analysis.io, analysis.laws, analysis.fit, analysis.optimal
import analysis.backtest, analysis.plots, analysis.report, analysis.cli
from analysis.io import load_runs, load_curves
from analysis.fit import fit_frame
from analysis.plots import plot_all
sweep, out = sys.argv[1], sys.argv[2]
runs, curves = load_runs(sweep), load_curves(sweep)
result = fit_frame(runs, "power", x="params", y="flops")
files = plot_all(runs, curves, out, formats=("png",), bootstrap=20)
print(json.dumps({
    "torch": "torch" in sys.modules,
    "transformers": "transformers" in sys.modules,
    "k": result.params["k"],
    "files": [str(f) for f in files],
}))
"""

# Times only the import statement, inside the interpreter (start-up is not ours to cut).
IMPORT_TIME_SCRIPT = """
import json, sys, time
start = time.perf_counter()
import analysis
elapsed = time.perf_counter() - start
print(json.dumps({"seconds": elapsed, "heavy": sorted(
    m for m in ("torch", "matplotlib", "pandas", "scipy", "seaborn") if m in sys.modules)}))
"""


def test_fit_and_plot_never_import_torch(tmp_path):
    sweep = write_sweep(tmp_path, ladder=LADDER[:5])
    proc = subprocess.run(
        [sys.executable, "-c", NO_TORCH_SCRIPT, str(sweep), str(tmp_path / "plots")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["torch"] is False
    assert result["transformers"] is False
    assert 1.9 < result["k"] < 2.2  # the sweep trains every size for 20 tokens per parameter
    assert result["files"], "no figure was drawn"


def test_import_analysis_is_light_and_fast():
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_TIME_SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["heavy"] == []
    assert result["seconds"] < 1.0
