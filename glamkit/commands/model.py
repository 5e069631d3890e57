"""`glamkit model ...` subcommands. jax is imported inside the handlers, so `glamkit --help` stays fast."""

from __future__ import annotations

import argparse
import json

from model.info import model_info  # lazy: imports jax
from model.presets import PAPER_PARAMS, PRESETS, get_config


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `model` command group (currently: `info`) to a top-level argparse parser."""
    model = subparsers.add_parser(
        "model", help="GLaM model presets and their sizes",
        description="GLaM model presets: the paper's sizes and tiny CPU ones.",
        epilog="Example:\n  glamkit model info glam-1.7b-64e\n  glamkit model info tiny-moe --json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = model.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    info = sub.add_parser(
        "info",
        help="parameter and FLOP counts of a preset (computed from shapes; nothing is allocated)",
        description="Print total and activated parameter counts and training FLOPs per token of a preset, "
                    "next to the GLaM paper's counts where it has a row.",
        epilog="Example:\n  glamkit model info glam-8b-64e --json\npresets: " + ", ".join(PRESETS),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    info.add_argument("preset", help="preset name, e.g. tiny-moe or glam-1.7b-64e")
    info.add_argument("--seq-len", type=int, default=1024, help="sequence length for FLOPs (default 1024)")
    info.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    info.set_defaults(func=run_info)


def run_info(args: argparse.Namespace) -> int:
    config = get_config(args.preset)  # a wrong name fails here, in one line listing the presets, before jax loads
    info = model_info(config, seq_len=args.seq_len)
    info["preset"] = args.preset
    if args.preset in PAPER_PARAMS:
        info["paper_total_params"], info["paper_activated_params"] = PAPER_PARAMS[args.preset]
    if args.json:
        print(json.dumps(info, sort_keys=True))
        return 0
    for key, value in info.items():
        counted = ("params" in key or "flops" in key) and isinstance(value, (int, float))
        print(f"{key:24s} {_human(value) if counted else value}")
    return 0


def _human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit} ({int(n):,})"
    return f"{n:g}"
