"""Progress: a line every PERIOD seconds (done/total, rate, ETA) when stderr is not a terminal, a bar when it is."""

from __future__ import annotations

import io
import time

from data_specs import progress
from data_specs.progress import Progress, track


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_lines_every_period_with_rate_and_eta() -> None:
    clock, out = Clock(), io.StringIO()
    with Progress("sources", total=10, unit="sources", period=30, stream=out, clock=clock) as p:
        for _ in range(4):
            clock.now += 10
            p.update()
    lines = out.getvalue().splitlines()
    assert lines == ["sources: 3/10 sources in 30 s (0.1/s, ETA 70 s)",
                     "sources: 4/10 sources in 40 s (0.1/s, ETA 60 s)"]


def test_a_short_stage_prints_nothing_off_a_terminal() -> None:
    out = io.StringIO()
    assert list(track(range(3), "eval", stream=out)) == [0, 1, 2]
    assert out.getvalue() == ""


def test_a_terminal_gets_a_bar() -> None:
    out = Terminal()
    assert list(track([1, 2], "eval", unit="batches", stream=out)) == [1, 2]
    assert "eval" in out.getvalue() and "batches" in out.getvalue()


def test_watch_reports_a_counter_fed_from_elsewhere(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(progress, "POLL", 0.01)
    out = io.StringIO()
    with progress.watch("curated", total=5, period=0, stream=out) as p:
        progress.count("curated", 5)
        deadline = time.monotonic() + 5
        while p.done < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert p.done == 5 and "curated: 5/5 docs" in out.getvalue()
