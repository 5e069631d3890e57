"""Options and checks every command shares, defined once so that `--set`, `--dry-run` and a missing run folder behave
the same on every command."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from data_specs.errors import GlamkitError


def key_value(token: str) -> str:
    """An argparse type: KEY=VALUE, refused in one line otherwise (so a stray word after --set is an error, not a
    positional argument eaten or a Beam flag passed on)."""
    key, sep, _ = token.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {token!r}")
    return token


def add_set_option(parser: argparse.ArgumentParser, what: str, example: str = "steps=10") -> None:
    """`--set KEY=VALUE [KEY=VALUE ...]`, repeatable: one or many pairs per flag, the same on every command."""
    parser.add_argument("--set", action="extend", nargs="+", type=key_value, default=[], metavar="KEY=VALUE",
                        help=f"override {what} keys (dotted), one or many: --set {example} a.b=2")


def add_dry_run(parser: argparse.ArgumentParser) -> None:
    """`--dry-run`: parse, load and resolve the specs, check the inputs, print the stage plan; write nothing."""
    parser.add_argument("--dry-run", action="store_true",
                        help="check arguments, specs and inputs and print the stage plan; write nothing")


def require_run(run_dir: str | Path, *needs: str) -> Path:
    """The run folder of a command that reads a run: it and the stage folders it reads must exist. Checked before
    anything is built, so a mistyped --run fails in one line and creates nothing."""
    run = Path(run_dir)
    if not run.is_dir():
        raise GlamkitError(f"no run folder {run} (`glamkit run --run {run}` or `glamkit sources read --run {run}` "
                           "creates it)")
    missing = [n for n in needs if not (run / n).is_dir()]
    if missing:
        raise GlamkitError(f"{run}: no {' or '.join(missing)} stage here yet (`glamkit run --run {run} --only "
                           f"{missing[0]}` builds it)")
    return run


def print_plan(run: Any, only: Iterable[str] | None = None, force: Iterable[str] = ()) -> int:
    """--dry-run's output: what `run.run(only, force)` would do, one line per stage; returns the exit code 0."""
    print(f"dry run: {run.run_dir} (nothing written)")
    for name, action in run.plan(only, force):
        print(f"  {name:<11} {action}")
    return 0
