"""Progress of a long stage, so a run that takes a minute never looks hung: a tqdm bar (done, rate, ETA) when stderr
is a terminal, otherwise one line every PERIOD seconds (to stderr and the stage log), which suits CI logs and files.

Call sites stay one line: `for x in track(items, "sources", unit="sources")`. Work done in callbacks the caller does
not drive (Beam DoFns on the in-process runner) calls `count(name)`; `watch(name, total)` around the job reports it.
Other runners run the DoFns elsewhere: their own logging shows progress, and `watch` shows the time elapsed.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

T = TypeVar("T")

PERIOD = 30.0  # seconds between two log lines when stderr is not a terminal
POLL = 0.5  # seconds between two looks at a `watch`ed counter

_COUNTS: Counter[str] = Counter()  # process-wide counters fed by `count`, read by `watch`
_LOCK = threading.Lock()


class Progress:
    """`done` of `total` units since start: update(n) as work finishes, close() at the end (or use `with`)."""

    def __init__(self, desc: str, total: int | None = None, unit: str = "docs", log: logging.Logger | None = None,
                 period: float | None = None, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.desc, self.total, self.unit, self.log = desc, total, unit, log
        self.period = PERIOD if period is None else period  # read now, so a test or a caller can change PERIOD
        self.stream = stream or sys.stderr
        self.clock = clock
        self.done = 0
        self.start = self.last = clock()
        self.lines = 0
        self.bar: Any = None
        if _is_tty(self.stream):
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit=f" {unit}", file=self.stream, dynamic_ncols=True,
                            leave=False)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.clock() - self.last >= self.period:
            self._emit()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.lines:  # a stage that reported along the way also says when it finished
            self._emit()

    def line(self) -> str:
        """'desc: done/total unit (rate/s, ETA s)', the non-terminal form."""
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.done / elapsed
        of = f"/{self.total:,}" if self.total else ""
        eta = ""
        if self.total and rate > 0 and self.done < self.total:
            eta = f", ETA {(self.total - self.done) / rate:.0f} s"
        return f"{self.desc}: {self.done:,}{of} {self.unit} in {elapsed:.0f} s ({rate:.1f}/s{eta})"

    def _emit(self) -> None:
        self.last = self.clock()
        self.lines += 1
        text = self.line()
        print(text, file=self.stream, flush=True)
        if self.log is not None:
            self.log.info("%s", text)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "items", **kwargs: Any
          ) -> Iterator[T]:
    """Yield from `items`, counting each as done once the caller asks for the next."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(desc, total, unit, **kwargs) as progress:
        for item in items:
            yield item
            progress.update()


def count(name: str, n: int = 1) -> None:
    """Add n to the process-wide counter `name` (thread-safe; cheap enough to call once per batch)."""
    with _LOCK:
        _COUNTS[name] += n


@contextmanager
def watch(name: str, total: int | None = None, unit: str = "docs", **kwargs: Any) -> Iterator[Progress]:
    """Report the counter `name` (reset on entry) while the body runs, from a background thread."""
    with _LOCK:
        _COUNTS[name] = 0
    stop = threading.Event()
    progress = Progress(name, total, unit, **kwargs)

    def poll() -> None:
        seen = 0
        while not stop.wait(POLL):
            with _LOCK:
                now = _COUNTS[name]
            progress.update(now - seen)
            seen = now

    thread = threading.Thread(target=poll, name=f"progress-{name}", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()
        progress.close()


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
