"""Options that must behave the same on every command (`--set`, wrong names), and the console's noise filter."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging

import pytest

from glamkit.cli import build_parser
from tests.glamkit.cli_helpers import run_cli

# argv up to --set, for every command that has one (the walk below fails when a new one is not listed)
WITH_SET = {
    ("spec",): ["spec", "check", "train", "tiny"],
    ("tokenizer", "train"): ["tokenizer", "train"],
    ("mix",): ["mix"],
    ("train",): ["train"],
}


def _parsers_with_set() -> set[tuple[str, ...]]:
    found: set[tuple[str, ...]] = set()
    todo: list[tuple[tuple[str, ...], argparse.ArgumentParser]] = [((), build_parser())]
    while todo:
        path, parser = todo.pop()
        for action in parser._actions:
            if "--set" in action.option_strings:
                found.add(path)
            if isinstance(action, argparse._SubParsersAction):
                todo += [((*path, name), sub) for name, sub in action.choices.items()]
    return found


def test_every_set_option_is_listed_here() -> None:
    assert _parsers_with_set() == set(WITH_SET)


@pytest.mark.parametrize("path", sorted(WITH_SET), ids=" ".join)
def test_set_takes_one_or_many_pairs_the_same_way(path: tuple[str, ...]) -> None:
    parser = build_parser()
    args, extra = parser.parse_known_args([*WITH_SET[path], "--set", "a=1", "b=2", "--set", "c.d=3"])
    assert args.set == ["a=1", "b=2", "c.d=3"] and not extra
    assert getattr(args, "beam_args", []) == []  # `mix` once handed `b=2` to Beam, which dropped it
    code, _, err = run_cli([*WITH_SET[path], "--set", "a=1", "oops"])
    assert code == 2 and "expected KEY=VALUE, got 'oops'" in err and err.count("\n") == 1


def test_set_applies_every_pair() -> None:
    code, out, _ = run_cli(["spec", "show", "train", "tiny", "--set", "steps=7", "optimizer.learning_rate=0.005"])
    assert code == 0 and "steps: 7" in out and "learning_rate: 0.005" in out


@pytest.mark.parametrize(("argv", "names"), [
    (["model", "info", "tiny_moe"], "unknown model preset 'tiny_moe' (one of tiny, tiny-moe,"),
    (["run", "--only", "curate", "--dry-run"], "invalid choice: 'curate' (choose from 'sources', 'tasks'"),
    (["run", "--force", "nosuch", "--dry-run"], "invalid choice: 'nosuch'"),
    (["spec", "show", "mixtures", "nosuch"], "nosuch"),
])
def test_a_wrong_name_is_one_line_with_the_valid_ones(argv: list[str], names: str) -> None:
    code, _, err = run_cli(argv)
    assert code in (1, 2) and names in err and err.count("\n") == 1, err
    assert "internal error" not in err


def test_known_library_noise_is_dropped_and_the_rest_kept() -> None:
    from glamkit.logs import configure

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        configure(verbose=False)
        try:
            logging.getLogger().warning("apitools not found, and bigquery client libraries are not available")
            logging.getLogger("trafilatura.core").warning("discarding data: None")
            logging.getLogger("glamkit.readers").warning("a real warning")
        finally:
            root = logging.getLogger()
            for handler in [h for h in root.handlers if getattr(h, "_glamkit", False)]:
                root.removeHandler(handler)
    assert err.getvalue().count("\n") == 1 and "a real warning" in err.getvalue()
