"""Checkpoints in Orbax's own layout, saved asynchronously, restored only when whole, the same step on every host.

Layout: `<dir>/<step>/state` (the train state, sharded as it lives on the mesh) and `<dir>/<step>/meta` (JSON: data
position, rollbacks, loss history), written by `orbax.checkpoint.CheckpointManager`, so plain Orbax reads them
(README). `<dir>` is an `etils.epath` path: a local folder or anything epath supports (gs://...). Checkpoints are
the one exception to glamkit's single I/O module: Orbax owns them.

Saves are asynchronous: `save()` returns once the arrays are copied off the devices and Orbax writes the files
while training goes on. A checkpoint is corrupt when it is
- uncommitted: Orbax's commit protocol (a temporary folder renamed when the save is finalised; a commit marker on
  object stores) keeps an unfinished save out of `all_steps()`; leftovers are named and cleared;
- missing a file or truncated: once a save is finalised, the primary host records every file's size in
  `glamkit_files.json` (and its sha256 with `verify: sha256`, an opt-in: hashing 110 GB of state takes minutes), and
  a restore compares; a step finalised but not yet recorded (killed in between) is trusted on Orbax's commit alone;
- unreadable: a restore that raises.
The newest good step wins; a damaged newer one is named in a CheckpointWarning and moved to `rejected/`. The primary
host takes each decision and broadcasts it, so every host restores the same step.
"""

from __future__ import annotations

import json
import logging
import warnings
from typing import Any

import orbax.checkpoint as ocp
from etils import epath

from data_specs.hashing import hash_file
from train.hosts import all_hosts, from_primary, is_primary, sync

RECORD = "glamkit_files.json"
TMP_MARK = ".orbax-checkpoint-tmp"
log = logging.getLogger(__name__)


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is incomplete or corrupt."""


class Checkpointer:
    def __init__(self, directory: str | epath.PathLike, keep: int = 3, verify: str = "size",
                 async_save: bool = True):
        path = epath.Path(directory)
        self.dir = path.absolute() if not str(path).startswith(("gs://", "s3://")) else path
        self.keep, self.verify, self.async_save = keep, verify, async_save
        if is_primary():
            self.dir.mkdir(parents=True, exist_ok=True)
        sync("glamkit-checkpoint-dir")
        self._clear_leftovers()
        self._pending: int | None = None  # the step of a save not yet recorded
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=False,
                                               enable_async_checkpointing=async_save)
        self._manager = ocp.CheckpointManager(self.dir, options=options, item_names=("state", "meta"))

    # ------------------------------------------------------------------------------------------------ save
    def save(self, step: int, state: Any, meta: dict[str, Any]) -> epath.Path:
        """Start saving `step` and return its folder: the arrays are copied off the devices before this returns
        (so the caller may donate them), the files are written in the background. A previous save still in
        flight is waited for first, then recorded."""
        self._record_pending()
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._manager.save(step, args=args, force=True)
        self._pending = step
        if not self.async_save:
            self._record_pending()
        return self.dir / str(step)

    def wait(self) -> None:
        """Block until the last save is on disk and recorded (before exiting, or reading it back)."""
        self._record_pending()

    def _record_pending(self) -> None:
        if self._pending is None:
            return
        self._manager.wait_until_finished()
        if is_primary():
            write_record(self.dir / str(self._pending), with_hashes=self.verify == "sha256")
        self._pending = None

    # --------------------------------------------------------------------------------------------- restore
    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict[str, Any]] | None:
        """(step, state, meta) of the newest intact checkpoint, restored straight into `abstract_state`'s shapes
        and shardings (no second copy of the state), or None. Damaged newer ones are rejected with a
        CheckpointWarning naming them."""
        self.wait()
        while True:
            step = from_primary(self._newest_recorded_good())
            self._manager.reload()  # the primary may have moved damaged steps away
            if step < 0:
                return None
            problem = ""
            try:
                args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                          meta=ocp.args.JsonRestore())
                restored = self._manager.restore(step, args=args)
            except Exception as exc:  # unreadable although its record matches (or it has none yet)
                problem = f"restore failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            if all_hosts(not problem):
                return step, restored["state"], dict(restored["meta"])
            self._reject(step, problem or "restore failed on another host")

    def _newest_recorded_good(self) -> int:
        """Primary host: the newest step whose files match their record (rejecting those that do not); -1."""
        if not is_primary():
            return -1
        for step in reversed(self.steps()):
            problem = check_record(self.dir / str(step), self.verify)
            if problem is None:
                return step
            self._reject(step, problem, agreed=False)
        return -1

    def _reject(self, step: int, problem: str, agreed: bool = True) -> None:
        path = self.dir / str(step)
        warnings.warn(f"checkpoint {path} is incomplete or corrupt ({problem}); using the previous one",
                      CheckpointWarning, stacklevel=3)
        log.warning("checkpoint %s rejected: %s", path, problem)
        if is_primary() and path.exists():
            rejected = self.dir / "rejected"
            rejected.mkdir(exist_ok=True)
            target = rejected / path.name
            if target.exists():
                target.rmtree()
            path.rename(target)
        if agreed:
            sync(f"glamkit-reject-{step}")
            self._manager.reload()

    def _clear_leftovers(self) -> None:
        """Saves that never finished (the process died inside Orbax): name them and clear them away."""
        for tmp in sorted(p for p in self.dir.iterdir() if TMP_MARK in p.name):
            warnings.warn(f"checkpoint {tmp} is incomplete (interrupted save); ignoring it", CheckpointWarning,
                          stacklevel=3)
            if is_primary():
                tmp.rmtree(missing_ok=True)
        sync("glamkit-checkpoint-leftovers")

    def close(self) -> None:
        self.wait()
        self._manager.close()


def _files(path: epath.Path) -> list[epath.Path]:
    return sorted(root / name for root, _, names in path.walk() for name in names if name != RECORD)


def write_record(path: epath.Path, with_hashes: bool = False) -> None:
    """Record every file's size (and sha256, which costs a read of the checkpoint) once the save is final."""
    record = {str(p.relative_to(path)): {"size": p.stat().length,
                                         "sha256": hash_file(p) if with_hashes else None}
              for p in _files(path)}
    (path / RECORD).write_text(json.dumps(record, sort_keys=True, indent=1))


def check_record(path: epath.Path, verify: str = "size") -> str | None:
    """None if `path` matches its record (or has none yet: Orbax's commit vouches for it), else what is wrong."""
    try:
        record = json.loads((path / RECORD).read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return f"{RECORD} is unreadable"
    for name, want in sorted(record.items()):
        file = path / name
        if not file.exists():
            return f"{name} is missing"
        size = file.stat().length
        if size != want["size"]:
            return f"{name} has {size} bytes, {want['size']} were saved"
        if verify == "sha256" and want["sha256"] and hash_file(file) != want["sha256"]:
            return f"{name} does not match its saved sha256"
    return None
