"""Beam pipeline options for glamkit's jobs: the embedded default runner, and passing user flags through.

The embedded default is Beam's in-process FnApiRunner. Beam's own default, the DirectRunner, first tries the Prism
runner, which downloads a Go binary: with no network that is a slow, noisy failure before it falls back. Any Beam
flag the user gives (`--runner=DataflowRunner --project=... --region=...`, `--runner=FlinkRunner
--flink_master=host:8081`, `--direct_num_workers=2 --direct_running_mode=multi_processing`) passes through unchanged.
"""

from __future__ import annotations

import argparse
import contextlib
import contextvars
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from data_specs.errors import GlamkitError

DEFAULT_RUNNER = "FnApiRunner"
REPO_ROOT = Path(__file__).resolve().parents[1]
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
    options = PipelineOptions(args)
    unknown = _unknown_flags(options, args)
    if unknown:
        raise GlamkitError(f"unknown Beam pipeline option(s): {' '.join(unknown)} (see `python -m apache_beam."
                           "examples.wordcount --help` for Beam's options)")
    _make_code_importable()
    from pipelines.memory import release_idle_stages

    release_idle_stages()
    return options


def _unknown_flags(options: Any, args: Sequence[str]) -> list[str]:
    import argparse

    from apache_beam.options.pipeline_options import PipelineOptions

    parser = argparse.ArgumentParser(allow_abbrev=False)
    for cls in PipelineOptions.__subclasses__():
        _add_all(cls, parser)
    try:
        _, unknown = parser.parse_known_args(args)
    except SystemExit:
        return []
    del options
    return [u for u in unknown if u.startswith("--")]


def _add_all(cls: type, parser: Any) -> None:
    import argparse

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
