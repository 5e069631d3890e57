"""`glamkit train`: train a model preset on token shards into a run folder (resumes when run again)."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a GLaM model preset on the mixing job's token shards (JAX; resumable)",
        description="Train the model preset a train spec names on Arrow token shards. The run folder gets the "
        "resolved config, metrics.jsonl, TensorBoard events and Orbax checkpoints; running the same command "
        "again resumes from the newest intact checkpoint with exactly the next batch. SIGTERM saves a checkpoint "
        "and stops (exit code 143). On several hosts, start one process per host with JAX_COORDINATOR_ADDRESS, "
        "JAX_NUM_PROCESSES and JAX_PROCESS_ID set (or GLAMKIT_DISTRIBUTED=1 on a TPU pod / SLURM).",
        epilog="Examples:\n"
        "  glamkit train --config tiny --shards runs/demo/shards --run runs/tiny\n"
        "  glamkit train --config data_specs/train/tiny.yaml --set steps=50 optimizer.learning_rate=0.005 "
        "--shards runs/demo/shards --run runs/tiny-short",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", required=True, help="train spec name (data_specs/train/<name>.yaml) or path")
    p.add_argument("--set", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override keys (dotted), e.g. --set steps=50 optimizer.learning_rate=0.005")
    p.add_argument("--run", dest="run_dir", required=True, help="run folder (created; resumed if it has checkpoints)")
    p.add_argument("--shards", default=None, help="shard folder with manifest.json (default: the spec's `shards`)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from data_specs.loader import parse_set_args
    from train.config import load_train_spec

    spec = load_train_spec(args.config, parse_set_args(args.set))
    from train.mesh import maybe_init_distributed

    maybe_init_distributed()
    from train.loop import Trainer

    summary = Trainer(spec, args.run_dir, args.shards, progress=not args.no_progress).run()
    print(json.dumps({k: summary[k] for k in ("steps", "first_loss", "last_loss", "skipped_steps", "validation")}))
    if summary["interrupted"]:
        print(f"stopped by SIGTERM at step {summary['steps']}; rerun the same command to resume")
        return 143
    return 0
