"""A DoFn that buffers elements and emits them in groups: what its `_flush` yields when `process` decides the buffer
is full, and whatever is left at the end of the bundle (tagged outputs included)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam

from pipelines.beam.memory import return_freed_memory


class BufferedDoFn(beam.DoFn):
    """Subclasses define `_reset` (an empty buffer), fill the buffer in `process` (yielding `_flush()` when it is
    full) and define `_flush`, which empties the buffer and yields its outputs. `finish_bundle` flushes the rest in
    the global window. These DoFns start the stages that hold big shuffles, so a bundle starts by returning the
    memory earlier stages freed (pipelines.beam.memory)."""

    def _reset(self) -> None:
        raise NotImplementedError

    def _flush(self) -> Iterator[Any]:
        raise NotImplementedError

    def start_bundle(self) -> None:
        return_freed_memory()
        self._reset()

    def finish_bundle(self) -> Iterator[Any]:
        from apache_beam.transforms.window import GlobalWindows

        for out in self._flush():
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(out.tag, GlobalWindows.windowed_value(out.value))
            else:
                yield GlobalWindows.windowed_value(out)
