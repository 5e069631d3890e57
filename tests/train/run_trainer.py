"""Run the trainer in a child process for the kill/resume and mesh tests (optionally dying mid-save).

    python -m tests.train.run_trainer RUN_DIR SHARDS_DIR [--die-in-save STEP] [KEY=VALUE ...]

--die-in-save STEP sends SIGKILL to this process from inside Orbax's save of STEP, after the arrays are written
and before the temporary folder is renamed into place: a kill in the middle of a checkpoint save.
"""

from __future__ import annotations

import argparse
import json
import os
import signal

from data_specs.loader import parse_set_args


def die_in_save(step: int) -> None:
    from orbax.checkpoint._src.path import atomicity

    original = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.path.basename(str(self.get_final())) == str(step):
            os.kill(os.getpid(), signal.SIGKILL)
        return await original(self, *args, **kwargs)

    atomicity.AtomicRenameTemporaryPath.finalize = finalize


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir")
    parser.add_argument("shards")
    parser.add_argument("--die-in-save", type=int)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_intermixed_args()
    if args.die_in_save is not None:
        die_in_save(args.die_in_save)
    from train.config import load_train_spec
    from train.loop import Trainer

    spec = load_train_spec("tiny", parse_set_args(args.overrides))
    summary = Trainer(spec, args.run_dir, args.shards, tensorboard=False).run()
    print("SUMMARY " + json.dumps(summary))


if __name__ == "__main__":
    main()
