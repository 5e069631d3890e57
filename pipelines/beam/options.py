"""Beam pipeline options for glamkit's jobs: the embedded default runner, and passing user flags through.

The embedded default is Beam's in-process FnApiRunner. Beam's own default, the DirectRunner, first tries the Prism
runner, which downloads a Go binary: with no network that is a slow, noisy failure before it falls back. Any Beam
flag the user gives (`--runner=DataflowRunner --project=... --region=...`, `--runner=FlinkRunner
--flink_master=host:8081`, `--direct_num_workers=2 --direct_running_mode=multi_processing`) passes through unchanged.

A flag no runner declares is refused. The runners' option classes are known before any runner is imported: those in
`apache_beam.options.pipeline_options` (Dataflow, portable, Flink, Spark, Prism, direct), those of the modules in
RUNNER_OPTION_MODULES (Dask's and the render runner's live with their runners) and of a runner named by its dotted
path. A module that cannot be imported here (the Dask runner's needs `dask`) has its flags read from its source,
with nothing run.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import contextvars
import functools
import importlib
import importlib.util
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from data_specs.errors import GlamkitError
from pipelines.beam.memory import release_idle_stages

log = logging.getLogger("glamkit.beam")

DEFAULT_RUNNER = "FnApiRunner"
# Runner modules that declare option classes outside apache_beam.options.pipeline_options (Beam 2.77: the Dask and
# the render runner; tests/pipelines/test_any_runner.py checks this list against the installed Beam).
RUNNER_OPTION_MODULES: tuple[str, ...] = ("apache_beam.runners.dask.dask_runner", "apache_beam.runners.render")
# Runners glamkit's jobs are known not to run correctly on (README, "Runners"): a warning, the output checks fail them.
BROKEN_RUNNERS = {
    "DaskRunner": "Beam 2.77's DaskRunner mixes tagged outputs, drops finish_bundle outputs and computes only the last "
                  "branch of a graph: glamkit's output checks will fail the job (README, Runners)",
}
REPO_ROOT = Path(__file__).resolve().parents[2]  # pipelines/beam/options.py -> the repository
_ARGS: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar("glamkit_beam_args", default=())


@contextlib.contextmanager
def beam_args(args: Sequence[str]) -> Iterator[None]:
    """Run the enclosed stages with these Beam flags (how `glamkit curate ...` reaches a stage function)."""
    token = _ARGS.set(tuple(args))
    try:
        yield
    finally:
        _ARGS.reset(token)


def current_beam_args() -> tuple[str, ...]:
    return _ARGS.get()


def has_flag(args: Sequence[str], name: str) -> bool:
    return any(a == name or a.startswith(name + "=") for a in args)


def in_one_process(options: Any) -> bool:
    """Whether the job runs on the embedded runner with one worker: there a Reshuffle spreads nothing, it only
    copies every element through an in-memory shuffle, so jobs skip the ones that exist for parallelism."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner or ""
    runner = runner if isinstance(runner, str) else type(runner).__name__
    return runner == DEFAULT_RUNNER and (options.view_as(DirectOptions).direct_num_workers or 1) == 1


def pipeline_options(args: Sequence[str] = ()) -> Any:
    """PipelineOptions from Beam flags, with the in-process runner unless `--runner` says otherwise. Flags Beam
    does not know are refused (a typo must not silently run on the wrong runner)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    args = list(args)
    if not has_flag(args, "--runner"):
        args.append(f"--runner={DEFAULT_RUNNER}")
    unknown = _unknown_flags(args)
    if unknown:
        raise GlamkitError(f"unknown Beam pipeline option(s): {' '.join(unknown)} (see `python -m apache_beam."
                           "examples.wordcount --help` for Beam's options)")
    runner = _runner_name(args)
    module, _, name = runner.rpartition(".")
    if module and _import_error(module):
        raise GlamkitError(f"--runner={runner}: {module} cannot be imported here ({_import_error(module)})")
    if name in BROKEN_RUNNERS:
        log.warning("%s", BROKEN_RUNNERS[name])
    options = PipelineOptions(args)
    _make_code_importable()

    release_idle_stages()
    return options


def _runner_name(args: Sequence[str]) -> str:
    """The last `--runner` flag's value (what Beam uses), or ''."""
    name = ""
    for i, a in enumerate(args):
        if a.startswith("--runner="):
            name = a.split("=", 1)[1]
        elif a == "--runner" and i + 1 < len(args):
            name = args[i + 1]
    return name


