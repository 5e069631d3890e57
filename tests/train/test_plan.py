"""`glamkit train --plan`: exact per-device bytes from shardings, XLA's temporaries, collectives x loop trips."""

import json
import os
import subprocess
import textwrap

import pytest

from tests.conftest import PYTHON, REPO
from train.plan import hlo_collectives, shape_bytes

HLO = textwrap.dedent("""\
    HloModule m

    %body.1 (p: (s32[], f32[8,4])) -> (s32[], f32[8,4]) {
      %ag = f32[8,4]{1,0} all-gather(%x), channel_id=1, dimensions={0}
      %inner = (s32[], f32[2]) while(%t), condition=%cond.2, body=%body.2, backend_config={"known_trip_count":{"n":"3"}}
      ROOT %r = (s32[], f32[8,4]) tuple(%a, %ag)
    }

    %body.2 (p: (s32[], f32[2])) -> (s32[], f32[2]) {
      %a2a = (bf16[2]{0}, bf16[2]{0}) all-to-all(%y, %z), channel_id=2
      ROOT %r2 = (s32[], f32[2]) tuple(%b, %c)
    }

    %cond.2 (p: (s32[], f32[2])) -> pred[] {
      ROOT %lt = pred[] compare(%i, %n), direction=LT
    }

    %cond.1 (p: (s32[], f32[8,4])) -> pred[] {
      ROOT %lt = pred[] compare(%i, %n), direction=LT
    }

    ENTRY %main (a: f32[8,4]) -> f32[8,4] {
      %ar = f32[8,4]{1,0} all-reduce(%a), channel_id=3, to_apply=%add
      %w = (s32[], f32[8,4]) while(%t0), condition=%cond.1, body=%body.1, backend_config={"known_trip_count":{"n":"12"}}
      ROOT %out = f32[8,4]{1,0} get-tuple-element(%w), index=1
    }
""")


def test_collectives_inside_loops_count_once_per_trip():
    assert shape_bytes("(f32[4,8]{1,0}, bf16[2])") == 132
    got = hlo_collectives(HLO)
    assert got["all-reduce"] == {"count": 1, "bytes": 128}
    assert got["all-gather"] == {"count": 12, "bytes": 12 * 128}  # in the 12-trip loop
    assert got["all-to-all"] == {"count": 36, "bytes": 36 * 8}  # in a 3-trip loop inside the 12-trip loop


SCRIPT = textwrap.dedent("""
    import json
    from train.config import load_train_spec
    from train.plan import plan_step

    small = {"model_overrides.num_layers": 4, "model_overrides.embed_dim": 128, "model_overrides.mlp_dim": 256,
             "model_overrides.num_heads": 2, "model_overrides.head_dim": 32, "model_overrides.num_experts": 4,
             "model_overrides.vocab_size": 4000, "model_overrides.group_size": 128}
    def plan(**overrides):
        return plan_step(load_train_spec("tiny", {**small, **overrides}), 16)

    mesh = {"mesh.data": 2, "mesh.expert": 2, "mesh.model": 2, "batch_size": 16, "seq_len": 64}
    out = {
        "replicated": plan(**mesh),
        "fsdp": plan(**mesh, **{"model_overrides.fsdp": True}),
        # Activations the backward pass keeps: 8 rows x 512 on each of 8 devices, four layers.
        "keep": plan(**{"mesh.data": 8, "batch_size": 64, "seq_len": 512}),
        "remat": plan(**{"mesh.data": 8, "batch_size": 64, "seq_len": 512, "model_overrides.remat": "full"}),
        # One layer, a 32K vocabulary, one 1,024-token row per device: full logits would be 131 MB per device.
        "vocab": plan(**{"mesh.data": 8, "batch_size": 8, "seq_len": 1024, "model_overrides.num_layers": 1,
                         "model_overrides.num_experts": 0, "model_overrides.vocab_size": 32000}),
    }
    print("PLANS " + json.dumps(out))
""")


@pytest.mark.slow
def test_plans_on_eight_forced_devices():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([PYTHON, "-c", SCRIPT], env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    plans = json.loads(proc.stdout.split("PLANS ", 1)[1])

    def dense(plan):  # non-expert parameter + optimizer + gradient bytes per device (Adafactor's state is tiny)
        return plan["params_bytes"]["dense"] + plan["grads_bytes"]["dense"] + plan["opt_state_bytes"]

    rep, fsdp = plans["replicated"], plans["fsdp"]
    # Experts keep their expert axis; FSDP splits their embed dim over the one batch axis left, data (2).
    assert rep["params_bytes"]["expert"] == 2 * fsdp["params_bytes"]["expert"]
    assert dense(rep) / dense(fsdp) >= 3.5, (dense(rep), dense(fsdp))
    assert "all-gather" in fsdp["collectives"]  # FSDP gathers each layer's parameters where they are used
    assert plans["remat"]["temporaries_bytes_xla_cpu_estimate"] < plans["keep"]["temporaries_bytes_xla_cpu_estimate"]
    vocab = plans["vocab"]
    full_logits = 1 * 1024 * 32000 * 4
    assert vocab["micro_batch_rows_per_device"] == 1
    assert vocab["temporaries_bytes_xla_cpu_estimate"] < full_logits, vocab
    for plan in plans.values():
        assert plan["total_bytes"] == (plan["params_bytes"]["total"] + plan["grads_bytes"]["total"]
                                       + plan["opt_state_bytes"] + plan["temporaries_bytes_xla_cpu_estimate"])
        assert not plan["fits"] and "tokens per device" in plan["verdict"]  # small micro-batches: never "fits"
