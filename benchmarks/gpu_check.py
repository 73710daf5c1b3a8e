"""Every measurement of benchmarks/README.md's GPU section, in one pass on one GPU.

    python benchmarks/gpu_check.py --out gpu_out                  # ~8 minutes on an H200
    python benchmarks/gpu_check.py --out gpu_out --baseline OLD   # and the loop of OLD

Each step runs in its own process under its own time limit, so that one that fails or
hangs costs only itself, and the steps stop starting once ``--budget`` seconds are spent:

1. ``env``: the GPU, its driver and the packages.
2. ``mfu_compiled``, ``mfu_eager``: ``benchmarks/gpu_mfu.py`` on the ladder's ~124M model
   (d_model 768, context 2048, 262k tokens a step), each with a profile of 3 steps.
3. ``flops``: the analytic FLOPs against torch's ``FlopCounterMode`` on CUDA, for every
   fused attention kernel (``tests/test_flops.py``).
4. ``smoke``: ``scaling-train -m experiment=smoke`` on the GPU.
5. ``resume``: the resume tests of ``tests/test_train.py`` (SIGKILL and SIGTERM mid-run,
   a trunk killed in every phase) and two identical runs, on the GPU.
6. ``ladder``: the three smallest sizes of ``experiment=ladder`` (d_model 256, 384, 512),
   WSD-S trunks with budgets of 2, 4 and 8M tokens, eager (``mfu_compiled`` measures the
   compiled loop); then the records of ``smoke`` and ``ladder`` are checked (a GPU's
   name, bf16, tokens/s and an MFU between 0 and 1) and their figures drawn.
7. ``baseline_compiled``, ``baseline_eager``: with ``--baseline OLD`` (a source tree
   holding ``scaling/``, ``sweeps/`` and ``hydra_plugins/``), step 2 again with OLD's
   training loop: the fixes measured side by side, in the same run.

Writes into OUT: ``log.txt`` (every step's output), ``summary.json`` (a step each: exit
status, seconds, and what it measured), the profiles, and ``gpu_check.tar.gz`` (the
records without checkpoints, the figures, each step's log). The runs are trained in a
fresh temporary folder, left in place for a closer look.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LADDER = [
    "experiment=ladder",
    "model.d_model=256,384,512",
    "train.budgets_per_param=null",
    "train.budgets=[2097152,4194304,8388608]",
    # the ladder's warmup is N tokens (Porian et al.): longer than these budgets
    "optim.warmup_tokens=1048576",
    "train.n_evals=4",
    "train.eval_batches=8",
    "train.compile=false",
]


class Steps:
    """Runs the steps one after another, logging each and keeping to the budget."""

    def __init__(self, out: Path, budget: float):
        self.out, self.deadline, self.results = out, time.monotonic() + budget, {}
        self.log = open(out / "log.txt", "a", encoding="utf-8")

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.log.write(text + "\n")
        self.log.flush()

    def run(self, name: str, limit: float, argv: list[str], env: dict | None = None) -> str:
        """Run ``argv`` for at most ``limit`` seconds (less if the budget is nearly spent)."""
        left = self.deadline - time.monotonic()
        if left < 20:
            self.say(f"== {name}: skipped, {left:.0f} s of the budget left")
            self.results[name] = {"rc": None, "skipped": True}
            return ""
        limit = min(limit, left)
        self.say(f"== {name} (limit {limit:.0f} s): {' '.join(argv)}")
        t0 = time.monotonic()
        # a session of its own: a timeout ends the step's children too (pytest's workers)
        proc = subprocess.Popen(
            argv, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )
        try:
            text, _ = proc.communicate(timeout=limit)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            text, _ = proc.communicate()
            rc = "timeout"
        seconds = time.monotonic() - t0
        (self.out / "steps").mkdir(exist_ok=True)
        (self.out / "steps" / f"{name}.log").write_text(text)
        # the end of a long output is where the figures and the failures are
        lines = text.splitlines()
        self.say("\n".join(lines[-40:]))
        self.say(f"== {name}: rc {rc}, {seconds:.0f} s")
        self.results[name] = {"rc": rc, "seconds": round(seconds, 1)}
        last = lines[-1] if lines else ""
        if last.startswith("{"):
            try:
                self.results[name]["result"] = json.loads(last)
            except json.JSONDecodeError:
                pass
        return text

    def save(self, results_dir: Path) -> None:
        """summary.json, and the tarball of records, figures and logs, as they stand."""
        (self.out / "summary.json").write_text(json.dumps(self.results, indent=1) + "\n")
        tmp = self.out / "gpu_check.tar.gz.tmp"
        with tarfile.open(tmp, "w:gz") as tar:
            for path in (results_dir, self.out / "steps", self.out / "figures"):
                if path.exists():
                    tar.add(path, arcname=path.name, filter=_no_checkpoints)
        os.replace(tmp, self.out / "gpu_check.tar.gz")


def _no_checkpoints(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    return None if info.name.endswith((".pt", ".safetensors")) else info


def check_records(results_dir: Path) -> tuple[list[dict], list[str]]:
    """The GPU records' fields that only a GPU run can get wrong, and what is wrong."""
    rows, problems = [], []
    for path in sorted(results_dir.glob("*/*/summary.json")):
        s = json.loads(path.read_text())
        row = {
            k: s.get(k)
            for k in ("sweep", "run_id", "role", "d_model", "tokens", "status", "device",
                      "dtype", "tokens_per_s", "mfu", "final_val_loss", "wall_s")
        }
        rows.append(row)
        where = f"{s.get('sweep')}/{s.get('run_id')}"
        if s.get("status") != "completed":
            problems.append(f"{where}: status {s.get('status')}")
        if not str(s.get("device", "")).startswith("NVIDIA"):
            problems.append(f"{where}: device {s.get('device')!r} is not a GPU")
        if s.get("dtype") != "bf16":
            problems.append(f"{where}: dtype {s.get('dtype')}")
        if not (s.get("tokens_per_s") or 0) > 0 or not 0 < (s.get("mfu") or 0) < 1:
            problems.append(f"{where}: tokens/s {s.get('tokens_per_s')}, mfu {s.get('mfu')}")
    return rows, problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--baseline", type=Path, help="a source tree of the loop to compare")
    parser.add_argument("--budget", type=float, default=540, help="seconds for all steps")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    steps = Steps(out, args.budget)
    # a fresh folder: in one used before, the sweeps would find their records done,
    # train nothing, and the checks would read the old records
    runs = Path(tempfile.mkdtemp(prefix="gpu_check_runs-"))
    py = sys.executable
    mfu = [py, "benchmarks/gpu_mfu.py"]

    steps.run("env", 60, ["bash", "-c", (
        "nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm "
        "--format=csv; nproc; " + py + " -c 'import torch, transformers, hydra; "
        "print(torch.__version__, torch.version.cuda, transformers.__version__, "
        "hydra.__version__, torch.backends.cudnn.version())'")])
    steps.run("mfu_compiled", 200, [*mfu, "--profile", str(out / "profile_compiled.txt")])
    steps.save(runs)
    steps.run("mfu_eager", 90, [*mfu, "--no-compile", "--profile", str(out / "profile_eager.txt")])
    steps.save(runs)
    steps.run("flops", 90, [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs",
                            "tests/test_flops.py", "-k", "on_cuda"])
    steps.run("smoke", 90, [py, "-m", "scaling.main", "-m", "experiment=smoke",
                            f"results_dir={runs}"])
    steps.save(runs)
    steps.run("resume", 150, [
        py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "4", "tests/test_train.py",
        "-k", "bit_for_bit or identical_records or stopped_as_a_budget_ends",
    ])
    steps.save(runs)
    steps.run("ladder", 150, [py, "-m", "scaling.main", "-m", *LADDER, f"results_dir={runs}"])
    rows, problems = check_records(runs)
    steps.results["records"] = {"rows": rows, "problems": problems}
    steps.say(f"== records: {len(rows)} checked, {len(problems)} problems")
    for p in problems:
        steps.say(f"   {p}")
    steps.run("plot", 60, [py, "-m", "analysis.cli", "plot", str(runs / "ladder"),
                           "--out", str(out / "figures"), "--format", "png"])
    steps.save(runs)
    if args.baseline:
        old = {"PYTHONPATH": os.pathsep.join(
            [str(args.baseline.resolve()), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
        )}
        steps.run("baseline_compiled", 170,
                  [*mfu, "--profile", str(out / "profile_baseline_compiled.txt")], old)
        steps.save(runs)
        steps.run("baseline_eager", 90,
                  [*mfu, "--no-compile", "--profile", str(out / "profile_baseline_eager.txt")],
                  old)
    steps.save(runs)
    print(json.dumps({"benchmark": "gpu_check", **{
        k: v.get("rc") for k, v in steps.results.items() if isinstance(v, dict) and "rc" in v
    }}))


if __name__ == "__main__":
    main()
