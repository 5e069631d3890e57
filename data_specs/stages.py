"""The stage runner and run layout: `runs/<name>/<stage>/`, each stage done once per distinct input.

A stage writes into a hidden temporary folder; when it returns, the runner adds the completion marker
(`_COMPLETE.json`, holding the stage's key and provenance) and renames the folder into place. So a stage killed at any
point leaves no visible output and no marker. A stage's key hashes its config, its external inputs and its upstream
stages' keys: a stage whose marker holds the current key is skipped, and a change anywhere upstream changes every
key after it, so exactly the affected stages rerun. Timings go to `logs/`, never into stage folders.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from data_specs import io as fileio
from data_specs.errors import GlamkitError
from data_specs.hashing import hash_file, hash_value
from data_specs.loader import to_plain

MARKER = "_COMPLETE.json"
BIG_FILE = 64 << 20  # inputs above this are fingerprinted by size and mtime, not content (a 100 GB dump)


@dataclass(frozen=True)
class StageContext:
    """What a running stage gets: where to write, where its upstream outputs are, and what to stamp on artefacts."""

    name: str
    run_dir: Path
    out: Path  # write everything here (a temporary folder that becomes run_dir/name)
    upstream: dict[str, Path]  # upstream stage name -> its completed folder
    provenance: dict[str, Any]  # spec hash, upstream keys: embed in every artefact
    log: logging.Logger


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[StageContext], Any]  # may return a JSON-able summary, saved in the marker
    config: Any = None  # a spec dataclass or JSON-able value; part of the key
    needs: tuple[str, ...] = ()  # upstream stages (must come earlier in the list)
    inputs: tuple[Path, ...] = ()  # external files or folders the stage reads; fingerprinted into the key
    version: str = "1"  # bump when the stage's code changes what it writes
    description: str = ""


@dataclass(frozen=True)
class StageArgs:
    """What every stage module's `make_stage(args)` gets: the recipe's specs and where the run is."""

    mixture: str | Path  # mixture spec: a name under data_specs/mixtures/ or a path
    train: str | Path = "tiny"  # train spec: a name or a path
    run_dir: Path = Path(".")
    standalone: bool = False  # no upstream stages in the layout: fingerprint RUN/<need> folders instead
    eval_limit: int | None = None  # examples per eval task (None: all)
    overrides: Mapping[str, Any] = field(default_factory=dict)  # train spec keys set on top (the study's seed)


def make(name: str, run: Callable[[StageContext], Any], config: Any, args: StageArgs, *, version: str,
         description: str, needs: tuple[str, ...] = (), inputs: Sequence[Path] = (),
         standalone_inputs: Sequence[Path] | None = None) -> Stage:
    """A stage as the recipe runs it (after `needs`), or standalone: then what it needs is fingerprinted as input
    folders, RUN/<need> (or `standalone_inputs`, for a stage that reads something else on its own). The one place
    for the standalone rule."""
    if not args.standalone:
        return Stage(name, run, config, needs=needs, inputs=tuple(inputs), version=version, description=description)
    extra = standalone_inputs if standalone_inputs is not None else [Path(args.run_dir) / n for n in needs]
    return Stage(name, run, config, inputs=(*inputs, *extra), version=version, description=description)


@dataclass
class StageResult:
    name: str
    state: str  # "skipped" (marker matched) or "ran"
    key: str
    path: Path
    summary: Any = None
    seconds: float = 0.0


@dataclass
class RunLayout:
    """A run folder and its stages, in order."""

    run_dir: Path
    stages: Sequence[Stage]
    _keys: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.run_dir = Path(self.run_dir)
        seen: set[str] = set()
        for stage in self.stages:
            if stage.name in seen:
                raise ValueError(f"stage {stage.name!r} defined twice")
            missing = [n for n in stage.needs if n not in seen]
            if missing:
                raise ValueError(f"stage {stage.name!r} needs {missing}, which must come before it")
            seen.add(stage.name)

    # ------------------------------------------------------------------------------------------------ keys
    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise GlamkitError(f"no stage named {name!r} (stages: {', '.join(s.name for s in self.stages)})")

    def provenance(self, name: str) -> dict[str, Any]:
        stage = self.stage(name)
        return {
            "stage": name,
            "stage_version": stage.version,
            "config_hash": hash_value(to_plain(stage.config)),
            "inputs": {str(p): fingerprint(p) for p in stage.inputs},
            "upstream": {n: self.key(n) for n in stage.needs},
        }

    def key(self, name: str) -> str:
        if name not in self._keys:
            self._keys[name] = hash_value(self.provenance(name))
        return self._keys[name]

    def marker(self, name: str) -> dict[str, Any] | None:
        path = self.run_dir / name / MARKER
        try:
            return json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def is_done(self, name: str) -> bool:
        marker = self.marker(name)
        return marker is not None and marker.get("key") == self.key(name)

    def status(self) -> list[tuple[str, str]]:
        """(stage, 'done' | 'stale' | 'missing') for each stage."""
        out = []
        for stage in self.stages:
            marker = self.marker(stage.name)
            state = "missing" if marker is None else "done" if marker.get("key") == self.key(stage.name) else "stale"
            out.append((stage.name, state))
        return out

    # ------------------------------------------------------------------------------------------------- run
    def run(self, only: Iterable[str] | None = None, force: Iterable[str] = ()) -> list[StageResult]:
        """Run stages in order (all, or `only` and what they need), skipping those whose marker matches."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        wanted = self._closure(only) if only is not None else [s.name for s in self.stages]
        forced = set(force)
        results = []
        with _RunLock(self.run_dir):
            self._keys.clear()
            for stage in self.stages:
                if stage.name not in wanted:
                    continue
                if stage.name not in forced and self.is_done(stage.name):
                    results.append(StageResult(stage.name, "skipped", self.key(stage.name), self.run_dir / stage.name))
                    continue
                results.append(self._execute(stage))
        return results

    def plan(self, only: Iterable[str] | None = None, force: Iterable[str] = ()) -> list[tuple[str, str]]:
        """(stage, 'run' | 'forced' | 'skip') for what `run(only, force)` would do now; writes nothing (--dry-run).
        A stage after one that runs may run too: its upstream key changes only once that output exists."""
        wanted = self._closure(only) if only is not None else [s.name for s in self.stages]
        forced = set(force)
        return [(n, "forced" if n in forced else "skip" if self.is_done(n) else "run") for n in wanted]

    def _closure(self, only: Iterable[str]) -> list[str]:
        todo = list(only)
        need: set[str] = set()
        while todo:
            name = todo.pop()
            if name not in need:
                need.add(name)
                todo.extend(self.stage(name).needs)
        return [s.name for s in self.stages if s.name in need]

    def _execute(self, stage: Stage) -> StageResult:
        final = self.run_dir / stage.name
        tmp = self.run_dir / f".{stage.name}.tmp"
        old = self.run_dir / f".{stage.name}.old"
        for leftover in (tmp, old):
            shutil.rmtree(leftover, ignore_errors=True)
        tmp.mkdir(parents=True)
        log = _stage_logger(self.run_dir, stage.name)
        key = self.key(stage.name)
        provenance = {**self.provenance(stage.name), "key": key}
        ctx = StageContext(
            name=stage.name,
            run_dir=self.run_dir,
            out=tmp,
            upstream={n: self.run_dir / n for n in stage.needs},
            provenance=provenance,
            log=log,
        )
        log.info("stage %s: start (key %s)", stage.name, key)
        start = time.perf_counter()
        try:
            summary = stage.run(ctx)
        except BaseException:  # a failed or interrupted stage leaves no temp folder (SIGKILL: the next run clears it)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        seconds = time.perf_counter() - start
        marker = {"key": key, "provenance": provenance, "summary": summary}
        fileio.write_json(tmp / MARKER, marker, sort_keys=True, indent=2)
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        fileio.fsync_folder(self.run_dir)
        log.info("stage %s: done in %.1f s", stage.name, seconds)
        return StageResult(stage.name, "ran", key, final, summary, seconds)


