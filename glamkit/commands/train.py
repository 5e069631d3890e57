"""`glamkit train`: train a model preset on token shards into a run folder (resumes when run again)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from data_specs.errors import GlamkitError
from data_specs.loader import parse_set_args
from glamkit.args import add_dry_run, add_set_option
from train.config import load_train_spec
from train.plan import format_plan, plan_in_subprocess


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a GLaM model preset on the mixing job's token shards (JAX; resumable)",
        description="Train the model preset a train spec names on Arrow token shards. The run folder gets the "
        "resolved config, metrics.jsonl, TensorBoard events and Orbax checkpoints; running the same command "
        "again resumes from the newest intact checkpoint with exactly the next batch. SIGTERM saves a checkpoint "
        "and stops (exit code 143); on several hosts, SIGTERM to any one makes every host save the same step and "
        "exit 143. Files: RUN/config.yaml, RUN/metrics.jsonl, RUN/timings.jsonl, RUN/tensorboard/ and "
        "RUN/checkpoints/<step>/ (Orbax's layout: orbax.checkpoint.CheckpointManager reads it); RUN may be any "
        "path etils.epath supports for the checkpoints (gs://...). Several hosts: start one process per host "
        "with --coordinator HOST:PORT --num-processes N --process-id I (or JAX_COORDINATOR_ADDRESS, "
        "JAX_NUM_PROCESSES, JAX_PROCESS_ID); on TPU pods, Slurm, Open MPI and Kubernetes JAX finds them itself.",
        epilog="Examples:\n"
        "  glamkit train --config tiny --shards runs/demo/shards --run runs/tiny\n"
        "  glamkit train --config data_specs/train/tiny.yaml --set steps=50 optimizer.learning_rate=0.005 "
        "--shards runs/demo/shards --run runs/tiny-short\n"
        "  glamkit train --plan glam-1.7b-64e-8xh100 --devices 8 --device-memory 80   # will it fit? (no GPU needed)\n"
        "\n--plan compiles one full step (forward, backward, update, gradient accumulation) for the spec's mesh on\n"
        "N forced host devices, allocating nothing, and prints per device the parameter, gradient and optimizer\n"
        "bytes, XLA's temporaries (an XLA:CPU estimate), the micro-batch, and every collective's count and bytes;\n"
        "'fits' needs the total under 0.9 x the device memory and >= 8K tokens per device per micro-step. On a\n"
        "GPU, JAX preallocates 75% of memory unless XLA_PYTHON_CLIENT_MEM_FRACTION (or\n"
        "XLA_PYTHON_CLIENT_PREALLOCATE=false) says otherwise: plan against what JAX will take.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", help="train spec name (data_specs/train/<name>.yaml) or path")
    add_set_option(p, "the train spec's", "steps=50")
    add_dry_run(p)
    p.add_argument("--run", dest="run_dir", help="run folder (created; resumed if it has checkpoints)")
    p.add_argument("--shards", default=None, help="shard folder with manifest.json (default: the spec's `shards`)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    hosts = p.add_argument_group("several hosts (jax.distributed; default: the environment's settings)")
    hosts.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, the same on every host")
    hosts.add_argument("--num-processes", type=int, help="processes (hosts) in the job")
    hosts.add_argument("--process-id", type=int, help="this process's index, 0 .. N-1")
    plan = p.add_argument_group("memory plan (instead of training)")
    plan.add_argument("--plan", metavar="CONFIG", help="train spec to plan: compile one step, print what each "
                      "device holds and whether it fits")
    plan.add_argument("--devices", type=int, help="devices to plan for (forced host devices; e.g. 8 or 64)")
    plan.add_argument("--device-memory", type=float, metavar="GB", help="memory per device in GiB (H100: 80)")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    if args.plan:
        if not args.devices or not args.device_memory:
            raise GlamkitError("--plan needs --devices N and --device-memory GB")
        spec = load_train_spec(args.plan, parse_set_args(args.set))  # a bad spec fails here, in one line
        if args.dry_run:
            print(f"dry run: would compile one step of {spec.name} on {args.devices} devices of "
                  f"{args.device_memory:g} GiB (nothing compiled)")
            return 0

        plan = plan_in_subprocess(args.plan, args.devices, args.device_memory, args.set)
        print(json.dumps(plan, indent=2) if args.json else format_plan(plan))
        return 0 if plan["fits"] else 1
    if not args.config or not args.run_dir:
        raise GlamkitError("train needs --config and --run (or --plan CONFIG --devices N --device-memory GB)")

    spec = load_train_spec(args.config, parse_set_args(args.set))
    if args.dry_run:
        return _dry_run(spec, args)
    from train.mesh import init_distributed

    init_distributed(args.coordinator, args.num_processes, args.process_id)
    from train.loop import Trainer

    summary = Trainer(spec, args.run_dir, args.shards, progress=not args.no_progress).run()
    print(json.dumps({k: summary[k] for k in ("steps", "first_loss", "last_loss", "skipped_steps", "validation")}))
    if summary["interrupted"]:
        print(f"stopped by SIGTERM at step {summary['steps']}; rerun the same command to resume")
        return 143
    return 0


def _dry_run(spec, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    """--dry-run: the spec loaded, the shards' manifest checked; the run folder is not touched."""
    if not (args.shards or spec.shards):
        raise GlamkitError(f"train spec {spec.name} names no shards: pass --shards RUN/shards")
    shards = Path(args.shards or spec.shards)
    if not (shards / "manifest.json").is_file():
        raise GlamkitError(f"{shards}: no manifest.json (run `glamkit mix` first)")
    state = "resumes" if (Path(args.run_dir) / "checkpoints").is_dir() else "starts"
    print(f"dry run: train {spec.name} ({spec.model}), {spec.steps} steps on {shards} -> {args.run_dir} ({state}; "
          "nothing written)")
    return 0
