"""The command line: help that lists the stages, one-line errors with the right exit codes, and `run`."""

import os
import subprocess
from pathlib import Path

from tests.conftest import PYTHON, REPO


def glamkit(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([PYTHON, "-m", "glamkit.cli", *args], cwd=cwd, env=env, capture_output=True, text=True)


def test_help_lists_the_stages_and_an_example() -> None:
    out = glamkit("--help")
    assert out.returncode == 0
    for stage in ("sources", "tasks", "classifier", "curated", "tokenizer", "shards", "report", "train", "eval"):
        assert f"\n  {stage} " in out.stdout
    assert "Example:" in out.stdout


def test_every_subcommand_has_help_with_an_example() -> None:
    from glamkit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, sub_parser in sub.choices.items():
        text = sub_parser.format_help()
        assert "Example" in text, f"'glamkit {name} --help' has no example"


def test_bad_usage_is_one_line_and_exit_2() -> None:
    out = glamkit("run", "--bogus")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "unrecognized arguments: --bogus" in out.stderr


def test_failure_is_one_line_exit_1_and_debug_shows_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: tiny\nsteps: lots\n")
    out = glamkit("spec", "check", "train", str(bad))
    assert out.returncode == 1
    assert out.stderr.strip() == f"glamkit: error: {bad}: steps: expected an integer, got str 'lots'"
    debug = glamkit("--debug", "spec", "check", "train", str(bad))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


def test_run_names_the_stages_and_skips_what_is_done(demo_sources_run: Path) -> None:
    out = glamkit("run", "--spec", "demo", "--run", str(demo_sources_run), "--only", "sources")
    assert out.returncode == 0, out.stderr
    for stage in ("sources", "classifier", "curated", "shards", "train", "eval"):
        assert f"\n  {stage} " in out.stdout
    assert "sources     skipped" in out.stdout


def test_spec_show_resolves_defaults() -> None:
    out = glamkit("spec", "show", "train", "tiny", "--set", "steps=5")
    assert out.returncode == 0, out.stderr
    assert "steps: 5" in out.stdout and "load_balance: 0.01" in out.stdout
