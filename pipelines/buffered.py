"""A DoFn that buffers elements and emits them in groups: what its `_flush` yields when `process` decides the buffer
is full, and whatever is left at the end of the bundle."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam


class BufferedDoFn(beam.DoFn):
    """Subclasses fill a buffer in `process` (yielding `_flush()` when it is full) and define `_flush`, which
    empties the buffer and yields its outputs. `finish_bundle` flushes the rest in the global window."""

    def _flush(self) -> Iterator[Any]:
        raise NotImplementedError

    def finish_bundle(self) -> Iterator[Any]:
        from apache_beam.transforms.window import GlobalWindows

        for out in self._flush():
            yield GlobalWindows.windowed_value(out)
