"""Checking that a job's element-wise function leaves its inputs as they were (Beam's model forbids changing an
element or a side input: a runner may hand one object to several consumers)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np


def snapshot(x: Any) -> Any:
    """A comparable deep copy of a value: dataclasses, arrays, containers and scalars, recursively."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return type(x).__name__, tuple(snapshot(getattr(x, f.name)) for f in dataclasses.fields(x))
    if isinstance(x, np.ndarray):
        return "ndarray", x.dtype.str, x.shape, x.tobytes()
    if isinstance(x, dict):
        return "dict", tuple((snapshot(k), snapshot(v)) for k, v in x.items())
    if isinstance(x, (list, tuple)):
        return type(x).__name__, tuple(snapshot(v) for v in x)
    if isinstance(x, (set, frozenset)):
        return "set", tuple(sorted(repr(snapshot(v)) for v in x))
    if hasattr(x, "tag") and hasattr(x, "value"):  # a TaggedOutput
        return "tagged", x.tag, snapshot(x.value)
    return x


@contextlib.contextmanager
def unchanged(what: str, *inputs: Any) -> Iterator[None]:
    """Fail if the enclosed calls change any of `inputs` (the function under test is `what`)."""
    before = snapshot(inputs)
    yield
    assert snapshot(inputs) == before, f"{what} changed its input"
