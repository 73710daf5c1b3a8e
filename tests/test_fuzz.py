"""Malformed inputs, every `scaling-analyze` command: exit 2, one line, nothing written.

A seeded generator (:func:`generate`) makes each kind of damage — wrong types,
non-finite and huge values, truncated, empty and duplicated content, mixed delimiters,
bytes that are not UTF-8, wrong shapes — to a valid CSV, TSV and JSONL table, to a
sweep of run records (``summary.json`` and ``metrics.jsonl``, docs/run-record.md) and to
a Hugging Face ``trainer_state.json``. Each command reads it in this process
(``analysis.cli.main``) and must exit with status 2 and one line on stderr naming the
damaged file, with no traceback and no file written or changed. The valid bases
themselves fit (checked first), so each failure is the damage's.
"""

from __future__ import annotations

import hashlib
import json
import random
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analysis.cli import main
from tests.analysis_fixtures import true_loss, write_sweep

SEED = 20260101
#: How many cases :func:`generate` makes (kept equal by a test below).
N_CASES = 139

# ---------------------------------------------------------------------------------------
# Valid bases

COLUMNS = ["run", "params", "tokens", "loss"]
NUMERIC = ["params", "tokens", "loss"]


def table_rows() -> list[list[str]]:
    """Four sizes × three token counts, losses on a known law: a chinchilla grid."""
    rows = []
    for i, n in enumerate([1e5, 4e5, 1.6e6, 6.4e6]):
        for j, per_param in enumerate([5, 20, 80]):
            d = n * per_param
            loss = float(true_loss(n, d)) * (1 + 0.003 * ((i + j) % 3 - 1))
            rows.append([f"r{i}{j}", f"{n:g}", f"{d:g}", f"{loss:.6f}"])
    return rows


def delimited(rows: list[list[str]], sep: str, header: list[str] = COLUMNS) -> bytes:
    return "".join(sep.join(r) + "\n" for r in [header, *rows]).encode()


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def table_records() -> list[dict]:
    return [
        {"run": r[0], "params": float(r[1]), "tokens": float(r[2]), "loss": float(r[3])}
        for r in table_rows()
    ]


def sweep_files() -> dict[str, bytes]:
    """The files of a synthetic sweep of seven run records, by path under the input."""
    with tempfile.TemporaryDirectory() as tmp:
        sweep = write_sweep(Path(tmp))
        return {
            p.relative_to(tmp).as_posix(): p.read_bytes()
            for p in sorted(sweep.rglob("*"))
            if p.is_file()
        }


def trainer_state() -> dict:
    """A Trainer's log: training and evaluation entries every 100 steps of 4096 tokens."""
    history = []
    for step in range(100, 1300, 100):
        tokens = step * 4096
        loss = float(true_loss(1e6, tokens))
        history.append({"step": step, "loss": loss * 1.02, "num_input_tokens_seen": tokens})
        history.append({"step": step, "eval_loss": loss, "num_input_tokens_seen": tokens})
    return {"global_step": 1200, "log_history": history, "total_flos": 0}


# ---------------------------------------------------------------------------------------
# Cases

#: The commands, each with a marker for the input and the tmp output; ``curves``: the
#: ones that read learning curves too (damage to a metrics.jsonl reaches only these:
#: the others read a sweep's summaries alone, and are right to succeed).
COMMANDS = {
    "fit": ["fit", "{in}", "--bootstrap", "0"],
    "frontier1": ["frontier", "{in}", "--approach", "1", "--bootstrap", "0"],
    "frontier2": ["frontier", "{in}", "--approach", "2", "--bootstrap", "0"],
    "frontier3": ["frontier", "{in}", "--approach", "3", "--bootstrap", "0"],
    "backtest": ["backtest", "{in}", "--bootstrap", "0"],
    "predict": ["predict", "{in}", "--flops", "1e18", "--bootstrap", "0"],
    "plot": ["plot", "{in}", "--out", "{out}/plots", "--bootstrap", "0"],
    "report": ["report", "{in}", "--out", "{out}/report.md", "--bootstrap", "0"],
}
CURVE_COMMANDS = ("frontier1", "plot", "report")


