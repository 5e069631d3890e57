import warnings

import jax.numpy as jnp
import numpy as np
import pytest

from train.checkpoint import RECORD, Checkpointer, CheckpointWarning


def _state(value: float) -> dict:
    return {"params": {"w": jnp.full((64, 32), value), "b": jnp.arange(8.0) + value}, "step": jnp.int32(value)}


def _abstract():
    import jax

    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), _state(0.0))


def _save(ckpt: Checkpointer, steps: list[int]) -> None:
    for s in steps:
        ckpt.save(s, _state(float(s)), {"data_position": s * 10})


def test_save_keeps_last_k_and_restores_the_newest(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2)
    _save(ckpt, [1, 2, 3])
    assert ckpt.steps() == [2, 3]
    step, state, meta = ckpt.restore_latest(_abstract())
    assert step == 3 and meta["data_position"] == 30
    np.testing.assert_array_equal(state["params"]["w"], np.full((64, 32), 3.0))


def test_truncated_file_falls_back_to_previous_with_a_warning_naming_it(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=3)
    _save(ckpt, [1, 2])
    latest = tmp_path / "ckpt" / "2"
    victim = max((p for p in latest.rglob("*") if p.is_file() and p.name != RECORD), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.warns(CheckpointWarning, match=str(latest)):
        step, state, meta = Checkpointer(tmp_path / "ckpt", keep=3).restore_latest(_abstract())
    assert step == 1 and meta["data_position"] == 10
    np.testing.assert_array_equal(state["params"]["b"], np.arange(8.0) + 1)
    assert (tmp_path / "ckpt" / "rejected" / "2").is_dir()  # moved aside, not deleted


def test_uncommitted_and_interrupted_saves_are_ignored(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=3)
    _save(ckpt, [1, 2])
    (tmp_path / "ckpt" / "2" / RECORD).unlink()  # killed after Orbax's rename, before our commit record
    (tmp_path / "ckpt" / "3.orbax-checkpoint-tmp-123").mkdir()  # killed inside Orbax's save
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reopened = Checkpointer(tmp_path / "ckpt", keep=3)
        step, _, _ = reopened.restore_latest(_abstract())
    assert step == 1
    messages = " ".join(str(w.message) for w in caught if issubclass(w.category, CheckpointWarning))
    assert "3.orbax-checkpoint-tmp-123" in messages and str(tmp_path / "ckpt" / "2") in messages
    _save(reopened, [2])  # the rejected step number can be saved again
    assert reopened.restore_latest(_abstract())[0] == 2
