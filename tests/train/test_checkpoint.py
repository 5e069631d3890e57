import json
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
    ckpt.wait()  # saves are asynchronous: the last one is on disk and recorded after this


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


def test_uncommitted_saves_and_missing_files_are_rejected(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=4)
    _save(ckpt, [1, 2, 3])
    (tmp_path / "ckpt" / "4.orbax-checkpoint-tmp-123").mkdir()  # killed inside Orbax's save: never committed
    (tmp_path / "ckpt" / "2" / RECORD).unlink()  # finalised by Orbax, killed before our size record: trusted
    victim = next(p for p in (tmp_path / "ckpt" / "3").rglob("*") if p.is_file() and p.name != RECORD)
    victim.unlink()  # a file gone from the newest step
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reopened = Checkpointer(tmp_path / "ckpt", keep=4)
        step, state, _ = reopened.restore_latest(_abstract())
    assert step == 2
    np.testing.assert_array_equal(state["params"]["b"], np.arange(8.0) + 2)
    messages = " ".join(str(w.message) for w in caught if issubclass(w.category, CheckpointWarning))
    assert "4.orbax-checkpoint-tmp-123" in messages and str(tmp_path / "ckpt" / "3") in messages
    assert "is missing" in messages
    _save(reopened, [3])  # the rejected step number can be saved again
    assert reopened.restore_latest(_abstract())[0] == 3


def test_sha256_verification_is_opt_in(tmp_path):
    ckpt = Checkpointer(tmp_path / "ckpt", keep=2, verify="sha256")
    _save(ckpt, [1, 2])
    record = json.loads((tmp_path / "ckpt" / "2" / RECORD).read_text())
    assert all(len(entry["sha256"]) == 64 for entry in record.values())
    victim = next(p for p in sorted((tmp_path / "ckpt" / "2").rglob("*")) if p.is_file() and p.name != RECORD
                  and p.stat().st_size > 16)
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0xFF  # same size, different bytes: only the hash sees it
    victim.write_bytes(bytes(data))
    with pytest.warns(CheckpointWarning, match="sha256"):
        assert Checkpointer(tmp_path / "ckpt", keep=2, verify="sha256").restore_latest(_abstract())[0] == 1
    default = Checkpointer(tmp_path / "sizes", keep=2)
    _save(default, [1])
    assert all(entry["sha256"] is None for entry in json.loads((tmp_path / "sizes" / "1" / RECORD).read_text())
               .values())
