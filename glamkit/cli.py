"""`glamkit`: one command, a subcommand per stage. Errors print as one line; `--debug` shows the traceback."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from data_specs.errors import GlamkitError
from glamkit.logs import configure as configure_logging
from glamkit.recipe import stage_help

# Modules that add subcommands: each has `register(subparsers)` and imports nothing heavy at module level.
COMMAND_MODULES: tuple[str, ...] = (
    "glamkit.commands.run", "glamkit.commands.sources", "glamkit.commands.classifier", "glamkit.commands.curate",
    "glamkit.commands.mix", "glamkit.commands.model", "glamkit.commands.train", "glamkit.commands.eval",
)

EXIT_FAILURE = 1
EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    stages = stage_help()
    parser = Parser(
        prog="glamkit",
        description="glamkit: GLaM's data and training stack. Build filtered corpora with Beam, "
        "train a GLaM mixture-of-experts model with JAX, and inspect what went into it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"The recipe's stages, in order:\n{stages}\n\nExample:\n  glamkit run --spec demo --run runs/demo\n"
        "  glamkit run --spec demo --run runs/demo --dry-run",
    )
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "passthrough", False):  # only pass-through commands (`lm-eval`) take them
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        result = args.func(args)
        return int(result or 0)
    except KeyboardInterrupt:
        print("glamkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `glamkit ... | head`: the reader left; nothing to report
        with contextlib.suppress(OSError, ValueError):  # so the interpreter's final flush does not fail again
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
    except Exception as exc:
        if args.debug:
            traceback.print_exc()
        user_error = isinstance(exc, GlamkitError)
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not user_error:
            message = f"internal error: {type(exc).__name__}: {message}"
        hint = "" if args.debug else " (rerun with --debug for the traceback)"
        print(f"glamkit: error: {message}{hint if not user_error else ''}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
