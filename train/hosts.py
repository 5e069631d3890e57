"""Decisions every host of a multi-host job takes together: one answer, broadcast, so no host goes its own way.

With one process every helper is a plain local call. With several (`jax.distributed`), a host that decided alone
(which checkpoint to resume, whether to roll back, when to stop) would enter a different collective than the
others and the job would hang; here the primary host (process 0) decides and broadcasts, or all hosts vote.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import jax
import numpy as np


def is_primary() -> bool:
    return jax.process_index() == 0


def from_primary(value: int) -> int:
    """The primary host's integer `value`, on every host."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int64(value)))


def all_hosts(ok: bool) -> bool:
    """True on every host iff `ok` is True on every host."""
    if jax.process_count() == 1:
        return ok
    from jax.experimental import multihost_utils

    return bool(np.all(multihost_utils.process_allgather(np.asarray(ok))))


def sync(name: str) -> None:
    """A barrier: every host reaches `name` before any goes on."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


class PreemptionWatch:
    """SIGTERM (a preemption notice) on any host makes every host stop after the same step.

    Several processes: JAX's preemption notifier (started by `jax.distributed.initialize`) catches SIGTERM on any
    host, and `reached_preemption_sync_point` answers True on all hosts at the same call, agreed through the
    coordination service with no device collective. One process: a SIGTERM handler sets a flag. `check()` is
    called once per loop iteration on every host.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._calls = 0
        self._previous: Any = None
        self._installed = False
        if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
            self._installed = True

    def check(self) -> bool:
        self._calls += 1  # monotonic on every host, whatever the step does (rollbacks)
        if jax.process_count() == 1:
            return self._stop.is_set()
        from jax.experimental import multihost_utils

        return bool(multihost_utils.reached_preemption_sync_point(self._calls))

    def close(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False