def fingerprint(path: str | Path) -> str:
    """Content hash of a file or folder (size + mtime for files over BIG_FILE); 'missing' if absent."""
    path = Path(path)
    if not path.exists():
        return "missing"
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    parts = []
    for f in files:
        st = f.stat()
        digest = f"stat:{st.st_size}:{st.st_mtime_ns}" if st.st_size > BIG_FILE else hash_file(f)
        parts.append((f.relative_to(path).as_posix() if f != path else f.name, digest))
    return hash_value(parts)




def _stage_logger(run_dir: Path, name: str) -> logging.Logger:
    """Per-stage log file under run_dir/logs/ (timestamps live here, never in stage outputs)."""
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    log = logging.getLogger(f"glamkit.stage.{run_dir.resolve()}.{name}")
    log.setLevel(logging.INFO)
    if not log.handlers:
        handler = logging.FileHandler(logs / f"{name}.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
    log.propagate = False  # the console gets what stages print; the details stay in the file
    return log


class _RunLock:
    """An exclusive lock on a run folder, so two processes never write the same stages."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / ".lock"
        self.fd: int | None = None

    def __enter__(self) -> _RunLock:
        while True:
            self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self.fd)
                raise GlamkitError(f"{self.path.parent}: another glamkit process is running in this run folder") \
                    from None
            try:  # the holder before us may have removed the file: then our lock is on a dead inode, take a new one
                if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    return self
            except FileNotFoundError:
                pass
            os.close(self.fd)

    def __exit__(self, *exc: object) -> None:
        assert self.fd is not None
        self.path.unlink(missing_ok=True)  # removed while still held (see __enter__), so no `.lock` is left behind
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
