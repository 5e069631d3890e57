import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from model.attention import relative_buckets
from model.transformer import Transformer


def _logits(forward, tokens, **kw):
    return np.asarray(forward(jnp.asarray(tokens), **kw)[0])


@pytest.mark.parametrize("experts", [0, 4])
def test_future_token_changes_no_earlier_logit(make_config, jit_forward, experts):
    # Ample capacity: with drops, GShard routing lets later tokens take earlier tokens' slots (see moe.py).
    cfg = make_config(num_experts=experts, capacity_factor=8.0, num_groups=1)
    model = jit_forward(Transformer(cfg, rngs=nnx.Rngs(0)))
    tokens = np.asarray(jax.random.randint(jax.random.key(1), (2, 24), 0, cfg.vocab_size))
    base = _logits(model, tokens)
    t = 13
    changed = tokens.copy()
    changed[:, t] = (changed[:, t] + 1) % cfg.vocab_size
    out = _logits(model, changed)
    # Not bit-exact for MoE: a later token can move an earlier token's second choice to another buffer slot.
    np.testing.assert_allclose(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
    assert np.abs(out[:, t:] - base[:, t:]).max() > 1e-3  # the change is visible from t on


def test_no_attention_across_segments(make_config, jit_forward):
    cfg = make_config()
    model = jit_forward(Transformer(cfg, rngs=nnx.Rngs(0)))
    key_a, key_b = jax.random.split(jax.random.key(2))
    doc_a = np.asarray(jax.random.randint(key_a, (1, 10), 0, cfg.vocab_size))
    doc_b = np.asarray(jax.random.randint(key_b, (1, 14), 0, cfg.vocab_size))
    packed = np.concatenate([doc_a, doc_b], axis=1)
    segments = np.asarray([[1] * 10 + [2] * 14])
    out = _logits(model, packed, segment_ids=jnp.asarray(segments))
    alone = _logits(model, doc_b)
    np.testing.assert_allclose(out[:, 10:], alone, atol=1e-5, rtol=1e-5)
    # Changing document A leaves document B untouched.
    other = packed.copy()
    other[:, :10] = (other[:, :10] + 7) % cfg.vocab_size
    out2 = _logits(model, other, segment_ids=jnp.asarray(segments))
    np.testing.assert_array_equal(out2[:, 10:], out[:, 10:])


def test_relative_buckets_t5_unidirectional():
    q = jnp.arange(200)
    b = np.asarray(relative_buckets(q, q, num_buckets=32, max_distance=128))
    dist = np.arange(200)
    row = b[199, 199 - dist]  # bucket of distance d for the last query
    np.testing.assert_array_equal(row[:16], np.arange(16))  # exact buckets for short distances
    assert row[16] == 16 and row[32] == 21 and row[127] == 31  # log-spaced: 16 + floor(log(d/16)/log 8 * 16)
    assert (row[127:] == 31).all() and (np.diff(row) >= 0).all()
    assert (b[np.triu_indices(200, 1)] == 0).all()  # future keys (masked anyway) fall in bucket 0


def test_one_bias_table_per_layer_equals_the_per_row_bias_on_packed_rows():
    """The [heads, t, t] bias from token order equals a per-row [b, t, t, heads] bias built from positions that
    restart at each document, wherever the causal and segment masks let attention through."""
    from model.attention import attention_mask

    rng = np.random.default_rng(0)
    t, heads, buckets = 64, 3, 8
    table = rng.normal(size=(buckets, heads))
    segments = np.sort(rng.integers(1, 6, (4, t)), axis=1)  # packed rows of up to five documents
    segments[1, 50:] = 0  # padded tail
    starts = np.array([[np.argmax(row == s) for s in row] for row in segments])
    positions = np.arange(t)[None] - starts
    per_row = table[np.asarray(relative_buckets(jnp.asarray(positions), jnp.asarray(positions), buckets, 16))]
    order = jnp.arange(t)
    shared = table[np.asarray(relative_buckets(order, order, buckets, 16))]  # [t, t, heads]
    mask = np.asarray(attention_mask(jnp.asarray(segments), t))[:, 0]  # [b, q, k]
    real = mask & (segments[:, :, None] > 0)
    assert real.sum() > 1000
    shared = np.broadcast_to(shared, per_row.shape)
    np.testing.assert_array_equal(shared[real], per_row[real])
    assert (shared != per_row)[~real].any()  # across documents the two differ: only the mask makes them agree
