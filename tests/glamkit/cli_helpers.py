"""Run `glamkit` in-process (no interpreter or Beam start-up per command) and capture what it prints."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence


def run_cli(argv: Sequence[str]) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `glamkit ARGV`; argparse's usage errors and --help count as exits."""
    from glamkit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as stop:
            code = int(stop.code or 0)
    return code, out.getvalue(), err.getvalue()
