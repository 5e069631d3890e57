"""Orbax checkpoints that survive being killed at any moment, and a restore that refuses damaged ones.

Orbax writes each step into a temporary folder and renames it into place when the save is finalised, so a
process killed mid-save leaves only `<step>.orbax-checkpoint-tmp*` behind. On top of that, once Orbax is done,
we write `glamkit_files.json` (every file's size and sha256) into the step folder: it is the commit record. A
step folder without it (killed between Orbax's rename and our record) or whose files no longer match it
(truncated, overwritten) is reported by name, moved to `checkpoints/rejected/`, and the previous step is used.

A checkpoint holds the train state (parameters, optimizer state, step, skipped-step count, RNG key) through
Orbax's StandardSave, sharded as it lives on the mesh, plus a JSON item with the data position.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from data_specs.hashing import hash_file

RECORD = "glamkit_files.json"
TMP_MARK = ".orbax-checkpoint-tmp"
log = logging.getLogger(__name__)


class CheckpointWarning(UserWarning):
    """A checkpoint was skipped because it is incomplete or corrupt."""


class Checkpointer:
    def __init__(self, directory: str | Path, keep: int = 3, verify: str = "sha256"):
        self.dir = Path(directory).absolute()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep, self.verify = keep, verify
        self._reject_leftovers()
        self._manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(max_to_keep=self.keep, create=True, enable_async_checkpointing=False)
        return ocp.CheckpointManager(self.dir, options=options, item_names=("state", "meta"))

    # ------------------------------------------------------------------------------------------------ save
    def save(self, step: int, state: Any, meta: dict[str, Any]) -> Path:
        """Save synchronously, then write the commit record. Returns the step folder."""
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        self._manager.save(step, args=args, force=True)
        self._manager.wait_until_finished()
        path = self.dir / str(step)
        if jax.process_index() == 0:
            write_record(path, with_hashes=self.verify == "sha256")
        return path

    # --------------------------------------------------------------------------------------------- restore
    def steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def restore_latest(self, abstract_state: Any) -> tuple[int, Any, dict[str, Any]] | None:
        """(step, state, meta) of the newest intact checkpoint, or None. Damaged newer ones are rejected
        with a CheckpointWarning naming them."""
        for step in reversed(self.steps()):
            path = self.dir / str(step)
            problem = check_record(path, self.verify)
            if problem is None:
                try:
                    args = ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state),
                                              meta=ocp.args.JsonRestore())
                    restored = self._manager.restore(step, args=args)
                    return step, restored["state"], dict(restored["meta"])
                except Exception as exc:  # unreadable despite a matching record
                    problem = f"restore failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            self._reject(path, problem)
        return None

    def _reject(self, path: Path, problem: str) -> None:
        warnings.warn(f"checkpoint {path} is incomplete or corrupt ({problem}); using the previous one",
                      CheckpointWarning, stacklevel=3)
        log.warning("checkpoint %s rejected: %s", path, problem)
        if jax.process_index() == 0 and path.exists():
            rejected = self.dir / "rejected"
            rejected.mkdir(exist_ok=True)
            target = rejected / path.name
            if target.exists():
                shutil.rmtree(target)
            os.replace(path, target)
        self._manager.close()
        self._manager = self._open()

    def _reject_leftovers(self) -> None:
        """Saves that never finished (the process died inside Orbax): name them and clear them away."""
        for tmp in sorted(self.dir.glob(f"*{TMP_MARK}*")):
            warnings.warn(f"checkpoint {tmp} is incomplete (interrupted save); ignoring it", CheckpointWarning,
                          stacklevel=3)
            if jax.process_index() == 0:
                shutil.rmtree(tmp, ignore_errors=True)

    def close(self) -> None:
        self._manager.close()


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.name != RECORD)


def write_record(path: Path, with_hashes: bool = True) -> None:
    """Record every file's size (and sha256, which costs a read of the checkpoint), atomically, after the save."""
    record = {p.relative_to(path).as_posix(): {"size": p.stat().st_size,
                                               "sha256": hash_file(p) if with_hashes else None}
              for p in _files(path)}
    tmp = path / f".{RECORD}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, sort_keys=True, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / RECORD)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_record(path: Path, verify: str = "sha256") -> str | None:
    """None if `path` matches its commit record, else what is wrong."""
    try:
        record = json.loads((path / RECORD).read_text())
    except FileNotFoundError:
        return f"no {RECORD}: the save did not finish"
    except json.JSONDecodeError:
        return f"{RECORD} is unreadable"
    for name, want in sorted(record.items()):
        file = path / name
        if not file.is_file():
            return f"{name} is missing"
        size = file.stat().st_size
        if size != want["size"]:
            return f"{name} has {size} bytes, {want['size']} were saved"
        if verify == "sha256" and want["sha256"] and hash_file(file) != want["sha256"]:
            return f"{name} does not match its saved sha256"
    return None
