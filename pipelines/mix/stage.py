"""The recipe's `shards` stage: runs the mix job (pipelines.mix.job, Beam, imported when the stage runs) into the
stage's folder. Light at import, so `glamkit --help` loads no Beam."""

from __future__ import annotations

import json
import time
from functools import partial
from pathlib import Path
from typing import Any

from data_specs import progress, specs
from data_specs.loader import to_plain
from data_specs.specs import MixtureSpec
from data_specs.stages import Stage, StageArgs, make
from pipelines.beam.options import current_beam_args

STAGE_NAME = "shards"  # RUN/shards/manifest.json
STAGE_VERSION = "1"


def mix_config(spec: MixtureSpec) -> dict[str, Any]:
    """What the shards depend on besides the curated documents and the tokenizer (the stage's key)."""
    return {"version": STAGE_VERSION, "seed": spec.seed, "mixing": to_plain(spec.mixing),
            "weights": {c: s.weight for c, s in sorted(spec.components.items())}}


def upstream_hashes(provenance: dict[str, Any]) -> dict[str, str]:
    """Upstream stage keys; for a standalone run, the fingerprints of its input folders, by folder name (never
    absolute paths: the manifest must not depend on where the run folder is)."""
    up = dict(provenance.get("upstream") or {})
    for path, digest in (provenance.get("inputs") or {}).items():
        up.setdefault(Path(path).name, digest)
    return up


def mix_stage(ctx: Any, mixture_spec_path: str | Path) -> dict[str, Any]:
    """Stage-runner entry point: reads ctx.upstream['curated'] and ['tokenizer'], writes shards + manifest.json into
    ctx.out. Beam flags come from `pipelines.beam.options.beam_args(...)` (set by `glamkit mix`)."""
    from pipelines.mix.job import PROGRESS_COUNTER, mix  # Beam

    spec = specs.load("mixtures", mixture_spec_path)
    curated = Path(ctx.upstream.get("curated", ctx.run_dir / "curated"))
    tokenizer = Path(ctx.upstream.get("tokenizer", ctx.run_dir / "tokenizer"))
    args = current_beam_args()
    ctx.log.info("mix: beam args %s", " ".join(args) or "(none: in-process FnApiRunner)")
    start = time.perf_counter()
    with progress.watch(PROGRESS_COUNTER, _kept_in(curated), "docs tokenized", log=ctx.log):
        manifest = mix(spec, curated, tokenizer, Path(ctx.out), args, upstream_hashes(ctx.provenance))
    seconds = time.perf_counter() - start
    split_tokens = manifest["extra"]["split_tokens"]
    for warning in manifest["extra"].get("warnings", []):
        ctx.log.warning("mix: %s", warning)
    tokens = sum(split_tokens.values())
    ctx.log.info("mix: %d tokens in %.1f s (%.0f tokens/s)", tokens, seconds, tokens / max(seconds, 1e-9))
    return {"split_tokens": split_tokens, "epochs": {c: m["epochs"] for c, m in manifest["components"].items()}}


def _kept_in(curated: Path) -> int | None:
    """Documents curation kept (the progress total); None if its stats cannot be read."""
    try:
        return int(json.loads((curated / "stats.json").read_text())["total"]["kept"]) or None
    except (OSError, ValueError, KeyError, TypeError):
        return None


NAME = STAGE_NAME
DESCRIPTION = "sample the weighted mixture into Arrow token shards (Beam)"


def make_stage(args: StageArgs) -> Stage:
    """Needs `curated` and `tokenizer` (standalone: fingerprints those two folders instead)."""
    spec = specs.load("mixtures", args.mixture)
    return make(NAME, partial(mix_stage, mixture_spec_path=str(args.mixture)), mix_config(spec), args,
                needs=("curated", "tokenizer"), version=STAGE_VERSION, description=DESCRIPTION)
