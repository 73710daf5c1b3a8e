"""What ``scaling-train --help`` says before Hydra's own help.

Hydra's help is a dump of the composed config: it names neither the experiments nor the
``status`` subcommand. This text is built from the config tree itself (the group
directories under ``sweeps/``, and each experiment file's header comment), so it names
every experiment and option there is, and no list here can fall behind the tree.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import yaml

import sweeps

# The groups a user picks from, in the order they are explained; the tree's other
# directories (hydra/sweeper) are set by the config itself.
GROUPS = {
    "model": "model family; size by model.d_model",
    "data": "corpus and tokenizer",
    "optim": "optimiser, schedule, per-size rules",
    "train": "token budget(s), evaluation, checkpoints, device",
    "task": "classification task of experiment=finetune",
    "hydra/launcher": "where the points of a sweep run",
}
EXAMPLES = (
    ("scaling-train -m experiment=smoke results_dir=runs/r", "3 tiny sizes, seconds"),
    ("scaling-train model=gpt2 model.d_model=128 train.tokens=1e6", "one run"),
    ("scaling-train -m experiment=demo hydra/launcher=slurm", "the demo sweep on SLURM"),
    ("scaling-train status results/demo", "every point of the sweep, done or not"),
)
_WIDTH = 100


def config_root() -> Path:
    """The config tree shipped with the package."""
    return Path(sweeps.__file__).parent


def options(group: str, root: Path | None = None) -> list[str]:
    """The options of a config group: its YAML files' names, sorted."""
    return sorted(p.stem for p in ((root or config_root()) / group).glob("*.yaml"))


def header_line(path: Path, width: int = 88) -> str:
    """The first sentence of a config file's header comment, cut to ``width`` characters.

    The header is the file's leading comment lines, less Hydra's ``@package`` line and
    from the first example command line on (indented: ``#   scaling-train ...``).
    """
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line[1:]
        if text.strip().startswith("@package"):
            continue
        if text.startswith("   "):
            break
        words.append(text.strip())
    header = " ".join(w for w in words if w)
    # a sentence ends at a full stop, not at a citation's "et al."
    end = re.search(r"(?<!\bal)\. ", header)
    sentence = header if end is None else header[: end.start() + 1]
    return textwrap.shorten(sentence, width=width, placeholder=" …")


def _defaults(root: Path) -> dict[str, str]:
    """Each group's default option, from the defaults list of config.yaml."""
    cfg = yaml.safe_load((root / "config.yaml").read_text(encoding="utf-8")) or {}
    found = {}
    for entry in cfg.get("defaults") or []:
        if isinstance(entry, dict):
            for key, value in entry.items():
                found[str(key).removeprefix("override ")] = value
    return found


def help_text(root: Path | None = None) -> str:
    """The opening of ``scaling-train --help``: what it does, experiments, groups, examples."""
    root = root or config_root()
    defaults = _defaults(root)
    out = [
        "scaling-train: train a ladder of transformer language models with one Hydra sweep",
        "and record, for every run, its parameter counts, tokens, FLOPs and loss curve",
        "(results/<sweep>/<run_id>/, see docs/run-record.md); scaling-analyze fits laws to them.",
        "",
        "usage:",
        "  scaling-train [OVERRIDE ...]                    one run",
        "  scaling-train -m experiment=NAME [OVERRIDE ...] a sweep (Hydra multirun)",
        "  scaling-train status PATH [--json]              what a sweep's points are doing",
        "",
        "Experiments (experiment=NAME, in sweeps/experiment/):",
    ]
    names = options("experiment", root)
    pad = max(len(n) for n in names) + 2
    for name in names:
        out.append(f"  {name.ljust(pad)}{header_line(root / 'experiment' / f'{name}.yaml')}")
    out += ["", "Config groups (group=option; * the default):"]
    listed = {
        group: ", ".join(
            o + ("*" if defaults.get(group) == o else "") for o in options(group, root)
        )
        for group in GROUPS
    }
    opt_pad = max(len(v) for v in listed.values()) + 2
    for group, what in GROUPS.items():
        out.append(f"  {group + '/':<16}{listed[group]:<{opt_pad}}{what}")
    out += [
        "",
        "Any key is set as key=value (model.d_model=128, train.tokens=1e6, results_dir=PATH);",
        "the config below lists them all, with their defaults.",
        "",
        "Subcommand:",
        "  status PATH   every point of a sweep, started or not: k of n completed, tokens/s",
        "                and ETA of running runs, their logs; PATH is a sweep directory, a",
        "                results root or a run's directory; exits 1 when a run failed or was",
        "                lost (scaling-train status --help)",
        "",
        "Examples:",
    ]
    cmd_pad = max(len(c) for c, _ in EXAMPLES) + 2
    out += [f"  {cmd.ljust(cmd_pad)}# {why}" for cmd, why in EXAMPLES]
    out += ["", "-" * 30 + " Hydra's help " + "-" * 30, ""]
    return "\n".join(line.rstrip() for line in out)


def asks_for_help(argv: list[str]) -> bool:
    """Whether a command line asks for the app's help (Hydra's own ``--hydra-help`` is not)."""
    return any(a in ("--help", "-h") for a in argv)
