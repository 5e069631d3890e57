"""Every example a user is shown runs: each `glamkit ...` line of every --help (the parser walked, so a new command's
examples are picked up) and every command of README's ```bash blocks.

In-process (`glamkit.cli.main`), in a scratch folder whose `runs/demo` is the session's demo run through `report`
(stage folders linked, the ones an example writes into copied) and whose `data_specs` is the repo's. Commands that
would run a long stage get `--dry-run` (arguments parsed, specs resolved, inputs checked, the plan printed); those
that cannot run here are in SKIP with the reason. The whole test must stay under 2 minutes.
"""

from __future__ import annotations

import argparse
import gzip
import re
import shlex
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.glamkit.cli_helpers import run_cli

BUDGET_S = 120

# pattern (searched in the command) -> why it is not run here
SKIP: dict[str, str] = {
    r"^make (demo|test|fuzz)\b": "runs the whole recipe or the suite itself (15+ min; recursion into the suite)",
    r"^make study\b": "trains two arms x seeds (tests/eval/test_study.py covers the study on a tiny spec)",
    r"^make check-report\b": "needs headless Chromium (tests/pipelines/test_report.py runs it when installed)",
    r"--runner=DataflowRunner": "needs a GCP project and bucket",
    r"--runner=FlinkRunner": "needs a Flink cluster",
    r"--runner=SparkRunner": "needs a Spark cluster",
    r"--runner=PortableRunner": "needs a job service (tests/pipelines/test_any_runner.py runs one on loopback)",
    r"--coordinator|--num-processes|--process-id": "several hosts (tests/train/test_multihost.py)",
    r"^glamkit lm-eval\b": "lm-eval's own CLI on a trained model (the demo fixture stops at report); "
                           "tests/eval/test_backend.py drives it",
    r"^glamkit study\b": "trains two arms x seeds, as `make study` (tests/eval/test_study.py)",
    r"\bMY_[A-Z]+|/mnt/shared": "placeholders for the user's cloud project, image and shared disk",
}

# pattern -> the command would run a long stage here: run it with --dry-run
DRY_RUN: tuple[str, ...] = (
    r"^glamkit run\b",  # the whole recipe (train and eval are not in the fixture)
    r"^glamkit classifier (train|eval)\b",  # 34-97 s fits
    r"^glamkit curate\b",  # a --spec path or Beam flags that differ from the fixture's would rerun curation
    r"^glamkit tokenizer train\b.*--set",  # another tokenizer (pretrained: a download)
    r"^glamkit train\b",  # minutes of training; --plan compiles a step (25-45 s)
    r"^glamkit eval\b",  # the fixture has no trained model
)

# the stage folders examples write into (copied; every other stage folder of the fixture is linked)
WRITTEN = ("classifier",)


def _commands(text: str) -> Iterator[str]:
    """Shell lines of `text`: continuations joined, comments dropped, `[--flag x]` kept as `--flag x`."""
    for line in re.sub(r"\\\n\s*", " ", text).splitlines():
        line = re.sub(r"\s+#.*$", "", line.strip())
        if line and not line.startswith("#"):
            yield re.sub(r"\[([^\]]+)\]", r"\1", line).strip()


def help_examples() -> list[str]:
    """`glamkit ...` lines of every parser's epilog and description (the lm-eval help lives in its description)."""
    from glamkit.cli import build_parser

    found: list[str] = []
    todo: list[argparse.ArgumentParser] = [build_parser()]
    while todo:
        parser = todo.pop()
        for text in (parser.epilog or "", parser.description or ""):
            indented = "\n".join(line for line in re.sub(r"\\\n\s*", " ", text).splitlines()
                                 if re.match(r"\s+glamkit ", line))  # examples are indented; prose is not
            found += list(_commands(indented))
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += list(dict.fromkeys(action.choices.values()))
    return list(dict.fromkeys(found))


def readme_examples() -> list[str]:
    blocks = re.findall(r"^```bash\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.M | re.S)
    return list(dict.fromkeys(c for block in blocks for c in _commands(block)))


def skip_reason(command: str) -> str | None:
    return next((why for pattern, why in SKIP.items() if re.search(pattern, command)), None)


def scratch(tmp: Path, demo_run: Path) -> Path:
    """A working folder: runs/demo from the fixture, data_specs linked, a docs.jsonl.gz for `classifier score`."""
    run = tmp / "runs" / "demo"
    run.mkdir(parents=True)
    for child in demo_run.iterdir():
        if child.name in WRITTEN:
            shutil.copytree(child, run / child.name, symlinks=True)
        elif not child.name.startswith("."):
            (run / child.name).symlink_to(child)
    (run / "train").mkdir(exist_ok=True)  # eval's dry run checks the folder exists; nothing reads it
    (tmp / "data_specs").symlink_to(REPO / "data_specs")
    source = next((demo_run / "sources").glob("*.jsonl.gz"))
    with gzip.open(source, "rt") as src, gzip.open(tmp / "docs.jsonl.gz", "wt") as dst:
        dst.writelines(line for _, line in zip(range(20), src, strict=False))
    return tmp


def run_example(command: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of one command, in-process, in the current folder."""
    argv = shlex.split(command)[1:]
    if any(re.search(p, command) for p in DRY_RUN):
        argv.append("--dry-run")
    return run_cli(argv)


def test_the_walk_finds_the_examples() -> None:
    examples = help_examples()
    assert len(examples) >= 30 and "glamkit run --spec demo --run runs/demo" in examples
    assert any(c.startswith("glamkit spec check") for c in readme_examples())
    assert all(not re.search(p, "glamkit sources stats --run runs/demo") for p in SKIP)


@pytest.mark.slow  # needs the session's demo run (minutes to build when no other test has)
def test_every_example_runs(demo_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = time.monotonic()
    monkeypatch.chdir(scratch(tmp_path, demo_run))
    monkeypatch.setenv("COLUMNS", "120")
    failures, ran = [], 0
    for command in dict.fromkeys([*help_examples(), *readme_examples()]):
        if skip_reason(command):
            continue
        assert command.startswith("glamkit "), f"{command!r}: not a glamkit command and not in SKIP"
        code, out, err = run_example(command)
        ran += 1
        if code != 0 or "internal error" in err:
            failures.append(f"{command}\n  -> exit {code}: {(err.strip() or out.strip())[-400:]}")
    assert not failures, "\n".join(failures)
    assert ran >= 30
    seconds = time.monotonic() - start
    assert seconds < BUDGET_S, f"the examples took {seconds:.0f} s (budget {BUDGET_S} s): dry-run the slow ones"
    assert not (tmp_path / "runs" / "demo" / ".lock").exists()