def _unknown_flags(args: Sequence[str]) -> list[str]:
    """The flags in `args` that no runner's option class declares."""
    runner = _runner_name(args)
    try:
        _, unknown = options_parser([runner.rsplit(".", 1)[0]] if "." in runner else []).parse_known_args(args)
    except SystemExit:
        return []
    return [u for u in unknown if u.startswith("--")]


def options_parser(extra_modules: Sequence[str] = ()) -> argparse.ArgumentParser:
    """A parser that knows the flags of every PipelineOptions class: those imported, those of RUNNER_OPTION_MODULES
    and `extra_modules` (imported here, or read from their source if they cannot be)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    modules = [*RUNNER_OPTION_MODULES, *extra_modules]
    from_source = [flag for module in modules if _import_error(module) for flag in _source_flags(module)]
    parser = argparse.ArgumentParser(allow_abbrev=False)
    for cls in PipelineOptions.__subclasses__():
        _add_all(cls, parser)
    for flag in from_source:
        with contextlib.suppress(argparse.ArgumentError):  # declared by an option class imported after all
            parser.add_argument(flag, nargs="?")
    return parser


@functools.cache
def _import_error(module: str) -> str | None:
    """Import a runner module (so that its option classes register as PipelineOptions subclasses); why it cannot be
    imported here (a missing dependency), or None."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        return str(exc)
    return None


@functools.cache
def _source_flags(module: str) -> tuple[str, ...]:
    """The flags a module that cannot be imported declares, read from its source (nothing in it runs)."""
    try:
        spec = importlib.util.find_spec(module)
    except ImportError:
        return ()
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return ()
    return declared_flags(Path(spec.origin).read_text(encoding="utf-8"))


def declared_flags(source: str) -> tuple[str, ...]:
    """The `--flags` that the PipelineOptions subclasses in a module's source add to their parser (literal names of
    `add_argument` and `add_value_provider_argument` calls)."""
    flags: list[str] = []
    for node in ast.walk(ast.parse(source)):
        bases = [getattr(b, "id", getattr(b, "attr", "")) for b in getattr(node, "bases", [])]
        if not isinstance(node, ast.ClassDef) or "PipelineOptions" not in bases:
            continue
        for call in ast.walk(node):
            if isinstance(call, ast.Call) and getattr(call.func, "attr", "") in (
                    "add_argument", "add_value_provider_argument"):
                flags += [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)
                          and a.value.startswith("--")]
    return tuple(dict.fromkeys(flags))


def _add_all(cls: type, parser: Any) -> None:
    try:
        cls._add_argparse_args(parser)
    except argparse.ArgumentError:
        pass  # an option two views both declare
    except Exception:  # a third-party view that cannot register must not break the check
        pass
    for sub in cls.__subclasses__():
        _add_all(sub, parser)


def _make_code_importable() -> None:
    """Worker processes (multi_processing, an EXTERNAL worker pool started from here) must import glamkit's
    packages: put the repository root on their PYTHONPATH."""
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if str(REPO_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), *paths])


def pass_unknown_to_beam(parser: argparse.ArgumentParser) -> None:
    """Options this parser does not know are kept in `beam_args` (not refused): they are Beam's."""
    base = type(parser)

    class _BeamPassThrough(base):  # type: ignore[misc, valid-type]
        def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
            ns, extras = super().parse_known_args(args, namespace)
            ns.beam_args = [*getattr(ns, "beam_args", []), *extras]
            return ns, []

    parser.__class__ = _BeamPassThrough
