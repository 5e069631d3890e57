"""Jitted, length-bucketed forward passes of a trained model over token rows, on one CPU or a device mesh.

Each row is padded to its own bucket (the next power of two of its length, at least `min_width`), and only rows of
the same bucket share a batch, so a row's padded shape, and with it its numbers, do not depend on which other rows
were scored with it; batches are padded to a fixed number of rows, so each bucket compiles once. Padding carries
segment id 0, which the model's attention keeps apart and its MoE layers leave out of routing. The model must score
in the dropless dispatch (`eval.model_loader.scoring_config`): no token is ever dropped, so a row's log-likelihoods
never depend on the rows beside it or the tokens after it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from data_specs.errors import GlamkitError
from data_specs.progress import track

Row = tuple[Sequence[int], Sequence[int]]  # (input tokens, target tokens), the same length


def bucket(length: int, min_width: int, max_width: int) -> int:
    """The padded width of a row: a power of two (times min_width), capped at max_width."""
    width = min_width
    while width < length:
        width *= 2
    return min(width, max_width)


class Scorer:
    """`forward(params, tokens, segment_ids) -> logits` batched over rows; the weights are jit arguments, not
    constants baked into each compiled program. With a `mesh`, the weights are placed by the model's sharding
    rules and each batch is split over the mesh's batch axes (data, expert)."""

    def __init__(self, forward: Callable[..., Any], params: Any, max_width: int, batch_size: int = 8,
                 min_width: int = 32, mesh: Any = None, rules: Any = None) -> None:
        import jax
        import jax.numpy as jnp

        self.max_width, self.min_width, self.mesh = max_width, min(min_width, max_width), mesh
        if mesh is not None:
            from model.sharding import param_shardings
            from train.mesh import batch_sharding, data_parallel_size

            shards = data_parallel_size(mesh)
            if batch_size % shards:
                raise GlamkitError(f"batch_size {batch_size} is not a multiple of the mesh's {shards} batch shards "
                                   f"(data x expert)")
            params = jax.device_put(params, param_shardings(params, mesh, rules))
            self._rows = batch_sharding(mesh)
        self.batch_size, self.params = batch_size, params

        def score(p, tokens, segments, targets):
            logp = jax.nn.log_softmax(forward(p, tokens, segments).astype(jnp.float32), axis=-1)
            picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
            return picked, jnp.argmax(logp, axis=-1) == targets

        def greedy(p, tokens, segments, last):
            logits = forward(p, tokens, segments).astype(jnp.float32)
            return jnp.argmax(jnp.take_along_axis(logits, last[:, None, None], axis=1)[:, 0], axis=-1)

        self._score, self._greedy = jax.jit(score), jax.jit(greedy)

    def _call(self, fn: Callable[..., Any], *arrays: np.ndarray) -> list[np.ndarray]:
        import jax

        if self.mesh is None:
            out = fn(self.params, *arrays)
        else:
            with jax.set_mesh(self.mesh):
                out = fn(self.params, *(jax.device_put(a, self._rows) for a in arrays))
        return [np.asarray(a) for a in (out if isinstance(out, tuple) else (out,))]

    def _batches(self, lengths: Sequence[int]) -> list[tuple[int, list[int]]]:
        """(width, row indices) batches: rows grouped by bucket, longest buckets first, in index order within."""
        by_width: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            if n > self.max_width:
                raise GlamkitError(f"a row of {n} tokens is longer than the model's context ({self.max_width})")
            by_width.setdefault(bucket(n, self.min_width, self.max_width), []).append(i)
        return [(width, rows[start : start + self.batch_size]) for width, rows in sorted(by_width.items(),
                                                                                        reverse=True)
                for start in range(0, len(rows), self.batch_size)]

    def _pack(self, seqs: Sequence[Sequence[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
        tokens = np.zeros((self.batch_size, width), np.int32)
        segments = np.zeros((self.batch_size, width), np.int32)
        for r, seq in enumerate(seqs):
            tokens[r, : len(seq)], segments[r, : len(seq)] = seq, 1
        return tokens, segments

    def score(self, rows: Sequence[Row]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per row: the log-probability of each target token and whether it is the argmax, over the row's length."""
        out: list[tuple[np.ndarray, np.ndarray]] = [None] * len(rows)  # type: ignore[list-item]
        for width, chunk in track(self._batches([len(inputs) for inputs, _ in rows]), "eval", unit="batches"):
            tokens, segments = self._pack([rows[i][0] for i in chunk], width)
            targets, _ = self._pack([rows[i][1] for i in chunk], width)
            logp, hits = self._call(self._score, tokens, segments, targets)
            for r, i in enumerate(chunk):
                n = len(rows[i][0])
                out[i] = (logp[r, :n], hits[r, :n])
        return out

    def next_tokens(self, seqs: Sequence[Sequence[int]], widths: Sequence[int]) -> list[int]:
        """The greedy next token after each sequence, each padded to its own `widths[i]` (fixed by the caller for
        a whole generation, so every step of one request runs at one shape)."""
        out = [0] * len(seqs)
        groups: dict[int, list[int]] = {}
        for i, width in enumerate(widths):
            groups.setdefault(width, []).append(i)
        for width, members in sorted(groups.items(), reverse=True):
            for start in range(0, len(members), self.batch_size):
                chunk = members[start : start + self.batch_size]
                tokens, segments = self._pack([seqs[i] for i in chunk], width)
                last = np.zeros(self.batch_size, np.int32)
                last[: len(chunk)] = [len(seqs[i]) - 1 for i in chunk]
                (best,) = self._call(self._greedy, tokens, segments, last)
                for r, i in enumerate(chunk):
                    out[i] = int(best[r])
        return out