@dataclass(frozen=True)
class Case:
    """One damaged input: its files, the path given to the commands and what the error
    must name."""

    id: str
    files: dict[str, bytes]
    target: str
    names: str
    commands: tuple[str, ...] = tuple(COMMANDS)
    options: tuple[str, ...] = field(default=())


def _table_cases(rng: random.Random, fmt: str) -> Iterator[tuple[str, bytes, str]]:
    """(class-detail, content, suffix) of each damage to a CSV or TSV table."""
    sep = {"csv": ",", "tsv": "\t"}[fmt]
    other = {"csv": ";", "tsv": ","}[fmt]
    base = table_rows()

    def cell(value: str) -> bytes:
        rows = [list(r) for r in base]
        rows[rng.randrange(len(rows))][rng.randrange(1, 4)] = value
        return delimited(rows, sep)

    text = delimited(base, sep)
    # NaN, "nan" and empty cells are unknown values: the row is left out with a warning
    # and the rest fits, so they are not in this list; nor are exact duplicate rows
    # (dropped with a warning), nor a number in quotes (CSV cells are text by nature).
    yield "types-text", cell("abc"), fmt
    yield "types-bool", cell("true"), fmt
    yield "types-list", cell('"[1, 2]"'), fmt
    yield "nonfinite-inf", cell("inf"), fmt
    yield "nonfinite-neg-inf", cell("-inf"), fmt
    yield "nonfinite-infinity", cell("Infinity"), fmt
    yield "huge-1e400", cell("1e400"), fmt
    yield "huge-1e200", cell("1e200"), fmt
    yield "huge-tiny", cell("1e-200"), fmt
    yield "huge-negative", cell("-" + base[0][1]), fmt
    yield "truncated-header-only", text[: text.index(b"\n") + 1], fmt
    yield "truncated-mid-header", text[: text.index(sep.encode()) + 3], fmt
    cut = text.index(b"\n", len(text) // 2)
    yield "truncated-open-quote", text[: cut + 1] + f'r99{sep}"1e6'.encode(), fmt
    rows = [list(r) for r in base]
    rows[rng.randrange(len(rows))] = rows[0][:2]
    yield "truncated-short-row", delimited(rows, sep), fmt
    yield "empty-zero-bytes", b"", fmt
    yield "empty-blank-lines", b"\n\n  \n", fmt
    # an empty loss column is not in this list: a table without losses is read (C ∝ N^k
    # needs none) and each use that needs them says so
    yield "empty-all-quantities", delimited([[r[0], "", "", ""] for r in base], sep), fmt
    header = ["run", "params", "params", "tokens", "loss"]
    rows = [[r[0], r[1], str(2 * float(r[1])), r[2], r[3]] for r in base]
    yield "duplicated-column", delimited(rows, sep, header), fmt
    rows = [list(r) for r in base]
    rows.insert(rng.randrange(1, len(rows)), COLUMNS)
    yield "duplicated-header-line", delimited(rows, sep), fmt
    rows = [sep.join(r) for r in base]
    i = rng.randrange(len(rows))
    rows[i] = other.join(base[i])
    yield "mixed-one-row", (sep.join(COLUMNS) + "\n" + "\n".join(rows) + "\n").encode(), fmt
    yield "mixed-whole-file", delimited(base, other), fmt
    rows = [list(r) for r in base]
    rows[rng.randrange(len(rows))].append("7")
    yield "shape-extra-field", delimited(rows, sep), fmt
    yield "shape-one-column", delimited([[r[0]] for r in base], sep, ["run"]), fmt
    body = text.decode()
    yield "utf8-bad-byte", body.replace("r11", "r\xff1").encode("latin-1"), fmt
    yield "utf8-latin1", body.replace("run", "rún", 1).encode("latin-1"), fmt
    yield "utf8-utf16", body.encode("utf-16"), fmt


def _jsonl_cases(rng: random.Random) -> Iterator[tuple[str, bytes, str]]:
    base = table_records()

    def field_value(value: object) -> bytes:
        records = [dict(r) for r in base]
        records[rng.randrange(len(records))][rng.choice(NUMERIC)] = value
        return jsonl(records)

    def raw_line(line: str, replace: bool = True) -> bytes:
        lines = [json.dumps(r) for r in base]
        i = rng.randrange(len(lines))
        if replace:
            lines[i] = line
        else:
            lines.insert(i, line)
        return ("\n".join(lines) + "\n").encode()

    text = jsonl(base)
    # null and NaN are unknown values (row left out with a warning, the rest fits), and a
    # last line cut short without its newline is a write interrupted (skipped with a
    # warning): neither is in this list.
    yield "types-text", field_value("3.5"), "jsonl"
    yield "types-bool", field_value(True), "jsonl"
    yield "nonfinite-infinity", field_value(float("inf")), "jsonl"
    yield "nonfinite-neg-infinity", field_value(float("-inf")), "jsonl"
    yield "huge-1e400", raw_line('{"run": "x", "params": 1e400, "tokens": 1e9, "loss": 3}'), "jsonl"
    yield "huge-1e200", field_value(1e200), "jsonl"
    yield "huge-int", field_value(10**400), "jsonl"
    yield (
        "huge-zero-loss",
        raw_line('{"run": "x", "params": 1e6, "tokens": 1e9, "loss": 0}'),
        "jsonl",
    )
    yield "truncated-mid-line", raw_line(json.dumps(base[0])[:25]), "jsonl"
    yield "truncated-only-line", text[:30], "jsonl"
    yield "empty-zero-bytes", b"", "jsonl"
    yield "empty-blank-lines", b"\n \n\n", "jsonl"
    yield "empty-objects", b"{}\n{}\n", "jsonl"
    line = json.dumps(base[1])[:-1] + ', "loss": 99.0}'
    yield "duplicated-key", raw_line(line), "jsonl"
    yield "mixed-csv-line", raw_line("r9,1e6,2e7,3.1"), "jsonl"
    yield "mixed-two-objects", raw_line(json.dumps(base[0]) + " " + json.dumps(base[1])), "jsonl"
    yield "mixed-comma-separated", ",\n".join(json.dumps(r) for r in base).encode(), "jsonl"
    yield (
        "utf8-bad-byte",
        raw_line('{"run": "\xff", "params": 1e6}').replace("\xff".encode(), b"\xff"),
        "jsonl",
    )
    yield "utf8-utf16", text.decode().encode("utf-16"), "jsonl"
    yield "shape-list-line", raw_line("[1e6, 2e7, 3.1]"), "jsonl"
    yield "shape-number-line", raw_line("3.1"), "jsonl"
    yield "shape-array-file", (json.dumps(base) + "\n").encode(), "jsonl"
    yield "shape-list-value", field_value([1, 2]), "jsonl"
    yield "shape-object-value", field_value({"value": 1e6}), "jsonl"


def _record_cases(rng: random.Random) -> Iterator[tuple[str, dict[str, bytes], str, bool]]:
    """(class-detail, files, what must be named, curves only) of damaged run records."""
    files = sweep_files()
    summaries = sorted(p for p in files if p.endswith("summary.json"))
    metrics = sorted(p for p in files if p.endswith("metrics.jsonl"))

    def summary(change: Callable[[dict], object]) -> tuple[dict[str, bytes], str]:
        path = rng.choice(summaries)
        record = json.loads(files[path])
        change(record)
        return {**files, path: json.dumps(record).encode()}, path

    def raw(path_list: list[str], damage: Callable[[bytes], bytes]) -> tuple[dict, str]:
        path = rng.choice(path_list)
        return {**files, path: damage(files[path])}, path

    def setter(key: str, value: object) -> Callable[[dict], None]:
        return lambda record: record.__setitem__(key, value)

    def metric_line(change: Callable[[dict], object]) -> Callable[[bytes], bytes]:
        def damage(content: bytes) -> bytes:
            lines = content.decode().splitlines()
            i = rng.randrange(len(lines) - 1)  # not the last: a cut last line is skipped
            record = json.loads(lines[i])
            change(record)
            lines[i] = json.dumps(record)
            return ("\n".join(lines) + "\n").encode()

        return damage

    def line_text(change: Callable[[str], str], keep_last: bool = True) -> Callable:
        def damage(content: bytes) -> bytes:
            lines = content.decode().splitlines()
            i = rng.randrange(len(lines) - 1) if keep_last else rng.randrange(len(lines))
            lines[i] = change(lines[i])
            return ("\n".join(lines) + "\n").encode()

        return damage

    # summary.json: every command reads it
    for name, key, value in [
        ("types-text-params", "params_nonembed", "1e6"),
        ("types-bool-tokens", "tokens", True),
        ("types-run-id", "run_id", 5),
        ("types-status", "status", 1),
        ("types-schema", "schema", "1"),
        ("nonfinite-nan-loss", "final_val_loss", float("nan")),
        ("nonfinite-inf-tokens", "tokens", float("inf")),
        ("nonfinite-neg-inf-flops", "flops", float("-inf")),
        ("huge-1e200-flops", "flops", 1e200),
        ("huge-int-params", "params_nonembed", 10**400),
        ("huge-negative-tokens", "tokens", -1),
        ("huge-zero-params", "params_nonembed", 0),
        ("empty-missing-loss", "final_val_loss", None),
        ("shape-list-loss", "final_val_loss", [2.5]),
        ("shape-object-tokens", "tokens", {"value": 1e9}),
        ("shape-schedule", "schedule", 5),
    ]:
        changed, path = summary(setter(key, value))
        yield f"summary-{name}", changed, path, False

    def half(content: bytes) -> bytes:
        return content[: len(content) // 2]

    def duplicate_key(content: bytes) -> bytes:
        return content.rstrip()[:-1] + b', "final_val_loss": 9.5}'

    for name, damage in [
        (
            "huge-1e400-params",
            lambda c: c.replace(b'"params_nonembed": ', b'"params_nonembed": 1e400, "x": '),
        ),
        ("truncated-half", half),
        ("empty-zero-bytes", lambda c: b""),
        ("empty-object", lambda c: b"{}"),
        ("duplicated-key", duplicate_key),
        ("utf8-bad-byte", lambda c: c.replace(b'"cpu"', b'"\xffcpu"')),
        ("utf8-utf16", lambda c: c.decode().encode("utf-16")),
        ("mixed-csv", lambda c: b"run_id,status\nx,completed\n"),
        ("shape-list", lambda c: b"[" + c + b"]"),
        ("shape-string", lambda c: b'"completed"'),
    ]:
        changed, path = raw(summaries, damage)
        yield f"summary-{name}", changed, path, False
    # a run directory copied: two records claim one run
    path = rng.choice(summaries)
    copy = path.replace("/run", "/copy-of-run", 1)
    yield "summary-duplicated-run-dir", {**files, copy: files[path]}, copy.split("/")[1], False

    # metrics.jsonl: only the commands that read learning curves
    for name, damage in [
        ("types-text-loss", metric_line(setter("val_loss", "2.5"))),
        ("types-bool-step", metric_line(setter("step", True))),
        ("types-fractional-step", metric_line(setter("step", 1.5))),
        ("nonfinite-nan-loss", metric_line(setter("val_loss", float("nan")))),
        ("nonfinite-inf-tokens", metric_line(setter("tokens", float("inf")))),
        ("huge-1e200-flops", metric_line(setter("flops", 1e200))),
        ("huge-negative-step", metric_line(setter("step", -1))),
        ("huge-zero-loss", metric_line(setter("val_loss", 0))),
        ("truncated-mid-line", line_text(lambda line: line[:20])),
        ("duplicated-line", lambda c: c + c.splitlines(keepends=True)[0]),
        ("duplicated-key", line_text(lambda line: line[:-1] + ', "val_loss": 9.5}')),
        ("mixed-csv-line", line_text(lambda line: "10,40960,1e12,3.1")),
        ("utf8-bad-byte", lambda c: c.replace(b'"step"', b'"st\xffep"', 1)),
        ("shape-list-line", line_text(lambda line: "[10, 3.1]")),
        ("shape-object-loss", metric_line(setter("val_loss", {"mean": 2.5}))),
    ]:
        changed, path = raw(metrics, damage)
        yield f"metrics-{name}", changed, path, True


def _trainer_state_cases(rng: random.Random) -> Iterator[tuple[str, bytes]]:
    base = trainer_state()

    def entry(key: str, value: object) -> bytes:
        state = json.loads(json.dumps(base))
        evals = [e for e in state["log_history"] if key in e]
        rng.choice(evals)[key] = value
        return json.dumps(state).encode()

    def changed(change: Callable[[dict], object]) -> bytes:
        state = json.loads(json.dumps(base))
        change(state)
        return json.dumps(state).encode()

    text = json.dumps(base, indent=1).encode()
    # a NaN eval_loss is an evaluation that diverged: that point is left out and the
    # rest of the curve fits, so it is not in this list
    yield "types-text-loss", entry("eval_loss", "2.5")
    yield "types-bool-step", entry("step", True)
    yield "types-text-tokens", entry("num_input_tokens_seen", "409600")
    yield "nonfinite-inf-loss", entry("eval_loss", float("inf"))
    yield "nonfinite-inf-tokens", entry("num_input_tokens_seen", float("-inf"))
    yield "huge-1e200-tokens", entry("num_input_tokens_seen", 1e200)
    yield "huge-negative-step", entry("step", -100)
    yield "huge-zero-loss", entry("eval_loss", 0.0)
    yield "huge-int-tokens", entry("num_input_tokens_seen", 10**400)
    yield "truncated-half", text[: len(text) // 2]
    yield "empty-zero-bytes", b""
    yield "empty-object", b"{}"
    yield "empty-history", changed(lambda s: s.__setitem__("log_history", []))
    yield (
        "duplicated-eval-entry",
        changed(lambda s: s["log_history"].insert(4, {**s["log_history"][1], "eval_loss": 9.5})),
    )
    yield (
        "duplicated-key",
        text.replace(b'"global_step": 1200', b'"global_step": 1200, "log_history": 3'),
    )
    yield "mixed-csv", b"step,eval_loss\n100,3.1\n"
    yield "utf8-bad-byte", text.replace(b'"eval_loss"', b'"eval\xff_loss"', 1)
    yield "shape-history-object", changed(lambda s: s.__setitem__("log_history", {"0": {}}))
    yield "shape-entry-list", changed(lambda s: s["log_history"].insert(3, [100, 3.1]))
    yield "shape-top-list", json.dumps(base["log_history"]).encode()
    yield "shape-step-missing", changed(lambda s: s["log_history"][5].pop("step"))


def generate(seed: int = SEED) -> list[Case]:
    """Every damaged input, the same ones for the same seed."""
    rng = random.Random(seed)
    cases = []
    for fmt in ("csv", "tsv"):
        for name, content, suffix in _table_cases(rng, fmt):
            file = f"runs.{suffix}"
            cases.append(Case(f"{fmt}-{name}", {file: content}, file, file))
    for name, content, _suffix in _jsonl_cases(rng):
        cases.append(Case(f"jsonl-{name}", {"runs.jsonl": content}, "runs.jsonl", "runs.jsonl"))
    for name, files, names, curves in _record_cases(rng):
        commands = CURVE_COMMANDS if curves else tuple(COMMANDS)
        cases.append(Case(f"records-{name}", files, "demo", names, commands))
    for name, content in _trainer_state_cases(rng):
        file = "run/trainer_state.json"
        options = ("--n-params", "1e6")
        cases.append(
            Case(f"trainer-{name}", {file: content}, file, "trainer_state.json", options=options)
        )
    return cases


CASES = generate()


# ---------------------------------------------------------------------------------------
# Running them


def write(root: Path, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` and a hash of each file's bytes."""
    return {
        p.relative_to(root).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        )
        for p in sorted(root.rglob("*"))
    }


def run(command: str, target: Path, out: Path, options: tuple[str, ...], capsys) -> tuple:
    argv = [a.format(**{"in": target, "out": out}) for a in COMMANDS[command]] + list(options)
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    captured = capsys.readouterr()
    return code, captured.err


@pytest.mark.parametrize("base", ["csv", "tsv", "jsonl", "records", "trainer"])
def test_each_valid_base_fits(tmp_path, monkeypatch, capsys, base):
    # the damage, not the base, must be what each case fails on
    files, target, options = {
        "csv": ({"runs.csv": delimited(table_rows(), ",")}, "runs.csv", ()),
        "tsv": ({"runs.tsv": delimited(table_rows(), "\t")}, "runs.tsv", ()),
        "jsonl": ({"runs.jsonl": jsonl(table_records())}, "runs.jsonl", ()),
        "records": (sweep_files(), "demo", ()),
        "trainer": (
            {"run/trainer_state.json": json.dumps(trainer_state()).encode()},
            "run/trainer_state.json",
            ("--n-params", "1e6"),
        ),
    }[base]
    write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    code, err = run("fit", tmp_path / target, tmp_path / "out", options, capsys)
    assert code == 0, err
    assert "error" not in err


def test_the_generator_is_seeded_and_its_count_is_the_docstrings():
    again = generate()
    assert [c.id for c in again] == [c.id for c in CASES]
    assert all(a.files == b.files for a, b in zip(again, CASES, strict=True))
    assert len({c.id for c in CASES}) == len(CASES) == N_CASES
    assert f"{N_CASES} cases" in (test_every_command_refuses_damaged_input.__doc__ or "")


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_command_refuses_damaged_input(tmp_path, monkeypatch, capsys, case):
    """The generator's 139 cases, each under every command that reads what it damages."""
    inputs = tmp_path / "in"
    write(inputs, case.files)
    monkeypatch.chdir(tmp_path)  # default outputs would land here
    before = tree(tmp_path)
    failures = []
    for command in case.commands:
        code, err = run(command, inputs / case.target, tmp_path / "out", case.options, capsys)
        lines = err.strip().splitlines()
        errors = [line for line in lines if ": error: " in line]
        if code != 2 or len(errors) != 1 or "Traceback" in err:
            failures.append(f"{command}: exit {code}, stderr {err.strip()[-600:]!r}")
        elif case.names not in errors[0]:
            failures.append(f"{command}: error does not name {case.names}: {errors[0]!r}")
        elif len(lines) != 1:
            failures.append(f"{command}: {len(lines)} lines on stderr: {err.strip()!r}")
        if tree(tmp_path) != before:
            failures.append(f"{command}: wrote {sorted(set(tree(tmp_path)) - set(before))}")
            before = tree(tmp_path)
    assert not failures, "\n".join(failures)


def test_the_tree_snapshot_sees_a_written_file(tmp_path):
    # the "nothing written" check above must be able to fail
    before = tree(tmp_path)
    (tmp_path / "out").mkdir()
    assert tree(tmp_path) != before


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["fit", "x.csv", "--bootstrap", "abc"], "argument --bootstrap: invalid int value: 'abc'"),
        (["frontier", "x.csv", "--approach", "4"], "argument --approach: invalid choice: 4"),
        (["frontier", "x.csv", "--budget", "-1"], "argument --budget: '-1': expected a number > 0"),
        (["predict", "x.csv", "--params", "big"], "'big' is neither a size nor a parameter"),
        (["fit"], "the following arguments are required: path"),
        (["fits", "x.csv"], "argument COMMAND: invalid choice: 'fits'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_a_malformed_command_line_is_one_line_too(capsys, argv, says):
    # argparse would print its whole usage first; the line points to -h instead
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert says in err and err.rstrip().endswith("-h')")


def test_help_still_shows_the_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["frontier", "-h"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: scaling-analyze frontier") and "--approach" in out
