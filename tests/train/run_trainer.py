"""Run the trainer in a child process for the kill/resume, mesh and multi-host tests (optionally dying mid-save).

    python -m tests.train.run_trainer RUN_DIR SHARDS_DIR [--die-in-save STEP] [--step-delay S]
        [--coordinator HOST:PORT --num-processes N --process-id I] [KEY=VALUE ...]

--die-in-save STEP sends SIGKILL to this process from inside Orbax's save of STEP, after the arrays are written
and before the temporary folder is renamed into place: a kill in the middle of a checkpoint save.
--step-delay S makes reading each batch take S seconds more, so a test can signal the run between steps.
Exits 143 when SIGTERM stopped the run (as `glamkit train` does).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

from data_specs.loader import parse_set_args


def die_in_save(step: int) -> None:
    from orbax.checkpoint._src.path import atomicity

    original = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.path.basename(str(self.get_final())) == str(step):
            os.kill(os.getpid(), signal.SIGKILL)
        return await original(self, *args, **kwargs)

    atomicity.AtomicRenameTemporaryPath.finalize = finalize


def slow_batches(seconds: float) -> None:
    from train.data import BatchStream

    original = BatchStream.batch

    def batch(self, k):  # type: ignore[no-untyped-def]
        time.sleep(seconds)
        return original(self, k)

    BatchStream.batch = batch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("shards")
    parser.add_argument("--die-in-save", type=int)
    parser.add_argument("--step-delay", type=float, default=0.0)
    parser.add_argument("--coordinator")
    parser.add_argument("--num-processes", type=int)
    parser.add_argument("--process-id", type=int)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    if args.die_in_save is not None:
        die_in_save(args.die_in_save)
    from train.mesh import init_distributed

    init_distributed(args.coordinator, args.num_processes, args.process_id)
    if args.step_delay:
        slow_batches(args.step_delay)
    from train.config import load_train_spec
    from train.loop import Trainer

    spec = load_train_spec("tiny", parse_set_args(args.overrides))
    summary = Trainer(spec, args.run_dir, args.shards, tensorboard=False).run()
    print("SUMMARY " + json.dumps(summary), flush=True)
    if summary["interrupted"]:
        sys.exit(143)


if __name__ == "__main__":
    main()
