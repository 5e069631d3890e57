"""The `glamkit` lm-eval backend: its numbers are the checkpoint's own, whatever the batching, order or device mesh."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import PYTHON, REPO
from tests.eval.backend_checks import Direct, backend_answers, instances, requests

pytestmark = pytest.mark.slow  # the session's demo run (real data, a trained checkpoint) takes minutes to build


@pytest.fixture(scope="module")
def direct(eval_run: Path) -> Direct:
    return Direct(eval_run)


@pytest.fixture(scope="module")
def lm(eval_run: Path):
    from eval.backend import GlamkitLM

    return GlamkitLM(run=str(eval_run), batch_size=4)


def test_loglikelihood_is_the_direct_forward_sum(lm, direct: Direct, eval_run: Path) -> None:
    pairs, _ = requests(eval_run)
    got = lm.loglikelihood(instances("loglikelihood", pairs))
    for (context, continuation), (ll, greedy) in zip(pairs, got, strict=True):
        want, want_greedy = direct.loglikelihood(context, continuation)
        assert ll == pytest.approx(want, abs=1e-4), (context[-40:], continuation)
        assert greedy == want_greedy
    assert len({round(ll, 3) for ll, _ in got}) > len(got) // 2  # real, varied numbers


def test_rolling_loglikelihood_of_a_long_document_is_the_direct_windowed_sum(lm, direct: Direct,
                                                                          eval_run: Path) -> None:
    docs = [json.loads(line) for line in (eval_run / "tasks" / "heldout" / "test.jsonl").read_text().splitlines()]
    doc = next(d["text"] for d in docs if len(direct.sp.encode(d["text"])) >= 3 * direct.context + 17)
    tokens = direct.sp.encode(doc)
    text = direct.sp.decode(tokens[: 3 * direct.context + 17])  # three full windows and a partial one
    want, windows = direct.rolling(text)
    assert windows == 4 and len(lm.rolling_windows(text)) == 4
    [got] = lm.loglikelihood_rolling(instances("loglikelihood_rolling", [(text,)]))
    assert got == pytest.approx(want, rel=1e-6, abs=1e-4)
    # a continuation longer than the context loses no token either: after EOS it is the same windowed sum
    [(long, _)] = lm.loglikelihood(instances("loglikelihood", [("", text)]))
    assert long == pytest.approx(want, rel=1e-6, abs=1e-4)
    # lm-eval's windows give the last one a full context: not the same as disjoint chunks conditioned on one token
    assert sum(len(cont) for _, cont in lm.rolling_windows(text)) == len(direct.sp.encode(text))


def test_generate_until_is_the_plain_greedy_loop_and_stops_at_the_stop_string(lm, direct: Direct,
                                                                            eval_run: Path) -> None:
    _, gens = requests(eval_run)
    for context, until, cap in gens:
        [got] = lm.generate_until(instances("generate_until", [(context, {"until": until, "max_gen_toks": cap})]))
        assert got == direct.greedy(context, until, cap)[0]
    # A stop string the model does produce: generation ends there, and the text before it is returned.
    context = gens[0][0]
    free, n_free = direct.greedy(context, [], 12)
    tokens = direct.sp.encode(free)
    assert n_free == 12 and len(tokens) > 3, free
    stop = direct.sp.decode(tokens[:3])[-2:]
    want, n_stop = direct.greedy(context, [stop], 12)
    assert n_stop < n_free and want == free.split(stop)[0]
    calls = []
    original = lm.scorer.next_tokens
    lm.scorer.next_tokens = lambda seqs, widths: calls.append(len(seqs)) or original(seqs, widths)
    try:
        [got] = lm.generate_until(instances("generate_until", [(context, {"until": [stop], "max_gen_toks": 12})]))
    finally:
        lm.scorer.next_tokens = original
    assert got == want and stop not in got and len(calls) == n_stop


def test_batch_size_and_request_order_change_nothing(lm, eval_run: Path) -> None:
    from eval.backend import GlamkitLM

    pairs, gens = requests(eval_run)
    ll_ref, gen_ref = backend_answers(lm, pairs, gens)
    for batch_size, seed in ((1, None), (8, 11)):
        other = GlamkitLM(run=str(eval_run), batch_size=batch_size)
        ll, gen = backend_answers(other, pairs, gens, seed)
        np.testing.assert_allclose([x for x, _ in ll], [x for x, _ in ll_ref], rtol=0, atol=1e-5)
        assert [g for _, g in ll] == [g for _, g in ll_ref] and gen == gen_ref


def test_bad_requests_are_one_line_errors(lm) -> None:
    from data_specs.errors import GlamkitError

    with pytest.raises(GlamkitError, match="greedily"):
        lm.generate_until(instances("generate_until", [("a", {"until": ["."], "do_sample": True,
                                                               "temperature": 0.7})]))
    with pytest.raises(GlamkitError, match="run=RUN"):
        type(lm)()


MESH_SCRIPT = """
import json, sys
from pathlib import Path
import jax
import numpy as np
from eval.backend import GlamkitLM
from tests.eval.backend_checks import Direct, backend_answers, requests
run = Path(sys.argv[1])
assert jax.device_count() == 8
pairs, gens = requests(run)
direct = Direct(run)
mesh = GlamkitLM(run=str(run), batch_size=8, data=2, expert=4)
ll, gen = backend_answers(mesh, pairs, gens)
ll2, gen2 = backend_answers(GlamkitLM(run=str(run), batch_size=16, data=2, expert=4), pairs, gens, seed=3)
want = [direct.loglikelihood(*p) for p in pairs]
print(json.dumps({
    "direct": max(abs(a[0] - b[0]) for a, b in zip(ll, want)),
    "greedy_same": [a[1] for a in ll] == [b[1] for b in want],
    "batch_order": max(abs(a[0] - b[0]) for a, b in zip(ll, ll2)),
    "gen_same": gen == gen2 == [direct.greedy(*g)[0] for g in gens],
    "sharded": sum(not leaf.sharding.is_fully_replicated for leaf in jax.tree.leaves(mesh.scorer.params)),
}))
"""


@pytest.mark.slow
def test_the_same_on_an_eight_device_data_expert_mesh(eval_run: Path) -> None:
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([PYTHON, "-c", MESH_SCRIPT, str(eval_run)], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["direct"] <= 1e-4 and got["greedy_same"]
    assert got["batch_order"] <= 1e-5 and got["gen_same"]
    assert got["sharded"] > 0  # the experts (and FSDP's embed dims) are split over the mesh
